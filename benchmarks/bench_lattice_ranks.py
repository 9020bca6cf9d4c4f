"""Benchmark: does the autocorrelation find the tiles after the geometric suite's edits, and how high?

For each tiled photo of the folders, the geometric suite's crops, rotation and crop + fit (``mbrs eval``'s
draws, for each ``--seeds``) are applied to the marked photo; the true lattice (the embedding rule's, scaled by
a fit and turned by a rotation: ``diagnose_geometric.true_lattice``) is looked for among the first eight peaks
of :func:`mbrs_engine.tiling.autocorrelation_peaks`, once per channel setting.  Printed per folder and edit:
how often it is first, among the first two (what the search tries, besides the rule's period), and among the
first eight.  No decoding: this measures the lattice finder only (a lattice found can still be too weak to read).

    python benchmarks/bench_lattice_ranks.py data/eval-photos data/heldout-photos --cache runs/marked \\
        [--seeds 0 1 2] [--channels luma luma+opponent opponent]

``--cache`` keeps the marked photos (PNG; the seed-0 message of ``mbrs eval``) between runs.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from mbrs_engine import Watermarker  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP

from PIL import Image  # noqa: E402

from mbrs_engine import tiling  # noqa: E402
from mbrs_engine.evaluate import GEOMETRIC_SUITE, attacked_image, image_message, load_folder  # noqa: E402
from mbrs_engine.imageio import ModeWarning  # noqa: E402

from diagnose_geometric import true_lattice  # noqa: E402

CHANNELS = {"luma": tiling.AUTOCORRELATION_CHANNELS[0], "opponent": tiling.AUTOCORRELATION_CHANNELS[1]}
EDITS = {0: "crop 50-90 %", 1: "crop 25-50 %", 2: "rotation", 4: "crop + fit 1080"}  # indices into the suite


def rank(found: list[tiling.Lattice], truth: tiling.Lattice) -> int | None:
    """Where the true lattice is among ``found`` (period within 1 %, angle within 0.5 degrees), or None."""
    return next((i for i, f in enumerate(found)
                 if abs(f.period - truth.period) < 0.01 * truth.period and abs(f.angle - truth.angle) < 0.5), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", default=["data/eval-photos", "data/heldout-photos"])
    parser.add_argument("--cache", type=Path, help="folder for the marked photos (kept between runs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--channels", nargs="+", default=["luma", "luma+opponent"],
                        help="channel settings: names from %s joined by '+'" % sorted(CHANNELS))
    args = parser.parse_args()
    warnings.simplefilter("ignore", ModeWarning)
    wm = Watermarker.from_pretrained()
    settings = {name: tuple(CHANNELS[c] for c in name.split("+")) for name in args.channels}
    shipped = tiling.AUTOCORRELATION_CHANNELS
    print(f"{'channels':>16s} {'folder':>20s} " + " ".join(f"{name:>26s}" for name in EDITS.values()))
    for folder in args.folders:
        ranks: dict[str, dict[int, list]] = {name: {a: [] for a in EDITS} for name in settings}
        for index, (name, cover) in enumerate(load_folder(folder)):
            cover = cover.convert("RGB")
            if wm.tile_size(cover) is None:
                continue
            cached = args.cache / Path(folder).name / f"{name}.png" if args.cache else None
            if cached is not None and cached.exists():
                marked = Image.open(cached).convert("RGB")
            else:
                marked = wm.embed_bits(cover, image_message(wm, 0, index)[0])
                if cached is not None:
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    marked.save(cached)
            for seed in args.seeds:
                for a in EDITS:
                    attacked, chain = attacked_image(marked, cover, GEOMETRIC_SUITE[a], seed, index, a)
                    truth = true_lattice(chain, cover, marked, attacked, wm.config)
                    for setting, channels in settings.items():
                        tiling.AUTOCORRELATION_CHANNELS = channels
                        try:
                            ranks[setting][a].append(rank(tiling.autocorrelation_peaks(attacked, 8), truth))
                        finally:
                            tiling.AUTOCORRELATION_CHANNELS = shipped
        for setting in settings:
            cells = []
            for a in EDITS:
                found = ranks[setting][a]
                first, two, eight = (sum(r is not None and r < k for r in found) for k in (1, 2, 8))
                cells.append(f"{first:>3d} / {two:>3d} / {eight:>3d} of {len(found):>3d}")
            print(f"{setting:>16s} {Path(folder).name[-20:]:>20s} " + " ".join(f"{c:>26s}" for c in cells),
                  flush=True)
    print("each cell: the true lattice first / among the first two / among the first eight, of the edits")


if __name__ == "__main__":
    main()
