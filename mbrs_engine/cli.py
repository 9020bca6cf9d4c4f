"""The ``mbrs`` command line: embed, decode, attack, eval, models, info.

Every command that reads an image also takes a folder (its images, sorted by
name; outputs go to a folder of the same file names), with a progress bar on
stderr.  Exit codes: 0 success; 1 ``decode`` found no watermark in at least
one image; 2 bad input or a failed file (a one-line ``mbrs: error: ...`` on
stderr, never a traceback); 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from . import __version__

EXIT_OK, EXIT_NOT_FOUND, EXIT_ERROR, EXIT_NOT_READ_BACK, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
_LOSSY_OUTPUTS = (".jpg", ".jpeg", ".webp")


class CommandError(ValueError):
    """A bad command line that argparse cannot catch (shown as one line)."""


# ---------------------------------------------------------------- helpers


class ProgressBar:
    """A one-line progress bar on stderr for more than one file (plain lines when stderr is not a terminal)."""

    def __init__(self, total: int, stream=None, width: int = 24):
        self.total, self.width = total, width
        self.stream = stream or sys.stderr
        self.enabled = total > 1
        self.tty = self.enabled and hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, done: int, label: str = "") -> None:
        if not self.enabled:
            return
        filled = self.width * done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        line = f"[{bar}] {done}/{self.total} {label}"
        self.stream.write(f"\r{line[:100]:100s}" if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _error(message: str) -> None:
    print(f"mbrs: error: {message}", file=sys.stderr)


@dataclass
class Job:
    source: Path
    target: Path | None


def _output_name(source: Path, folder: Path) -> Path:
    """Same name in ``folder``; formats we do not write (GIF, BMP) become PNG."""
    from .imageio import FORMATS

    return folder / (source.name if source.suffix.lower() in FORMATS else source.stem + ".png")


def _jobs(input_path: str, output: str | None) -> list[Job]:
    """(input, output) pairs for a file or a folder; output folders are created."""
    from .imageio import ImageLoadError, list_images

    source = Path(input_path)
    if not source.exists():
        raise ImageLoadError(f"cannot read '{source}': no such file or folder")
    if not source.is_dir():
        target = None if output is None else Path(output)
        if target is not None and target.is_dir():
            target = _output_name(source, target)
        return [Job(source, target)]
    sources = list_images(source)
    if not sources:
        raise ImageLoadError(f"no images (.png, .jpg, .webp, .tif, .bmp, .gif) in the folder '{source}'")
    if output is None:
        return [Job(s, None) for s in sources]
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"the input is a folder, so the output '{folder}' must be a folder too")
    jobs = [Job(s, _output_name(s, folder)) for s in sources]
    targets = [job.target for job in jobs]
    clash = next((t for t in targets if targets.count(t) > 1), None)
    if clash is not None:
        raise CommandError(f"two inputs would both be written to '{clash}' (GIF/BMP outputs become .png)")
    folder.mkdir(parents=True, exist_ok=True)
    return jobs


def _run_jobs(jobs: list[Job], work, on_error=None, workers: int = 1) -> tuple[int, list]:
    """Run ``work(job)`` on each job, ``workers`` at a time (:func:`mbrs_engine.parallel.run_in_threads`);
    report failures and go on.  Returns (failures, results) in the jobs' order; a failed job gives
    ``on_error(job, message)`` in the results when that is given."""
    from .imageio import ImageLoadError
    from .parallel import run_in_threads

    progress = ProgressBar(len(jobs))
    failed = {}

    def done(count: int, i: int, outcome) -> None:
        job = jobs[i]
        if isinstance(outcome, Exception):
            if len(jobs) == 1 or not isinstance(outcome, (ValueError, OSError)):
                raise outcome
            progress.close()
            message = str(outcome) if isinstance(outcome, ImageLoadError) else f"{job.source}: {outcome}"
            _error(message)
            failed[i] = on_error(job, message) if on_error is not None else None
        progress.update(count, job.source.name)

    outcomes = run_in_threads(jobs, work, workers, done)
    progress.close()
    results = [failed.get(i, outcome) for i, outcome in enumerate(outcomes) if i not in failed or on_error]
    return len(failed), results


def _watermarker(model: str | None):
    from .watermarker import Watermarker

    return Watermarker.from_pretrained(model)


def _check_outputs(jobs: list[Job], overwrite: bool) -> None:
    from .imageio import check_output_path

    for job in jobs:
        check_output_path(job.target, job.source, overwrite)


# ---------------------------------------------------------------- embed


def _quality_figures(original, saved) -> tuple[str, float, float]:
    """(the quality figures as text, PSNR, visibility) of a saved image against its original."""
    from .metrics import image_psnr, ssim
    from .visibility import visibility

    rgb = original if original.mode == "RGB" else original.convert("RGB")
    saved_rgb = saved if saved.mode == "RGB" else saved.convert("RGB")
    psnr, seen = image_psnr(rgb, saved_rgb), visibility(rgb, saved_rgb)  # visibility: in bands, no full copies
    parts = [f"PSNR {psnr:.2f} dB"]
    if min(saved.size) >= 11 and saved.size[0] * saved.size[1] <= 4_000_000:
        parts.append(f"SSIM {float(ssim(original, saved)[0]):.4f}")
    parts.append(f"visibility {seen:.1f}")
    return ", ".join(parts), psnr, seen


def _refuse_marked(wm, image, job: Job, key: str | None) -> None:
    """Refuse to embed over a watermark this model can read (it may destroy both marks)."""
    existing = wm.existing_mark(image, key)
    if existing is not None:
        message = json.dumps(existing.message, ensure_ascii=False)
        raise CommandError(f"'{job.source}' already carries a watermark ({message}): embedding again can destroy "
                           f"both; pass --force to embed anyway")


def _done_before(wm, jobs: list[Job], message: str, key: str | None) -> list[Job]:
    """The jobs of a folder run whose output exists and already carries ``message`` (a rerun skips them); an
    existing output that does not is refused (it is not ours to replace without --overwrite)."""
    from .imageio import ImageLoadError, open_image

    done = []
    for job in jobs:
        if job.target is None or not job.target.exists():
            continue
        try:
            finished = wm.reads_back(open_image(job.target), message, key)
        except (ImageLoadError, OSError, ValueError):
            finished = False
        if not finished:
            raise CommandError(f"'{job.target}' exists and does not carry this message: pass --overwrite to "
                               f"replace it, or choose another output folder")
        done.append(job)
    return done


def _cmd_embed(args: argparse.Namespace) -> int:
    from . import payload
    from .imageio import load_image, open_image, save_like

    if args.strength <= 0:
        raise CommandError(f"strength must be above 0 (0 embeds nothing), got {args.strength:g}")
    jobs = _jobs(args.input, args.output)
    folder_run = Path(args.input).is_dir()
    rerun = folder_run and not args.overwrite
    _check_outputs([j for j in jobs if not (rerun and j.target is not None and j.target.exists())], args.overwrite)
    wm = _watermarker(args.model)
    size = len(args.message.encode("utf-8"))
    payload.encode_text(args.message, wm.message_length, args.key)  # a too-long text fails before any image
    done = _done_before(wm, jobs, args.message, args.key) if rerun else []
    for job in done:
        print(f"skipped {job.target}: done before (it reads back)", flush=True)
    jobs = [j for j in jobs if j not in done]

    def work(job: Job) -> tuple[bool, float, float]:
        loaded = load_image(job.source)
        if not args.force:
            _refuse_marked(wm, loaded.image, job, args.key)
        tiled = args.layout == "tiles"
        bars = []  # made when a refinement starts (the tiles' only where they need one); one bar at a time

        def progress(done: int, total: int) -> None:
            if not bars:
                bars.append(ProgressBar(total))
            bars[0].update(done, f"refining {job.source.name}")

        show = sys.stderr.isatty() and 1 in (len(jobs), args.jobs)
        marked = wm.embed(loaded.image, args.message, strength=args.strength, key=args.key, refine=not args.no_refine,
                          progress=progress if show else None, tiled=tiled)
        for bar in bars:
            bar.close()
        save_like(marked, job.target, loaded, quality=args.quality, overwrite=args.overwrite)
        saved = open_image(job.target)
        reads_back = wm.reads_back(saved, args.message, args.key)
        quality, psnr, seen = _quality_figures(loaded.image, saved)
        print(f"wrote {job.target}: {size} of {wm.capacity} bytes, {quality}, "
              f"{'reads back' if reads_back else 'DOES NOT READ BACK'}", flush=True)
        if not reads_back:
            warnings.warn(f"the message does not read back from '{job.target}' (kept): try a higher --strength, "
                          f"a larger image or a lossless format", ReadBackWarning)
        return reads_back, psnr, seen

    failures, results = _run_jobs(jobs, work, workers=args.jobs) if jobs else (0, [])
    if folder_run:
        median = ""
        if results:
            median = (f", median PSNR {statistics.median(p for _, p, _ in results):.2f} dB, median visibility "
                      f"{statistics.median(v for _, _, v in results):.1f}")
        print(f"{len(results)} embedded ({sum(ok for ok, _, _ in results)} read back{median}), {len(done)} "
              f"skipped (done before), {failures} failed", flush=True)
    if failures:
        return EXIT_ERROR
    return EXIT_OK if all(ok for ok, _, _ in results) else EXIT_NOT_READ_BACK


class ReadBackWarning(UserWarning):
    """An embedded message that does not read back from the saved file."""


# ---------------------------------------------------------------- decode


def _result_dict(path: Path, result) -> dict:
    return {"path": str(path), "detected": result.detected, "message": result.message,
            "p_value": result.p_value, "threshold": result.threshold,
            "bit_errors_corrected": result.bit_errors_corrected, "crc_ok": result.crc_ok,
            "frame": result.frame, "hypotheses": result.hypotheses, "model": result.model,
            "soft_decoded": result.soft_decoded, "erased_bits": result.erased_bits,
            "bits": "".join(map(str, result.corrected_bits.tolist()))}


def _result_line(path: Path, result) -> str:
    if not result.detected:
        return f"{path}: no watermark found"
    frame = "" if result.frame == "full" else f", found as {result.frame}"
    return (f"{path}: {json.dumps(result.message, ensure_ascii=False)} (p = {result.p_value:.3g}, "
            f"{result.describe_correction()}{frame}, model {result.model})")


def _cmd_decode(args: argparse.Namespace) -> int:
    from .imageio import open_image
    from .watermarker import CORNER_SEARCH, decode_with_any, installed_watermarkers

    jobs = _jobs(args.input, None)
    if args.all_models:
        if args.model:
            raise CommandError("give --model or --all-models, not both")
        models = installed_watermarkers()
        if not models:
            raise CommandError("no installed model carries text (see `mbrs models`)")
    else:
        models = [_watermarker(args.model)]
        models[0].layout  # raw-bits-only models fail here, once

    search = False if args.no_search else (CORNER_SEARCH if args.search_corners else True)

    def work(job: Job):
        result = decode_with_any(open_image(job.source), models, key=args.key, search=search)
        if not args.json:
            print(_result_line(job.source, result), flush=True)
        return _result_dict(job.source, result)

    failures, results = _run_jobs(jobs, work, on_error=lambda job, message: {"path": str(job.source),
                                                                           "detected": None, "error": message},
                                  workers=args.jobs)
    if args.json:
        single = not Path(args.input).is_dir()
        print(json.dumps(results[0] if single else results, indent=2, ensure_ascii=False))
    if failures:
        return EXIT_ERROR
    return EXIT_OK if all(r["detected"] for r in results) else EXIT_NOT_FOUND


# ---------------------------------------------------------------- verify-report


def _cmd_verify_report(args: argparse.Namespace) -> int:
    from .imageio import ImageLoadError, list_images
    from .verification import count_statuses, verify_files, write_csv, write_html
    from .watermarker import installed_watermarkers

    source = Path(args.input)
    if not source.exists():
        raise ImageLoadError(f"cannot read '{source}': no such file or folder")
    paths = list_images(source) if source.is_dir() else [source]
    if not paths:
        raise CommandError(f"no image files in '{source}'")
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise CommandError(f"'{out}' exists: pass --overwrite to replace it")
    models = [_watermarker(args.model)] if args.model else installed_watermarkers()
    if not models:
        raise CommandError("no installed model carries text (see `mbrs models`)")
    bar = ProgressBar(len(paths))
    verdicts = verify_files(paths, models, key=args.key, with_sweep=not args.no_sweep,
                            progress=lambda done, total, what: bar.update(done, what))
    bar.close()
    names = [m.name for m in models]
    write_html(verdicts, out, names, key_used=args.key is not None)
    if args.csv:
        write_csv(verdicts, Path(args.csv))
    for v in verdicts:
        detail = (f"{json.dumps(v.message, ensure_ascii=False)} (p = {v.p_value:.3g}, model {v.model}, {v.frame})"
                  if v.detected else v.error if v.status == "unreadable" else f"p = {v.p_value:.3g}")
        print(f"{v.path}: {v.status}: {detail}")
    counts = count_statuses(verdicts)
    print(f"wrote {out}{f' and {args.csv}' if args.csv else ''}: {len(verdicts)} file(s), {counts['detected']} "
          f"with a watermark, {counts['not detected']} without, {counts['unreadable']} unreadable")
    return EXIT_OK


# ---------------------------------------------------------------- attack


class _AttackAction(argparse.Action):
    """Collects ``--jpeg 75 --crop 0.8,1.2 --flip ...`` in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        from .attacks import AttackError, parse_attack

        try:
            attack = parse_attack(self.dest if values is None or values == [] else f"{self.dest}:{values}")
        except AttackError as exc:
            parser.error(f"{option_string}: {exc}")
        chain = list(getattr(namespace, "chain", None) or [])
        namespace.chain = chain + [attack]


def _cmd_attack(args: argparse.Namespace) -> int:
    from .attacks import apply_chain, chain_spec
    from .imageio import load_image, open_image, save_like

    chain = tuple(args.chain or ())
    if not chain:
        raise CommandError("give at least one attack, e.g. --jpeg 75 or --crop 0.5,1.2,0,1 (see mbrs attack --help)")
    mixing = [a.name for a in chain if a.kind.needs_original]
    if mixing and not args.original:
        raise CommandError(f"--{mixing[0]} mixes in the original image: give it with --original FILE")
    original = open_image(args.original) if args.original else None
    jobs = _jobs(args.input, args.output)
    _check_outputs(jobs, args.overwrite)

    def work(job: Job) -> None:
        loaded = load_image(job.source)
        attacked = apply_chain(loaded.image, chain, seed=args.seed, original=original)
        save_like(attacked, job.target, loaded, quality=args.quality, overwrite=args.overwrite)
        print(f"wrote {job.target}: {chain_spec(chain)}")

    failures, _ = _run_jobs(jobs, work)
    return EXIT_ERROR if failures else EXIT_OK


# ---------------------------------------------------------------- eval


def _eval_images(path: str, limit: int | None):
    from .evaluate import load_folder
    from .imageio import open_image

    source = Path(path)
    if source.is_dir():
        return load_folder(source, limit)
    return [(source.name, open_image(source))]


def _cmd_paper_table(args: argparse.Namespace) -> int:
    from .imageio import atomic_write
    from .paper_tables import paper_table

    images = _eval_images(args.folder, args.limit)
    wm = _watermarker(args.model)
    strengths = None if args.strengths == [1.0] else args.strengths
    result = paper_table(wm, images, args.paper_table, target_psnr=args.target_psnr, strengths=strengths,
                         seed=args.seed)
    print(f"model {wm.name} (H={wm.image_size}, L={wm.message_length})")
    print(result.to_markdown())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for suffix, text in (("md", result.to_markdown()), ("csv", result.to_csv()), ("json", result.to_json())):
            path = out / f"table{args.paper_table}.{suffix}"
            atomic_write(path, lambda fh, t=text: fh.write(t.encode("utf-8")))
            print(f"wrote {path}")
    return EXIT_OK


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import SUITES, EvalConfig, evaluate, format_table, write_reports

    if args.paper_table:
        return _cmd_paper_table(args)
    if args.attacks and args.suite:
        raise CommandError("give --attacks or --suite, not both")
    attacks = args.attacks or SUITES[args.suite or "default"]
    config = EvalConfig(attacks=tuple(attacks), strengths=tuple(args.strengths), protocol=args.protocol,
                        seed=args.seed, key=args.key, refine=False if args.no_refine else None)
    images = _eval_images(args.folder, args.limit)
    wm = _watermarker(args.model)
    progress = ProgressBar(len(images))
    rows = evaluate(wm, images, config, progress=lambda done, total, name: progress.update(done, name))
    progress.close()
    print(f"model {wm.name} (H={wm.image_size}, L={wm.message_length}), protocol {config.protocol}, "
          f"{len(images)} images, seed {config.seed}")
    print(format_table(rows))
    if args.out:
        info = {"model": wm.name, "image_size": wm.image_size, "message_length": wm.message_length,
                "protocol": config.protocol, "refined": config.refined, "seed": config.seed,
                "attacks": list(config.attacks),
                "strengths": list(config.strengths), "images": [name for name, _ in images]}
        for path in write_reports(rows, args.out, info):
            print(f"wrote {path}")
    return EXIT_OK


# ---------------------------------------------------------------- models


def _cmd_models(args: argparse.Namespace) -> int:
    from .model_files import (ModelWarning, format_metrics, install_model, list_models, remove_model, resolve_model,
                              set_default_model, shipped_models_dir, unfit_as_default, user_models_dir)

    if args.install:
        info = install_model(args.install, args.name, replace=args.replace)
        print(f"installed '{info.name}' into {user_models_dir()}")
    if args.set_default:
        set_default_model(args.set_default)
        refused = unfit_as_default(resolve_model(args.set_default)[0])
        if refused is not None:
            warnings.warn(f"'{args.set_default}' may not work as the default model: {refused}", ModelWarning)
        print(f"default model: {args.set_default}")
    if args.reset_default:
        set_default_model(None)
        print("default model: default (shipped)")
    if args.remove:
        remove_model(args.remove)
        print(f"removed '{args.remove}' from {user_models_dir()}")
    infos = list_models()
    if args.json:
        print(json.dumps([{**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(i).items()}}
                          for i in infos], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not infos:
        print(f"no models installed (shipped: {shipped_models_dir()}, user: {user_models_dir()}); "
              f"the trained default model comes with a later release")
        return EXIT_OK
    for i in infos:
        mark = "*" if i.is_default else " "
        if i.error:
            print(f"{mark} {i.name:16s} [{i.source}] unreadable: {i.error}")
            continue
        cap = f"{i.capacity} chars" if i.capacity is not None else "raw bits only"
        print(f"{mark} {i.name:16s} [{i.source}] H={i.image_size} L={i.message_length} capacity {cap}; "
              f"{format_metrics(i.metrics)}")
    print("(* = default model)")
    return EXIT_OK


# ---------------------------------------------------------------- info


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


# ---------------------------------------------------------------- parser


def _add_model_key(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-M", metavar="M",
                   help="model name (see `mbrs models`) or path; default: the default model")
    p.add_argument("--key", "-k", metavar="K", help="secret key: the watermark can only be read with the same key")


def _quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"quality must be between 1 and 100, got {value}")
    return value


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output image (.png, .jpg, .webp, .tif) or folder")
    p.add_argument("--overwrite", action="store_true", help="allow writing over existing files, the input included")
    p.add_argument("--quality", type=_quality, default=95, metavar="Q", help="JPEG/WebP quality 1..100 (default 95)")


def _jobs_count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"jobs must be at least 1, got {value}")
    return value


def _add_jobs(p: argparse.ArgumentParser) -> None:
    from .parallel import MAX_WORKERS, default_workers

    p.add_argument("--jobs", "-j", type=_jobs_count, default=default_workers(), metavar="N",
                   help=f"images of a folder worked on at once (default {default_workers()}: one per core, at most "
                        f"{MAX_WORKERS})")


def _add_embed(sub) -> None:
    p = sub.add_parser("embed", help="embed a text message", description="Embed a text message in an image or a "
                       "folder of images, then read it back from the saved file.  Output keeps the size and the "
                       "metadata (EXIF, ICC, XMP, IPTC, dpi where the format holds them); alpha is untouched.  "
                       "Exit code 0: written and read back, 2: error, 3: written but the message does not read back.")
    p.add_argument("input", metavar="IN", help="image file or folder")
    _add_output(p)
    p.add_argument("-m", "--message", required=True, metavar="TEXT", help="the text to embed (UTF-8)")
    p.add_argument("--strength", "-s", type=float, default=1.0, metavar="S",
                   help="watermark strength (residual scale, default 1.0): higher is more robust and more visible")
    p.add_argument("--layout", choices=("tiles", "frame"), default="tiles",
                   help="tiles (default): the message repeated in small tiles, read back from a crop anywhere, "
                        "finer and less visible; frame: one message map stretched over the whole image, refined "
                        "against attacks (images smaller than two tiles always take it; see docs/watermarking.md)")
    p.add_argument("--no-refine", action="store_true",
                   help="skip the refinement against attacks: the frame layout's, and the tiles' where crops and "
                        "turns read them with little margin (instant, less robust)")
    p.add_argument("--force", action="store_true",
                   help="embed even into an image that already carries a watermark (it may destroy both)")
    _add_jobs(p)
    _add_model_key(p)
    p.set_defaults(func=_cmd_embed)


def _add_decode(sub) -> None:
    p = sub.add_parser("decode", help="read a message and test for a watermark",
                       description="Read the message of a watermarked image (or folder).  Exit code 0: watermark "
                       "found in every image, 1: not found in at least one, 2: error.")
    p.add_argument("input", metavar="IN", help="image file or folder")
    _add_model_key(p)
    p.add_argument("--json", action="store_true", help="print JSON (message, detected, p-value, bits ...)")
    p.add_argument("--all-models", action="store_true",
                   help="try every installed model, the default first (the p-value counts them all)")
    search = p.add_mutually_exclusive_group()
    search.add_argument("--no-search", action="store_true", help="do not search for a crop (full frame only)")
    search.add_argument("--search-corners", action="store_true",
                        help="also try crops anchored at the corners (42 hypotheses instead of 10; slower)")
    _add_jobs(p)
    p.set_defaults(func=_cmd_decode)

    p = sub.add_parser("verify-report", help="verify a folder and write an evidence report (HTML, CSV)",
                       description="Read every image of a folder with every installed model (or --model) and write "
                       "a self-contained HTML report: per file the verdict, message, p-value, model, where the mark "
                       "was found, a thumbnail and a robustness sweep (JPEG and crops).  Exit code 0 when the "
                       "report is written, whatever it found; 2: error.")
    p.add_argument("input", metavar="IN", help="folder of images (or one image)")
    p.add_argument("-o", "--output", required=True, metavar="REPORT.html", help="the HTML report to write")
    p.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    _add_model_key(p)
    p.add_argument("--no-sweep", action="store_true", help="skip the robustness sweep (faster)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.set_defaults(func=_cmd_verify_report)


def _add_attack(sub) -> None:
    from .attacks import KINDS

    p = sub.add_parser("attack", help="distort images (to test robustness)",
                       description="Apply attacks in the order given, e.g. --jpeg 75 --crop 0.5,1.2,0,1 --flip.  "
                                   "Values of an attack with several parameters are separated by commas; missing "
                                   "trailing ones take their defaults.")
    p.add_argument("input", metavar="IN", help="image file or folder")
    _add_output(p)
    for kind in KINDS.values():
        params = ", ".join(f"{q.name} {q.minimum:g}..{q.maximum:g}{q.unit.strip() and ' ' + q.unit.strip()} "
                           f"(default {q.default:g})" for q in kind.params)
        metavar = ",".join(q.name.split()[0].upper() for q in kind.params) or None
        p.add_argument(f"--{kind.name}", dest=kind.name, action=_AttackAction, metavar=metavar,
                       nargs=None if kind.params else 0, help=f"{kind.help}" + (f"; {params}" if params else ""))
    p.add_argument("--original", metavar="FILE", help="the unmarked original (for --cropout and --dropout)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random attacks (default 0)")
    p.set_defaults(func=_cmd_attack, chain=None)


def _add_eval(sub) -> None:
    from .evaluate import DEFAULT_ATTACKS, PROTOCOLS, SUITES

    p = sub.add_parser("eval", help="measure BER, PSNR and SSIM over images x attacks x strengths",
                       description="Embed a random message in every image, attack it, decode it, and tabulate "
                       "bit error rate, PSNR, SSIM and message recovery (deterministic for a seed).")
    p.add_argument("folder", metavar="FOLDER", help="folder of images (or one image)")
    p.add_argument("--attacks", nargs="+", metavar="A",
                   help="attack chains such as identity jpeg:50 crop:0.8 jpeg:75+resize:0.5, with ranges drawn "
                        "anew for each image: rotate:-5~5+jpeg:85 (default: the default suite, "
                        f"{' '.join(DEFAULT_ATTACKS)})")
    p.add_argument("--suite", choices=sorted(SUITES), help="a named set of attacks instead of --attacks "
                   "(geometric: random crops anywhere with aspect changes, rotations, a flip, a re-encode)")
    p.add_argument("--strengths", nargs="+", type=float, default=[1.0], metavar="S", help="strengths (default 1.0)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="native",
                   help="native: centre square resized to the model size (the paper's); full: images as they are")
    p.add_argument("--out", metavar="DIR", help="also write results.txt, results.csv and results.json here")
    p.add_argument("--seed", type=int, default=0, help="seed of messages and noise (default 0)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N images")
    p.add_argument("--paper-table", choices=["1", "2", "3", "6"], metavar="T",
                   help="reproduce the layout of the MBRS paper's Table 1, 2, 3 or 6 (native protocol, random "
                        "bits; --attacks and --protocol are then ignored)")
    p.add_argument("--target-psnr", type=float, metavar="DB",
                   help="with --paper-table: set the strength so that the mean PSNR is DB (as the paper compares)")
    p.add_argument("--no-refine", action="store_true",
                   help="full protocol: embed without the refinement against attacks (native: never refined)")
    _add_model_key(p)
    p.set_defaults(func=_cmd_eval)


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list installed models", description="List the shipped and user models with "
                       "H, L, text capacity and measured robustness; choose the default; install a model file.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--set-default", metavar="NAME", help="make NAME the default model")
    p.add_argument("--reset-default", action="store_true", help="go back to the shipped default model")
    p.add_argument("--install", metavar="PATH", help="copy a model (.json + .safetensors) into the user models folder")
    p.add_argument("--name", metavar="NAME", help="name for --install (default: the file name)")
    p.add_argument("--replace", action="store_true", help="let --install replace an installed model of that name")
    p.add_argument("--remove", metavar="NAME", help="delete a user model (shipped models cannot be removed)")
    p.set_defaults(func=_cmd_models)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mbrs", description="MBRS Studio: robust invisible image watermarking.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from .train.commands import add_commands as _add_training

    for add in (_add_embed, _add_decode, _add_attack, _add_eval, _add_models, _add_training):
        add(sub)
    sub.add_parser("info", help="version, device, network presets and noise layers",
                   description="Version, device, network presets and noise layers.").set_defaults(func=_cmd_info)
    return parser


def _warning_printer(once: tuple[type, ...]):
    """``warnings.showwarning`` for one command: ``mbrs: warning: ...`` on stderr; the categories in ``once``
    (the same for every file of a folder) only the first time each text comes up."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = str(message)
        if issubclass(category, once):
            if text in seen:
                return
            seen.add(text)
        print(f"mbrs: warning: {text}", file=sys.stderr)
    return show


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .imageio import ImageWarning, MetadataWarning, ModeWarning
    from .model_files import ModelWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for category in (ImageWarning, MetadataWarning, ModelWarning, ReadBackWarning):
            warnings.simplefilter("always", category)
        warnings.showwarning = _warning_printer(once=(ModeWarning, MetadataWarning))
        try:
            return args.func(args)
        except KeyboardInterrupt:
            print("mbrs: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except (ValueError, OSError) as exc:
            _error(str(exc))
            return EXIT_ERROR
        except Exception as exc:  # never a traceback for users; MBRS_DEBUG=1 shows it
            if os.environ.get("MBRS_DEBUG"):
                raise
            _error(f"unexpected {type(exc).__name__}: {exc} (set MBRS_DEBUG=1 for details)")
            return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
