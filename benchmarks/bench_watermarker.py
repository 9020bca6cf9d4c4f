"""Benchmark: Watermarker embed / decode time by image size (CPU).

For each size: ``embed_bits`` without refinement (full-size path: resize to
H, encoder, residual upscaling, add and round), the same with the embed-time
refinement (one run: it takes seconds; ``--no-refine`` skips it),
``decode_bits`` (antialiased resize + decoder), and
``decode`` with its crop search on a watermarked image (found in the full
frame; "n/a" when an untrained model cannot find it) and on a clean one
(every hypothesis tried).  Times are medians over
``--repeats`` runs after one warm-up, PIL images in and out (file I/O not
included).

Without ``--model`` the networks are an untrained preset; its residual is far
larger than a trained model's, so the strength is set to give a residual of
at most ``--residual`` 8-bit levels (a trained model at PSNR ~40 dB has
residuals of a few levels, at most ~10-20), which is what the timing of the
add path depends on.

    python benchmarks/bench_watermarker.py [--preset faithful] [--model PATH] [--sizes 4000x3000 ...]
"""
from __future__ import annotations

import argparse
import statistics
import time

from mbrs_engine import Watermarker, payload  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from mbrs_engine.nets import PRESETS, build_from_config  # noqa: E402
from mbrs_engine.pixels import pil_to_tensor  # noqa: E402
from mbrs_engine.resampling import to_model_size  # noqa: E402

DEFAULT_SIZES = ("128x128", "512x512", "1920x1080", "4000x3000", "6000x4000")


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth random image with some texture (not a photo, but not flat)."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (max(2, height // 64), max(2, width // 64), 3), dtype=np.uint8))
    img = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC)).astype(np.int16)
    img = img + rng.integers(-8, 9, (height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def watermarker(args) -> tuple[Watermarker, float]:
    if args.model:
        return Watermarker.from_pretrained(args.model), 1.0
    torch.manual_seed(0)
    cfg = PRESETS[args.preset]
    encoder, decoder, _ = build_from_config(cfg)
    wm = Watermarker(encoder, decoder, cfg, name=f"{args.preset} (untrained)")
    probe = photo_like(cfg.image_size, cfg.image_size, 1)
    with torch.inference_mode():
        x = pil_to_tensor(to_model_size(probe, cfg.image_size))
        residual = (encoder.eval()(x, torch.ones(1, cfg.message_length)) - x).abs().max().item() * 127.5
    return wm, args.residual / residual


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="faithful", choices=sorted(PRESETS))
    ap.add_argument("--model", help="a model file or name instead of an untrained preset")
    ap.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), metavar="WxH")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--residual", type=float, default=12.0, help="largest residual in 8-bit levels (untrained)")
    ap.add_argument("--no-search", action="store_true", help="skip the decode-with-search columns")
    ap.add_argument("--no-refine", action="store_true", help="skip the refined-embedding column")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    wm, strength = watermarker(args)
    print(f"model {wm.name}: H={wm.image_size} L={wm.message_length}, strength {strength:.3g}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"search: {len(wm.search.frames())} hypotheses")
    header = f"{'size':>11s} {'MP':>5s} {'embed_bits':>11s}"
    header += "" if args.no_refine else f" {'refined':>9s}"
    header += f" {'decode_bits':>12s}"
    if not args.no_search:
        header += f" {'decode(found)':>14s} {'decode(clean)':>14s}"
    print(header)
    try:
        bits = payload.encode_text("benchmark"[:wm.capacity], wm.message_length)
    except payload.PayloadError:  # a raw-bits model
        bits = np.random.default_rng(0).integers(0, 2, wm.message_length)
    for size in args.sizes:
        width, height = map(int, size.lower().split("x"))
        img = photo_like(width, height)
        marked = wm.embed_bits(img, bits, strength, refine=False)
        embed = median_time(lambda: wm.embed_bits(img, bits, strength, refine=False), args.repeats)
        line = f"{size:>11s} {width * height / 1e6:5.1f} {embed:10.3f}s"
        if not args.no_refine:
            start = time.perf_counter()
            marked = wm.embed_bits(img, bits, strength)
            line += f" {time.perf_counter() - start:8.2f}s"
        decode = median_time(lambda: wm.decode_bits(marked), args.repeats)
        line += f" {decode:11.3f}s"
        if not args.no_search:
            try:
                detected = wm.decode(marked, search=False).detected
            except ValueError:
                line += f" {'(raw bits)':>14s} {'':>14s}"
            else:
                found = f"{median_time(lambda: wm.decode(marked), args.repeats):13.3f}s" if detected else "n/a"
                clean = median_time(lambda: wm.decode(img), max(1, args.repeats // 2))
                line += f" {found:>14s} {clean:13.3f}s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
