"""Benchmark: the training penalty (the engine's visibility map) of each model's raw residual at equal energy.

An encoder trained through the visibility penalty or the ladder's caps can
learn what the map does not weigh: its penalty falls far more than the
butteraugli distance of its marks (compare with ``bench_visibility.py
--candidates unshaped``).  For the top-left 128 × 128 px of each photo
(shorter side brought to 384 px first), the raw residual of a fixed random
message is scaled to 40 dB and ``visibility.training_penalty`` printed per model.

    python benchmarks/bench_training_penalty.py --models default runs/models/NAME.json [--photos data/heldout-photos]

Without photos it says so and exits 0.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mbrs_engine import Watermarker  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from mbrs_engine.imageio import list_images, open_image  # noqa: E402
from mbrs_engine.metrics import residual_scale_for_psnr  # noqa: E402
from mbrs_engine.pixels import from_uint8  # noqa: E402
from mbrs_engine.visibility import training_penalty  # noqa: E402

SIDE, PSNR = 384, 40.0


def crop(path: Path, size: int) -> torch.Tensor:
    img = open_image(path).convert("RGB")
    scale = SIDE / min(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.array(img)[:size, :size]).permute(2, 0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["default"], help="model names or .json paths")
    parser.add_argument("--photos", default="data/heldout-photos", help="folder of photos never used for training")
    args = parser.parse_args()
    photos = list_images(Path(args.photos)) if Path(args.photos).is_dir() else []
    if not photos:
        print(f"no photos in {args.photos}: run scripts/collect_heldout_photos.py first")
        return
    for name in args.models:
        wm = Watermarker.from_pretrained(None if name == "default" else name)
        size = wm.image_size
        cover = from_uint8(torch.stack([crop(p, size) for p in photos]))
        message = torch.randint(0, 2, (len(photos), wm.message_length), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            residual = wm.native_residual(cover, message.float())
            marked = cover + residual_scale_for_psnr(residual, PSNR) * residual
            print(f"{name:40s} penalty {float(training_penalty(cover, marked)):.2f} at {PSNR:g} dB "
                  f"({len(photos)} crops of {size} px)")


if __name__ == "__main__":
    main()
