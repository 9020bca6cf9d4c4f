"""Calibrate the engine's visibility map (mbrs_engine.visibility) against butteraugli, region by region, and check it.

The map is used where it is high: a visibility cap turns the watermark down
wherever the map exceeds it.  So it is fitted on *regions*: for every photo,
each of three changes (the default watermark, the watermark unshaped, a JPEG
re-save at quality 90) is applied to one ninth of the photo at a time (a 3 x
3 grid) and to the whole photo, and butteraugli (Debian package
``butteraugli``; its figure is the largest value of its own map) scores
each of those ten images against the original.  The engine's figure for a
region is a high percentile of its map over that region.  The constants of
:class:`~mbrs_engine.visibility.VisibilityModel` are fitted by coordinate
search (the rms of the log ratio to butteraugli, after one common gain), then
checked on folders the fit never saw.

The fit photos are a seeded draw from the training split of ``data/photos``
(the trainer's own split, ``mbrs_engine.train.data.split_paths``), leaving out
any that look like a check photo (the same picture at another size or in
other colours: the edges of 32 x 32 thumbnails correlating above 0.8), and eight
smooth fields drawn here (flat greys, colours and gradients): photos are
mostly texture, yet a watermark shows first on sky, walls and backdrops.

    bash scripts/fetch_training_photos.sh; python scripts/collect_heldout_photos.py
    python scripts/collect_eval_photos.py data/eval-photos
    python benchmarks/calibrate_visibility.py [--check]        # --check: the engine's model only, no fit

Photos longer than ``--long-side`` (default 1024) are shrunk first, so butteraugli stays fast.  Scores are cached
in ``data/cache/visibility-regions`` (delete it to measure a changed default watermark).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mbrs_engine import Watermarker  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP
from mbrs_engine.imageio import list_images, open_image  # noqa: E402
from mbrs_engine.train import scan_images  # noqa: E402
from mbrs_engine.train.data import split_paths  # noqa: E402
from mbrs_engine.visibility import DEFAULT_MODEL, VisibilityModel, lab_difference, map_from_lab  # noqa: E402

from bench_visibility import butteraugli, shrunk  # noqa: E402

CHANGES = ("default", "unshaped", "jpeg90")
MESSAGE = "© Bench 2026"
FIT_PHOTOS, SEED = 14, 1
CHECK_FOLDERS = ("data/heldout-photos", "data/eval-photos")
#: Regions where butteraugli sees (almost) nothing are left out: their log ratio is noise.
LEAST_SCORE = 0.2


def _signature(path: Path) -> np.ndarray:
    """The edges of a 32 x 32 grey thumbnail, normalised: the same picture at another size or in other colours
    correlates above 0.85 with it, different pictures below 0.7 (on the training and check photos)."""
    grey = np.asarray(Image.open(path).convert("L").resize((32, 32), Image.Resampling.BOX), np.float64)
    edges = np.hypot(*np.gradient(grey))
    edges = edges - edges.mean()
    return edges.ravel() / (np.linalg.norm(edges) + 1e-9)


def fit_photos(source: Path, check_folders: list[Path]) -> list[Path]:
    """A seeded draw of :data:`FIT_PHOTOS` training photos, none of them a look-alike of a check photo."""
    train, _ = split_paths(scan_images(source), 16, 0)  # the default model's split (scripts/collect_heldout_photos.py)
    checks = np.stack([_signature(p) for folder in check_folders for p in list_images(folder)])
    distinct = [p for p in train if float((checks @ _signature(p)).max()) <= 0.8]
    order = np.random.default_rng(SEED).permutation(len(distinct))[:FIT_PHOTOS]
    return [distinct[i] for i in sorted(order)]


#: Smooth fields for the fit: (top-left, bottom-right) sRGB colours of a diagonal gradient (equal: flat).
FIELDS = (((128, 128, 128), (128, 128, 128)), ((40, 40, 40), (40, 40, 40)), ((228, 228, 228), (228, 228, 228)),
          ((70, 120, 200), (190, 215, 240)), ((20, 70, 160), (20, 70, 160)), ((224, 172, 140), (200, 150, 120)),
          ((60, 110, 50), (150, 190, 90)), ((5, 5, 5), (250, 250, 250)))


def smooth_fields(folder: Path) -> list[Path]:
    """:data:`FIELDS` as 768 x 512 PNGs in ``folder`` (made once)."""
    out = []
    y, x = np.mgrid[0:512, 0:768]
    t = ((x / 767 + y / 511) / 2)[..., None]
    for k, (a, b) in enumerate(FIELDS):
        path = folder / f"field-{k}.png"
        if not path.exists():
            rgb = np.rint(np.asarray(a) * (1 - t) + np.asarray(b) * t).astype(np.uint8)
            Image.fromarray(rgb).save(path)
        out.append(path)
    return out


def _windows(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The whole image, then a 3 x 3 grid of regions (left, top, right, bottom)."""
    return [(0, 0, width, height)] + [(width * i // 3, height * j // 3, width * (i + 1) // 3, height * (j + 1) // 3)
                                      for j in range(3) for i in range(3)]


def _changed(name: str, photo: Image.Image, marks: dict, tmp: Path) -> Image.Image:
    """The photo after one of :data:`CHANGES`; ``marks`` keeps the watermarkers, loaded when first needed."""
    if name == "jpeg90":
        photo.save(tmp / "re-save.jpg", quality=90)
        return Image.open(tmp / "re-save.jpg").convert("RGB")
    if name not in marks:
        marks[name] = Watermarker.from_pretrained() if name == "default" else Watermarker.from_pretrained(shaping=None)
    return marks[name].embed(photo, MESSAGE)


def regions(label: str, photos: list[Path], cache: Path, long_side: int) -> list[tuple[Path, Path, list, list]]:
    """(original PNG, changed PNG, windows, butteraugli of each) for every photo and change, made once."""
    marks, out, jobs = {}, [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for path in photos:
            photo = shrunk(open_image(path).convert("RGB"), long_side)
            stem = cache / f"{label}-{path.stem}"
            original = Path(f"{stem}-original.png")
            if not original.exists():
                photo.save(original)
            for name in CHANGES:
                changed, record = Path(f"{stem}-{name}.png"), Path(f"{stem}-{name}.json")
                if not changed.exists():
                    _changed(name, photo, marks, tmp).save(changed)
                if not record.exists():
                    jobs.append((original, changed, record))
                out.append((original, changed, record))

        def score(job) -> None:
            original, changed, record = job
            a, b = np.asarray(Image.open(original).convert("RGB")), np.asarray(Image.open(changed).convert("RGB"))
            windows = _windows(a.shape[1], a.shape[0])
            scores = []
            for k, (left, top, right, bottom) in enumerate(windows):
                part = a.copy()
                part[top:bottom, left:right] = b[top:bottom, left:right]
                where = tmp / f"{changed.stem}-{k}.png"
                Image.fromarray(part).save(where)
                scores.append(butteraugli(original, where))
            record.write_text(json.dumps({"windows": windows, "butteraugli": scores}))
            print(f"  {changed.name}", file=sys.stderr, flush=True)

        with ThreadPoolExecutor(2) as pool:  # butteraugli runs as its own process
            list(pool.map(score, jobs))
    records = [json.loads(r.read_text()) for _, _, r in out]
    return [(a, b, rec["windows"], rec["butteraugli"]) for (a, b, _), rec in zip(out, records)]


def _spread(d: np.ndarray) -> float:
    """The rms of log ratios about their mean."""
    return float(np.sqrt(np.mean((d - d.mean()) ** 2)))


class Scorer:
    """The engine's figure for each region under a model, the images converted to CIELAB once."""

    def __init__(self, data):
        self.labs = [lab_difference(np.asarray(Image.open(a).convert("RGB")), np.asarray(Image.open(b).convert("RGB")))
                     for a, b, _, _ in data]
        self.windows = [w for _, _, w, _ in data]
        truth = np.concatenate([s for _, _, _, s in data])
        self.keep = truth > LEAST_SCORE
        self.truth = np.log(truth[self.keep])
        self.changes = np.concatenate([[next(c for c in CHANGES if b.stem.endswith("-" + c))] * len(s)
                                       for _, b, _, s in data])[self.keep]

    @torch.no_grad()
    def logs(self, model: VisibilityModel) -> np.ndarray:
        model = dataclasses.replace(model, scale=1.0)
        out = []
        for (lab, diff), windows in zip(self.labs, self.windows):
            seen = map_from_lab(lab, diff, model)[0, 0].numpy()
            out += [np.percentile(seen[top:bottom, left:right], model.percentile)
                    for left, top, right, bottom in windows]
        return np.log(np.maximum(out, 1e-6))[self.keep]

    def error(self, model: VisibilityModel) -> float:
        """The rms of the log ratio to butteraugli once one common gain is taken out."""
        return _spread(self.logs(model) - self.truth)

    def report(self, model: VisibilityModel, label: str) -> None:
        logs = self.logs(model) + math.log(model.scale)
        d = logs - self.truth
        ranks = lambda v: np.argsort(np.argsort(v))  # noqa: E731
        print(f"{label}: {len(logs)} regions, rms log error {_spread(d):.3f} (common "
              f"gain off by {math.exp(-d.mean()):.2f}), Pearson (log) {np.corrcoef(logs, self.truth)[0, 1]:.3f}, "
              f"Spearman {np.corrcoef(ranks(logs), ranks(self.truth))[0, 1]:.3f}")
        print("    figure / butteraugli, median: " + ", ".join(
            f"{c} {math.exp(float(np.median(d[self.changes == c]))):.2f}" for c in CHANGES))


#: The values coordinate search tries for each constant.
GRID = {
    "middle_sigma": (0.8, 1.2, 1.6, 2.0, 2.5),
    "coarse_sigma": (2.5, 3.0, 4.0, 5.0, 6.0),
    "middle_weight": (1.0, 2.0, 3.0, 4.0, 6.0),
    "coarse_weight": (0.25, 0.5, 1.0, 2.0, 4.0),
    "middle_masking": (0.5, 0.75, 1.0, 1.5),
    "coarse_masking": (0.5, 1.0, 1.5, 2.0),
    "chroma_blur": (2.0, 4.0, 6.0, 8.0, 11.0),
    "chroma_jnd": (0.25, 0.5, 1.0),
    "chroma_masking": (0.0, 0.25, 0.5, 0.75, 1.0),
    "mask_sigma": (1.0, 2.0, 3.0, 4.0),
    "mask_contrast": (0.5, 1.0, 2.0),
    "mask_exponent": (0.5, 0.7, 1.0, 1.3, 1.6),
    "mask_erosion": (0, 4, 8, 12),
    "percentile": (99.5, 99.8, 99.9, 99.99),
}


def fit(scorer: Scorer, start: VisibilityModel, rounds: int = 2) -> VisibilityModel:
    best, error = start, scorer.error(start)
    for _ in range(rounds):
        for name, values in GRID.items():
            for value in values:
                trial = dataclasses.replace(best, **{name: value})
                if trial.middle_sigma > trial.coarse_sigma:
                    continue
                e = scorer.error(trial)
                if e < error - 1e-4:
                    best, error = trial, e
            print(f"  {name} = {getattr(best, name)}: rms log error {error:.3f}", file=sys.stderr, flush=True)
    gain = float(np.exp(np.mean(scorer.truth - scorer.logs(best))))
    return dataclasses.replace(best, scale=round(gain, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="data/photos", help="the training photos the fit draws from")
    parser.add_argument("--check-on", nargs="+", default=list(CHECK_FOLDERS), help="folders the model is checked on")
    parser.add_argument("--check", action="store_true", help="check the engine's current model only")
    parser.add_argument("--long-side", type=int, default=1024)
    args = parser.parse_args()
    if shutil.which("butteraugli") is None:
        print("butteraugli is not installed (apt install butteraugli): nothing to calibrate against")
        return
    folders = [Path(f) for f in args.check_on if Path(f).is_dir() and list_images(Path(f))]
    if not folders:
        print(f"no photos in {' '.join(args.check_on)}: run scripts/collect_heldout_photos.py first")
        return
    cache = Path("data/cache/visibility-regions")
    cache.mkdir(parents=True, exist_ok=True)
    checks = {f: Scorer(regions(f.name, list_images(f), cache, args.long_side)) for f in folders}
    model = DEFAULT_MODEL
    if not args.check:
        photos = fit_photos(Path(args.source), folders)
        print(f"fit on {len(photos)} training photos: {', '.join(p.name for p in photos)}")
        fit_on = Scorer(regions("fit", photos + smooth_fields(cache), cache, args.long_side))
        fit_on.report(DEFAULT_MODEL, "the engine's model, on the fit photos")
        model = fit(fit_on, DEFAULT_MODEL)
        fit_on.report(model, "fitted")
    for folder, scorer in checks.items():
        scorer.report(model, f"checked on {folder}")
    print(model)


if __name__ == "__main__":
    main()
