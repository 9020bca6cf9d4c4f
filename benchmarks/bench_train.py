"""Benchmark: training throughput (images/s) per preset and precision, and the data loader alone.

Runs real ``Trainer.train_step`` calls (networks, noise pool, losses, adversary,
optimiser) on batches from the real data pipeline, after warm-up steps (oneDNN
compiles kernels for each new shape on the first steps).  The loader is timed
alone over the same stream, so one can see that it is not the bottleneck.

    python benchmarks/bench_train.py [--data DIR] [--presets cpu-small,paper-128-64] [--steps 4]

Without --data it uses data/photos (scripts/fetch_training_photos.sh) or, if
missing, a few scikit-image sample photos written to a temporary folder.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import mbrs_engine  # noqa: F401  (sets passive OpenMP waiting before torch loads)
import torch

from mbrs_engine.train import Trainer, apply_overrides, preset


def sample_folder() -> str:
    from PIL import Image
    from skimage import data

    folder = Path(tempfile.mkdtemp(prefix="mbrs-bench-"))
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
    return str(folder)


def trainer_for(name: str, precision: str, data_dir: str, run_dir: str) -> Trainer:
    cfg = apply_overrides(preset(name), [f"data.train_dir={data_dir}", f"precision={precision}",
                                         "data.val_count=2", "data.workers=1"])
    trainer = Trainer(cfg, run_dir)
    trainer._t_start = time.monotonic()
    trainer._build()
    return trainer


def images_per_s(trainer: Trainer, steps: int, warmup: int) -> float:
    batches = trainer._loader(0)
    for _ in range(warmup):
        trainer.train_step(next(batches))
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(batches))
    return steps * trainer.config.batch_size / (time.perf_counter() - t0)


def loader_images_per_s(trainer: Trainer, batches: int = 20) -> float:
    it = trainer._loader(0)
    next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * trainer.config.batch_size / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/photos" if Path("data/photos").is_dir() else "")
    ap.add_argument("--presets", default="cpu-small,paper-128-64")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data_dir = args.data or sample_folder()
    print(f"data={data_dir} threads={torch.get_num_threads()} torch={torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets.split(","):
            for precision in args.precisions.split(","):
                trainer = trainer_for(name, precision, data_dir, f"{tmp}/{name}-{precision}")
                rate = images_per_s(trainer, args.steps, args.warmup)
                print(f"{name:16s} {precision:5s} {rate:7.2f} images/s (noise pool: {trainer.config.noise})")
            print(f"{name:16s} loader alone {loader_images_per_s(trainer):7.1f} images/s "
                  f"(workers={trainer.config.data.workers})")


if __name__ == "__main__":
    main()
