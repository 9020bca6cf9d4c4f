"""Marked photos turned or mirrored, then edited: how many read, and how the search's orientation probe rates them.

Each photo of FOLDER is marked (default model, the geometric suite's seed-0 message) and put in each of the 7
orientations but upright (quarter turns, mirrors, transposes), then left as it is, saved as JPEG 50, halved, or
brought to a 1080-pixel long side and saved as JPEG 80 (a photo posted turned or mirrored; the attacks of
:mod:`mbrs_engine.attacks`).  Prints, per edit,
how many read and the median decode time; with ``--probe``, for the 1080-pixel edit, the pilot
:func:`mbrs_engine.tiling.probe_pilots` gives the autocorrelation's first peak in the true orientation, its rank
among the seven, and the best of the seven on the photo's cover so edited (what sets ``tiling.PROBE_PILOT``).

    python benchmarks/bench_orientations.py [data/heldout-photos] [--cache runs/marked] [--probe]
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

from mbrs_engine import Watermarker  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP

from PIL import Image  # noqa: E402

from diagnose_geometric import marked_photo  # noqa: E402
from mbrs_engine import orientations, tiling  # noqa: E402
from mbrs_engine.attacks import apply_chain, parse_chain  # noqa: E402
from mbrs_engine.evaluate import image_message, load_folder  # noqa: E402
from mbrs_engine.imageio import ModeWarning  # noqa: E402


#: The edits after the orientation, as the attacks define them (``fit`` enlarges a photo under 1080 px too).
EDITS = {name: parse_chain(chain) for name, chain in (("as it is", "identity"), ("JPEG 50", "jpeg:50"),
                                                      ("halved", "resize:0.5"),
                                                      ("1080 px + JPEG 80", "fit:1080+jpeg:80"))}
POSTED = "1080 px + JPEG 80"


def probe(wm: Watermarker, image: Image.Image) -> dict[int, float]:
    peaks = tiling.autocorrelation_peaks(image)
    return tiling.probe_pilots(wm.decoder, image, wm.config, peaks[0]) if peaks else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="data/heldout-photos")
    parser.add_argument("--cache", type=Path, help="folder for the marked photos (kept between runs)")
    parser.add_argument("--probe", action="store_true", help="also rate the probe on the 1080-pixel edit")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ModeWarning)
    wm = Watermarker.from_pretrained()
    reads: dict[str, list[bool]] = {name: [] for name in EDITS}
    times: dict[str, list[float]] = {name: [] for name in EDITS}
    probes: list[tuple[float, int, float]] = []  # (true orientation's pilot, its rank, the cover's best)
    for index, (name, cover) in enumerate(load_folder(args.folder)):
        cover = cover.convert("RGB")
        bits, text = image_message(wm, 0, index)
        marked = marked_photo(wm, cover, bits, args.cache / f"{name}.png" if args.cache else None)
        for o in range(1, orientations.count()):
            edited = {}
            for edit, chain in EDITS.items():
                attacked = edited[edit] = apply_chain(orientations.orient(marked, o), chain)
                start = time.perf_counter()
                reads[edit].append(wm.decode(attacked).message == text)
                times[edit].append(time.perf_counter() - start)
            if args.probe:
                pilots = probe(wm, edited[POSTED])
                clean = probe(wm, apply_chain(orientations.orient(cover, o), EDITS[POSTED]))
                true = orientations.inverse(o)
                if true in pilots:
                    rank = 1 + sum(p > pilots[true] for p in pilots.values())
                    probes.append((pilots[true], rank, max(clean.values(), default=0.0)))
        print(f"{name}: {sum(r[-7:].count(True) for r in reads.values())} of {7 * len(EDITS)} read", flush=True)
    for edit in EDITS:
        print(f"{edit}: {sum(reads[edit])} of {len(reads[edit])} read, decode median "
              f"{statistics.median(times[edit]):.2f} s")
    if probes:
        true, ranks, clean = zip(*probes)
        print(f"probe (1080 px + JPEG 80, {len(probes)} images): true orientation {min(true):.2f}-{max(true):.2f}, "
              f"first of seven in {ranks.count(1)}, second in {ranks.count(2)}; covers' best "
              f"{min(clean):.2f}-{max(clean):.2f} (median {statistics.median(clean):.2f}, "
              f"{sum(c >= tiling.PROBE_PILOT for c in clean)} at {tiling.PROBE_PILOT} or more)")


if __name__ == "__main__":
    main()
