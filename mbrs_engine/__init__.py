"""MBRS Studio engine: networks, noise layers, metrics, and the watermarking API.

>>> from mbrs_engine import Watermarker
>>> wm = Watermarker.from_pretrained()

No Qt here: the engine is usable as a library and from the ``mbrs`` command
line.  ``Watermarker`` is imported lazily, so ``import mbrs_engine`` stays light.

The public API is :data:`PUBLIC_MODULES`: what the app, and any other
program, may import.  The rest (the networks, the noise layers, pixels,
resampling, frames, refinement, soft decoding, the trainer's data pipeline
and loop internals) may change without notice; the app is held to it by
tests/gui/test_public_api.py.
"""
import os as _os

# PyTorch's OpenMP threads spin while they wait for work.  On a desktop (or a
# 2-core machine running the app beside a training job) that turns every
# other busy process into a 10-25x slow-down of ours; measured here: a training
# step of 0.32 s with passive waiting against 7.9 s with spinning, with one
# other process busy.  It only takes effect if set before torch is first
# imported; an explicit setting in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

#: The modules other programs may import, with (where given) the only names they may take from them.
PUBLIC_MODULES = {
    "mbrs_engine": None,
    "mbrs_engine.attacks": None,            # the attack registry and chains
    "mbrs_engine.devices": None,
    "mbrs_engine.evaluate": None,
    "mbrs_engine.imageio": None,
    "mbrs_engine.metadata": None,
    "mbrs_engine.metrics": None,
    "mbrs_engine.model_files": None,
    "mbrs_engine.parallel": None,           # several images at once (folder runs, Save all)
    "mbrs_engine.noise": {"parse_noise", "canonical_spec", "pool_layers", "available_layers", "NoiseSpecError"},
    "mbrs_engine.payload": None,
    "mbrs_engine.train": None,              # Trainer, TrainConfig, presets
    "mbrs_engine.train.export": None,
    "mbrs_engine.train.runs": None,
    "mbrs_engine.verification": None,
    "mbrs_engine.visibility": None,         # the visibility map and figure
    "mbrs_engine.watermarker": None,
}

__all__ = ["PUBLIC_MODULES", "Watermarker", "__version__"]


def __getattr__(name: str):
    if name == "Watermarker":
        from .watermarker import Watermarker

        return Watermarker
    raise AttributeError(f"module 'mbrs_engine' has no attribute {name!r}")
