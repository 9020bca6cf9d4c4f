"""The MBRS training loop: one noise layer per mini-batch, the paper's losses with the adversary, never losing work.

``Trainer(config, run_dir).run()`` trains, validates, reports progress through
callbacks, checkpoints atomically every few minutes and on cancel / SIGTERM /
SIGINT, and continues bit-for-bit with ``Trainer.resume(run_dir)``.

Per step (method ``mbrs``, as the paper):
1. encoded = E(cover, message); with ``target_psnr`` the residual of each
   image is rescaled to that PSNR (the networks then learn *where* to put a
   fixed amount of energy);
2. noised = N(encoded, cover) with N drawn from the pool for this mini-batch
   (real libjpeg stops the gradient, or passes it straight through);
3. decoded = D(noised);  L = lambda_E MSE(encoded, cover) + lambda_D MSE(decoded, m)
   + lambda_A BCE(A(encoded), cover) [+ lambda_V visibility penalty], for the encoder and decoder;
4. the adversary learns to tell covers (1) from encoded images (0).
Two-stage methods (``tsr``, ``tsr-s``) train the pair with the pool in stage 1
(Identity for TSR, the simulated JPEG for TSR-S) and then the decoder alone
on ``stage2_noise``.
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..nets import build_from_config
from ..noise import Identity, parse_noise
from ..pixels import from_uint8, to_uint8
from . import checkpoint as ckpt
from .config import TrainConfig, parse_budget
from .data import ImageSource, StreamSampler, TrainImages, train_val_paths, validation_images
from .distributed import World, any_rank, init_world, shutdown, wrap
from ..metrics import residual_scale_for_psnr
from .validation import fixed_messages, validate
from ..visibility import training_penalty


@dataclass
class TrainEvent:
    """What callbacks receive.  ``kind``: prepare, step, validation, checkpoint, sample, stage, done."""

    kind: str
    step: int
    total_steps: int
    losses: dict = field(default_factory=dict)
    images_per_s: float = 0.0
    eta_s: float = float("nan")
    metrics: dict = field(default_factory=dict)
    samples: dict = field(default_factory=dict)   # name -> uint8 numpy array (N, H, W, 3)
    message: str = ""


Callback = Callable[[TrainEvent], None]


class TrainingCancelled(Exception):
    """Raised inside set-up when ``cancel()`` comes before training started."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available")
    return torch.device(name)


def _ignore_stop_signals(_worker_id: int) -> None:
    """Data workers leave Ctrl+C / SIGTERM to the main process, which checkpoints and then stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class WatermarkPipeline(nn.Module):
    """Encoder -> (residual rescaling) -> noise -> decoder, as one module so DDP sees a single forward.
    With a ``frozen`` encoder, the first ``frozen_count`` images of the batch are marked by it instead (no
    gradient reaches it): the decoder learns to read both encoders' marks."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, frozen: nn.Module | None = None,
                 frozen_count: int = 0):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.frozen, self.frozen_count = frozen, frozen_count

    def forward(self, cover, message, noise, target_psnr: float | None, train_encoder: bool = True):
        k = self.frozen_count
        with contextlib.nullcontext() if train_encoder else torch.no_grad():
            encoded = self.encoder(cover[k:], message[k:])
        if k:
            with torch.no_grad():
                encoded = torch.cat([self.frozen(cover[:k], message[:k]).to(encoded.dtype), encoded])
        if target_psnr is not None:
            residual = encoded.float() - cover.float()
            encoded = cover.float() + residual_scale_for_psnr(residual, target_psnr) * residual
        with torch.autocast(cover.device.type, enabled=False):       # noise layers run in fp32
            noised = noise(encoded.float(), cover.float())
        return encoded, self.decoder(noised)


class Trainer:
    """Trains one run; ``run()`` returns the final validation metrics."""

    def __init__(self, config: TrainConfig, run_dir: str | Path, callbacks: list[Callback] | tuple = (),
                 _resume_state: dict | None = None):
        self.config = config.validate() if _resume_state is not None else config.validate().with_absolute_paths()
        self.run_dir = Path(run_dir)
        self.callbacks = list(callbacks)
        self.device = pick_device(config.device)
        self.world: World = init_world(self.device)
        self._cancel = threading.Event()
        self._unpaused = threading.Event()
        self._unpaused.set()
        self._resume_state = _resume_state
        self.resuming = _resume_state is not None  # from a checkpoint (False: a fresh run, or one never checkpointed)
        self.step = 0
        self.best_ber = math.inf
        self.elapsed_before = 0.0
        self.history: list[dict] = []
        self.stopped_by: int | None = None  # the signal (SIGINT, SIGTERM) that stopped the run, if one did

    # ------------------------------------------------------------------ control
    @classmethod
    def resume(cls, run_dir: str | Path, callbacks: list[Callback] | tuple = (), budget: str | None = None,
               device: str | None = None, steps: int | None = None) -> "Trainer":
        """A trainer that continues the run in ``run_dir`` from its last checkpoint (until step ``steps``, when
        given: a finished run can be trained further)."""
        run_dir = Path(run_dir)
        if not (run_dir / ckpt.CONFIG).is_file():
            raise ValueError(f"'{run_dir}' is not a training run (it has no {ckpt.CONFIG}): start one with "
                             f"`mbrs train --preset NAME --data FOLDER --out {run_dir}`")
        config = TrainConfig.load(run_dir / ckpt.CONFIG)
        if steps is not None and steps != config.steps:  # the run's new length is the run's from now on
            config.steps = steps
            config.save(run_dir / ckpt.CONFIG)
        if budget is not None:
            config.budget = budget
        if device is not None:
            config.device = device
        if not ckpt.checkpoint_exists(run_dir / ckpt.LAST):  # stopped before its first step: nothing was done, start it again
            return cls(config, run_dir, callbacks, _resume_state=None)
        return cls(config, run_dir, callbacks, _resume_state=ckpt.load_checkpoint(run_dir / ckpt.LAST))

    def cancel(self) -> None:
        """Stop at the next step boundary, after writing a checkpoint."""
        self._cancel.set()
        self._unpaused.set()

    def pause(self) -> None:
        self._unpaused.clear()

    def unpause(self) -> None:
        self._unpaused.set()

    @property
    def paused(self) -> bool:
        return not self._unpaused.is_set()

    # ------------------------------------------------------------------ set-up
    def _build(self) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed + self.world.rank)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.fmt = fmt
        encoder, decoder, adversary = (m.to(self.device, memory_format=fmt) for m in build_from_config(cfg.network))
        self.encoder, self.decoder, self.adversary = encoder, decoder, adversary
        two_stage = cfg.method != "mbrs"
        self.pipeline = wrap(WatermarkPipeline(encoder, decoder, self._frozen_encoder(), cfg.frozen_count),
                             self.world, self.device, find_unused=two_stage)
        self.adversary_ddp = wrap(adversary, self.world, self.device)
        self.opt_g = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=cfg.optim.lr)
        self.opt_a = torch.optim.Adam(adversary.parameters(), lr=cfg.optim.lr)
        self.noise = Identity() if cfg.method == "tsr" else parse_noise(cfg.noise)
        self.stage2_noise = parse_noise(cfg.stage2_noise) if two_stage else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.precision == "fp16" and self.device.type == "cuda")
        self._build_data()

    def _build_data(self) -> None:
        cfg, data = self.config, self.config.data
        source = ImageSource(data.cache_dir, data.cache_side)
        train, val = train_val_paths(data, cfg.seed, source, self._preparing)
        self.broken_files = list(source.broken)
        H = cfg.network.image_size
        self.val_images = validation_images(val, source, H)
        self.val_messages = fixed_messages(len(val), cfg.network.message_length)
        self.train_set = TrainImages(train, source, H, cfg.seed, data.min_scale)
        self.train_count = len(train)

    def _preparing(self, done: int, total: int) -> None:
        """Progress of the image check/cache before training; a cancel stops it."""
        if self._cancel.is_set():
            raise TrainingCancelled("cancelled while preparing the images")
        self._emit("prepare", message=f"checking images {done + 1}/{total}", metrics={"done": done, "total": total})

    def _loader(self, start_step: int):
        cfg = self.config
        sampler = StreamSampler(len(self.train_set), cfg.batch_size, cfg.seed, start_step,
                                self.world.rank, self.world.size)
        workers = cfg.data.workers
        return iter(DataLoader(self.train_set, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
                               persistent_workers=False, prefetch_factor=4 if workers else None,
                               pin_memory=self.device.type == "cuda", worker_init_fn=_ignore_stop_signals,
                               generator=torch.Generator().manual_seed(cfg.seed)))   # keeps the global RNG untouched

    # ------------------------------------------------------------------ state
    def _state(self) -> dict:
        return {
            "step": self.step, "config": self.config.to_dict(),
            "encoder": self.encoder.state_dict(), "decoder": self.decoder.state_dict(),
            "adversary": self.adversary.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_a": self.opt_a.state_dict(), "scaler": self.scaler.state_dict(),
            "noise": self.noise.state_dict(), "rng": ckpt.rng_state(),
            "best_ber": self.best_ber, "elapsed": self._elapsed(), "history": self.history,
        }

    def _load_state(self, state: dict) -> None:
        """Everything from a full checkpoint; from a slim one (see ``checkpoint.slim``) the networks and
        the step, with fresh optimiser moments and random streams (a warm restart, not bit-exact)."""
        self.encoder.load_state_dict(state["encoder"])
        self.decoder.load_state_dict(state["decoder"])
        self.adversary.load_state_dict(state["adversary"])
        if "opt_g" in state:
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_a.load_state_dict(state["opt_a"])
            self.scaler.load_state_dict(state["scaler"])
            self.noise.load_state_dict(state["noise"])
            ckpt.set_rng_state(state["rng"])
        self.step, self.best_ber = state["step"], state["best_ber"]
        self.elapsed_before, self.history = state["elapsed"], list(state["history"])

    @contextlib.contextmanager
    def _weights_must_fit(self, setting: str, source: str):
        """Weights that do not fit the network (a ``load_state_dict`` error) as a ValueError naming the setting."""
        try:
            yield
        except RuntimeError as exc:
            raise ValueError(f"{setting} {source!r} does not fit network {self.config.network}: "
                             f"{str(exc).strip().splitlines()[0]}") from None

    def _frozen_encoder(self) -> nn.Module | None:
        """``frozen_encoder``'s encoder, in eval mode and without gradients (None when not set)."""
        source = self.config.frozen_encoder
        if not source:
            return None
        encoder = build_from_config(self.config.network)[0]
        with self._weights_must_fit("frozen_encoder", source):
            encoder.load_state_dict(ckpt.load_network_weights(Path(source))["encoder"])
        encoder.requires_grad_(False)
        return encoder.to(self.device, memory_format=self.fmt).eval()

    def _init_networks(self, source: str) -> None:
        """Warm start: the networks of a checkpoint or an exported model (an exported model has no
        adversary: it starts fresh).  The step, optimiser and schedules start from zero."""
        with self._weights_must_fit("init_from", source):
            state = ckpt.load_network_weights(Path(source))
            self.encoder.load_state_dict(state["encoder"])
            self.decoder.load_state_dict(state["decoder"])
            if "adversary" in state:
                self.adversary.load_state_dict(state["adversary"])
        self._emit("stage", message=f"networks initialised from {source}")

    def save_checkpoint(self) -> None:
        if self.world.is_main:
            ckpt.atomic_torch_save(self._state(), self.run_dir / ckpt.LAST)
            self._emit("checkpoint", message=str(self.run_dir / ckpt.LAST))

    def _save_best(self, metrics: dict) -> None:
        state = {"step": self.step, "config": self.config.to_dict(), "metrics": metrics,
                 "encoder": self.encoder.state_dict(), "decoder": self.decoder.state_dict()}
        ckpt.atomic_torch_save(state, self.run_dir / ckpt.BEST)

    # ------------------------------------------------------------------ schedule
    def _lr(self, step: int) -> float:
        o, total = self.config.optim, self.config.steps
        main = total - o.finetune_steps
        if step >= main:
            return o.finetune_lr
        t = step / max(main, 1)
        if o.schedule == "cosine":
            return o.lr * 0.5 * (1 + math.cos(math.pi * t))
        if o.schedule == "onecycle":
            return o.lr * (t / 0.1 if t < 0.1 else 0.5 * (1 + math.cos(math.pi * (t - 0.1) / 0.9)))
        return o.lr

    def _target_psnr(self, step: int) -> float | None:
        cfg = self.config
        if cfg.target_psnr is None or cfg.target_psnr_start is None or cfg.target_psnr_steps <= 0:
            return cfg.target_psnr
        t = min(step / cfg.target_psnr_steps, 1.0)
        return cfg.target_psnr_start + t * (cfg.target_psnr - cfg.target_psnr_start)

    def _in_stage2(self, step: int) -> bool:
        return self.config.method != "mbrs" and step >= int(self.config.stage1_fraction * self.config.steps)

    # ------------------------------------------------------------------ one step
    def _autocast(self):
        p = self.config.precision
        if p == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if p == "bf16" else torch.float16)

    def train_step(self, batch_u8: torch.Tensor) -> dict:
        cfg, w = self.config, self.config.loss
        cover = from_uint8(batch_u8.to(self.device, non_blocking=True)).contiguous(memory_format=self.fmt)
        message = torch.randint(0, 2, (cover.shape[0], cfg.network.message_length), device=self.device).float()
        stage2 = self._in_stage2(self.step)
        for group in self.opt_g.param_groups:
            group["lr"] = self._lr(self.step)
        for group in self.opt_a.param_groups:
            group["lr"] = self._lr(self.step)

        noise = self.stage2_noise if stage2 else self.noise
        self.encoder.train(not stage2)
        with self._autocast():
            encoded, decoded = self.pipeline(cover, message, noise, self._target_psnr(self.step),
                                             train_encoder=not stage2)
            loss_msg = F.mse_loss(decoded.float(), message)
            loss_vis = torch.zeros((), device=self.device)
            if stage2:
                loss_img = loss_adv = torch.zeros((), device=self.device)
                loss = loss_msg
            else:
                loss_img = F.mse_loss(encoded.float(), cover.float())
                fooled = self.adversary(encoded).float()     # unwrapped: these adversary grads are discarded
                loss_adv = F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
                loss = w.image * loss_img + w.message * loss_msg + w.adversary * loss_adv
                if w.visibility:
                    loss_vis = training_penalty(cover, encoded)
                    loss = loss + w.visibility * loss_vis
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt_g)

        loss_a = torch.zeros((), device=self.device)
        if not stage2:
            with self._autocast():
                logits = self.adversary_ddp(torch.cat([cover, encoded.detach().to(cover.dtype)])).float()
                labels = torch.cat([torch.ones(len(cover)), torch.zeros(len(cover))]).to(self.device)
                loss_a = F.binary_cross_entropy_with_logits(logits, labels)
            self.opt_a.zero_grad(set_to_none=True)
            self.scaler.scale(loss_a).backward()
            self.scaler.step(self.opt_a)
        self.scaler.update()
        self.step += 1
        self._last_batch = (cover[:4].detach(), encoded[:4].detach().float())
        return {"loss": loss.item(), "image_mse": loss_img.item(), "message_mse": loss_msg.item(),
                "adversary_g": loss_adv.item(), "adversary_d": loss_a.item(), "visibility": loss_vis.item(),
                "noise": type(getattr(noise, "last_layer", noise)).__name__}

    # ------------------------------------------------------------------ loop
    def _elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self._t_start)

    def _emit(self, kind: str, **kw) -> None:
        event = TrainEvent(kind=kind, step=self.step, total_steps=self.config.steps, **kw)
        for cb in self.callbacks:
            cb(event)

    def run_validation(self) -> dict:
        """Validate (rank 0 only), log to history.jsonl, keep the best checkpoint."""
        metrics = validate(self.encoder, self.decoder, self.val_images, self.val_messages,
                           self.config.validation.quality, self.config.validation.target_psnr, self.device,
                           residual_psnr=self.config.target_psnr)
        metrics["step"] = self.step
        self.history.append(metrics)
        with open(self.run_dir / ckpt.HISTORY, "a") as f:
            f.write(json.dumps(metrics) + "\n")
        if metrics["ber_jpeg"] < self.best_ber:
            self.best_ber = metrics["ber_jpeg"]
            self._save_best(metrics)
        self._emit("validation", metrics=metrics)
        return metrics

    def run(self) -> dict:
        """Train until ``steps`` are done, the budget is spent or ``cancel()`` is called; returns the last metrics."""
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._t_start = time.monotonic()
        try:
            self._build()
        except TrainingCancelled as exc:
            self._emit("done", message=str(exc))
            return {}
        if self._resume_state is not None:
            self._load_state(self._resume_state)
            self._resume_state = None
        else:
            if cfg.init_from:
                self._init_networks(cfg.init_from)
            if self.world.is_main:
                cfg.save(self.run_dir / ckpt.CONFIG)
        if self.broken_files and self.world.is_main:
            self._emit("stage", message=f"skipped {len(self.broken_files)} unreadable image(s)")
        budget = parse_budget(cfg.budget)
        restore = self._install_signal_handlers()
        session_start = time.monotonic()
        last_ckpt = time.monotonic()
        rate, t_prev, step0 = 0.0, time.monotonic(), self.step
        metrics: dict = {}
        try:
            batches = self._loader(self.step)
            was_stage2 = self._in_stage2(self.step)
            while self.step < cfg.steps:
                self._unpaused.wait()
                out_of_time = budget is not None and time.monotonic() - session_start >= budget
                if any_rank(self._cancel.is_set() or out_of_time, self.world):
                    break
                try:
                    batch = next(batches)
                except BaseException:
                    self.save_checkpoint()      # a step boundary: the state is whole, keep it
                    raise
                losses = self.train_step(batch)
                if self.step == 1:           # a fresh run's first step: from now on a kill loses minutes, not all
                    self.save_checkpoint()
                    last_ckpt = time.monotonic()
                now = time.monotonic()
                inst = cfg.batch_size * self.world.size / max(now - t_prev, 1e-9)
                rate = inst if self.step - step0 <= 1 else 0.9 * rate + 0.1 * inst
                t_prev = now
                self._emit("step", losses=losses, images_per_s=rate,
                           eta_s=(cfg.steps - self.step) * cfg.batch_size * self.world.size / max(rate, 1e-9))
                if self._in_stage2(self.step) != was_stage2:
                    was_stage2 = True
                    self._emit("stage", message="stage 2: decoder only")
                if cfg.sample_every_steps and self.step % cfg.sample_every_steps == 0:
                    self._emit_samples()
                if self.world.is_main and (self.step % cfg.validation.every_steps == 0 or self.step == cfg.steps):
                    metrics = self.run_validation()
                if now - last_ckpt >= cfg.checkpoint_minutes * 60:
                    self.save_checkpoint()
                    last_ckpt = time.monotonic()
            if self.world.is_main and not self._cancel.is_set() and metrics.get("step") != self.step:
                metrics = self.run_validation()     # a cancel only checkpoints: closing must be quick
            self.save_checkpoint()
        finally:
            restore()
            shutdown(self.world)
        self._emit("done", metrics=metrics, message="cancelled" if self._cancel.is_set() else "finished")
        return metrics

    def _emit_samples(self) -> None:
        cover, encoded = self._last_batch
        diff = (encoded - cover).abs()
        diff = diff / diff.flatten(1).amax(1).clamp_min(1e-8).view(-1, 1, 1, 1) * 2 - 1
        self._emit("sample", samples={name: to_uint8(batch.cpu()).permute(0, 2, 3, 1).contiguous().numpy()
                                      for name, batch in (("cover", cover), ("encoded", encoded),
                                                          ("difference", diff))})

    def _install_signal_handlers(self):
        """SIGINT/SIGTERM -> cancel (checkpoint, then stop).  Only possible from the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def stop(signum, _frame):
            self.stopped_by = signum
            self.cancel()
        for s in previous:
            signal.signal(s, stop)

        def restore():
            for s, h in previous.items():
                signal.signal(s, h)
        return restore
