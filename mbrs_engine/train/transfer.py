"""Slim checkpoints as a few safetensors files of bounded size, for machines that return only small files.

A lent GPU machine gives back at most a handful of files of at most 16 MB
each (DEVELOPERS.md), and a faithful decoder alone is 81 MB in fp32.  So a
slim checkpoint (``checkpoint.slim``) leaves such a machine as
``best-1of3.safetensors``, ``best-2of3.safetensors``, ... : the tensors of its
networks (in fp32, or in fp16 when fp32 would take too many files; a tensor
larger than a file is cut into pieces), and everything else (step, config,
history) as JSON in the first file's header.  ``checkpoint.load_checkpoint``
reads a checkpoint back from its parts when the ``.ckpt`` file is absent, so
``mbrs export``, ``scripts/ship_default_model.py`` and ``init_from`` take such a
run folder as they take any other.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..nets import Adversary, NetworkConfig, state_shapes

#: what one returned file may hold: under 16 MB with room for the header.
MAX_FILE_BYTES = 15 * 2**20
NETWORKS = ("encoder", "decoder", "adversary")
_PART = re.compile(r"^(?P<stem>.+)-(?P<i>\d+)of(?P<n>\d+)\.safetensors$")
_META_KEY = "mbrs_slim_checkpoint"
_DTYPES = {str(d).removeprefix("torch."): d for d in (torch.float32, torch.float16, torch.bfloat16, torch.float64,
                                                       torch.int64, torch.int32, torch.uint8, torch.bool)}


def _flat_tensors(state: dict) -> dict[str, torch.Tensor]:
    return {f"{net}/{name}": t for net in NETWORKS if net in state for name, t in state[net].items()}


def parts_needed(tensor_bytes: int, max_file_bytes: int = MAX_FILE_BYTES) -> int:
    """Files needed for ``tensor_bytes`` of tensors (pieces are packed up to ``max_file_bytes``)."""
    return max(1, math.ceil(tensor_bytes / max_file_bytes))


def tensor_bytes(shapes: dict[str, tuple[int, ...]], dtype: torch.dtype) -> int:
    """Bytes of tensors with these shapes in ``dtype``."""
    return sum(math.prod(s) for s in shapes.values()) * torch.empty((), dtype=dtype).element_size()


def network_bytes(network: NetworkConfig, with_adversary: bool) -> int:
    """Bytes of the encoder's and decoder's (and the adversary's) tensors in fp32, from shapes alone."""
    shapes = dict(state_shapes(network))
    if with_adversary:
        with torch.device("meta"):
            adversary = Adversary(network.adversary_channels)
        shapes.update({f"adversary.{k}": tuple(v.shape) for k, v in adversary.state_dict().items()})
    return tensor_bytes(shapes, torch.float32)


def _pieces(flat: dict[str, torch.Tensor], max_file_bytes: int):
    """(key, tensor) pieces of at most ``max_file_bytes`` each: a larger tensor is cut along its flattened view."""
    for key, t in flat.items():
        per_piece = max(1, max_file_bytes // t.element_size())
        if t.numel() <= per_piece:
            yield key, t.contiguous()
        else:
            flat_t = t.reshape(-1)
            for j, start in enumerate(range(0, t.numel(), per_piece)):
                yield f"{key}#{j}", flat_t[start:start + per_piece].clone()


def write_parts(state: dict, out_dir: Path, stem: str, dtype: torch.dtype = torch.float32,
                max_file_bytes: int = MAX_FILE_BYTES) -> list[Path]:
    """Write a slim checkpoint as ``<stem>-<i>of<n>.safetensors`` files of at most ``max_file_bytes`` of
    tensors each; floating-point tensors are stored in ``dtype``.  Returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    original = _flat_tensors(state)
    flat = {k: (t.detach().cpu().to(dtype) if t.is_floating_point() else t.detach().cpu())
            for k, t in original.items()}
    bad = [k for k, t in flat.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{dtype} cannot hold {bad[0]} (values out of range): store it in a wider type")
    files: list[dict[str, torch.Tensor]] = [{}]
    sizes = [0]
    for key, t in _pieces(flat, max_file_bytes):
        nbytes = t.numel() * t.element_size()
        if sizes[-1] and sizes[-1] + nbytes > max_file_bytes:
            files.append({})
            sizes.append(0)
        files[-1][key] = t
        sizes[-1] += nbytes
    meta = {k: v for k, v in state.items() if k not in NETWORKS}
    meta["shapes"] = {k: list(t.shape) for k, t in original.items()}
    meta["dtypes"] = {k: str(t.dtype).removeprefix("torch.") for k, t in original.items()}
    for old in existing_parts(out_dir, stem):
        old.unlink()
    written = []
    for i, tensors in enumerate(files, start=1):
        path = out_dir / f"{stem}-{i}of{len(files)}.safetensors"
        header = {_META_KEY: json.dumps(meta)} if i == 1 else {}
        save_file(tensors, str(path), metadata=header)
        written.append(path)
    return written


def existing_parts(directory: Path, stem: str) -> list[Path]:
    """The part files of ``stem`` in ``directory``, in order."""
    found = []
    for path in Path(directory).glob(f"{stem}-*of*.safetensors"):
        m = _PART.match(path.name)
        if m and m["stem"] == stem:
            found.append((int(m["i"]), path))
    return [p for _, p in sorted(found)]


def read_header(directory: Path, stem: str) -> dict:
    """Everything but the tensors of the slim checkpoint ``stem`` (step, config, history...), from its first part."""
    paths = existing_parts(directory, stem)
    if not paths:
        raise FileNotFoundError(f"no checkpoint parts {stem}-*of*.safetensors in {directory}")
    from safetensors import safe_open
    with safe_open(str(paths[0]), framework="pt") as f:
        header = (f.metadata() or {}).get(_META_KEY)
    if header is None:
        raise ValueError(f"{paths[0]} is not the first part of a slim checkpoint")
    return json.loads(header)


def read_parts(directory: Path, stem: str) -> dict:
    """The slim checkpoint written by ``write_parts``, with every tensor in its original shape and dtype."""
    paths = existing_parts(directory, stem)
    if not paths:
        raise FileNotFoundError(f"no checkpoint parts {stem}-*of*.safetensors in {directory}")
    expected = int(_PART.match(paths[0].name)["n"])
    if [int(_PART.match(p.name)["i"]) for p in paths] != list(range(1, expected + 1)):
        raise ValueError(f"checkpoint {stem} in {directory} is incomplete: {len(paths)} of {expected} parts")
    meta = read_header(directory, stem)
    pieces: dict[str, torch.Tensor] = {}
    for path in paths:
        pieces.update(load_file(str(path)))
    state = {k: v for k, v in meta.items() if k not in ("shapes", "dtypes")}
    for key, shape in meta["shapes"].items():
        if key in pieces:
            t = pieces.pop(key)
        else:
            chunks = []
            while f"{key}#{len(chunks)}" in pieces:
                chunks.append(pieces.pop(f"{key}#{len(chunks)}"))
            if not chunks:
                raise ValueError(f"checkpoint {stem} in {directory} lacks {key}")
            t = torch.cat(chunks)
        net, name = key.split("/", 1)
        state.setdefault(net, {})[name] = t.to(_DTYPES[meta["dtypes"][key]]).reshape(shape)
    if pieces:
        raise ValueError(f"checkpoint {stem} in {directory} has unexpected tensors: {sorted(pieces)[:3]}")
    return state


def return_plan(best_bytes: int, last_bytes: int, files: int,
                max_file_bytes: int = MAX_FILE_BYTES) -> list[tuple[str, torch.dtype]]:
    """Which slim checkpoints go back, and in which dtype, in at most ``files`` part files: both in fp32
    if they fit, else fp16 for ``last`` then for both, else ``best`` alone.  ``*_bytes`` are fp32 sizes.
    Raises ValueError when not even ``best`` in fp16 fits."""
    half = torch.float16
    candidates = ([("best", torch.float32), ("last", torch.float32)], [("best", torch.float32), ("last", half)],
                  [("best", half), ("last", half)], [("best", torch.float32)], [("best", half)])
    size = {"best": best_bytes, "last": last_bytes}
    for plan in candidates:
        needed = sum(parts_needed(size[stem] // (2 if dtype == half else 1), max_file_bytes) for stem, dtype in plan)
        if needed <= files:
            return plan
    raise ValueError(f"the networks ({best_bytes / 2**20:.0f} MiB in fp32) do not fit in {files} files of "
                     f"{max_file_bytes / 2**20:.0f} MiB, even in fp16")
