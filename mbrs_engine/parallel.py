"""Working on several images at once (folder runs of the CLI, the app's Save all): threads sharing the cores.

The engine's work is in torch, PIL and numpy, which let go of the GIL, so
threads use every core without copying the model into other processes.
torch's own threads are shared out between them while they run.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

import torch

#: The most images worked on at once (each holds its photo and the embedding's buffers in memory).
MAX_WORKERS = 4


def default_workers() -> int:
    """One image at a time per core, at most :data:`MAX_WORKERS`."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def run_in_threads(items: Sequence, work: Callable, workers: int,
                   on_done: Callable[[int, int, object], None] | None = None) -> list:
    """``work(item)`` for every item, ``workers`` at a time; the outcomes (a result, or the Exception it raised)
    in the items' order.

    ``on_done(count, index, outcome)`` runs in the calling thread as each item
    finishes (count: how many have).  If it raises (a cancel, an interrupt, an
    error not to go on after), the items not started are dropped, the running
    ones finished, and the exception goes to the caller."""
    workers = max(1, min(workers, len(items)))
    outcomes: list = [None] * len(items)
    threads = torch.get_num_threads()
    if workers > 1:
        torch.set_num_threads(max(1, threads // workers))
    pool = ThreadPoolExecutor(workers)

    def guarded(item):
        try:
            return work(item)
        except Exception as exc:  # handed to on_done and the caller, in the calling thread
            return exc

    try:
        running = {pool.submit(guarded, item): i for i, item in enumerate(items)}
        for count, future in enumerate(as_completed(running), 1):
            i = running[future]
            outcomes[i] = future.result()
            if on_done is not None:
                on_done(count, i, outcomes[i])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)
    return outcomes

