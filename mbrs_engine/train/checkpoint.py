"""Checkpoints: atomic writes of everything needed to continue a run bit-for-bit.

A run directory holds ``config.json``, ``last.ckpt`` (networks, optimisers,
noise-layer state, RNG state, step, history), ``best.ckpt`` (networks and the
validation metrics that made it best) and ``history.jsonl`` (one line per
validation).  Files are written to a temporary name and renamed, so a crash
never leaves a half-written checkpoint.  They are our own files, read back
with ``torch.load(weights_only=True)`` (no arbitrary unpickling); models for
distribution are exported as safetensors + JSON instead.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

LAST, BEST, CONFIG, HISTORY = "last.ckpt", "best.ckpt", "config.json", "history.jsonl"


def atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def checkpoint_exists(path: Path) -> bool:
    """True when ``path`` (``<run>/best.ckpt``...) exists, as one file or as parts (see ``transfer``)."""
    from .transfer import existing_parts
    return path.exists() or bool(existing_parts(path.parent, path.stem))


def load_checkpoint(path: Path) -> dict:
    """A checkpoint file, or the slim checkpoint stored as parts beside where it would be (``transfer``)."""
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    from .transfer import existing_parts, read_parts
    if existing_parts(path.parent, path.stem):
        return read_parts(path.parent, path.stem)
    raise FileNotFoundError(f"no checkpoint at {path}")


def load_network_weights(path: Path) -> dict:
    """``encoder`` / ``decoder`` (and ``adversary`` if present) state dicts of a checkpoint or an exported model."""
    if path.suffix == ".json":
        from ..model_files import load_model_files
        model = load_model_files(path)
        return {"encoder": model.encoder.state_dict(), "decoder": model.decoder.state_dict()}
    return {k: v for k, v in load_checkpoint(path).items() if k in ("encoder", "decoder", "adversary")}


SLIM_KEYS = ("step", "config", "encoder", "decoder", "adversary", "best_ber", "elapsed", "history")


def slim(state: dict) -> dict:
    """A checkpoint without optimiser, noise and RNG state: what a repository keeps to continue a long
    training later (a few MB; resuming from it is a warm restart, not bit-exact)."""
    return {k: state[k] for k in SLIM_KEYS}


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
