"""Threads sharing the cores: several images at once (folder runs of the CLI, the app's Save all), and work
speculated on while the work in hand goes on (:class:`Ahead`).

The engine's work is in torch, PIL and numpy, which let go of the GIL, so
threads use every core without copying the model into other processes.
torch's own threads are shared out between them while they run.
"""
from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
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


class Ahead:
    """The items of ``items`` worked out in a thread of its own from the start, at the lowest CPU priority, and
    handed on in their order by iterating; :meth:`stop` ends that thread after the item it is on (not stopped, it
    works them all out: the process does not end before it).

    The thread runs under Linux's ``SCHED_IDLE`` (its torch threads too): only
    on cores the rest of the process leaves idle, so work speculated on (a
    decode's last readings, needed only where the readings before them do
    not read) does not slow the work in hand.  Where that priority cannot be
    had (another system, or refused), nothing runs ahead: the items are worked
    out as they are iterated, in the iterating thread.
    """

    _LAZY, _END = object(), object()

    def __init__(self, items: Iterable):
        self._items, self._queue, self._stop = items, queue.SimpleQueue(), threading.Event()
        # not a daemon: the interpreter's exit waits for the item in hand (a daemon thread killed inside torch
        # aborted the process)
        threading.Thread(target=self._run).start()

    def _run(self) -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # this thread, and those it starts
        except (AttributeError, OSError):  # not Linux, or refused: worked out as they are iterated
            self._queue.put((self._LAZY, None))
            return
        try:
            for item in self._items:
                self._queue.put((item, None))
                if self._stop.is_set():
                    break
        except BaseException as exc:  # raised where the item would have been handed on
            self._queue.put((None, exc))
            return
        self._queue.put((self._END, None))

    def __iter__(self) -> Iterator:
        while True:
            item, exc = self._queue.get()
            if exc is not None:
                raise exc
            if item is self._LAZY:
                yield from self._items
                return
            if item is self._END:
                return
            yield item

    def stop(self) -> None:
        """Work out no more items (the one being worked out is finished); those already worked out are kept."""
        self._stop.set()
