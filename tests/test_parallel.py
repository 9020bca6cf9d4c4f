"""Several images at once: outcomes in order, failures handed back, a stop drops what has not started; work
speculated on ahead, in order, stopped, or worked out in turn where the idle priority is refused."""
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

from mbrs_engine.parallel import MAX_WORKERS, Ahead, default_workers, run_in_threads


def test_outcomes_come_back_in_order_with_the_failures_and_the_threads_restored():
    threads = torch.get_num_threads()
    seen_threads, names = [], set()

    def work(n):
        time.sleep(0.01 * (5 - n))  # the first items finish last
        seen_threads.append(torch.get_num_threads())
        names.add(threading.current_thread().name)
        if n == 3:
            raise ValueError("three")
        return n * n

    calls = []
    outcomes = run_in_threads(range(5), work, 2, lambda count, i, outcome: calls.append((count, i)))
    assert outcomes[:3] == [0, 1, 4] and isinstance(outcomes[3], ValueError) and outcomes[4] == 16
    assert [count for count, _ in calls] == [1, 2, 3, 4, 5] and sorted(i for _, i in calls) == list(range(5))
    assert len(names) == 2 and set(seen_threads) == {max(1, threads // 2)}
    assert torch.get_num_threads() == threads
    assert 1 <= default_workers() <= MAX_WORKERS


def test_an_exception_in_on_done_drops_the_items_not_started():
    started = []

    def work(n):
        started.append(n)
        time.sleep(0.05)
        return n

    def stop(count, i, outcome):
        raise KeyError("stop")

    with pytest.raises(KeyError):
        run_in_threads(range(20), work, 2, stop)
    assert len(started) < 20


def _counted(n: int, made: list, gate: threading.Event | None = None):
    for i in range(n):
        if gate is not None:
            gate.wait(5)
        made.append((i, threading.current_thread().name))
        yield i


def test_ahead_works_the_items_out_before_they_are_asked_for_and_hands_them_on_in_order():
    made = []
    ahead = Ahead(_counted(5, made))
    deadline = time.monotonic() + 30  # (an idle-priority thread waits while other processes keep the cores busy)
    while len(made) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [i for i, _ in made] == list(range(5))  # all of them, none asked for yet
    assert all(name != threading.current_thread().name for _, name in made)
    assert list(ahead) == list(range(5))


def test_ahead_hands_on_an_exception_where_its_item_would_be():
    def failing():
        yield 1
        raise ValueError("two")

    items = iter(Ahead(failing()))
    assert next(items) == 1
    with pytest.raises(ValueError, match="two"):
        next(items)


def test_ahead_stopped_works_out_no_more_items():
    made, gate = [], threading.Event()
    ahead = Ahead(_counted(100, made, gate))
    ahead.stop()
    gate.set()
    assert list(ahead) == [0]  # what was worked out is kept
    assert len(made) == 1  # the item it was on when stopped, no more


def test_ahead_without_the_idle_priority_works_the_items_out_as_they_are_asked_for(monkeypatch):
    def refused(*args):
        raise PermissionError("not allowed")

    monkeypatch.setattr(os, "sched_setscheduler", refused)
    made = []
    ahead = Ahead(_counted(3, made))
    time.sleep(0.1)
    assert made == []
    assert list(ahead) == [0, 1, 2]
    assert {name for _, name in made} == {threading.current_thread().name}


def test_a_process_ends_cleanly_while_a_stopped_ahead_is_inside_torch():
    """A decode that reads in its search returns while the readings after it are being worked out: the process
    must still exit normally (a daemon thread killed inside torch at exit aborted it: "terminate called")."""
    script = textwrap.dedent("""
        import torch
        from mbrs_engine.parallel import Ahead

        def work():
            x, conv = torch.randn(1, 32, 192, 192), torch.nn.Conv2d(32, 32, 3, padding=1)
            for _ in range(40):
                with torch.no_grad():
                    yield float(conv(x).mean())

        ahead = Ahead(work())
        next(iter(ahead))
        ahead.stop()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "terminate" not in done.stderr
