"""Write the evaluation photographs (never used for training) to a folder.

The test set of the default model: every photograph bundled inside the
scikit-image and matplotlib wheels that loads offline (colour and grey;
synthetic images, diagrams and logos excluded), saved losslessly as PNG.

    python scripts/collect_eval_photos.py [DEST]     (default data/eval-photos)
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

SKIMAGE_PHOTOS = ["astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "eagle", "grass", "gravel",
                  "hubble_deep_field", "immunohistochemistry", "moon", "motorcycle", "rocket", "page", "retina",
                  "lily", "microaneurysms", "skin"]
MATPLOTLIB_PHOTOS = ["grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"]


def skimage_photos():
    import skimage.data

    for name in SKIMAGE_PHOTOS:
        loader = getattr(skimage.data, "stereo_motorcycle" if name == "motorcycle" else name, None)
        if loader is None:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image = loader()
        except Exception:  # noqa: BLE001 - images that need a download are skipped (offline)
            continue
        if isinstance(image, tuple):
            image = image[0]
        yield f"skimage-{name}", np.asarray(image)


def matplotlib_photos():
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "sample_data"
    for name in MATPLOTLIB_PHOTOS:
        if (folder / name).exists():
            yield f"matplotlib-{Path(name).stem}", np.asarray(Image.open(folder / name).convert("RGB"))


def main() -> None:
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else "data/eval-photos")
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, array in [*skimage_photos(), *matplotlib_photos()]:
        if array.dtype != np.uint8:
            array = (255 * (array.astype(float) / max(float(array.max()), 1e-9))).astype(np.uint8)
        Image.fromarray(array).save(dest / f"{name}.png")
        count += 1
    print(f"{count} photos in {dest}")


if __name__ == "__main__":
    main()
