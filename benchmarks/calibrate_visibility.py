"""Calibrate the engine's visibility figure (mbrs_engine.visibility) against butteraugli, and check it.

For every photo of two folders, several changes are made, from invisible to
plainly visible: the default watermark, the watermark unshaped, the
whole-frame watermark unrefined at strengths 1 and 0.5, JPEG re-saves at
quality 90 and 75, and white noise at 40 dB.  Butteraugli (Debian package
``butteraugli``) scores each original/changed pair once (cached in
``data/cache/visibility-pairs``).  The constants of
:class:`~mbrs_engine.visibility.VisibilityModel` are fitted on the first
folder by coordinate search (the correlation of log figures, then one gain
for the scale), and the fitted model is checked on the second folder, which
it never saw.  Prints the correlations and the model to paste into the
engine; ``--check`` only checks the engine's current model.

    python scripts/collect_heldout_photos.py     # once: data/heldout-photos
    python scripts/collect_eval_photos.py data/eval-photos
    python benchmarks/calibrate_visibility.py [--fit data/heldout-photos] [--check-on data/eval-photos] [--check]

Photos longer than ``--long-side`` (default 1024) are shrunk first, so butteraugli stays fast.  The pairs are
cached: delete the cache to measure a changed default watermark (the shipped constants were fitted on pairs
made with the ladder before the visibility cap).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mbrs_engine import Watermarker  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP
from mbrs_engine.imageio import list_images, open_image  # noqa: E402
from mbrs_engine.visibility import DEFAULT_MODEL, VisibilityModel, lab_difference, map_from_lab, score  # noqa: E402

CHANGES = ("default", "unshaped", "frame-1.0", "frame-0.5", "jpeg90", "jpeg75", "noise40")
MESSAGE = "© Bench 2026"


def _change(name: str, photo: Image.Image, rng: np.random.Generator, marks: dict) -> Image.Image:
    if name.startswith("jpeg"):
        path = Path(marks["tmp"]) / "re-save.jpg"
        photo.save(path, quality=int(name[4:]))
        return Image.open(path).convert("RGB")
    if name == "noise40":  # white noise of rms 2.55 levels: 40 dB
        noisy = np.asarray(photo, dtype=np.float64) + rng.normal(0.0, 2.55, (photo.height, photo.width, 3))
        return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))
    if name == "default":
        return marks["default"].embed(photo, MESSAGE)
    if name == "unshaped":
        return marks["unshaped"].embed(photo, MESSAGE)
    strength = float(name.split("-")[1])
    return marks["default"].embed(photo, MESSAGE, strength=strength, refine=False, tiled=False)


def pairs(folder: Path, cache: Path, long_side: int) -> list[tuple[Path, Path, float]]:
    """(original PNG, changed PNG, butteraugli) for every photo of ``folder`` and every change, made once."""
    marks = {"default": Watermarker.from_pretrained(), "unshaped": Watermarker.from_pretrained(shaping=None),
             "tmp": str(cache)}
    out = []
    for index, path in enumerate(list_images(folder)):
        photo = open_image(path).convert("RGB")
        if max(photo.size) > long_side:
            photo.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
        stem = cache / f"{folder.name}-{path.stem}"
        original = stem.with_name(stem.name + "-original.png")
        if not original.exists():
            photo.save(original)
        for name in CHANGES:
            changed = stem.with_name(f"{stem.name}-{name}.png")
            record = changed.with_suffix(".json")
            if not record.exists():
                _change(name, photo, np.random.default_rng(index), marks).save(changed)
                done = subprocess.run(["butteraugli", str(original), str(changed)], capture_output=True, text=True,
                                      check=True)
                record.write_text(json.dumps({"butteraugli": float(done.stdout.split()[0])}))
            out.append((original, changed, json.loads(record.read_text())["butteraugli"]))
        print(f"  {path.name}: {len(CHANGES)} changes", file=sys.stderr, flush=True)
    return out


class Scorer:
    """The engine's figure for each pair under a model, the images converted to CIELAB once."""

    def __init__(self, data: list[tuple[Path, Path, float]]):
        self.labs = [lab_difference(np.asarray(Image.open(a).convert("RGB")), np.asarray(Image.open(b).convert("RGB")))
                     for a, b, _ in data]
        self.truth = np.log(np.array([t for _, _, t in data]))
        self.changes = [next(c for c in CHANGES if b.stem.endswith("-" + c)) for _, b, _ in data]

    @torch.no_grad()
    def logs(self, model: VisibilityModel) -> np.ndarray:
        model = dataclasses.replace(model, scale=1.0)
        return np.log(np.maximum([score(map_from_lab(lab, diff, model)[0, 0].numpy(), model)
                                  for lab, diff in self.labs], 1e-6))

    def fit_quality(self, model: VisibilityModel) -> float:
        return float(np.corrcoef(self.logs(model), self.truth)[0, 1])

    def report(self, model: VisibilityModel, label: str) -> None:
        logs = self.logs(model) + math.log(model.scale)
        pearson = float(np.corrcoef(logs, self.truth)[0, 1])
        ranks = lambda v: np.argsort(np.argsort(v))  # noqa: E731
        spearman = float(np.corrcoef(ranks(logs), ranks(self.truth))[0, 1])
        ratio = np.exp(logs - self.truth)
        print(f"{label}: {len(logs)} pairs, Pearson (log) {pearson:.3f}, Spearman {spearman:.3f}, "
              f"figure / butteraugli median {np.median(ratio):.2f} (10-90 %: {np.percentile(ratio, 10):.2f}-"
              f"{np.percentile(ratio, 90):.2f})")
        for change in CHANGES:
            pick = [i for i, c in enumerate(self.changes) if c == change]
            print(f"    {change:10s} median butteraugli {np.median(np.exp(self.truth[pick])):5.2f}, "
                  f"figure {np.median(np.exp(logs[pick])):5.2f}")


#: The values coordinate search tries for each constant.
GRID = {
    "luma_blur": (0.0, 0.5, 0.7, 1.0, 1.5, 2.0),
    "chroma_blur": (0.5, 1.0, 1.5, 2.0, 3.0, 4.0),
    "chroma_jnd": (0.5, 1.0, 2.0, 3.0, 4.0, 6.0),
    "mask_sigma": (1.0, 1.5, 2.0, 3.0, 4.0),
    "mask_contrast": (1.0, 2.0, 4.0, 8.0, 16.0),
    "mask_exponent": (0.3, 0.5, 0.7, 1.0, 1.3),
    "percentile": (99.0, 99.5, 99.9, 99.99, 100.0),
}


def fit(scorer: Scorer, start: VisibilityModel, rounds: int = 2) -> VisibilityModel:
    best, quality = start, scorer.fit_quality(start)
    for _ in range(rounds):
        for name, values in GRID.items():
            for value in values:
                trial = dataclasses.replace(best, **{name: value})
                q = scorer.fit_quality(trial)
                if q > quality + 1e-4:
                    best, quality = trial, q
            print(f"  {name} = {getattr(best, name)}: correlation {quality:.3f}", file=sys.stderr, flush=True)
    gain = float(np.exp(np.mean(scorer.truth - scorer.logs(best))))
    return dataclasses.replace(best, scale=round(gain, 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", default="data/heldout-photos", help="folder the constants are fitted on")
    parser.add_argument("--check-on", default="data/eval-photos", help="folder the fitted model is checked on")
    parser.add_argument("--check", action="store_true", help="check the engine's current model only")
    parser.add_argument("--long-side", type=int, default=1024)
    args = parser.parse_args()
    if shutil.which("butteraugli") is None:
        print("butteraugli is not installed (apt install butteraugli): nothing to calibrate against")
        return
    cache = Path("data/cache/visibility-pairs")
    cache.mkdir(parents=True, exist_ok=True)
    fit_on = Scorer(pairs(Path(args.fit), cache, args.long_side))
    check_on = Scorer(pairs(Path(args.check_on), cache, args.long_side))
    model = DEFAULT_MODEL if args.check else fit(fit_on, DEFAULT_MODEL)
    fit_on.report(model, f"fitted on {args.fit}" if not args.check else args.fit)
    check_on.report(model, f"checked on {args.check_on}")
    print(model)


if __name__ == "__main__":
    main()
