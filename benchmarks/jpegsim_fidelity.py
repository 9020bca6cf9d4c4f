"""Measurement: how close the torch JPEG layers come to real libjpeg (PIL), as PSNR between the two outputs.

For each photo (scikit-image samples, whole images) and quality, the 8-bit
output of JpegSim / JpegSS / KorniaJpeg is compared with PIL's own JPEG
encode/decode of the same 8-bit image.

    python benchmarks/jpegsim_fidelity.py [--qualities 50 90]
"""
from __future__ import annotations

import argparse

import mbrs_engine  # noqa: F401
import numpy as np
import torch
from skimage import data

from mbrs_engine.metrics import psnr
from mbrs_engine.noise import JpegSim, JpegSS, KorniaJpeg, RealJpeg
from mbrs_engine.pixels import from_uint8

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qualities", nargs="+", type=int, default=[50, 90])
    args = ap.parse_args()
    layers = {"JpegSim": JpegSim, "JpegSS": JpegSS, "KorniaJpeg": KorniaJpeg}
    print(f"{'photo':12s} {'Q':>3s} " + " ".join(f"{n:>10s}" for n in layers) + "   (dB vs PIL)")
    for q in args.qualities:
        means = {n: [] for n in layers}
        for name in PHOTOS:
            x = from_uint8(torch.from_numpy(np.array(getattr(data, name)())).permute(2, 0, 1)[None])
            real = RealJpeg(q)(x)
            row = []
            for n, cls in layers.items():
                value = psnr(cls(q)(x), real).item()
                means[n].append(value)
                row.append(f"{value:10.2f}")
            print(f"{name:12s} {q:3d} " + " ".join(row))
        print(f"{'mean':12s} {q:3d} " + " ".join(f"{np.mean(v):10.2f}" for v in means.values()))


if __name__ == "__main__":
    main()
