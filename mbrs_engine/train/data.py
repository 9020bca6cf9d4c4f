"""Training data: a folder of images of any format and size, random resized crops, a fixed validation set.

- ``scan_images`` lists image files recursively (sorted, so runs are reproducible).
- ``ImageSource`` decodes an image to RGB uint8, optionally through a cache of
  downscaled copies (``.npy``) so big photographs are decoded once, not every
  epoch.  Files that cannot be decoded are skipped with a warning and counted.
- ``TrainImages`` gives a random resized crop (area fraction in
  ``[min_scale, 1]``, aspect 3:4..4:3) to H x H with a random horizontal flip.
  Its randomness is a pure function of ``(seed, epoch, index)``, so what a step
  sees does not depend on worker count or on resuming.
- ``StreamSampler`` yields ``(index, epoch)`` pairs: an endless sequence of
  seeded permutations, starting at any step, sharded across DDP ranks.
- ``validation_images`` builds the fixed validation tensor (centre square, resized).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset, Sampler

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}


def scan_images(folder: str | Path) -> list[Path]:
    """All image files under ``folder`` (recursive), sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"image folder not found: {root}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def resolve_cache_dir(cache_dir: str) -> str:
    """``"auto"`` -> the platform's user cache folder for training images; anything else as given."""
    if cache_dir != "auto":
        return cache_dir
    import platformdirs

    return str(Path(platformdirs.user_cache_dir("mbrs-studio")) / "training-images")


@dataclass
class ImageSource:
    """Decodes images to RGB uint8 arrays (H, W, 3), through an optional cache of downscaled copies."""

    cache_dir: str = ""
    cache_side: int = 512
    broken: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cache_dir = resolve_cache_dir(self.cache_dir)

    def load(self, path: Path) -> np.ndarray:
        cached = self._cache_path(path)
        if cached is not None and cached.exists():
            return np.load(cached)
        array = self._decode(path)
        if cached is not None:
            _atomic_save_npy(cached, array)
        return array

    def _decode(self, path: Path) -> np.ndarray:
        with Image.open(path) as img:
            if self.cache_dir:
                img.draft("RGB", (self.cache_side, self.cache_side))   # JPEG: decode at a reduced scale
            img = ImageOps.exif_transpose(img).convert("RGB")
            if self.cache_dir and min(img.size) > self.cache_side:
                scale = self.cache_side / min(img.size)
                img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                                 Image.Resampling.LANCZOS)
            return np.asarray(img, dtype=np.uint8).copy()

    def _cache_path(self, path: Path) -> Path | None:
        if not self.cache_dir:
            return None
        st = path.stat()
        key = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.cache_side}".encode()).hexdigest()
        return Path(self.cache_dir) / f"{key}.npy"

    def usable(self, paths: list[Path], progress=None) -> list[Path]:
        """The paths that decode; the others are warned about and recorded in ``broken``.

        ``progress(done, total)`` is called after each file (it may raise to stop).
        """
        good = []
        for i, p in enumerate(paths):
            if progress is not None:
                progress(i, len(paths))
            try:
                self.load(p)
                good.append(p)
            except Exception as exc:  # noqa: BLE001 - any decoder failure means "skip this file"
                self.broken.append(str(p))
                warnings.warn(f"skipping unreadable image {p}: {exc}", stacklevel=2)
        return good


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    with os.fdopen(fd, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def random_resized_crop(image: np.ndarray, size: int, rng: np.random.Generator, min_scale: float) -> np.ndarray:
    """A random crop (area fraction in [min_scale, 1], aspect 3:4..4:3), resized to size x size, maybe flipped."""
    h, w = image.shape[:2]
    for _ in range(10):
        area = h * w * rng.uniform(min_scale, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            break
    else:
        cw = ch = min(h, w)
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = Image.fromarray(image[y:y + ch, x:x + cw]).resize((size, size), Image.Resampling.BICUBIC,
                                                            reducing_gap=None if max(cw, ch) < 3 * size else 3.0)
    out = np.asarray(crop)
    return out[:, ::-1] if rng.random() < 0.5 else out


def centre_square(image: np.ndarray, size: int) -> np.ndarray:
    """The centre square of the image resized to size x size (deterministic)."""
    h, w = image.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return np.asarray(Image.fromarray(image[y:y + s, x:x + s]).resize((size, size), Image.Resampling.BICUBIC))


class TrainImages(Dataset):
    """Indexed by ``(index, epoch)``; returns a uint8 tensor (3, H, H)."""

    def __init__(self, paths: list[Path], source: ImageSource, size: int, seed: int, min_scale: float = 0.25):
        if not paths:
            raise ValueError("no usable training images")
        self.paths, self.source, self.size, self.seed, self.min_scale = paths, source, size, seed, min_scale

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        index, epoch = item
        rng = np.random.default_rng([self.seed, epoch, index])
        crop = random_resized_crop(self.source.load(self.paths[index]), self.size, rng, self.min_scale)
        return torch.from_numpy(np.array(crop)).permute(2, 0, 1)


class StreamSampler(Sampler):
    """Endless ``(index, epoch)`` stream of seeded permutations, from ``start_step``, for one DDP rank."""

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int = 0, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_step, self.rank, self.world = start_step, rank, world

    def __iter__(self):
        step = self.start_step
        while True:
            base = (step * self.world + self.rank) * self.batch_size   # position in the global stream
            for pos in range(base, base + self.batch_size):
                epoch, offset = divmod(pos, self.n)
                yield int(self._permutation(epoch)[offset]), epoch
            step += 1

    def _permutation(self, epoch: int) -> torch.Tensor:
        if getattr(self, "_cached_epoch", None) != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._cached_perm, self._cached_epoch = torch.randperm(self.n, generator=g), epoch
        return self._cached_perm


def split_paths(paths: list[Path], val_count: int, seed: int) -> tuple[list[Path], list[Path]]:
    """A fixed, seeded split of one folder into (train, validation)."""
    if len(paths) <= val_count:
        raise ValueError(f"need more than {val_count} images to hold out a validation set, found {len(paths)}")
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed)).tolist()
    val = sorted(paths[i] for i in order[:val_count])
    train = sorted(paths[i] for i in order[val_count:])
    return train, val


def train_val_paths(data, seed: int, source: ImageSource, progress=None) -> tuple[list[Path], list[Path]]:
    """The run's (training, validation) files from its DataConfig: ``val_dir`` if given, else a seeded split."""
    if not data.train_dir:
        raise ValueError("no training images: set data.train_dir (or --data DIR)")
    paths = source.usable(scan_images(data.train_dir), progress)
    if data.val_dir:
        return paths, source.usable(scan_images(data.val_dir), progress)[: data.val_count]
    return split_paths(paths, data.val_count, seed)


def validation_images(paths: list[Path], source: ImageSource, size: int) -> torch.Tensor:
    """uint8 tensor (N, 3, H, H): the centre square of each validation image."""
    return torch.stack([torch.from_numpy(centre_square(source.load(p), size).copy()).permute(2, 0, 1)
                        for p in paths])
