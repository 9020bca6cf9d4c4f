"""Benchmark: photos marked by one model, read by another (does a new release still read older marks?).

A release that changes the encoder must keep reading every photo the earlier
encoder marked.  For each photo of a folder never trained on, the mark of the
``--marked-by`` model (default embedding, default strength) is saved as 8-bit,
attacked as bench_visibility's robustness columns (JPEG 50, resize to 50 %,
social re-encode, JPEG 30, resize to 25 %) and decoded by each ``--read-by``
model; the share of exact messages is printed per reader, the marker itself
first as the reference.

    python benchmarks/bench_cross_read.py --marked-by default --read-by runs/models/NAME.json
                                          [--photos data/eval-photos] [--long-side 1024]

Without photos it says so and exits 0.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from mbrs_engine import Watermarker  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP
from mbrs_engine.imageio import ModeWarning, list_images, open_image  # noqa: E402

from bench_visibility import MESSAGE, ROBUSTNESS, attacked, shrunk  # noqa: E402

EDITS = ("identity",) + ROBUSTNESS


def load(name: str) -> Watermarker:
    return Watermarker.from_pretrained(None if name == "default" else name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--marked-by", default="default", help="model name or .json path that embeds")
    parser.add_argument("--read-by", nargs="*", default=[],
                        help="model names or .json paths that decode (the marker reads too)")
    parser.add_argument("--photos", default="data/eval-photos", help="folder of photos never used for training")
    parser.add_argument("--long-side", type=int, help="shrink larger photos to this long side first")
    args = parser.parse_args()
    photos = list_images(Path(args.photos)) if Path(args.photos).is_dir() else []
    if not photos:
        print(f"no photos in {args.photos}: run scripts/collect_eval_photos.py first")
        return
    marker = load(args.marked_by)
    readers = [(args.marked_by, marker)] + [(name, load(name)) for name in args.read_by]
    reads = {name: {edit: 0 for edit in EDITS} for name, _ in readers}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModeWarning)
        for path in photos:
            rgb = shrunk(open_image(path).convert("RGB"), args.long_side)
            marked = marker.embed(rgb, MESSAGE)
            for edit in EDITS:
                image = marked if edit == "identity" else attacked(marked, edit)
                for name, reader in readers:
                    result = reader.decode(image)
                    reads[name][edit] += bool(result.detected and result.message == MESSAGE)
    print(f"marked by {args.marked_by}, {len(photos)} photos from {args.photos}: exact reads")
    print(f"{'read by':40s}" + "".join(f"{edit:>12s}" for edit in EDITS))
    for name, _ in readers:
        print(f"{name:40s}" + "".join(f"{100 * reads[name][e] / len(photos):11.1f}%" for e in EDITS))


if __name__ == "__main__":
    main()
