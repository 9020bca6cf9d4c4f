"""MBRS Studio engine: networks, noise layers, metrics, and the watermarking API.

>>> from mbrs_engine import Watermarker
>>> wm = Watermarker.from_pretrained()

No Qt here: the engine is usable as a library and from the ``mbrs`` command
line.  ``Watermarker`` is imported lazily, so ``import mbrs_engine`` stays light.
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

__all__ = ["Watermarker", "__version__"]


def __getattr__(name: str):
    if name == "Watermarker":
        from .watermarker import Watermarker

        return Watermarker
    raise AttributeError(f"module 'mbrs_engine' has no attribute {name!r}")
