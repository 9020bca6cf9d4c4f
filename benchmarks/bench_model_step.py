"""Benchmark: forward + backward time of an MBRS model per batch on CPU, fp32 vs bf16 autocast.

Measures one training step's compute (encoder, decoder, adversary forward,
the paper's losses, backward, Adam update) on random data, without the noise
layer, in fp32 and in bf16 autocast with channels_last memory format.

    python benchmarks/bench_model_step.py [--preset faithful] [--batch 16] [--steps 5]
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F

from mbrs_engine.nets import PRESETS, build_from_config


def step_time(preset: str, batch: int, steps: int, bf16: bool) -> float:
    torch.manual_seed(0)
    cfg = PRESETS[preset]
    encoder, decoder, adversary = build_from_config(cfg)
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    nets = [m.to(memory_format=fmt) for m in (encoder, decoder, adversary)]
    opt = torch.optim.Adam([p for m in nets for p in m.parameters()], lr=1e-3)
    image = (torch.rand(batch, 3, cfg.image_size, cfg.image_size) * 2 - 1).to(memory_format=fmt)
    message = torch.randint(0, 2, (batch, cfg.message_length)).float()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    for i in range(steps + 1):                      # the first step warms up
        t0 = time.perf_counter()
        with autocast:
            encoded = encoder(image, message)
            decoded = decoder(encoded)
            fake = adversary(encoded)
            loss = (F.mse_loss(encoded.float(), image) + 10 * F.mse_loss(decoded.float(), message)
                    + 1e-4 * F.binary_cross_entropy_with_logits(fake.float(), torch.ones_like(fake.float())))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="faithful", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    print(f"preset={args.preset} batch={args.batch} threads={torch.get_num_threads()} torch={torch.__version__}")
    fp32 = step_time(args.preset, args.batch, args.steps, bf16=False)
    bf16 = step_time(args.preset, args.batch, args.steps, bf16=True)
    for name, t in (("fp32", fp32), ("bf16+channels_last", bf16)):
        print(f"{name:20s} {t:7.3f} s/step  {args.batch / t:6.2f} images/s")
    print(f"bf16 speed-up: {fp32 / bf16:.2f}x")


if __name__ == "__main__":
    main()
