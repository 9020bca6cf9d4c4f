"""Copy the default model's held-out training photographs to a folder: large real photos for the evaluation suites.

The default model was trained on ``data/photos`` (``scripts/fetch_training_photos.sh``)
with 16 photos held out by the trainer's seeded split (``val_count`` 16,
seed 0: ``mbrs_engine.train.data.split_paths``).  Those were never trained
on (they chose checkpoints, as validation), and unlike the scikit-image and
matplotlib samples (``scripts/collect_eval_photos.py``, all under 2 MP) they
are 2-18 MP, the size people's photos are.

    python scripts/collect_heldout_photos.py [SOURCE] [DEST]     (default data/photos data/heldout-photos)
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from mbrs_engine.train import scan_images
from mbrs_engine.train.data import split_paths

VAL_COUNT, SEED = 16, 0  # as the default model's training (mbrs_engine/train/presets.py, docs/model-card.md)


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "data/photos")
    dest = Path(sys.argv[2] if len(sys.argv) > 2 else "data/heldout-photos")
    paths = scan_images(source)
    if not paths:
        sys.exit(f"no photos in {source}: run scripts/fetch_training_photos.sh first")
    _, held_out = split_paths(paths, VAL_COUNT, SEED)
    dest.mkdir(parents=True, exist_ok=True)
    for path in held_out:
        target = dest / f"{path.parent.name}-{path.name}"
        if not target.exists():
            shutil.copyfile(path, target)
    print(f"{len(held_out)} held-out photos of {len(paths)} in {dest}")


if __name__ == "__main__":
    main()
