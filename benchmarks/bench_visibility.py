"""Benchmark: how visible the watermark is (butteraugli), next to PSNR, SSIM, robustness and embed time.

For each candidate embedding (the default, unrefined strengths, ...) and
reference distortions of the same photos (JPEG re-saves, white noise at the
same PSNR as the default), on a folder of photos never trained on: the
butteraugli distance between the original and the saved PNG (Debian package
``butteraugli``; about 1 = just noticeable) as median, 90th percentile and
worst; mean PSNR and SSIM (not the target, reported beside it); and for the
candidates the share of photos whose exact message is read after JPEG 50,
a resize to 50 %, a social-media re-encode (long side 1080 when larger,
JPEG 80), JPEG 30 and a resize to 25 %, with the median and worst embed time.  The white-noise reference has the
PSNR of the first candidate on each photo.

    python scripts/collect_eval_photos.py data/eval-photos     # once: photos never used for training
    python benchmarks/bench_visibility.py [--photos data/eval-photos] [--limit N] [--candidates default plain-1.0]
                                         [--long-side 1024] [--per-photo]

Without butteraugli or photos it says so and exits 0 (``make bench`` runs every benchmark).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import warnings

from mbrs_engine import Watermarker  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP
from mbrs_engine.attacks import apply_chain, parse_chain  # noqa: E402
from mbrs_engine.imageio import list_images, open_image  # noqa: E402
from mbrs_engine.metrics import image_psnr, ssim  # noqa: E402
from mbrs_engine.perceptual import LADDER, Shaping  # noqa: E402

MESSAGE = "© Bench 2026"
ROBUSTNESS = ("jpeg:50", "resize:0.5", "social", "jpeg:30", "resize:0.25")


#: The shaping ladder without its visibility caps.
UNCAPPED = tuple(shaping for shaping in LADDER if shaping is None or shaping.cap is None)


@dataclass(frozen=True)
class Candidate:
    """One way of embedding: ``Watermarker.embed`` keyword arguments."""

    name: str
    strength: float = 1.0
    refine: bool = True
    tiled: bool = True
    shaping: object = "default"  # the watermarker's shaping (mbrs_engine.perceptual): "default", a ladder or None


CANDIDATES = {c.name: c for c in (
    Candidate("default"),  # tiles, shaped and capped (photos smaller than two tiles: the whole frame, refined)
    Candidate("uncapped", shaping=UNCAPPED),  # tiles shaped without a visibility cap (the default before it)
    Candidate("unshaped", shaping=None),  # tiles as the encoder gives them (the default before shaping)
    # each pixel capped by its own gain, caps from 1.3 (the default before the caps' spread: docs/watermarking.md)
    Candidate("per-pixel", shaping=tuple(Shaping(cap=c) for c in (1.3, 1.7, 2.1, 2.5)) + UNCAPPED),
    Candidate("frame", tiled=False),  # the whole-frame layout, refined (the default before tiles)
    Candidate("plain-1.0", refine=False, tiled=False),
    Candidate("plain-0.7", 0.7, refine=False, tiled=False),
    Candidate("plain-0.5", 0.5, refine=False, tiled=False),
)}
REFERENCES = ("jpeg-90", "jpeg-75", "noise-at-default-psnr")


def butteraugli(a: Path, b: Path) -> float:
    done = subprocess.run(["butteraugli", str(a), str(b)], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[0])


def social(img: Image.Image) -> Image.Image:
    """A social-media re-encode: the long side brought down to 1080 pixels (never up), then JPEG 80."""
    scale = 1080 / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    return apply_chain(img, parse_chain("jpeg:80"))


def attacked(img: Image.Image, name: str) -> Image.Image:
    return social(img) if name == "social" else apply_chain(img, parse_chain(name))


def shrunk(img: Image.Image, long_side: int | None) -> Image.Image:
    """The photo with its long side brought down to ``long_side`` (None: as it is)."""
    if long_side is None or max(img.size) <= long_side:
        return img
    scale = long_side / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(np.ceil(0.9 * len(ordered))) - 1)]
    return f"{statistics.median(ordered):6.2f} {p90:6.2f} {ordered[-1]:6.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default="data/eval-photos", help="folder of photos never used for training")
    parser.add_argument("--limit", type=int, help="only the first N photos")
    parser.add_argument("--model", help="model name or path (default: the default model)")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--no-references", action="store_true", help="skip the JPEG and noise references")
    parser.add_argument("--per-photo", action="store_true", help="also print each photo's distance and failed reads")
    parser.add_argument("--long-side", type=int, help="shrink larger photos to this long side first (butteraugli "
                        "takes minutes on 12 MP)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # grey photos say they become RGB, once per photo and candidate
    if shutil.which("butteraugli") is None:  # skipped, not failed: `make bench` runs every benchmark
        print("bench_visibility: skipped, butteraugli is not installed (apt-get install butteraugli)")
        return
    photos = list_images(args.photos)[:args.limit] if Path(args.photos).is_dir() else []
    if not photos:
        print(f"bench_visibility: skipped, no photos in {args.photos} "
              f"(python scripts/collect_eval_photos.py {args.photos})")
        return
    wm = Watermarker.from_pretrained(args.model)
    print(f"model {wm.name}, {len(photos)} photos from {args.photos}")
    print(f"{'':24s} {'butteraugli':>20s}")
    print(f"{'embedding':24s} {'median':>6s} {'p90':>6s} {'worst':>6s} {'PSNR':>6s} {'SSIM':>6s} "
          + " ".join(f"{a:>10s}" for a in ROBUSTNESS) + f" {'embed s':>8s} {'worst':>6s}")
    default_psnr: dict[Path, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.candidates:
            candidate = CANDIDATES[name]
            scores, psnrs, ssims, seconds = [], [], [], []
            read = {a: 0 for a in ROBUSTNESS}
            embedder = wm if candidate.shaping == "default" else \
                Watermarker.from_pretrained(args.model, shaping=candidate.shaping)
            for path in photos:
                original = shrunk(open_image(path).convert("RGB"), args.long_side)
                start = time.perf_counter()
                marked = embedder.embed(original, MESSAGE, strength=candidate.strength, refine=candidate.refine,
                                        tiled=candidate.tiled)
                seconds.append(time.perf_counter() - start)
                original.save(folder / "original.png")
                marked.save(folder / "marked.png")
                scores.append(butteraugli(folder / "original.png", folder / "marked.png"))
                psnrs.append(image_psnr(original, marked))
                if name == args.candidates[0]:
                    default_psnr[path] = psnrs[-1]
                if min(original.size) >= 11 and original.width * original.height <= 4_000_000:
                    ssims.append(float(ssim(original, marked)[0]))
                failed = [a for a in ROBUSTNESS if wm.decode(attacked(marked, a)).message != MESSAGE]
                for attack in ROBUSTNESS:
                    read[attack] += attack not in failed
                if args.per_photo:
                    print(f"    {path.name:40s} {scores[-1]:6.2f} {psnrs[-1]:6.2f} {seconds[-1]:6.2f} s "
                          f"{'fails ' + ' '.join(failed) if failed else ''}", flush=True)
            rates = " ".join(f"{100 * read[a] / len(photos):9.1f}%" for a in ROBUSTNESS)
            print(f"{name:24s} {summary(scores)} {statistics.mean(psnrs):6.2f} "
                  f"{statistics.mean(ssims) if ssims else float('nan'):6.4f} {rates} "
                  f"{statistics.median(seconds):8.2f} {max(seconds):6.2f}", flush=True)
        if args.no_references:
            return
        rng = np.random.default_rng(0)
        for name in REFERENCES:
            scores, psnrs = [], []
            for path in photos:
                original = shrunk(open_image(path).convert("RGB"), args.long_side)
                if name.startswith("jpeg"):
                    other = apply_chain(original, parse_chain(f"jpeg:{name.split('-')[1]}"))
                else:
                    target = default_psnr.get(path, 40.0)
                    sigma = 255.0 / 10 ** (target / 20)
                    noisy = np.asarray(original, dtype=np.float64) + rng.normal(0, sigma, (original.height,
                                                                                         original.width, 3))
                    other = Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))
                original.save(folder / "original.png")
                other.save(folder / "other.png")
                scores.append(butteraugli(folder / "original.png", folder / "other.png"))
                psnrs.append(image_psnr(original, other))
            print(f"{'(ref) ' + name:24s} {summary(scores)} {statistics.mean(psnrs):6.2f}", flush=True)


if __name__ == "__main__":
    main()
