"""The message processor's features of a periodic grid, worked out on one period and the borders.

The tiled layout (:mod:`mbrs_engine.tiling`) repeats one tile of cells over
the whole working copy, so the message processor's input repeats every tile.
Its layers are convolutions, whose output repeats too except within their
reach of the borders (zero padding), and squeeze-excitation gates, which
scale each channel by a function of its average over the whole map.  So the
map is cut down, rows and columns independently, to its two borders and one
period between them; each gate averages that small map with every kept row
and column counted as often as it stands for in the full map; and the full
map is gathered back from the small one.  The result equals the full
computation up to float rounding, in the time of the small map (an eighth of
a 12 MP photo's working copy).
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import SEBottleneck


def reach(body: nn.Module, cell: int) -> int:
    """How many output pixels from a border the zero padding of ``body``'s layers changes: its input is a grid
    of cells, each ``cell`` output pixels wide (enlarged by transposed convolutions whose kernel is their stride:
    those mix no neighbours).  Raises ValueError for a layer of another kind of step."""
    total, scale = 0, cell  # output pixels per pixel of the current layer
    for module in body.modules():
        if isinstance(module, nn.ConvTranspose2d):
            if module.kernel_size != module.stride or module.padding != (0, 0):
                raise ValueError("a transposed convolution that mixes neighbours")
            scale //= module.stride[0]
        elif isinstance(module, nn.Conv2d):
            if module.stride != (1, 1):
                raise ValueError("a strided convolution")
            total += max(k // 2 * d for k, d in zip(module.kernel_size, module.dilation)) * scale
    return total


def compact_axis(n: int, period: int, margin: int) -> tuple[int, torch.Tensor, torch.Tensor]:
    """One axis of ``n`` pixels that repeat every ``period`` except within ``margin`` of either end: the
    length m of the compact axis (n less whole periods, at least ``period + 2 margin``; n when shorter),
    the index (n,) of each pixel's stand-in on it, and how many pixels each of its m stands for (m,)."""
    shortest = period + 2 * margin
    index = torch.arange(n)
    if n <= shortest:
        return n, index, torch.ones(n, dtype=torch.long)
    m = n - (n - shortest) // period * period
    dropped = n - m
    index = torch.where(index < m - margin, index,
                        torch.where(index >= dropped + margin, index - dropped, margin + (index - margin) % period))
    return m, index, torch.bincount(index, minlength=m)


def _run(module: nn.Module, x: torch.Tensor, pool) -> torch.Tensor:
    if isinstance(module, SEBottleneck):
        return module(x, pool)
    if isinstance(module, nn.Sequential) and any(isinstance(m, SEBottleneck) for m in module.modules()):
        for child in module:
            x = _run(child, x, pool)
        return x
    return module(x)


def periodic_features(body: nn.Module, grid: torch.Tensor, period: int, cell: int) -> torch.Tensor:
    """``body(grid)`` for a grid (N, 1, rows, cols) of cells that repeats every ``period`` cells down and across
    from its top-left corner; ``body`` enlarges each cell to ``cell`` pixels (the message processor's layers)."""
    margin, pixels = reach(body, cell), period * cell
    (rows, row_index, row_counts), (cols, col_index, col_counts) = (
        compact_axis(n * cell, pixels, margin) for n in grid.shape[-2:])
    if (rows, cols) == (grid.shape[-2] * cell, grid.shape[-1] * cell):  # nothing to leave out
        return body(grid)
    weights = (row_counts[:, None] * col_counts[None, :]).to(grid.dtype) / float(len(row_index) * len(col_index))

    def pool(x: torch.Tensor) -> torch.Tensor:  # the full map's average, from the compact one
        return torch.einsum("ncyx,yx->nc", x, weights.to(x.device, x.dtype))[:, :, None, None]

    small = _run(body, grid[:, :, :rows // cell, :cols // cell], pool)
    full = small.index_select(2, row_index.to(small.device)).index_select(3, col_index.to(small.device))
    return full.contiguous(memory_format=torch.channels_last)
