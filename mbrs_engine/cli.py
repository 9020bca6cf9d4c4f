"""The ``mbrs`` command line.  Sub-commands print one-line errors and exit non-zero on bad input."""
from __future__ import annotations

import argparse
import sys

import torch

from . import __version__


def _cmd_info(args: argparse.Namespace) -> int:
    from .nets import PRESETS, build_from_config, count_parameters
    from .noise import available_layers

    print(f"mbrs-studio {__version__}, torch {torch.__version__}, "
          f"device: {'cuda (' + torch.cuda.get_device_name(0) + ')' if torch.cuda.is_available() else 'cpu'}")
    print("\nnetwork presets:")
    for name, cfg in PRESETS.items():
        enc, dec, _ = build_from_config(cfg)
        print(f"  {name:14s} H={cfg.image_size:<4d} L={cfg.message_length:<4d} diffusion={cfg.diffusion!s:5s} "
              f"encoder {count_parameters(enc):,} / decoder {count_parameters(dec):,} parameters")
    print("\nnoise layers:")
    for name, doc in available_layers().items():
        print(f"  {name:18s} {doc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mbrs", description="MBRS Studio: robust invisible image watermarking.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("info", help="version, device, network presets and noise layers").set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"mbrs: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
