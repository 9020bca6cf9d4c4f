"""Trainer: configuration, data pipeline, learning, bit-exact resume, DDP on two CPU processes, export."""
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from mbrs_engine.nets import NetworkConfig
from mbrs_engine.noise import Identity
from mbrs_engine.train.config import OptimConfig
from mbrs_engine.train import PRESETS, TrainConfig, Trainer, apply_overrides, parse_budget, preset
from mbrs_engine.train.data import ImageSource, StreamSampler, TrainImages, scan_images, split_paths

SAMPLES = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "camera"]


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    """A folder of scikit-image sample photos (tests only), one in a subfolder, plus one broken file."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    for i, name in enumerate(SAMPLES):
        folder = root / "sub" if i == 0 else root
        Image.fromarray(getattr(skdata, name)()).save(folder / f"{name}.{'jpg' if i % 2 else 'png'}")
    (root / "broken.jpg").write_text("this is not a JPEG")
    return root


def tiny_config(photo_dir, **kw) -> TrainConfig:
    settings = dict(network=NetworkConfig(32, 16, channels=16, blocks=1), noise="Identity()",
                    batch_size=8, steps=20, target_psnr=20.0, seed=0, optim=OptimConfig(lr=3e-3))
    cfg = TrainConfig(**{**settings, **kw})
    cfg.data.train_dir, cfg.data.val_count, cfg.data.workers = str(photo_dir), 2, 0
    cfg.validation.every_steps, cfg.validation.target_psnr = 1000, 20.0
    return cfg


# ---------------------------------------------------------------- config
def test_presets_validate_and_round_trip():
    for name in PRESETS:
        cfg = preset(name).validate()
        assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert preset("paper-128-64").network.message_length == 64
    assert "Crop" in preset("paper-diffusion-128-30").noise


def test_overrides():
    cfg = apply_overrides(preset("cpu-small"), ["network.channels=48", "target_psnr=38.5", "noise=Identity()",
                                                "data.train_dir=/photos", "optim.schedule=cosine"])
    assert cfg.network.channels == 48 and cfg.target_psnr == 38.5 and cfg.noise == "Identity()"
    assert cfg.data.train_dir == "/photos" and cfg.optim.schedule == "cosine"
    for bad, match in [("colour=3", "unknown setting"), ("network.size=3", "unknown setting"),
                       ("precision=fp8", "precision"), ("noise=Bogus(1)", "Bogus"), ("steps", "key=value"),
                       ("network.message_length=100", "message length 100")]:
        with pytest.raises(ValueError, match=match):
            apply_overrides(preset("cpu-small"), [bad])


def test_budget():
    assert parse_budget("90s") == 90 and parse_budget("10m") == 600 and parse_budget("1.5h") == 5400
    assert parse_budget("") is None and parse_budget("30") == 30
    with pytest.raises(ValueError):
        parse_budget("soon")


# ---------------------------------------------------------------- data
def test_scan_skips_broken_files(photo_dir):
    paths = scan_images(photo_dir)
    assert len(paths) == 7 and any(p.parent.name == "sub" for p in paths)
    source = ImageSource()
    with pytest.warns(UserWarning, match="broken.jpg"):
        usable = source.usable(paths)
    assert len(usable) == 6 and source.broken == [str(photo_dir / "broken.jpg")]


def test_split_is_fixed_and_disjoint(photo_dir):
    paths = scan_images(photo_dir)
    a, b = split_paths(paths, 2, seed=3), split_paths(paths, 2, seed=3)
    assert a == b and not set(a[0]) & set(a[1]) and len(a[1]) == 2


def test_stream_sampler_is_resumable_and_sharded():
    full = StreamSampler(10, 4, seed=1)
    it = iter(full)
    stream = [next(it) for _ in range(40)]
    it5 = iter(StreamSampler(10, 4, seed=1, start_step=5))
    assert [next(it5) for _ in range(20)] == stream[20:40]
    assert sorted(i for i, e in stream[:10]) == list(range(10))            # each epoch is a permutation
    r0, r1 = iter(StreamSampler(10, 4, 1, rank=0, world=2)), iter(StreamSampler(10, 4, 1, rank=1, world=2))
    assert [next(r0) for _ in range(4)] + [next(r1) for _ in range(4)] == stream[:8]


def test_crops_deterministic_and_sized(photo_dir, tmp_path):
    paths = [p for p in scan_images(photo_dir) if "broken" not in p.name]
    cached = ImageSource(cache_dir=str(tmp_path / "cache"), cache_side=128)
    ds = TrainImages(paths, cached, 48, seed=0)
    a, b = ds[(2, 7)], ds[(2, 7)]
    assert a.shape == (3, 48, 48) and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(ds[(2, 7)], ds[(2, 8)])
    cached_files = list((tmp_path / "cache").glob("*.npy"))
    assert len(cached_files) == 1 and min(np.load(cached_files[0]).shape[:2]) == 128


# ---------------------------------------------------------------- training
def test_tiny_model_learns_identity_channel(photo_dir, tmp_path):
    cfg = tiny_config(photo_dir, steps=60)  # BER 0.06-0.09 at 60 steps (0.03 at 90), chance 0.5
    metrics = Trainer(cfg, tmp_path / "run").run()
    assert metrics["ber_clean"] < 0.25, metrics       # chance is 0.5
    assert abs(metrics["psnr"] - 20.0) < 0.5          # strength 1 = the residual at its training PSNR
    assert (tmp_path / "run" / "best.ckpt").exists() and (tmp_path / "run" / "config.json").exists()


def test_the_visibility_penalty_enters_the_loss_when_weighted(photo_dir, tmp_path):
    """loss.visibility adds the engine's visibility measure: reported, and the step's loss grows by its weight
    times it (same networks, batch and noise)."""
    losses = {}
    for weight in (0.0, 0.5):
        torch.manual_seed(0)
        cfg = tiny_config(photo_dir, steps=1)
        cfg.loss.visibility = weight
        trainer = Trainer(cfg, tmp_path / f"run{weight}")
        trainer._build()
        batch = next(trainer._loader(0))
        torch.manual_seed(1)
        losses[weight] = trainer.train_step(batch)
    assert losses[0.0]["visibility"] == 0.0 and losses[0.5]["visibility"] > 0
    assert losses[0.5]["loss"] == pytest.approx(losses[0.0]["loss"] + 0.5 * losses[0.5]["visibility"], rel=1e-4)


def test_resume_is_bit_exact(photo_dir, tmp_path):
    warnings.simplefilter("ignore")
    pool = "Combined([JpegMask(),RealJpeg(50),Crop(0.5),Dropout(0.7),Identity()])"
    straight = Trainer(tiny_config(photo_dir, noise=pool), tmp_path / "a")
    straight.run()

    def stop_at_10(event):
        if event.kind == "step" and event.step == 10:
            first.cancel()
    first = Trainer(tiny_config(photo_dir, noise=pool), tmp_path / "b", [stop_at_10])
    first.run()
    assert first.step == 10
    second = Trainer.resume(tmp_path / "b")
    second.run()
    assert second.step == 20
    for net in ("encoder", "decoder", "adversary"):
        sa, sb = getattr(straight, net).state_dict(), getattr(second, net).state_dict()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), f"{net}.{key} differs after resume"


def test_budget_stops_and_checkpoints(photo_dir, tmp_path):
    cfg = tiny_config(photo_dir, steps=10_000)
    cfg.budget = "3s"
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.run()
    assert 0 < trainer.step < 10_000
    assert torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)["step"] == trainer.step


def test_two_stage_method_freezes_encoder_in_stage_two(photo_dir, tmp_path):
    cfg = tiny_config(photo_dir, method="tsr", steps=6)
    cfg.stage1_fraction, cfg.stage2_noise = 0.5, "RealJpeg(50)"
    trainer = Trainer(cfg, tmp_path / "run")
    snapshots = {}

    def watch(event):
        if event.kind == "step" and event.step in (3, 6):
            snapshots[event.step] = {k: v.clone() for k, v in trainer.encoder.state_dict().items()}
    trainer.callbacks.append(watch)
    trainer.run()
    assert all(torch.equal(snapshots[3][k], snapshots[6][k]) for k in snapshots[3])


def test_ddp_two_cpu_processes(photo_dir, tmp_path):
    script = Path(__file__).with_name("ddp_train_script.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(photo_dir), str(tmp_path / "run"), str(tmp_path / "digest")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [(tmp_path / f"digest.{r}").read_text().split() for r in (0, 1)]
    assert lines[0][:2] == ["2", "3"] and lines[1][:2] == ["2", "3"]
    assert lines[0][2] == lines[1][2]                       # gradients were averaged: same weights on both ranks
    assert (tmp_path / "run" / "last.ckpt").exists()


def test_cli_train_export_and_load_in_watermarker(photo_dir, tmp_path):
    from mbrs_engine import Watermarker
    from mbrs_engine.cli import main

    run = tmp_path / "run"
    tiny = ["--set", "network.image_size=32", "--set", "network.message_length=256", "--set", "network.channels=16",
            "--set", "network.blocks=1", "--set", "batch_size=4", "--set", "data.val_count=2",
            "--set", "data.workers=0", "--set", "data.cache_dir=", "--set", "target_psnr=25"]
    assert main(["train", "--preset", "cpu-small", "--data", str(photo_dir), "--out", str(run),
                 "--budget", "4s", *tiny]) == 0
    assert (run / "last.ckpt").exists()
    assert main(["train", "--preset", "cpu-small", "--data", str(photo_dir), "--out", str(run), *tiny]) == 2
    assert main(["export", str(run), "-o", str(tmp_path / "models"), "--name", "mine"]) == 0
    wm = Watermarker.from_pretrained(str(tmp_path / "models" / "mine.json"))
    assert (wm.image_size, wm.message_length, wm.residual_psnr) == (32, 256, 25.0)
    photo = Image.fromarray(skdata.astronaut()[:96, :64])
    marked = wm.embed_bits(photo, np.zeros(256, dtype=np.uint8), strength=1.0)
    assert marked.size == photo.size


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_stop_signal_on_the_process_group_checkpoints(photo_dir, tmp_path, signum):
    """Ctrl+C (or a SIGTERM to the whole group) reaches the trainer and its data workers together:
    the run must still checkpoint and exit cleanly."""
    import signal
    import time

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "mbrs_engine.cli", "train", "--preset", "cpu-small", "--data", str(photo_dir),
           "--out", str(run), "--set", "network.image_size=32", "--set", "network.message_length=16",
           "--set", "network.channels=16", "--set", "network.blocks=1", "--set", "batch_size=4",
           "--set", "data.val_count=2", "--set", "data.workers=1", "--set", "data.cache_dir=",
           "--set", "steps=100000", "--set", "checkpoint_minutes=60"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    seen = ""
    while "/100000" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read(1)
    assert "/100000" in seen, seen
    os.killpg(proc.pid, getattr(signal, signum))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + getattr(signal, signum), err[-2000:]  # 130 for Ctrl+C, as every command
    assert "mbrs train --resume" in err and "Traceback" not in err
    assert torch.load(run / "last.ckpt", weights_only=True)["step"] >= 1


def test_a_kill_after_the_first_step_loses_nothing_and_resume_works_from_any_folder(photo_dir, tmp_path,
                                                                                      monkeypatch):
    """``kill -9`` a minute into a run once left only config.json; now the first step is checkpointed, and
    the run's paths are absolute, so ``--resume`` works from another folder."""
    import signal
    import time

    monkeypatch.chdir(photo_dir.parent)
    relative = os.path.relpath(photo_dir)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "mbrs_engine.cli", "train", "--preset", "cpu-small", "--data", relative,
           "--out", str(run), "--set", "network.image_size=32", "--set", "network.message_length=16",
           "--set", "network.channels=16", "--set", "network.blocks=1", "--set", "batch_size=4",
           "--set", "data.val_count=2", "--set", "data.workers=0", "--set", "data.cache_dir=",
           "--set", "steps=100000"]  # checkpoint_minutes stays at its default (5)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not (run / "last.ckpt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert torch.load(run / "last.ckpt", weights_only=True)["step"] >= 1
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"]["train_dir"] == str(photo_dir.resolve())
    monkeypatch.chdir(tmp_path)
    resumed = Trainer.resume(run, budget="1s")
    assert resumed.resuming
    resumed.run()
    assert resumed.step >= 1


def test_resume_of_a_run_that_never_checkpointed_starts_it_and_of_a_non_run_says_what_to_do(photo_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    tiny_config(photo_dir, steps=3).save(run / "config.json")  # as a run killed while preparing its images
    trainer = Trainer.resume(run)
    assert not trainer.resuming
    trainer.run()
    assert trainer.step == 3 and (run / "last.ckpt").exists()
    with pytest.raises(ValueError, match="not a training run .*mbrs train --preset"):
        Trainer.resume(tmp_path / "elsewhere")


def test_preparation_reports_progress_and_can_be_cancelled(photo_dir, tmp_path):
    events = []
    trainer = Trainer(tiny_config(photo_dir), tmp_path / "run", [events.append])

    def cancel_on_third_file(event):
        if event.kind == "prepare" and event.metrics["done"] == 2:
            trainer.cancel()
    trainer.callbacks.append(cancel_on_third_file)
    assert trainer.run() == {}
    kinds = [e.kind for e in events]
    assert kinds.count("prepare") == 3 and kinds[-1] == "done" and "step" not in kinds
    assert "cancelled" in events[-1].message


def test_cancel_checkpoints_without_validating(photo_dir, tmp_path):
    events = []
    trainer = Trainer(tiny_config(photo_dir, steps=1000), tmp_path / "run", [events.append])

    def cancel_at_3(event):
        if event.kind == "step" and event.step == 3:
            trainer.cancel()
    trainer.callbacks.append(cancel_at_3)
    trainer.run()
    kinds = [e.kind for e in events]
    assert "validation" not in kinds and "checkpoint" in kinds and trainer.step == 3


def test_warm_restart_from_a_slim_checkpoint(photo_dir, tmp_path):
    from mbrs_engine.train.checkpoint import atomic_torch_save, load_checkpoint, slim

    first = Trainer(tiny_config(photo_dir, steps=4), tmp_path / "run")
    first.run()
    full_size = (tmp_path / "run" / "last.ckpt").stat().st_size
    atomic_torch_save(slim(load_checkpoint(tmp_path / "run" / "last.ckpt")), tmp_path / "run" / "last.ckpt")
    assert (tmp_path / "run" / "last.ckpt").stat().st_size < full_size / 2      # no Adam moments
    second = Trainer.resume(tmp_path / "run")
    second.config.steps = 6
    second.run()
    assert second.step == 6


def test_init_from_a_checkpoint_or_an_exported_model(photo_dir, tmp_path):
    """A warm start takes the networks (not the step) of a checkpoint or an exported model."""
    from mbrs_engine.train.export import export_run

    Trainer(tiny_config(photo_dir, steps=3), tmp_path / "first").run()
    json_path, _ = export_run(tmp_path / "first", tmp_path / "models", "first", fp16="no")
    trained = torch.load(tmp_path / "first" / "last.ckpt", weights_only=True)
    for source in (tmp_path / "first" / "last.ckpt", json_path):
        run = Trainer(tiny_config(photo_dir, steps=1, init_from=str(source)), tmp_path / f"from-{source.suffix[1:]}")
        started = []
        run.callbacks.append(lambda e: e.kind == "stage" and started.append(
            {k: v.clone() for k, v in run.decoder.state_dict().items()}))
        run.run()
        assert run.step == 1 and started
        assert all(torch.equal(started[0][k], v) for k, v in trained["decoder"].items())
    wrong = tiny_config(photo_dir, steps=1, init_from=str(json_path), network=NetworkConfig(32, 16, channels=8))
    with pytest.raises(ValueError, match="does not fit"):
        Trainer(wrong, tmp_path / "wrong").run()


def test_a_frozen_encoder_marks_its_share_of_the_batch_and_never_changes(photo_dir, tmp_path):
    """frozen_encoder: the first round(share x batch) images are marked by that encoder (eval mode, no gradient),
    the rest by the encoder in training; training leaves the frozen one as loaded."""
    Trainer(tiny_config(photo_dir, steps=3), tmp_path / "old").run()
    old = torch.load(tmp_path / "old" / "last.ckpt", weights_only=True)["encoder"]
    cfg = tiny_config(photo_dir, steps=2, frozen_encoder=str(tmp_path / "old" / "last.ckpt"), frozen_share=0.25)
    trainer = Trainer(cfg, tmp_path / "new")
    trainer._build()
    pipeline = trainer.pipeline
    assert pipeline.frozen_count == 2 and not pipeline.frozen.training
    assert all(torch.equal(pipeline.frozen.state_dict()[k], v) for k, v in old.items())
    cover = torch.rand(8, 3, 32, 32) * 2 - 1
    message = torch.randint(0, 2, (8, 16)).float()
    trainer.encoder.eval()
    with torch.no_grad():
        encoded, _ = pipeline(cover, message, Identity(), None)
        assert torch.allclose(encoded[:2], pipeline.frozen(cover[:2], message[:2]))
        assert torch.allclose(encoded[2:], trainer.encoder(cover[2:], message[2:]))
    trainer.encoder.train()
    trainer.run()
    frozen = trainer.pipeline.frozen
    assert trainer.step == 2 and not frozen.training
    assert all(torch.equal(frozen.state_dict()[k], v) for k, v in old.items())
    with pytest.raises(ValueError, match="frozen_share"):
        tiny_config(photo_dir, frozen_encoder="x.ckpt", frozen_share=0.05).validate()   # 0.4 of an image of 8
    wrong = tiny_config(photo_dir, frozen_encoder=str(tmp_path / "old" / "last.ckpt"),
                        network=NetworkConfig(32, 16, channels=8))
    with pytest.raises(ValueError, match="does not fit"):
        Trainer(wrong, tmp_path / "wrong")._build()


def test_auto_cache_lives_in_the_user_cache_folder(tmp_path):
    assert ImageSource("auto").cache_dir.startswith(os.environ["XDG_CACHE_HOME"])
    assert ImageSource("").cache_dir == ""


def test_runs_are_described_without_loading_networks_and_continue_past_their_end(photo_dir, tmp_path):
    from mbrs_engine.train.checkpoint import load_checkpoint, slim
    from mbrs_engine.train.runs import checkpoint_step, describe_run, find_runs
    from mbrs_engine.train.transfer import write_parts

    Trainer(tiny_config(photo_dir, steps=4), tmp_path / "runs" / "a").run()
    cfg = tiny_config(photo_dir, steps=3)
    cfg.validation.every_steps = 3
    Trainer(cfg, tmp_path / "runs" / "b").run()
    (tmp_path / "runs" / "b" / "history.jsonl").open("a").write('{"step": 9, "ber')    # torn by a crash
    (tmp_path / "runs" / "not-a-run").mkdir()
    found = find_runs(tmp_path / "runs")
    assert [r.path.name for r in found] == ["b", "a"]                       # newest first, non-runs left out
    b = found[0]
    assert (b.step, b.config.steps, b.finished, [h["step"] for h in b.history]) == (3, 3, True, [3])
    assert b.best_ber == b.history[0]["ber_jpeg"] and b.describe().startswith("b: finished · best BER")
    write_parts(slim(load_checkpoint(tmp_path / "runs" / "a" / "last.ckpt")), tmp_path / "parts", "last")
    assert checkpoint_step(tmp_path / "parts" / "last.ckpt") == 4 == describe_run(tmp_path / "runs" / "a").step
    more = Trainer.resume(tmp_path / "runs" / "b", steps=5)
    more.run()
    assert more.step == 5 == describe_run(tmp_path / "runs" / "b").step
    with pytest.raises(ValueError, match="not a training run"):
        describe_run(tmp_path / "runs" / "not-a-run")


def test_resume_refuses_settings_it_would_ignore(tmp_path, capsys):
    from mbrs_engine.cli import main

    assert main(["train", "--resume", str(tmp_path), "--set", "batch_size=4"]) == 2
    assert "do not apply to --resume" in capsys.readouterr().err
