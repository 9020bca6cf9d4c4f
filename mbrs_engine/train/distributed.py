"""Multi-process training through PyTorch's DistributedDataParallel under ``torchrun``.

One code path: without ``torchrun`` (no ``WORLD_SIZE`` in the environment) the
world has one process and nothing is wrapped.  The backend is NCCL on CUDA and
gloo on the CPU (which is how the tests run two processes).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: torch.device) -> World:
    """Join the process group started by ``torchrun`` (if any)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def wrap(module: torch.nn.Module, world: World, device: torch.device, find_unused: bool = False):
    if not world.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)


def any_rank(flag: bool, world: World) -> bool:
    """True on every rank when ``flag`` is true on any (so a cancel on rank 0 stops all)."""
    if not world.distributed:
        return flag
    t = torch.tensor([1 if flag else 0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def shutdown(world: World) -> None:
    """Leave the process group together: rank 0 may still be validating or checkpointing, and gloo aborts a
    process ("terminate called without an active exception") whose group is destroyed while a peer works."""
    if world.distributed and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()
