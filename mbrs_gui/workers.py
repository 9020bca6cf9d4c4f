"""Background work: every network call and file operation runs in a thread pool, never on the GUI thread.

``TaskRunner.run(name, fn)`` runs ``fn(ctx)`` on a worker thread, where ``ctx``
(:class:`TaskContext`) reports progress and tells whether the user cancelled.
The returned :class:`Task` emits ``progressed``, then exactly one of
``succeeded`` / ``failed`` / ``cancelled``, then ``finished`` — all delivered
on the GUI thread.  Failures show the error dialog unless the caller handles
them.  A ``key`` makes a task replace (cancel) the previous one with the same
key, for work that only the latest request matters for (previews).

:class:`TrainingThread` runs the engine's :class:`~mbrs_engine.train.Trainer`
on its own QThread and forwards its events as a signal.
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Callable

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal

from .errors import show_exception


class Cancelled(Exception):
    """Raised inside a task by :meth:`TaskContext.check` once the user has cancelled it."""


class TaskContext:
    """Handed to a task function: progress reporting and cancellation checks."""

    def __init__(self, task: "Task"):
        self._task = task

    @property
    def cancelled(self) -> bool:
        return self._task._cancel.is_set()

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled()

    def progress(self, done: int, total: int, text: str = "") -> None:
        self.check()
        self._task.progressed.emit(int(done), int(total), text)


class Task(QObject):
    """One piece of background work and its outcome."""

    progressed = Signal(int, int, str)
    succeeded = Signal(object)
    failed = Signal(object, str)  # the exception, its traceback
    cancelled = Signal()
    finished = Signal()

    def __init__(self, name: str, fn: Callable[[TaskContext], object], cancellable: bool, quiet: bool, key: str | None):
        super().__init__()
        self.name, self.fn, self.cancellable, self.quiet, self.key = name, fn, cancellable, quiet, key
        self._cancel = threading.Event()
        self.started_at = time.perf_counter()
        self.elapsed = 0.0
        self.status = "running"  # running, done, failed, cancelled
        self.result = None
        self.error: BaseException | None = None
        self.last_progress = (0, 0, "")
        self.progressed.connect(lambda d, t, s: setattr(self, "last_progress", (d, t, s)))

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def is_cancel_requested(self) -> bool:
        return self._cancel.is_set()


class _Runnable(QRunnable):
    def __init__(self, task: Task):
        super().__init__()
        self.setAutoDelete(True)
        self.task = task

    def run(self) -> None:
        task = self.task
        task.started_at = time.perf_counter()
        try:
            if task.is_cancel_requested:
                raise Cancelled()
            result = task.fn(TaskContext(task))
            if task.is_cancel_requested:
                raise Cancelled()
        except Cancelled:
            task.status, task.elapsed = "cancelled", time.perf_counter() - task.started_at
            task.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a dialog, never a crash
            task.status, task.elapsed, task.error = "failed", time.perf_counter() - task.started_at, exc
            task.failed.emit(exc, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        else:
            task.status, task.elapsed, task.result = "done", time.perf_counter() - task.started_at, result
            task.succeeded.emit(result)
        task.finished.emit()


class TaskRunner(QObject):
    """Starts tasks on a thread pool and keeps track of the running ones (for the busy indicator)."""

    started = Signal(object)  # Task
    ended = Signal(object)  # Task, after its outcome signals

    def __init__(self, parent: QObject | None = None, threads: int = 3):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        self._active: list[Task] = []
        self._keys: dict[str, Task] = {}

    def run(self, name: str, fn: Callable[[TaskContext], object], *, on_result: Callable | None = None,
            on_error: Callable[[BaseException, str], None] | None = None, on_cancel: Callable | None = None,
            on_progress: Callable[[int, int, str], None] | None = None, cancellable: bool = True,
            quiet: bool = False, key: str | None = None, parent_widget=None) -> Task:
        """Run ``fn(ctx)`` in the background; callbacks run on the GUI thread."""
        if key is not None and key in self._keys:
            self._keys[key].cancel()
        task = Task(name, fn, cancellable, quiet, key)
        if on_progress:
            task.progressed.connect(on_progress)
        if on_result:
            task.succeeded.connect(on_result)
        if on_cancel:
            task.cancelled.connect(on_cancel)
        if on_error:
            task.failed.connect(on_error)
        else:
            task.failed.connect(lambda exc, _tb: show_exception(parent_widget, exc, f"{name} failed."))
        task.finished.connect(lambda: self._finish(task))
        self._active.append(task)
        if key is not None:
            self._keys[key] = task
        self.started.emit(task)
        self.pool.start(_Runnable(task))
        return task

    def _finish(self, task: Task) -> None:
        if task in self._active:
            self._active.remove(task)
        if task.key is not None and self._keys.get(task.key) is task:
            del self._keys[task.key]
        self.ended.emit(task)

    def active(self, include_quiet: bool = False) -> list[Task]:
        return [t for t in self._active if include_quiet or not t.quiet]

    def cancel_all(self) -> None:
        for task in list(self._active):
            task.cancel()

    def wait_done(self, timeout_ms: int = 30_000) -> bool:
        """Block until the pool is idle (used when the app closes)."""
        return self.pool.waitForDone(timeout_ms)


class TrainingThread(QThread):
    """Runs ``trainer.run()``; each TrainEvent arrives on the GUI thread as ``event``; ``crashed`` on failure."""

    event = Signal(object)
    crashed = Signal(object, str)

    def __init__(self, make_trainer: Callable[[Callable], object], parent: QObject | None = None):
        super().__init__(parent)
        self._make_trainer = make_trainer
        self.trainer = None
        self._ready = threading.Event()
        self.result: dict | None = None

    def run(self) -> None:
        try:
            self.trainer = self._make_trainer(self.event.emit)
            self._ready.set()
            self.result = self.trainer.run()
        except BaseException as exc:  # noqa: BLE001 - reported as a dialog by the Train tab
            self.crashed.emit(exc, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        finally:
            self._ready.set()

    def cancel(self) -> None:
        self._ready.wait(30)
        if self.trainer is not None:
            self.trainer.cancel()

    def pause(self, paused: bool) -> None:
        if self.trainer is not None:
            self.trainer.pause() if paused else self.trainer.unpause()
