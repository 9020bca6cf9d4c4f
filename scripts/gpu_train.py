"""One prepared training run on a lent GPU machine (see docs/training.md, "A lent GPU").

That machine has PyTorch but cannot fetch anything, takes at most 64 MiB of
working tree and gives back files of at most 16 MiB.  So:

    # here, once: a compact copy of the training photos (384-pixel short side, PNG)
    python scripts/gpu_train.py pack            # data/photos -> data/pack (about 30 MB)

    # there (device tool, carry ["data/pack"]), one prepared run (RUNS) per call:
    python3 scripts/gpu_train.py train --run table1 --out $OUT [--budget 8m] [--set key=value ...]

``train`` runs on ``data/pack`` and writes to ``--out`` what comes back from
that machine (at most 8 files of at most 16 MB): the best and last networks
as safetensors parts (``mbrs_engine.train.transfer``; fp16 when fp32 would not
fit), the config, the validation history and a one-screen ``summary.txt``.
Back here, ``mbrs export``, ``mbrs train --resume`` and
scripts/ship_default_model.py read that folder like any run folder.  It needs
none of bchlib, kornia, platformdirs, PySide6 or pyqtgraph (tests/test_gpu_transfer.py
runs it with them made unimportable).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the lent machine runs it uninstalled

import mbrs_engine  # noqa: E402,F401  (sets the OpenMP wait policy before torch)
import numpy as np
import torch
from PIL import Image

from mbrs_engine.train import Trainer, apply_overrides, preset, transfer
from mbrs_engine.train import checkpoint as ckpt
from mbrs_engine.train.commands import ProgressPrinter
from mbrs_engine.train.data import ImageSource, scan_images
from mbrs_engine.train.runs import read_history

PACK = Path("data/pack")


@dataclass(frozen=True)
class Run:
    """A prepared run: a preset, the networks it starts from ('' for the preset's own), and overrides."""

    preset: str
    init_from: str
    sets: tuple[str, ...]


#: sized for the lent machine (16 CPU cores feeding one GPU; docs/training.md).
GPU_SETS = ("batch_size=64", "data.workers=12", "precision=bf16", "validation.every_steps=500")
RUNS = {
    # the paper's Table 1 model from scratch (faithful networks, L = 64)
    "table1": Run("paper-128-64", "", GPU_SETS),
    # a stronger default network (48 channels, 3 blocks, L = 256) from scratch
    "default": Run("gpu-default", "", GPU_SETS),
    # today's default network, continued from the shipped model for the tiles' reads (see the preset)
    "continue": Run("default-model-gpu", "assets/models/default.json", GPU_SETS),
}


def pack(source_dir: Path, out: Path, side: int, cache: str) -> None:
    """Every readable photo of ``source_dir``, downscaled to ``side`` pixels on its short side, as PNG
    (through the training cache ``cache``, which does the downscaling and is reused when it exists)."""
    out.mkdir(parents=True, exist_ok=True)
    source = ImageSource(cache, side)
    paths = source.usable(scan_images(source_dir))
    for i, path in enumerate(paths):
        Image.fromarray(np.ascontiguousarray(source.load(path))).save(out / f"{i:04d}-{path.stem}.png")
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print(f"packed {len(paths)} photos into {out} ({size:.1f} MiB)")


#: what a lent machine gives back (DEVELOPERS.md): at most 8 files; three of them are these.
MAX_FILES = 8
SUMMARY = "summary.txt"
TEXT_FILES = (ckpt.CONFIG, ckpt.HISTORY, SUMMARY)


def _portable_config(run_dir: Path, out: Path, args: argparse.Namespace) -> None:
    """The run's config with the paths as given on the command line (relative to the repository), so that
    it reads the same here as there."""
    data = json.loads((run_dir / ckpt.CONFIG).read_text())
    data["data"]["train_dir"] = args.data
    data["init_from"] = RUNS[args.run].init_from
    data["data"]["cache_dir"] = ""
    (out / ckpt.CONFIG).write_text(json.dumps(data, indent=2))


def summary(cfg, state: dict, history: list[dict], returned: list[str]) -> str:
    """One screen: device, steps, images/s (validation included), the validation curve, what came back."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    steps, minutes = state["step"], state["elapsed"] / 60
    images = steps * cfg.batch_size
    lines = [f"gpu_train: {device}, torch {torch.__version__}, {minutes:.1f} min",
             f"steps {steps:,} x batch {cfg.batch_size} = {images:,} images, "
             f"{images / max(state['elapsed'], 1e-9):,.1f} images/s (validation included)",
             f"best validation BER under JPEG {cfg.validation.quality} at {cfg.validation.target_psnr:.1f} dB: "
             f"{state['best_ber']:.4%}", "",
             "validation curve:  step    PSNR   BER clean   BER JPEG (at target PSNR)"]
    every = max(1, -(-len(history) // 12))
    shown = history[::every] + ([history[-1]] if history and (len(history) - 1) % every else [])
    lines += [f"{h['step']:>24,} {h['psnr']:>7.2f} {h['ber_clean']:>10.4%} {h['ber_jpeg']:>10.4%}" for h in shown]
    return "\n".join([*lines, "", "returned: " + ", ".join(returned)]) + "\n"


def train(args: argparse.Namespace) -> None:
    run = RUNS[args.run]
    cache = tempfile.mkdtemp(prefix="mbrs-cache-")        # decoded once, outside what comes back
    sets = [*run.sets, f"data.train_dir={args.data}", f"data.cache_dir={cache}", f"budget={args.budget}",
            f"init_from={run.init_from}", *args.set]
    cfg = apply_overrides(preset(run.preset), sets)
    # decided before any training, so that a run whose networks cannot come back fails in seconds
    plan = transfer.return_plan(transfer.network_bytes(cfg.network, False),
                                 transfer.network_bytes(cfg.network, True), MAX_FILES - len(TEXT_FILES))
    print("will return: " + ", ".join(f"{stem} ({str(dtype).removeprefix('torch.')})" for stem, dtype in plan))
    out = Path(args.out)
    run_dir = out / "run"
    trainer = Trainer(cfg, run_dir, [ProgressPrinter(sys.stdout)])
    trainer.run()
    last = ckpt.slim(ckpt.load_checkpoint(run_dir / ckpt.LAST))
    returned = []
    for stem, dtype in plan:
        if stem == "last":
            state = last
        elif (run_dir / ckpt.BEST).exists():
            state = {k: v for k, v in ckpt.load_checkpoint(run_dir / ckpt.BEST).items() if k != "adversary"}
        else:
            continue
        returned += [p.name for p in transfer.write_parts(state, out, stem, dtype)]
    history = read_history(run_dir)
    if (run_dir / ckpt.HISTORY).exists():
        shutil.copy(run_dir / ckpt.HISTORY, out / ckpt.HISTORY)
    _portable_config(run_dir, out, args)
    shutil.rmtree(run_dir)
    shutil.rmtree(cache, ignore_errors=True)
    text = summary(cfg, last, history, [*returned, *TEXT_FILES])
    (out / SUMMARY).write_text(text)
    print("\n" + text, end="")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="downscale data/photos into data/pack")
    p.add_argument("--source", type=Path, default=Path("data/photos"))
    p.add_argument("--side", type=int, default=384)
    p.add_argument("--cache", default="data/cache", help="the training image cache (see data.cache_dir)")
    t = sub.add_parser("train", help="train on data/pack, write slim results to --out")
    t.add_argument("--run", choices=RUNS, required=True, help="the prepared run (see RUNS)")
    t.add_argument("--data", default=str(PACK))
    t.add_argument("--budget", default="8m")
    t.add_argument("--out", required=True)
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    if args.command == "pack":
        pack(args.source, PACK, args.side, args.cache)
    else:
        train(args)


if __name__ == "__main__":
    main()
