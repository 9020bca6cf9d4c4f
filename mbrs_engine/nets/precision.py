"""The precision the networks infer in: bfloat16 where the device computes it natively, else float32.

On the AMD EPYC with AVX-512 BF16 of 2026-12-06 the tile search's phase maps
took 0.31 s in bfloat16 against 0.61 s in float32 (an Intel CPU with AMX and a
GPU with bf16 take the same path, not measured); where bfloat16 is emulated
(AVX2 only) they took 3.0-3.9 s against 0.72 s, so there it stays float32.
Measured on a marked photo (coffee, 600 x 400): its cell scores differ from
float32's by at most 0.04 and, folded onto one tile, by 0.015 where the
smallest message cell is 0.34 from 0 (the same bits); the tiled encoder's
residual differs by 0.8 % of its rms (it is scaled to the PSNR afterwards).
``MBRS_PRECISION=fp32`` in the environment keeps every pass in float32 (to
reproduce a figure exactly).
"""
from __future__ import annotations

import os

import torch

#: The environment variable that, set to "fp32", keeps inference in float32 where bfloat16 is native.
PRECISION_VARIABLE = "MBRS_PRECISION"


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (a CUDA GPU that supports it; a CPU whose oneDNN has
    bf16 instructions: AVX-512 BF16 or AMX, unless ``ONEDNN_MAX_CPU_ISA`` holds it below them)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return (device.type == "cpu" and torch.backends.mkldnn.is_available()
            and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def inference_precision(device: str | torch.device) -> torch.autocast:
    """The autocast context network passes for inference run in on ``device``: bfloat16 where
    :func:`native_bf16` and not switched off by :data:`PRECISION_VARIABLE`, else disabled (float32)."""
    device = torch.device(device)
    use = native_bf16(device) and os.environ.get(PRECISION_VARIABLE, "auto").lower() != "fp32"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use)
