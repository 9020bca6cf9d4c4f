"""Diagnosis of the geometric suite, photo by photo: what read, where the tiles really were, what the search found.

The same marked photos and the same draws as ``mbrs eval FOLDER --protocol full --suite geometric`` (seed 0
unless ``--seed``, default model).  For each photo and geometric edit it prints one JSON line: whether the exact message read, the
decode time, the true lattice (the embedding rule's tiles, scaled by a fit and turned by a rotation), how many
tiles the edited image holds across its shorter side, the lattices the autocorrelation gave, and, when the
message did not read, whether the search handed the true lattice reads (so a miss is told apart as "period not
found" or "too weak to read").  Then a count per edit.

    python benchmarks/diagnose_geometric.py data/eval-photos [--cache runs/marked] [--edits 0 1 2 4] [--seed 0]

``--cache`` keeps the marked photos (PNG) between runs; the edits are indices into the geometric suite.
"""
from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from dataclasses import replace
from pathlib import Path

from mbrs_engine import Watermarker  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP

from PIL import Image  # noqa: E402

import numpy as np  # noqa: E402

from mbrs_engine import orientations, payload, tiling  # noqa: E402
from mbrs_engine.attacks import apply_chain, keystone_map  # noqa: E402
from mbrs_engine.evaluate import GEOMETRIC_SUITE, attacked_image, image_message, load_folder  # noqa: E402
from mbrs_engine.imageio import ModeWarning  # noqa: E402


def true_lattice(chain, cover: Image.Image, marked: Image.Image, attacked: Image.Image, config):
    """Where the tiles are in the attacked image: the rule's, stretched as a stretch, sheared as a shear, scaled as
    a fit scaled the crop, turned as rotated (not both), read in the orientation that undoes the chain's quarter
    turns and mirrors."""
    rule = tiling.rule_lattice(*cover.size, config)
    if rule is None:
        return None
    period, angle, aspect, shear = rule.period, 0.0, rule.aspect, 0.0
    for attack in chain:
        if attack.name == "rotate":
            angle = attack.values[0]
        if attack.name == "flip":  # a turn before a mirror is seen the other way
            angle = -angle
        if attack.name == "stretch":
            period, aspect = period * attack.values[0], aspect / attack.values[0]
        if attack.name == "shear":  # the tiles' height leans, and is longer by 1 / cos
            shear, aspect = attack.values[0], aspect / math.cos(math.radians(attack.values[0]))
        if attack.name == "keystone":  # the tiles' scale at the centre, across and down (the image's own size)
            size = apply_chain(marked, chain[:chain.index(attack)]).size
            a, b, c, d, e, f, g, h = keystone_map(*size, attack.values[0])
            x, y = size[0] / 2, size[1] / 2  # image pixels per pixel of the result there: the map's derivatives
            den = g * x + h * y + 1
            across = (a * den - (a * x + b * y + c) * g) / den ** 2
            down = (e * den - (d * x + e * y + f) * h) / den ** 2
            period, aspect = period / across, aspect * across / down
        if attack.name == "fit":
            cropped = apply_chain(marked, tuple(a for a in chain if a.name in ("crop", "turn", "flip", "stretch", "pad")))
            period *= attacked.width / cropped.width
    probe = Image.fromarray(np.arange(36, dtype=np.uint8).reshape(3, 4, 3))
    moved = apply_chain(probe, tuple(a for a in chain if a.name in ("turn", "flip")))
    orientation = next(o for o in range(orientations.count())
                       if np.array_equal(np.asarray(orientations.orient(moved, o)), np.asarray(probe)))
    if orientations.swaps_sides(orientation):
        period, aspect = period * aspect, 1.0 / aspect
    return tiling.Lattice(period, angle, aspect, orientation, shear)


def marked_photo(wm, cover: Image.Image, bits, cached: Path | None) -> Image.Image:
    """``cover`` marked with ``bits``, read from ``cached`` (a PNG) when there, else marked and saved there."""
    if cached is not None and cached.exists():
        return Image.open(cached).convert("RGB")
    marked = wm.embed_bits(cover, bits)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        marked.save(cached)
    return marked


def brief(lattice) -> list[float]:
    """A lattice's period, angle, aspect and shear, rounded for the log, and its orientation."""
    return [round(lattice.period, 1), round(lattice.angle, 2), round(lattice.aspect, 3), round(lattice.shear, 2),
            lattice.orientation]


def reads_with(wm, attacked: Image.Image, lattice, text: str, count: int) -> bool:
    """Whether the search handed ``lattice`` reads ``text`` (in every phase, as a lattice the template confirmed),
    tested as :meth:`Watermarker.decode` tested its ``count`` hypotheses."""
    for readings in tiling.search(wm.decoder, attacked, wm.config, [replace(lattice, confirmed=True)]):
        for c in readings:
            result = payload.decode_payload(c.soft, hypotheses=count,
                                            soft_decoding=c.pilot >= tiling.SOFT_DECODING_PILOT)
            if result.detected and result.message == text:
                return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--cache", type=Path, help="folder for the marked photos (kept between runs)")
    parser.add_argument("--edits", type=int, nargs="+", default=[0, 1, 2, 4],
                        help="indices into the geometric suite (default: the crops, the rotation, the crop + fit)")
    parser.add_argument("--seed", type=int, default=0, help="the suite's draws (as mbrs eval --seed)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ModeWarning)
    wm = Watermarker.from_pretrained()
    read: dict[str, list[bool]] = {}
    for index, (name, cover) in enumerate(load_folder(args.folder)):
        cover = cover.convert("RGB")
        bits, text = image_message(wm, args.seed, index)  # the message is drawn per seed too
        cached = args.cache / (f"{name}.png" if args.seed == 0 else f"{name}.seed{args.seed}.png") if args.cache else None
        marked = marked_photo(wm, cover, bits, cached)
        for a in args.edits:
            template = GEOMETRIC_SUITE[a]
            attacked, chain = attacked_image(marked, cover, template, args.seed, index, a)
            start = time.perf_counter()
            result = wm.decode(attacked)
            ok = result.message == text
            seconds = time.perf_counter() - start
            truth = true_lattice(chain, cover, marked, attacked, wm.config)
            matcher = tiling.TemplateMatcher(attacked, wm.pilot_template, wm.config)
            row = {"photo": name, "edit": template, "read": ok, "seconds": round(seconds, 2),
                   "true": None if truth is None else brief(truth),
                   "tiles_held": None if truth is None else round(min(attacked.size) / truth.period, 2),
                   "found": [brief(f) for f in tiling.candidate_lattices(attacked, wm.config, matcher, wm.decoder)]}
            if not ok and truth is not None:
                row["true_lattice_reads"] = reads_with(wm, attacked, truth, text, result.hypotheses)
            print(json.dumps(row), flush=True)
            read.setdefault(template, []).append(ok)
    for template, oks in read.items():
        print(f"{template}: {sum(oks)} of {len(oks)} read")


if __name__ == "__main__":
    main()
