"""Where the networks can run: the devices PyTorch sees, named for people (for the app's device choices)."""
from __future__ import annotations

import torch


def available_devices() -> list[str]:
    """``cpu``, plus ``cuda`` when PyTorch sees a GPU."""
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def device_label(name: str) -> str:
    """``CPU`` or ``CUDA (<the GPU's name>)``."""
    return "CPU" if name == "cpu" else f"CUDA ({torch.cuda.get_device_name(0)})"


def torch_version() -> str:
    return torch.__version__
