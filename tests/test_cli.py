"""The `mbrs` command line: embed -> attack -> decode with the tiny model, folders, eval, models, help, exit codes,
and one-line errors for every bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mbrs_engine import Watermarker, tiling
from mbrs_engine.cli import build_parser, main

from tiny_model import random_crops

COMMANDS = ["embed", "decode", "verify-report", "attack", "eval", "models", "info"]


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(random_crops(1, 300, seed=11)[0]).resize((240, 180)).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "in"
    path.mkdir()
    for i, crop in enumerate(random_crops(3, 200, seed=12)):
        Image.fromarray(crop).resize((120 + 10 * i, 90)).save(path / f"img{i}.{'png' if i % 2 else 'jpg'}")
    (path / "notes.txt").write_text("not an image")
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mbrs: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: mbrs {command}" in capsys.readouterr().out


def test_top_level_help_lists_commands():
    text = build_parser().format_help()
    for command in COMMANDS:
        assert command in text


def test_embed_attack_decode(tiny_model_path, photo, tmp_path, capsys):
    marked, attacked = tmp_path / "marked.png", tmp_path / "attacked.jpg"
    code, out, err = run(capsys, "embed", photo, "-o", marked, "-m", "Grüße, Jane", "--model", tiny_model_path)
    assert code == 0 and "wrote" in out and "PSNR" in out and "SSIM" in out and not err
    code, out, _ = run(capsys, "attack", marked, "-o", attacked, "--jpeg", "90", "--resize", "0.8")
    assert code == 0 and "jpeg:90+resize:0.8" in out
    assert Image.open(attacked).size == (192, 144)
    code, out, _ = run(capsys, "decode", attacked, "--model", tiny_model_path)
    assert code == 0 and '"Grüße, Jane"' in out and "p = " in out
    code, out, _ = run(capsys, "decode", attacked, "--model", tiny_model_path, "--json")
    result = json.loads(out)
    assert result["detected"] and result["message"] == "Grüße, Jane" and result["p_value"] < 1e-6
    config = Watermarker.from_pretrained(tiny_model_path).config
    # 10 frames, the tiles in place (2 x 2, then 4 x 4) in the 8 orientations, and the tile search, however far it went
    assert tiling.in_place_tiles(192, 144, config) == (2, 4)
    assert len(result["bits"]) == 256 and result["hypotheses"] == 10 + 8 * 2 + tiling.hypotheses(192, 144, config)


def test_embed_no_refine_is_the_networks_alone(tiny_model_path, photo, tmp_path, capsys):
    from mbrs_engine import Watermarker
    from mbrs_engine.imageio import open_image

    plain, refined = tmp_path / "plain.png", tmp_path / "refined.png"
    tiles, plain_tiles = tmp_path / "tiles.png", tmp_path / "plain-tiles.png"
    for target, extra in ((plain, ["--no-refine", "--layout", "frame"]), (refined, ["--layout", "frame"]),
                          (tiles, []), (plain_tiles, ["--no-refine"])):
        assert run(capsys, "embed", photo, "-o", target, "-m", "hi", "--model", tiny_model_path, *extra)[0] == 0
    wm = Watermarker.from_pretrained(tiny_model_path)
    source = open_image(photo)
    assert np.array_equal(np.asarray(open_image(plain)), np.asarray(wm.embed(source, "hi", refine=False, tiled=False)))
    assert np.array_equal(np.asarray(open_image(refined)), np.asarray(wm.embed(source, "hi", tiled=False)))
    assert not np.array_equal(np.asarray(open_image(plain)), np.asarray(open_image(refined)))
    # the default layout is tiles, refined only where crops and turns read them with little margin
    assert np.array_equal(np.asarray(open_image(tiles)), np.asarray(wm.embed(source, "hi")))
    assert np.array_equal(np.asarray(open_image(plain_tiles)), np.asarray(wm.embed(source, "hi", refine=False)))
    assert not np.array_equal(np.asarray(open_image(tiles)), np.asarray(open_image(refined)))


def test_decode_without_watermark_exits_1(tiny_model_path, photo, capsys):
    code, out, _ = run(capsys, "decode", photo, "--model", tiny_model_path)
    assert code == 1 and "no watermark found" in out
    code, out, _ = run(capsys, "decode", photo, "--model", tiny_model_path, "--json", "--no-search")
    # without a search: the whole frame and the tiles in place (2 x 2, then 4 x 4: the photo holds more than 2)
    assert tiling.in_place_tiles(240, 180, Watermarker.from_pretrained(tiny_model_path).config) == (2, 4)
    assert code == 1 and json.loads(out)["detected"] is False and json.loads(out)["hypotheses"] == 3


def test_key(tiny_model_path, photo, tmp_path, capsys):
    marked = tmp_path / "keyed.png"
    assert run(capsys, "embed", photo, "-o", marked, "-m", "k", "--key", "pw", "--model", tiny_model_path)[0] == 0
    assert run(capsys, "decode", marked, "--model", tiny_model_path)[0] == 1
    code, out, _ = run(capsys, "decode", marked, "--model", tiny_model_path, "--key", "pw")
    assert code == 0 and '"k"' in out


def test_folders_with_progress(tiny_model_path, folder, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "embed", folder, "-o", out_dir, "-m", "batch", "--model", tiny_model_path)
    assert code == 0 and out.count("wrote") == 3
    assert "3/3" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["img0.jpg", "img1.png", "img2.jpg"]
    code, out, _ = run(capsys, "decode", out_dir, "--model", tiny_model_path, "--json")
    results = json.loads(out)
    assert code == 0 and [r["message"] for r in results] == ["batch"] * 3
    attacked = tmp_path / "attacked"
    assert run(capsys, "attack", out_dir, "-o", attacked, "--noise", "1")[0] == 0
    assert len(list(attacked.iterdir())) == 3


def test_a_folder_rerun_skips_what_was_done_and_ends_with_a_summary(tiny_model_path, folder, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out, _ = run(capsys, "embed", folder, "-o", out_dir, "-m", "batch", "--model", tiny_model_path)
    assert code == 0 and "3 embedded (3 read back, median PSNR" in out and "0 skipped (done before), 0 failed" in out
    assert "median visibility" in out and out.count(", visibility ") == 3
    (out_dir / "img1.png").unlink()                                  # as if the first run had stopped there
    code, out, _ = run(capsys, "embed", folder, "-o", out_dir, "-m", "batch", "--model", tiny_model_path)
    assert code == 0 and out.count("skipped") == 3 and out.count("wrote") == 1   # 2 skipped lines + summary
    assert "1 embedded (1 read back" in out and "2 skipped (done before)" in out
    code, _, err = run(capsys, "embed", folder, "-o", out_dir, "-m", "another", "--model", tiny_model_path)
    assert code == 2 and "does not carry this message" in one_line_error(err)   # not ours to replace
    assert run(capsys, "embed", folder, "-o", out_dir, "-m", "another", "--model", tiny_model_path,
               "--overwrite")[0] == 0


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_bad_file_in_a_folder_is_reported_and_the_rest_done(tiny_model_path, folder, tmp_path, capsys, jobs):
    (folder / "broken.png").write_text("not a png")
    code, out, err = run(capsys, "embed", folder, "-o", tmp_path / "out", "-m", "x", "--model", tiny_model_path,
                         "--jobs", jobs)
    assert code == 2 and out.count("wrote") == 3
    assert "broken.png" in err and "not an image file" in err and "Traceback" not in err
    code, out, _ = run(capsys, "decode", tmp_path / "out", "--model", tiny_model_path, "--json", "--jobs", jobs)
    results = json.loads(out)
    assert code == 0 and [Path(r["path"]).name for r in results] == sorted(p.name for p in (tmp_path / "out").iterdir())
    assert all(r["message"] == "x" for r in results)


def test_jobs_must_be_a_positive_count(folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["embed", str(folder), "-o", str(tmp_path / "out"), "-m", "x", "--jobs", "0"])
    assert exit_info.value.code == 2 and "jobs must be at least 1" in capsys.readouterr().err


def test_attack_order_follows_the_command_line(photo, tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert run(capsys, "attack", photo, "-o", a, "--crop", "0.25", "--resize", "0.5")[0] == 0
    assert run(capsys, "attack", photo, "-o", b, "--resize", "0.5", "--crop", "0.25")[0] == 0
    assert Image.open(a).size == (60, 45) and Image.open(b).size == (60, 45)
    assert not np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_eval_writes_deterministic_reports(tiny_model_path, folder, tmp_path, capsys):
    argv = ["eval", folder, "--model", tiny_model_path, "--attacks", "identity", "jpeg:90", "crop:0.9",
            "--strengths", "1", "0.5"]
    code, out, _ = run(capsys, *argv, "--out", tmp_path / "r1")
    assert code == 0 and "BER %" in out and "jpeg:90" in out
    assert run(capsys, *argv, "--out", tmp_path / "r2", "--protocol", "native")[0] == 0
    for name in ("results.txt", "results.csv", "results.json"):
        assert (tmp_path / "r1" / name).read_text() == (tmp_path / "r2" / name).read_text()
    data = json.loads((tmp_path / "r1" / "results.json").read_text())
    assert len(data["rows"]) == 6 and data["images"] == ["img0.jpg", "img1.png", "img2.jpg"]
    identity = data["rows"][0]
    assert identity["attack"] == "identity" and identity["ber"] < 0.05 and identity["recovered"] == 1.0
    code, out, _ = run(capsys, "eval", folder, "--model", tiny_model_path, "--attacks", "identity",
                       "--protocol", "full", "--limit", "1")
    assert code == 0 and "protocol full, 1 images" in out


def test_models_listing_and_default(tiny_model_path, photo, tmp_path, capsys, no_shipped_models):
    code, out, _ = run(capsys, "models")
    assert code == 0 and "no models installed" in out
    code, _, err = run(capsys, "decode", photo)
    assert code == 2 and "no default model is installed" in one_line_error(err)
    code, out, _ = run(capsys, "models", "--install", tiny_model_path, "--name", "tiny")
    assert code == 0 and "installed 'tiny'" in out
    code, _, err = run(capsys, "models", "--install", tiny_model_path, "--name", "tiny")
    assert code == 2 and "already installed" in one_line_error(err)
    code, out, _ = run(capsys, "models", "--install", tiny_model_path, "--name", "tiny", "--replace")
    assert code == 0 and "installed 'tiny'" in out
    assert "tiny" in out and "H=32 L=256 capacity 13 chars" in out
    code, out, err = run(capsys, "models", "--set-default", "tiny")
    assert code == 0 and "* tiny" in out
    assert "mbrs: warning: 'tiny' may not work as the default model: it was never validated" in err
    marked = tmp_path / "m.png"
    assert run(capsys, "embed", photo, "-o", marked, "-m", "default!")[0] == 0
    assert '"default!"' in run(capsys, "decode", marked)[1]
    listing = json.loads(run(capsys, "models", "--json")[1])
    assert listing[0]["name"] == "tiny" and listing[0]["is_default"] and listing[0]["capacity"] == 13


def test_no_default_model_error(photo, tmp_path, capsys, no_shipped_models):
    code, _, err = run(capsys, "embed", photo, "-o", tmp_path / "o.png", "-m", "x")
    assert code == 2 and "no default model is installed" in one_line_error(err)


@pytest.mark.parametrize("setup, argv, message", [
    (lambda p: p.write_text("hello"), ["decode", "{f}"], "not an image file"),
    (lambda p: p.write_bytes(b""), ["decode", "{f}"], "empty"),
    (lambda p: None, ["decode", "{f}"], "no such file"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40), ["decode", "{f}"], "cannot read"),
])
def test_bad_inputs_give_one_line_errors(tiny_model_path, tmp_path, capsys, setup, argv, message):
    target = tmp_path / "input.png"
    setup(target)
    code, _, err = run(capsys, *[a.format(f=target) for a in argv], "--model", tiny_model_path)
    assert code == 2 and message in one_line_error(err)


def test_output_problems(tiny_model_path, photo, tmp_path, capsys):
    model = ["--model", tiny_model_path]
    code, _, err = run(capsys, "embed", photo, "-o", photo, "-m", "x", *model)
    assert code == 2 and "refusing to overwrite the input" in one_line_error(err)
    before = photo.read_bytes()
    assert run(capsys, "embed", photo, "-o", photo, "-m", "x", "--overwrite", *model)[0] == 0
    assert photo.read_bytes() != before
    code, _, err = run(capsys, "embed", photo, "-o", tmp_path / "no" / "out.png", "-m", "x", *model)
    assert code == 2 and "does not exist" in one_line_error(err)
    code, _, err = run(capsys, "embed", photo, "-o", tmp_path / "out.gif", "-m", "x", *model)
    assert code == 2 and "unsupported output format" in one_line_error(err)
    code, _, err = run(capsys, "embed", photo, "-o", tmp_path / "o.png", "-m", "x" * 40, *model)
    assert code == 2 and "message too long" in one_line_error(err)
    code, _, err = run(capsys, "embed", photo, "-o", tmp_path / "o.png", "-m", "x", "--strength", "-2", *model)
    assert code == 2 and "strength" in one_line_error(err)
    code, _, err = run(capsys, "attack", photo, "-o", tmp_path / "a.png")
    assert code == 2 and "give at least one attack" in one_line_error(err)
    code, _, err = run(capsys, "decode", photo, "--model", tmp_path / "missing.json")
    assert code == 2 and "not found" in one_line_error(err)


def test_animated_gif_warns(tiny_model_path, tmp_path, capsys):
    frames = [Image.fromarray(c).resize((64, 48)) for c in random_crops(2, 100, seed=1)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    code, out, err = run(capsys, "embed", tmp_path / "a.gif", "-o", tmp_path / "a.png", "-m", "gif",
                         "--model", tiny_model_path)
    assert code == 0 and "mbrs: warning:" in err and "first frame" in err


def test_images_below_the_minimum_size_are_refused(tiny_model_path, tmp_path, capsys):
    from mbrs_engine import Watermarker

    minimum = Watermarker.from_pretrained(tiny_model_path).min_side
    for size in ((1, 1), (8, 8), (minimum - 1, 200)):
        Image.new("RGB", size, (1, 2, 3)).save(tmp_path / "t.png")
        code, out, err = run(capsys, "embed", tmp_path / "t.png", "-o", tmp_path / "t_out.png", "-m", "t",
                             "--model", tiny_model_path)
        assert code == 2 and f"at least {minimum} pixels" in one_line_error(err) and not out
        assert not (tmp_path / "t_out.png").exists()


def test_a_message_that_does_not_read_back_is_not_a_success(tiny_model_path, photo, tmp_path, capsys):
    """Strength 0.01 rounds the residual away: the file is written, the message cannot be read from it."""
    code, out, err = run(capsys, "embed", photo, "-o", tmp_path / "faint.png", "-m", "faint", "-s", "0.01",
                         "--model", tiny_model_path)
    assert code == 3 and "DOES NOT READ BACK" in out and (tmp_path / "faint.png").exists()
    assert "mbrs: warning: the message does not read back" in err
    code, out, _ = run(capsys, "embed", photo, "-o", tmp_path / "good.png", "-m", "good", "--model", tiny_model_path)
    assert code == 0 and out.rstrip().endswith("reads back")
    code, _, err = run(capsys, "embed", photo, "-o", tmp_path / "none.png", "-m", "x", "-s", "0",
                       "--model", tiny_model_path)
    assert code == 2 and "0 embeds nothing" in one_line_error(err)


def test_a_folder_whose_results_do_not_read_back_exits_3(tiny_model_path, folder, tmp_path, capsys):
    code, out, err = run(capsys, "embed", folder, "-o", tmp_path / "out", "-m", "batch", "-s", "0.01",
                         "--model", tiny_model_path)
    assert code == 3 and out.count("DOES NOT READ BACK") == 3 and err.count("does not read back") == 3


def test_existing_outputs_are_refused_unless_overwrite(tiny_model_path, photo, tmp_path, capsys):
    existing = tmp_path / "existing.png"
    existing.write_bytes(b"precious")
    code, _, err = run(capsys, "embed", photo, "-o", existing, "-m", "x", "--model", tiny_model_path)
    assert code == 2 and "refusing to overwrite" in one_line_error(err) and existing.read_bytes() == b"precious"
    code, _, err = run(capsys, "attack", photo, "-o", existing, "--jpeg", "80")
    assert code == 2 and "already exists" in one_line_error(err) and existing.read_bytes() == b"precious"
    assert run(capsys, "embed", photo, "-o", existing, "-m", "x", "--model", tiny_model_path, "--overwrite")[0] == 0
    assert existing.read_bytes() != b"precious"


def test_embedding_over_a_watermark_is_refused_unless_forced(tiny_model_path, photo, tmp_path, capsys):
    marked, again = tmp_path / "marked.png", tmp_path / "again.png"
    assert run(capsys, "embed", photo, "-o", marked, "-m", "first", "--model", tiny_model_path)[0] == 0
    code, _, err = run(capsys, "embed", marked, "-o", again, "-m", "second", "--model", tiny_model_path)
    assert code == 2 and 'already carries a watermark ("first")' in one_line_error(err) and not again.exists()
    keyed = tmp_path / "keyed.png"
    assert run(capsys, "embed", photo, "-o", keyed, "-m", "secret", "-k", "pw", "--model", tiny_model_path)[0] == 0
    code, _, err = run(capsys, "embed", keyed, "-o", again, "-m", "second", "-k", "pw", "--model", tiny_model_path)
    assert code == 2 and "already carries a watermark" in one_line_error(err)
    code, out, _ = run(capsys, "embed", marked, "-o", again, "-m", "second", "--force", "--model", tiny_model_path)
    assert code in (0, 3) and again.exists()


def test_decode_json_of_a_folder_lists_unreadable_files_with_their_error(tiny_model_path, folder, capsys):
    (folder / "broken.png").write_text("not a png")
    code, out, err = run(capsys, "decode", folder, "--json", "--model", tiny_model_path)
    results = {Path(r["path"]).name: r for r in json.loads(out)}
    assert code == 2 and set(results) == {"broken.png", "img0.jpg", "img1.png", "img2.jpg"}
    assert results["broken.png"]["detected"] is None and "not an image file" in results["broken.png"]["error"]
    assert results["img1.png"]["detected"] is False and "error" not in results["img1.png"]


def test_conversion_warnings_come_once_per_command(tiny_model_path, tmp_path, capsys):
    folder = tmp_path / "grey"
    folder.mkdir()
    for i, crop in enumerate(random_crops(3, 120, seed=5)):
        Image.fromarray(crop).convert("L").save(folder / f"g{i}.png")
    code, _, err = run(capsys, "embed", folder, "-o", tmp_path / "out", "-m", "grey", "--no-refine",
                       "--model", tiny_model_path)
    assert code in (0, 3) and err.count("greyscale") == 1


def test_argparse_errors_and_entry_point(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mbrs_engine.cli", "attack", "x.png", "-o", "y.png",
                             "--jpeg", "500"], capture_output=True, text=True)
    assert result.returncode == 2 and "quality" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "mbrs_engine.cli", "decode", str(tmp_path / "none.png")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("mbrs: error:")
    script = Path(sys.executable).parent / "mbrs"  # the console script of the installed project
    if script.exists():
        result = subprocess.run([str(script), "--version"], capture_output=True, text=True)
        assert result.returncode == 0 and "mbrs" in result.stdout


def test_decode_with_every_installed_model_names_the_one_that_marked(tiny_model_path, photo, tmp_path, capsys):
    from mbrs_engine.model_files import install_model

    install_model(tiny_model_path, "tiny")  # beside the shipped default, which stays the default
    marked = tmp_path / "marked.png"
    assert run(capsys, "embed", photo, "-o", marked, "-m", "by tiny", "--model", "tiny")[0] == 0
    code, out, _ = run(capsys, "decode", marked)
    assert code == 1 and "no watermark found" in out  # the default model cannot read it
    code, out, _ = run(capsys, "decode", marked, "--all-models", "--json")
    result = json.loads(out)
    assert code == 0 and result["message"] == "by tiny"
    alone = json.loads(run(capsys, "decode", marked, "--model", "tiny", "--json")[1])
    assert result["model"] == "tiny" and result["hypotheses"] == 2 * alone["hypotheses"] and result["p_value"] < 1e-6
    code, _, err = run(capsys, "decode", marked, "--all-models", "--model", "tiny")
    assert code == 2 and "not both" in one_line_error(err)
