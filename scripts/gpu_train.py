"""One prepared training run on a lent GPU machine (see docs/training.md, "A lent GPU").

That machine has PyTorch but cannot fetch anything, takes at most 64 MiB of
working tree and gives back files of at most 16 MiB.  So:

    # here, once: a compact copy of the training photos (384-pixel short side, PNG)
    python scripts/gpu_train.py pack            # data/photos -> data/pack (about 30 MB)

    # there (device tool, carry ["data/pack"]):
    python3 scripts/gpu_train.py train --budget 8m --out $OUT [--set key=value ...]

``train`` runs a preset (default ``default-model-39``, started from the
shipped model) on ``data/pack`` and writes slim checkpoints (networks and
step, a few MB), the config and the validation history to ``--out``; continue
here with ``mbrs train --resume`` or ship with scripts/ship_default_model.py.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import mbrs_engine  # noqa: F401  (sets the OpenMP wait policy before torch)
import numpy as np
from PIL import Image

from mbrs_engine.train import Trainer, apply_overrides, preset
from mbrs_engine.train import checkpoint as ckpt
from mbrs_engine.train.commands import ProgressPrinter
from mbrs_engine.train.data import ImageSource, scan_images

PACK = Path("data/pack")


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


def train(args: argparse.Namespace) -> None:
    sets = [f"data.train_dir={args.data}", "data.cache_dir=", f"budget={args.budget}", *args.set]
    if args.init_from:
        sets.append(f"init_from={args.init_from}")
    cfg = apply_overrides(preset(args.preset), sets)
    run_dir = Path(args.out) / "run"
    trainer = Trainer(cfg, run_dir, [ProgressPrinter(sys.stdout)])
    trainer.run()
    out = Path(args.out)
    for name in (ckpt.LAST, ckpt.BEST):          # full checkpoints exceed what comes back: keep the networks
        if (run_dir / name).exists():
            state = ckpt.load_checkpoint(run_dir / name)
            if "opt_g" in state:
                state = ckpt.slim(state)
            ckpt.atomic_torch_save(state, out / name)
    for name in (ckpt.CONFIG, ckpt.HISTORY):
        if (run_dir / name).exists():
            shutil.copy(run_dir / name, out / name)
    shutil.rmtree(run_dir)
    print(f"slim checkpoints, config and history in {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="downscale data/photos into data/pack")
    p.add_argument("--source", type=Path, default=Path("data/photos"))
    p.add_argument("--side", type=int, default=384)
    p.add_argument("--cache", default="data/cache", help="the training image cache (see data.cache_dir)")
    t = sub.add_parser("train", help="train on data/pack, write slim results to --out")
    t.add_argument("--preset", default="default-model-39")
    t.add_argument("--init-from", default="assets/models/default.json",
                   help="networks to start from ('' for the preset's own init_from)")
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
