"""Benchmark: false alarms and decode time on clean images, through the whole search (frames and tiles).

Clean images, seeded: random crops (random position, 10-100 % of the area,
aspect up to 2:1 either way) of the evaluation photos resized to a random
long side of 200-1200 px, a fifth of them then put on a flat canvas of any
grey (``pad``: 30-95 % of its area, anywhere), half of them saved as JPEG
50-95; white noise; flat colours; linear gradients.  Each is decoded with the default model
(every hypothesis of the search, tiles included: the p-value counts them)
and must not be detected.  Prints the number of images, detections, the
worst (lowest) p-value seen, the hypotheses per image, and decode times
(median, 90th percentile, worst); ``--large`` adds one unmarked photo at
12 MP (the decode-time target).

    python benchmarks/bench_false_alarms.py [--photos data/eval-photos data/heldout-photos] [--count 1000] [--large]

The photos are the evaluation samples and the held-out photographs (``scripts/collect_heldout_photos.py``) by
default.  Without photos it uses synthetic images only.
"""
from __future__ import annotations

import argparse
import io
import math
import statistics
import time
import warnings
from pathlib import Path

from mbrs_engine import Watermarker  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from mbrs_engine.attacks import Attack, apply_chain  # noqa: E402
from mbrs_engine.imageio import ModeWarning, list_images, open_image  # noqa: E402


def clean_images(photos: list[Image.Image], count: int, seed: int = 0):
    """``count`` (name, image) pairs: mostly crops of the photos (a fifth of them on a flat canvas), then noise,
    flat and gradient images."""
    rng, canvas_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    synthetic = max(count // 10, 3) if photos else count
    for i in range(count - synthetic):
        photo = photos[i % len(photos)]
        area, aspect = rng.uniform(0.1, 1.0), math.exp(rng.uniform(-math.log(2), math.log(2)))
        w = min(photo.width, max(16, round(photo.width * math.sqrt(area * aspect))))
        h = min(photo.height, max(16, round(photo.height * math.sqrt(area / aspect))))
        x, y = rng.integers(0, photo.width - w + 1), rng.integers(0, photo.height - h + 1)
        crop = photo.crop((int(x), int(y), int(x) + w, int(y) + h))
        side = rng.uniform(200, 1200)
        scale = side / max(crop.size)
        crop = crop.resize((max(16, round(crop.width * scale)), max(16, round(crop.height * scale))),
                           Image.Resampling.BICUBIC)
        if i % 5 == 4:  # a fifth on a flat canvas (drawn apart: the crops are those of the set before canvases)
            area, aspect, x, y, level = canvas_rng.uniform((0.3, 0.6, 0, 0, 0), (0.95, 1.6, 1, 1, 1))
            crop = apply_chain(crop, (Attack("pad", (area, aspect, x, y, level)),))
        if rng.random() < 0.5:
            buffer = io.BytesIO()
            crop.save(buffer, "JPEG", quality=int(rng.integers(50, 96)))
            crop = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        yield f"crop {i}" + (" on a canvas" if i % 5 == 4 else ""), crop
    for i in range(synthetic):
        w, h = (int(v) for v in rng.integers(64, 1025, 2))
        kind = i % 3
        if kind == 0:
            yield f"noise {i}", Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        elif kind == 1:
            yield f"flat {i}", Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 256, 3)))
        else:
            a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            t = np.linspace(0.0, 1.0, w)[None, :, None]
            row = (a[None, None, :] * (1 - t) + b[None, None, :] * t).astype(np.uint8)
            yield f"gradient {i}", Image.fromarray(np.repeat(row, h, axis=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, nargs="+", default=[Path("data/eval-photos"),
                                                                   Path("data/heldout-photos")],
                        help="folders of photos never trained on (those missing are skipped)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--large", action="store_true", help="also time one unmarked 12 MP photo")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ModeWarning)  # grey sample photos become RGB: said once per photo otherwise
    photos = [open_image(p).convert("RGB") for folder in args.photos if folder.is_dir() for p in list_images(folder)]
    photos = [p for p in photos if min(p.size) >= 64]
    wm = Watermarker.from_pretrained()
    detections, worst_p, times, hypotheses = [], 1.0, [], []
    for n, (name, img) in enumerate(clean_images(photos, args.count, args.seed), 1):
        start = time.perf_counter()
        result = wm.decode(img)
        times.append(time.perf_counter() - start)
        hypotheses.append(result.hypotheses)
        worst_p = min(worst_p, result.p_value)
        if result.detected:
            detections.append((name, result.message, result.p_value))
        if n % 100 == 0:
            print(f"  {n} images, {len(detections)} detections, median decode {statistics.median(times):.2f} s",
                  flush=True)
    times.sort()
    print(f"clean images: {len(times)} ({len(photos)} photos cropped and resized, some on a canvas, noise, flat, "
          "gradients)")
    print(f"detections: {len(detections)}  (worst p-value {worst_p:.3g}; bound per image: the threshold 1e-06)")
    for name, message, p in detections:
        print(f"  DETECTED {name}: {message!r} p = {p:.3g}")
    print(f"hypotheses per image: median {statistics.median(hypotheses):.0f}, most {max(hypotheses)}")
    print(f"decode time: median {statistics.median(times):.2f} s, p90 {times[int(0.9 * (len(times) - 1))]:.2f} s, "
          f"worst {times[-1]:.2f} s")
    if args.large and photos:
        big = max(photos, key=lambda p: p.width * p.height).resize((4000, 3000), Image.Resampling.BICUBIC)
        start = time.perf_counter()
        wm.decode(big)
        print(f"unmarked 12 MP photo: decode {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
