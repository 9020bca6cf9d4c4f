"""Noise layers: the distortions put between the encoder and the decoder.

Every layer is a :class:`NoiseLayer` (an ``nn.Module``) called as
``layer(encoded, cover=None)`` on float batches ``(N, 3, H, W)``, RGB, in
``[-1, 1]`` (the convention of :mod:`mbrs_engine.pixels`), of any height and
width, on CPU or CUDA.  ``layer.spec()`` gives it back as text and
:func:`parse_noise` reads such text (without ever evaluating it).

Layers:

- ``Identity()``: no distortion.
- ``JpegSim(quality, subsampling="4:2:0")`` (alias ``Jpeg``): simulated, differentiable JPEG.
- ``RealJpeg(quality, subsampling="4:2:0", gradient="stop")``: real JPEG.
- ``JpegMask()``: the paper's JPEG-Mask (low DCT frequencies only).
- ``JpegSS(quality)``: JPEG with Shin and Song's approximation of rounding.
- ``KorniaJpeg(quality)``: kornia's differentiable JPEG.
- ``Crop(p, fill=0.0)``, ``Cropout(p)``, ``Dropout(p)``, ``CropResize(p)``, ``Resize(scale, back=False)``,
  ``Jitter(angle=1.0, shift=1.0, scale=0.02)``.
- ``GaussianBlur(sigma, kernel_size=None)`` (alias ``GF``), ``GaussianNoise(std)``,
  ``BrightnessContrast(brightness=0.0, contrast=1.0)``.
- ``Ladder()``: each residual shaped as embedding shapes it (a rung of ``perceptual.LADDER`` per image).
- ``Combined(layers, seed=None, weights=None)``: one layer per mini-batch (MBRS).
- ``Chain(layers)``: the layers one after the other on every mini-batch.

:func:`available_layers` lists them with a one-line description; :func:`canonical_spec` and
:func:`pool_layers` read spec text for editors (the app's noise pool) without touching the layers.
"""
from .base import Identity, NoiseLayer
from .combined import Chain, Combined
from .filters import GF, BrightnessContrast, GaussianBlur, GaussianNoise
from .geometric import Crop, CropResize, Cropout, Dropout, Jitter, Resize
from .jpeg import Jpeg, JpegMask, JpegSim, JpegSS, KorniaJpeg, RealJpeg
from .shaping import Ladder
from .spec import NoiseSpecError, available_layers, canonical_spec, parse_noise, pool_layers

__all__ = [
    "NoiseLayer", "Identity", "Combined", "Chain", "Ladder",
    "Jpeg", "JpegSim", "RealJpeg", "JpegMask", "JpegSS", "KorniaJpeg",
    "Crop", "Cropout", "Dropout", "CropResize", "Resize", "Jitter",
    "GaussianBlur", "GF", "GaussianNoise", "BrightnessContrast",
    "parse_noise", "NoiseSpecError", "available_layers", "canonical_spec", "pool_layers",
]
