"""Benchmark: decode time against the synchronisation issue's targets (an unmarked 12 MP photo, a marked photo).

Times, with the default model: unmarked photos brought to 4000 x 3000 (every reading runs), and marked photos
cropped (50-90 % of the area at a random position, the aspect changed up to 4/3 either way, JPEG 85: the search
must find them).  With ``--compare``, each round is run twice, alternating in one process: as the engine runs it,
then with the readings :class:`mbrs_engine.parallel.Ahead` works out on idle cores worked out in turn instead
(what the code did before; alternating keeps a machine whose speed drifts from favouring either).

    python benchmarks/bench_decode_time.py [--photos data/heldout-photos] [--large 3] [--marked 16] [--rounds 3]
                                           [--cache runs/marked] [--compare]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from mbrs_engine import Watermarker  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from diagnose_geometric import marked_photo  # noqa: E402
from mbrs_engine import watermarker  # noqa: E402
from mbrs_engine.attacks import apply_chain, draw_chain  # noqa: E402
from mbrs_engine.evaluate import image_message, load_folder  # noqa: E402

CROP = "crop:0.5~0.9,0.75~1.333,0~1,0~1+jpeg:85"


class InTurn:
    """:class:`mbrs_engine.parallel.Ahead`'s interface, its items worked out as they are iterated."""

    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def stop(self) -> None:
        pass


def timed(wm: Watermarker, images: list[Image.Image]) -> tuple[list[float], int]:
    """Each image's decode time (s), and how many were detected."""
    times, detected = [], 0
    for image in images:
        start = time.perf_counter()
        detected += wm.decode(image).detected
        times.append(time.perf_counter() - start)
    return times, detected


def spread(times: list[float]) -> str:
    """Median and worst of ``times``, for the summary."""
    return f"median {statistics.median(times):.2f} s, worst {max(times):.2f} s" if times else "none timed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=Path("data/heldout-photos"))
    parser.add_argument("--large", type=int, default=3, help="unmarked photos at 4000 x 3000")
    parser.add_argument("--marked", type=int, default=16, help="marked photos, cropped")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, help="folder of the marked photos (made when missing)")
    parser.add_argument("--compare", action="store_true", help="alternate with the readings worked out in turn")
    args = parser.parse_args()

    wm = Watermarker.from_pretrained()
    photos = load_folder(args.photos)
    large = [photo.resize((4000, 3000), Image.Resampling.BICUBIC) for _, photo in photos[:args.large]]
    crops = []
    for i, (name, photo) in enumerate(photos[:args.marked]):
        cached = args.cache / f"{name}.png" if args.cache else None
        marked = marked_photo(wm, photo, image_message(wm, 0, i)[0], cached)
        crops.append(apply_chain(marked, draw_chain(CROP, np.random.default_rng(i)), i))
    wm.decode(large[0].resize((800, 600)) if large else crops[0])  # warm-up
    modes = {"as run": watermarker.Ahead, "in turn": InTurn} if args.compare else {"as run": watermarker.Ahead}
    seen = {mode: ([], []) for mode in modes}
    try:
        for round_ in range(args.rounds):
            for mode, ahead in modes.items():
                watermarker.Ahead = ahead
                unmarked, false_alarms = timed(wm, large)
                marked, reads = timed(wm, crops)
                seen[mode][0].extend(unmarked)
                seen[mode][1].extend(marked)
                print(f"round {round_ + 1}, {mode}: unmarked 12 MP {' '.join(f'{t:.2f}' for t in unmarked)} s "
                      f"({false_alarms} detected); marked crops {spread(marked)}, {reads} of {len(crops)} read",
                      flush=True)
    finally:
        watermarker.Ahead = modes["as run"]
    for mode, (unmarked, marked) in seen.items():
        print(f"{mode}: unmarked 12 MP {spread(unmarked)}; marked crops {spread(marked)}")


if __name__ == "__main__":
    main()
