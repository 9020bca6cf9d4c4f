"""Benchmark: the embedding check's wrong bits per visibility cap, for one or more models (decoder candidates).

Which rung of the shaping ladder a photo keeps, and so how visible its mark
is, is decided by the check of :mod:`mbrs_engine.shaping_check`: the capped
residual added to the photo at its size, re-saved as JPEG at
``CAPPED_CHECK_QUALITY`` and read in place; a rung passes with at most
``CAPPED_CHECK_ERRORS`` wrong message bits.  A decoder that reads the check
with fewer wrong bits lets more photos keep a lower cap.  For every tiled photo
of a folder never trained on, two messages, and each cap, this prints the
wrong bits summed over photos and messages, and how many (photo, message)
pairs pass, per model side by side.

    python benchmarks/bench_check_errors.py [--models default runs/models/NAME.json] [--photos data/eval-photos]
                                           [--long-side 1024] [--caps 0.5 0.7 1 1.5]

A model whose file has no ``embed_psnr`` (a fresh export) is embedded at the first model's PSNR, so a decoder
candidate is compared on the same residuals.  Without photos it says so and exits 0.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from mbrs_engine import Watermarker  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from mbrs_engine import payload, tiling  # noqa: E402
from mbrs_engine.imageio import ModeWarning, list_images, open_image  # noqa: E402
from mbrs_engine.perceptual import Shaping  # noqa: E402
from mbrs_engine.shaping_check import CAPPED_CHECK_ERRORS, CAPPED_CHECK_QUALITY, rung, wrong_bits_after_jpeg  # noqa

from bench_visibility import shrunk  # noqa: E402

MESSAGES = ("© Bench 2026", "Check #2 text")


def check_errors(wm: Watermarker, rgb: Image.Image, text: str, caps: list[float], psnr: float) -> list[int] | None:
    """The check's wrong bits for each cap, of ``text`` embedded in ``rgb`` by ``wm`` at ``psnr`` (None: not
    tiled)."""
    size = tiling.working_size(rgb.width, rgb.height, wm.config)
    if size is None:
        return None
    message = torch.as_tensor(payload.encode_text(text, wm.message_length, None)).float()
    raw, grid, amplitude = wm.tiled_raw(rgb, message, size, psnr)
    maps: dict = {}
    return [wrong_bits_after_jpeg(wm.decoder, rgb, rung(raw, Shaping(cap=c), amplitude, rgb, maps), grid,
                                  tiling.cells(wm.config), wm.config.grid_size, CAPPED_CHECK_QUALITY) for c in caps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["default"], help="model names or .json paths")
    parser.add_argument("--photos", default="data/eval-photos", help="folder of photos never used for training")
    parser.add_argument("--long-side", type=int, help="shrink larger photos to this long side first")
    parser.add_argument("--caps", nargs="+", type=float, default=[0.5, 0.7, 1.0, 1.5])
    args = parser.parse_args()
    photos = list_images(Path(args.photos)) if Path(args.photos).is_dir() else []
    if not photos:
        print(f"no photos in {args.photos}: run scripts/collect_eval_photos.py first")
        return
    models = [Watermarker.from_pretrained(None if m == "default" else m) for m in args.models]
    psnr = models[0].strength_psnr(1.0) or 40.0
    totals = [[[0, 0] for _ in args.caps] for _ in models]  # wrong bits, passes
    pairs = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModeWarning)
        for path in photos:
            rgb = shrunk(open_image(path).convert("RGB"), args.long_side)
            for text in MESSAGES:
                rows = [check_errors(wm, rgb, text, args.caps, wm.strength_psnr(1.0) or psnr) for wm in models]
                if rows[0] is None:
                    continue
                pairs += 1
                for total, row in zip(totals, rows):
                    for t, errors in zip(total, row):
                        t[0] += errors
                        t[1] += errors <= CAPPED_CHECK_ERRORS
                print(path.name, text, " | ".join(" ".join(f"{e:3d}" for e in row) for row in rows), flush=True)
    print(f"\n{pairs} (photo, message) pairs; wrong bits after JPEG {CAPPED_CHECK_QUALITY} summed, and passes "
          f"(<= {CAPPED_CHECK_ERRORS}), per cap:")
    for name, total in zip(args.models, totals):
        print(f"{name}: " + ", ".join(f"cap {c:g} {w} ({p} pass)" for c, (w, p) in zip(args.caps, total)))


if __name__ == "__main__":
    main()
