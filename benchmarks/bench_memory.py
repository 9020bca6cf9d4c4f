"""Benchmark: peak memory of ``mbrs embed`` and ``mbrs decode`` by image size, in bytes per pixel.

Each measurement runs the real command line in a fresh process on a
photo-like JPEG of the size (a scikit-image sample upscaled, so the image is
smooth like a real photo) and reads the process's peak resident set size; the
figure includes Python, torch and the model (about 250 MB), so it falls as
the image grows.  Embedding includes loading, embedding (refined unless
``--no-refine``), saving as PNG and reading the message back.

    python benchmarks/bench_memory.py [--sizes 4000x3000 8000x6000 10000x10000] [--no-refine]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

# the child's own peak, VmHWM in kB (ru_maxrss would carry the parent's peak over exec)
_PEAK = ("import sys\nfrom mbrs_engine.cli import main\ntry:\n    code = main(sys.argv[2:])\nfinally:\n"
         "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
         "    open(sys.argv[1], 'w').write(hwm)\n"
         "sys.exit(code)")


def peak_bytes(argv: list[str], folder: Path) -> tuple[int, int]:
    """(exit code, peak RSS in bytes) of ``mbrs ARGV`` in a new process."""
    record = folder / "peak"
    done = subprocess.run([sys.executable, "-c", _PEAK, str(record), *argv], capture_output=True, text=True)
    if done.returncode not in (0, 3):
        raise SystemExit(f"mbrs {' '.join(argv)} failed: {done.stderr.strip()}")
    return done.returncode, int(record.read_text()) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["4000x3000", "8000x6000"], metavar="WxH")
    parser.add_argument("--no-refine", action="store_true", help="embed without the refinement")
    parser.add_argument("--model", help="model name or path (default: the default model)")
    args = parser.parse_args()
    import skimage.data

    model = ["--model", args.model] if args.model else []
    print(f"{'size':>12s} {'MP':>6s} {'embed GB':>9s} {'B/px':>6s} {'decode GB':>10s} {'B/px':>6s}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in args.sizes:
            width, height = (int(v) for v in size.split("x"))
            source, marked = folder / f"{size}.jpg", folder / f"{size}-marked.png"
            Image.fromarray(skimage.data.astronaut()).resize((width, height), Image.Resampling.BICUBIC) \
                .save(source, quality=92)
            pixels = width * height
            _, embed = peak_bytes(["embed", str(source), "-o", str(marked), "-m", "© bench 2026", "--overwrite",
                                   *(["--no-refine"] if args.no_refine else []), *model], folder)
            _, decode = peak_bytes(["decode", str(marked), *model], folder)
            print(f"{size:>12s} {pixels / 1e6:6.1f} {embed / 1e9:9.2f} {embed / pixels:6.1f} "
                  f"{decode / 1e9:10.2f} {decode / pixels:6.1f}", flush=True)


if __name__ == "__main__":
    main()
