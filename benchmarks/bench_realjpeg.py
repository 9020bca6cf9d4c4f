"""Benchmark: real JPEG throughput, in memory and thread-parallel vs the reference's temp files.

Times, on one batch of random-content 128x128 images (16 by default):

* ``RealJpeg(50)``: the batch quantised to 8 bit, each image encoded and
  decoded by PIL in memory (``io.BytesIO``), images spread over a thread pool;
* the same in memory but one image after the other (no threads);
* the reference's way: one image at a time, saved by PIL to a temporary
  ``.jpg`` file, reopened and read back, the file then deleted;
* ``JpegSim(50)``, the torch simulation, on the same batch.

After a warm-up run, the methods take turns for ``--repeats`` rounds; the
median time per batch gives images per second.

    python benchmarks/bench_realjpeg.py [--batch 16] [--size 128] [--repeats 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Callable

import numpy as np
import torch
from PIL import Image

from mbrs_engine.noise.jpeg import JpegSim, RealJpeg, pil_jpeg_roundtrip
from mbrs_engine.pixels import from_uint8, to_uint8


def temp_file_jpeg(batch: torch.Tensor, quality: int) -> torch.Tensor:
    """The reference's real JPEG: per image, PIL save to a temporary file and reopen."""
    out = []
    for image in to_uint8(batch).permute(0, 2, 3, 1).numpy():
        fd, path = tempfile.mkstemp(suffix=".jpg")
        os.close(fd)
        try:
            Image.fromarray(image).save(path, quality=quality)
            with Image.open(path) as decoded:
                out.append(np.asarray(decoded.convert("RGB")))
        finally:
            os.remove(path)
    return from_uint8(torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2))


def in_memory_sequential(batch: torch.Tensor, quality: int) -> torch.Tensor:
    """In memory but one image after the other (no thread pool), to separate the two gains."""
    images = to_uint8(batch).permute(0, 2, 3, 1).numpy()
    out = np.stack([pil_jpeg_roundtrip(image, quality) for image in images])
    return from_uint8(torch.from_numpy(out).permute(0, 3, 1, 2))


def median_seconds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each function; the functions take turns, so drift hits all alike."""
    for fn in fns.values():
        fn()  # warm-up (thread pool start, allocations)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--quality", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(args.batch, 3, args.size // 8, args.size // 8, generator=g) * 2 - 1
    batch = torch.nn.functional.interpolate(coarse, size=(args.size, args.size), mode="bicubic").clamp(-1, 1)
    batch = batch + 0.05 * torch.randn(batch.shape, generator=g)  # some texture for the encoder

    q = args.quality
    real, sim = RealJpeg(q), JpegSim(q)
    assert torch.equal(real(batch), temp_file_jpeg(batch, q)), "in-memory and file JPEG differ"
    names = {
        "memory": f"RealJpeg({q}): in memory, thread pool ({os.cpu_count()} CPUs)",
        "sequential": "in memory, one image at a time",
        "file": "temp file, one image at a time (reference)",
        "sim": f"JpegSim({q}): torch ({torch.get_num_threads()} threads)",
    }
    timings = median_seconds({
        "memory": lambda: real(batch),
        "sequential": lambda: in_memory_sequential(batch, q),
        "file": lambda: temp_file_jpeg(batch, q),
        "sim": lambda: sim(batch),
    }, args.repeats)
    print(f"batch of {args.batch} images {args.size}x{args.size}, quality {q}, median of {args.repeats} runs")
    for key, seconds in timings.items():
        print(f"  {names[key]:<48} {args.batch / seconds:9.1f} images/s  ({seconds * 1e3:6.2f} ms/batch)")
    print(f"  RealJpeg in memory vs temp file: {timings['file'] / timings['memory']:.2f}x the throughput")


if __name__ == "__main__":
    main()
