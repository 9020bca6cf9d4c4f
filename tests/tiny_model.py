"""A tiny MBRS model for the API tests: trained here, saved once in ``tests/fixtures/tiny-model``.

32 x 32 images, L = 256 bits (the plain architecture with h = 16, k = 1),
16 channels, one SE block.  It learns to carry 256 bits through 8-bit
rounding and mild resampling blur on random crops of scikit-image's sample
photographs (test data only), with MSE losses as in the paper.  This is not
the trainer (``mbrs_engine.train``); it only gives the API tests a model that
really decodes.  Training it took 28 s of every pytest worker (one thread), so
the suite loads the saved one (``tests/conftest.py``); after a change to the
networks' layers, train and save it again:

    python tests/tiny_model.py            (writes tests/fixtures/tiny-model)
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mbrs_engine.model_files import ModelMetadata, save_model
from mbrs_engine.nets import NetworkConfig, build_from_config
from mbrs_engine.pixels import from_uint8

CONFIG = NetworkConfig(image_size=32, message_length=256, channels=16, blocks=1)
#: Where the trained tiny model is kept (``tiny.json`` and ``tiny.safetensors``).
FIXTURE = Path(__file__).parent / "fixtures" / "tiny-model"
SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


@dataclass(frozen=True)
class TinyTraining:
    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    image_weight: float = 0.5
    seed: int = 0
    pool: int = 1024


def sample_photos() -> list[np.ndarray]:
    """scikit-image's bundled colour photographs (uint8 HxWx3)."""
    import skimage.data

    return [getattr(skimage.data, name)()[..., :3] for name in SAMPLES]


def random_crops(count: int, size: int, seed: int) -> list[np.ndarray]:
    """``count`` natural crops: a random photo, scaled by a random factor, a random window."""
    rng = np.random.default_rng(seed)
    photos = sample_photos()
    crops = []
    for _ in range(count):
        photo = Image.fromarray(photos[rng.integers(len(photos))])
        side = int(rng.integers(size, min(photo.size) + 1))
        left = int(rng.integers(0, photo.size[0] - side + 1))
        top = int(rng.integers(0, photo.size[1] - side + 1))
        window = photo.crop((left, top, left + side, top + side))
        crops.append(np.asarray(window.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)))
    return crops


def _pool(size: int, count: int, seed: int) -> torch.Tensor:
    arrays = np.stack(random_crops(count, size, seed))
    return from_uint8(torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous())


def _channel(encoded: torch.Tensor, step: int) -> torch.Tensor:
    """8-bit rounding (straight-through) and, every other step, a mild down-up resampling."""
    x = encoded + (torch.round((encoded + 1) * 127.5) / 127.5 - 1 - encoded).detach()
    if step % 2:
        size = x.shape[-1]
        small = int(size * 0.75)
        x = F.interpolate(F.interpolate(x, size=small, mode="bilinear", antialias=True, align_corners=False),
                          size=size, mode="bicubic", align_corners=False)
    return x


def train_tiny_model(settings: TinyTraining = TinyTraining(), config: NetworkConfig = CONFIG):
    """Train and return (encoder, decoder, config, seconds).

    One torch thread: these layers are too small to gain from more, and
    several threads crawl when other processes share the two cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(settings, config)
    finally:
        torch.set_num_threads(threads)


def _train(settings: TinyTraining, config: NetworkConfig):
    torch.manual_seed(settings.seed)
    start = time.perf_counter()
    encoder, decoder, _ = build_from_config(config)
    covers = _pool(config.image_size, settings.pool, settings.seed)
    params = list(encoder.parameters()) + list(decoder.parameters())
    optimiser = torch.optim.Adam(params, lr=settings.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, settings.lr, total_steps=settings.steps)
    encoder.train()
    decoder.train()
    for step in range(settings.steps):
        cover = covers[torch.randint(len(covers), (settings.batch_size,))]
        message = torch.randint(0, 2, (settings.batch_size, config.message_length)).float()
        encoded = encoder(cover, message)
        decoded = decoder(_channel(encoded, step))
        loss = F.mse_loss(decoded, message) + settings.image_weight * F.mse_loss(encoded, cover)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    return encoder.eval(), decoder.eval(), config, time.perf_counter() - start


def save_tiny_model(folder: Path = FIXTURE, settings: TinyTraining = TinyTraining()) -> Path:
    """Train the tiny model and save it in ``folder`` (made if missing); the path of its JSON."""
    encoder, decoder, config, seconds = train_tiny_model(settings)
    folder.mkdir(parents=True, exist_ok=True)
    meta = ModelMetadata(name="tiny", description="tiny test model (32x32, L=256)",
                         training_noise="8-bit rounding + down/up resampling", training_data="skimage.data crops",
                         training={**asdict(settings), "seconds": round(seconds, 1)})
    return save_model(folder, encoder, decoder, config, meta).json_path


if __name__ == "__main__":
    print(save_tiny_model(Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURE))
