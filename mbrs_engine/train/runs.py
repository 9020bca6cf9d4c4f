"""What a run folder holds, read without loading its networks: for "continue a run" pickers and listings.

``describe_run`` reads a run's ``config.json``, ``history.jsonl`` and the step
of its last checkpoint (a memory-mapped read of ``last.ckpt``, or the header
of its parts); ``find_runs`` lists the runs under a folder, newest first.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .config import TrainConfig


@dataclass
class RunSummary:
    path: Path
    config: TrainConfig
    step: int                 # of the last checkpoint (0: none yet)
    history: list[dict]       # the validations so far
    updated: float            # when the last checkpoint (or the config) was written, seconds since the epoch

    @property
    def best_ber(self) -> float | None:
        return min((h["ber_jpeg"] for h in self.history if "ber_jpeg" in h), default=None)

    @property
    def finished(self) -> bool:
        return self.step >= self.config.steps

    def describe(self, now: float | None = None) -> str:
        """One line: name, progress, best validation BER, age."""
        age = max(0.0, (now or time.time()) - self.updated)
        ago = (f"{age / 86400:.0f} d" if age >= 86400 else f"{age / 3600:.0f} h" if age >= 3600
               else f"{age / 60:.0f} min")
        best = "" if self.best_ber is None else f" · best BER {self.best_ber:.2%}"
        state = "finished" if self.finished else f"step {self.step:,} of {self.config.steps:,}"
        return f"{self.path.name}: {state}{best} · {ago} ago"


def checkpoint_step(path: Path) -> int:
    """The step of the checkpoint at ``path`` (one file or parts), read without loading its tensors; 0 if none."""
    if path.exists():
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["step"])
    if ckpt.checkpoint_exists(path):
        from .transfer import read_header
        return int(read_header(path.parent, path.stem)["step"])
    return 0


def read_history(run_dir: Path) -> list[dict]:
    """The validations logged in ``run_dir/history.jsonl`` (a torn last line, from a crash, is skipped)."""
    path = Path(run_dir) / ckpt.HISTORY
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def describe_run(run_dir: str | Path) -> RunSummary:
    """What ``run_dir`` holds; raises ValueError when it is not a run folder."""
    run_dir = Path(run_dir)
    if not (run_dir / ckpt.CONFIG).is_file():
        raise ValueError(f"'{run_dir}' is not a training run (it has no {ckpt.CONFIG})")
    config = TrainConfig.load(run_dir / ckpt.CONFIG)
    last = run_dir / ckpt.LAST
    stamp = last if last.exists() else run_dir / ckpt.CONFIG
    return RunSummary(run_dir, config, checkpoint_step(last), read_history(run_dir), stamp.stat().st_mtime)


def find_runs(parent: str | Path) -> list[RunSummary]:
    """The run folders directly under ``parent``, the most recently updated first (unreadable ones left out)."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    runs = []
    for folder in parent.iterdir():
        if (folder / ckpt.CONFIG).is_file():
            try:
                runs.append(describe_run(folder))
            except (ValueError, OSError, KeyError, RuntimeError):
                continue
    return sorted(runs, key=lambda r: -r.updated)
