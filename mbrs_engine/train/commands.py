"""``mbrs train`` and ``mbrs export``: the trainer from the command line, with a progress line on stderr."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .config import apply_overrides
from .presets import PRESETS, preset


def _format_eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "--:--"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressPrinter:
    """Trainer callback: one updating progress line, validation results on their own lines."""

    def __init__(self, stream=None, every_s: float = 1.0):
        self.stream = stream or sys.stderr          # looked up now, not at import (tests swap sys.stderr)
        self.every_s, self._last = every_s, 0.0

    def __call__(self, event) -> None:
        if event.kind == "step":
            now = time.monotonic()
            if now - self._last < self.every_s and event.step != event.total_steps:
                return
            self._last = now
            width = 24
            done = int(width * event.step / max(event.total_steps, 1))
            l = event.losses
            self.stream.write(f"\r[{'#' * done}{'.' * (width - done)}] {event.step}/{event.total_steps} "
                              f"loss {l['loss']:.4f} msg {l['message_mse']:.4f} img {l['image_mse']:.5f} "
                              f"{event.images_per_s:.1f} img/s ETA {_format_eta(event.eta_s)}   ")
        elif event.kind == "validation":
            m = event.metrics
            self.stream.write(f"\nvalidation @ {event.step}: PSNR {m['psnr']:.2f} SSIM {m['ssim']:.4f} "
                              f"BER clean {m['ber_clean']:.4%}, JPEG {m['ber_jpeg_s1']:.4%} | at "
                              f"{m['psnr_target']:.1f} dB: JPEG BER {m['ber_jpeg']:.4%}\n")
        elif event.kind in ("stage", "done"):
            self.stream.write(f"\n{event.message}\n")
        self.stream.flush()


def cmd_train(args: argparse.Namespace) -> int:
    from .loop import Trainer

    if args.resume and (args.set or args.data or args.out):
        raise ValueError("--set, --data and --out do not apply to --resume (a run keeps its configuration and "
                         "folder); --steps, --budget and --device do")
    if args.resume:
        trainer = Trainer.resume(args.resume, [ProgressPrinter()], budget=args.budget, device=args.device,
                                 steps=args.steps)
    else:
        cfg = preset(args.preset)
        sets = list(args.set or [])
        if args.data:
            sets.append(f"data.train_dir={args.data}")
        if args.budget:
            sets.append(f"budget={args.budget}")
        if args.device:
            sets.append(f"device={args.device}")
        if args.steps:
            sets.append(f"steps={args.steps}")
        cfg = apply_overrides(cfg, sets)
        run_dir = Path(args.out or f"runs/{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}")
        if (run_dir / "last.ckpt").exists():
            raise ValueError(f"{run_dir} already holds a run: continue it with --resume {run_dir}")
        trainer = Trainer(cfg, run_dir, [ProgressPrinter()])
    print(f"run directory: {trainer.run_dir}", file=sys.stderr)
    if args.resume and not trainer.resuming:
        print(f"{trainer.run_dir} has no checkpoint yet (it stopped before its first step): starting it from step 0",
              file=sys.stderr)
    trainer.run()
    if trainer.stopped_by is not None:  # checkpointed; the exit code says it was interrupted, as for every command
        print(f"interrupted: continue with `mbrs train --resume {trainer.run_dir}`", file=sys.stderr)
        return 128 + trainer.stopped_by
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_run

    path, fp16 = export_run(args.run_dir, args.out, args.name, fp16=args.fp16, which=args.which)
    print(f"exported {path} ({'fp16' if fp16 else 'fp32'} weights)")
    return 0


def add_commands(sub) -> None:
    """Register ``train`` and ``export`` on the ``mbrs`` sub-command parser."""
    p = sub.add_parser("train", help="train a model (MBRS mini-batch training)",
                       description="Train a watermarking model. Checkpoints every few minutes and on Ctrl+C; "
                                   "continue with --resume RUN_DIR.")
    p.add_argument("--preset", default="cpu-small", choices=sorted(PRESETS), help="starting configuration")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a setting, e.g. --set network.channels=32 --set target_psnr=36 (repeatable)")
    p.add_argument("--data", help="folder of training images (same as --set data.train_dir=DIR)")
    p.add_argument("--out", help="run directory (default runs/PRESET-DATE)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (default auto)")
    p.add_argument("--budget", help="wall-clock budget for this invocation, e.g. 10m or 2h")
    p.add_argument("--steps", type=int, help="train until this step (the preset's; with --resume, the run's own by default)")
    p.set_defaults(func=cmd_train)

    e = sub.add_parser("export", help="export a training run as safetensors + JSON",
                       description="Export RUN_DIR's best (or last) checkpoint for Watermarker.from_pretrained.")
    e.add_argument("run_dir")
    e.add_argument("-o", "--out", default=".", help="output folder (default: current folder)")
    e.add_argument("--name", default="model", help="model name (file stem)")
    e.add_argument("--which", choices=["best", "last"], default="best")
    e.add_argument("--fp16", choices=["auto", "yes", "no"], default="auto",
                   help="auto: fp16 when it changes no decoded bit on the validation set")
    e.set_defaults(func=cmd_export)
