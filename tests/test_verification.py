"""Verifying a folder: one verdict per file (marked, attacked, unmarked, unreadable), the CSV and the
self-contained HTML evidence report, from the library and from `mbrs verify-report`."""
from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from PIL import Image

from mbrs_engine.attacks import apply_chain, parse_chain
from mbrs_engine.cli import main
from mbrs_engine.verification import CSV_FIELDS, report_html, sweep, verify_files, write_csv

from tiny_model import random_crops

MESSAGE = "evidence"


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, tiny_wm):
    """marked.png, attacked.jpg (JPEG 90 of it), unmarked.png, noise.png, broken.jpg, notes.txt."""
    folder = tmp_path_factory.mktemp("mixed")
    photos = [Image.fromarray(c) for c in random_crops(2, 160, seed=21)]
    marked = tiny_wm.embed(photos[0], MESSAGE)
    marked.save(folder / "marked.png")
    apply_chain(marked, parse_chain("jpeg:90")).save(folder / "attacked.jpg", quality=100)
    photos[1].save(folder / "unmarked.png")
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(folder / "noise.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_each_file_gets_its_verdict_and_marked_ones_a_sweep(mixed_folder, tiny_wm):
    from mbrs_engine.imageio import list_images

    seen = []
    verdicts = verify_files(list_images(mixed_folder), [tiny_wm], progress=lambda i, n, what: seen.append((i, n)))
    by_name = {v.path.name: v for v in verdicts}
    assert sorted(by_name) == ["attacked.jpg", "broken.jpg", "marked.png", "noise.png", "unmarked.png"]
    assert seen[0] == (0, 5) and seen[-1] == (5, 5)
    for name in ("marked.png", "attacked.jpg"):
        v = by_name[name]
        assert v.status == "detected" and v.message == MESSAGE and v.p_value < 1e-6 and v.model == tiny_wm.name
        assert v.sweep is not None and v.sweep.smallest_crop() is not None and v.thumbnail[:2] == b"\xff\xd8"
    for name in ("unmarked.png", "noise.png"):
        assert by_name[name].status == "not detected" and by_name[name].message is None
        assert by_name[name].sweep is None
    assert by_name["broken.jpg"].status == "unreadable" and "broken.jpg" in by_name["broken.jpg"].error
    assert by_name["marked.png"].sweep.jpeg_ber[-1] <= by_name["marked.png"].sweep.jpeg_ber[0]  # Q90 vs Q10


def test_sweep_without_a_known_message_uses_the_one_found_and_refuses_an_unmarked_image(tiny_wm, mixed_folder):
    marked = Image.open(mixed_folder / "marked.png")
    found = sweep(tiny_wm, marked)
    assert found.jpeg_recovered == sweep(tiny_wm, marked, MESSAGE).jpeg_recovered
    assert found.lowest_quality() is not None                           # JPEG 90 of it was read above
    assert f"read back down to JPEG quality {found.lowest_quality()}" in found.summary()
    with pytest.raises(ValueError, match="No watermark"):
        sweep(tiny_wm, Image.open(mixed_folder / "unmarked.png"))


def test_the_report_is_self_contained_and_says_what_was_found(mixed_folder, tiny_wm, tmp_path):
    from mbrs_engine.imageio import list_images

    verdicts = verify_files(list_images(mixed_folder), [tiny_wm], with_sweep=True)
    page = report_html(verdicts, [tiny_wm.name])
    assert page.count("<tr>") == 1 + 5 and page.count("data:image/jpeg;base64,") == 4  # header + 5 rows
    assert page.count("<svg") == 4                                          # two plots per marked file
    assert "✓ watermark found" in page and "unreadable" in page and MESSAGE in page
    assert not re.search(r'(src|href)="(https?:)?//', page)                # nothing fetched
    assert "<script" not in page
    rows = list(csv.DictReader(write_csv(verdicts, tmp_path / "r.csv").open(encoding="utf-8")))
    assert tuple(rows[0]) == CSV_FIELDS and len(rows) == 5
    assert {r["file"].rsplit("/", 1)[-1]: r["status"] for r in rows}["marked.png"] == "detected"


def test_verify_report_from_the_command_line(mixed_folder, tiny_model_path, tmp_path, capsys):
    report, table = tmp_path / "report.html", tmp_path / "report.csv"
    args = ["verify-report", str(mixed_folder), "-o", str(report), "--csv", str(table), "--model", str(tiny_model_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "5 file(s), 2 with a watermark, 2 without, 1 unreadable" in out
    assert report.read_text(encoding="utf-8").startswith("<!DOCTYPE html>") and table.is_file()
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err        # never replaced silently
    assert main(args + ["--overwrite", "--no-sweep"]) == 0
    assert "<svg" not in report.read_text(encoding="utf-8")
