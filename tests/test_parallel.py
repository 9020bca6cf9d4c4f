"""Several images at once: outcomes in order, failures handed back, a stop drops what has not started."""
import threading
import time

import pytest
import torch

from mbrs_engine.parallel import MAX_WORKERS, default_workers, run_in_threads


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
