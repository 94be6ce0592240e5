"""What the commands share: one-line errors, argument types, model, data and output options."""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

from ..errors import JpegTraceError

PROG = "jpegtrace"


def display(path) -> str:
    """A file name printable on any terminal, even when it is not valid UTF-8 (bad bytes as ``\\xff``)."""
    text = os.fsdecode(path)
    if not _has_surrogates(text):
        return text
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def warn_if_bf16_is_slow(precision: str | None, device: str | None) -> None:
    from ..nn.backends import bf16_is_fast

    if precision == "bf16" and not bf16_is_fast(device or "cpu"):
        print(f"{PROG}: warning: this CPU has no native bf16 arithmetic (AVX-512); --precision bf16 runs "
              "emulated, many times slower than fp32", file=sys.stderr)


def add_backend_options(p) -> None:
    """``--backend`` and ``--precision``: what runs the network, and in which arithmetic."""
    from ..nn.backends import BACKENDS, PRECISIONS

    p.add_argument("--backend", choices=["auto", *BACKENDS], default="auto",
                   help="what runs the network: jpegtrace's streaming torch engine (the extra jpegtrace[torch]), "
                        "ONNX Runtime (fp32; jpegtrace[onnx]) or OpenVINO (installed with jpegtrace); auto (default): "
                        "the fastest installed for the device, measured in benchmarks/RESULTS.md")
    p.add_argument("--precision", choices=["auto", *PRECISIONS], default="auto",
                   help="arithmetic of the network's inner layers: auto (default) is bf16 where the CPU has native "
                        "bf16 and the model was checked to keep the answer in it (headline QF within 0.25, every "
                        "pixel within 2 QF, no verdict changed on the val images; grayscale images have a check of "
                        "their own), fp32 otherwise; each record's network field says which ran it")


def resolve_backend_args(args, model) -> bool:
    """Check that ``args.backend`` and ``args.precision`` can run ``model`` (an error line and False when
    they cannot run together or the backend is not installed), set ``args.resolved`` to the
    ``(backend, precision)`` that runs a colour image, and start that backend.

    ``args.backend`` and ``args.precision`` stay as asked: 'auto' is resolved per image, since a
    grayscale image may need fp32 (:func:`jpegtrace.nn.backends.resolve`).
    """
    from ..nn.backends import installed_backends, resolve

    requested = args.backend
    if requested not in ("auto", *installed_backends()):
        extra = "onnx" if requested == "onnxruntime" else requested
        error(f"--backend {requested} is not installed: pip install 'jpegtrace[{extra}]'")
        return False
    try:
        args.resolved = backend, precision = resolve(model, backend=requested, precision=args.precision,
                                                     device=args.device)
    except ValueError as exc:
        error(f"--backend {requested} --precision {args.precision}: {exc}")
        return False
    warn_if_bf16_is_slow(precision, args.device)
    if backend != "torch":
        from ..nn.backends import runner

        try:  # built now, so that its compile time is no file's (nor any file's --time-limit)
            runner(model, backend, precision)
        except Exception as exc:  # noqa: BLE001 -- a broken runtime install: say so, once
            error(f"--backend {backend}: cannot start it ({' '.join(str(exc).split())[:200]})")
            return False
    return True


def error_of(exc: JpegTraceError) -> str:
    """``FILE: reason`` (or the reason alone) on one line, printable whatever the file name."""
    reason = " ".join(exc.reason.split())
    return f"{display(exc.path)}: {reason}" if exc.path is not None else reason


def positive_int_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def qualities_arg(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated JPEG quality factors, e.g. ``10,50,90``."""
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("no quality factor given")
    bad = [v for v in values if not 1 <= v <= 100]
    if bad:
        raise argparse.ArgumentTypeError(f"quality factors must be in 1..100, got {bad[0]}")
    return tuple(dict.fromkeys(values))


def quality_arg(text: str) -> int:
    """argparse type: one JPEG quality factor, 1..100."""
    return qualities_arg(text)[0] if "," not in text else _fail_quality(text)


def _fail_quality(text: str):
    raise argparse.ArgumentTypeError(f"expected one quality factor in 1..100, got {text!r}")


def offset_arg(text: str) -> tuple[int, int]:
    """argparse type: ``DY,DX``, two non-negative integers."""
    try:
        dy, dx = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DY,DX (two integers), got {text!r}") from None
    if dy < 0 or dx < 0:
        raise argparse.ArgumentTypeError("grid offsets must be non-negative")
    return dy, dx


def shapes_arg(text: str) -> tuple[str, ...]:
    from ..eval.masks import MASK_SHAPES

    values = tuple(dict.fromkeys(v for v in text.replace(" ", "").split(",") if v))
    bad = [v for v in values if v not in MASK_SHAPES]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"mask shapes must be among {','.join(MASK_SHAPES)}, got {text!r}")
    return values


def flag_threshold_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    from ..nn.qfnet import check_flag_threshold

    try:
        return check_flag_threshold(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def add_input_options(p) -> None:
    """``--max-pixels``, ``--allow-damaged`` and ``--time-limit``: what to refuse of the inputs."""
    from ..io import DEFAULT_MAX_PIXELS

    p.add_argument("--max-pixels", type=positive_int_arg, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help="refuse images whose header claims more pixels, before decoding them (decompression-bomb "
                        "guard; it also bounds memory, about 23 bytes a pixel at worst; "
                        f"default {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--allow-damaged", action="store_true",
                   help="analyse a JPEG that decodes from missing or corrupt data (truncated, a header claiming a "
                        "larger image, corrupt data) instead of refusing it: a note says what is damaged, and the "
                        "area the decoder filled in is left out of the summary")
    p.add_argument("--time-limit", type=positive_float_arg, metavar="SECONDS",
                   help="give up on a file that takes longer (it fails with 'took longer than SECONDS s' and the "
                        "run goes on); kept by SIGALRM between steps, so a long native call finishes first "
                        "(Unix only)")


def add_grid_option(p) -> None:
    p.add_argument("--no-grid-check", dest="grid_check", action="store_false",
                   help="keep the network's flag map and judge by its mean alone (the paper's rule), without "
                        "the DCT check for a JPEG block grid that also catches QF 97-100 JPEGs and raises the "
                        "flag of their clipped blocks")


def add_model_options(p, required: bool = False, model_help: str = "safetensors weights (default: the shipped model)") -> None:
    p.add_argument("--model", metavar="WEIGHTS", required=required, help=model_help)
    p.add_argument("--tile-size", type=positive_arg, default=512, help="side of the region computed at once (default 512)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")


def add_quiet(p) -> None:
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (it is shown only when standard error is a terminal anyway)")


def add_data_options(p, subset: str = "val") -> None:
    p.add_argument("--data", required=True, metavar="DIR",
                   help="folder of never-compressed images; its PNG, TIFF, BMP, PPM and PGM files are used")
    p.add_argument("--split", metavar="CSV", help="CSV with columns file,split: use only the files of --subset")
    p.add_argument("--subset", default=subset, help=f"which split of --split to use (default {subset})")


def load_model(args):
    """The model of ``--model``, or None after printing why it cannot be loaded."""
    from ..analysis import load_model

    try:
        return load_model(args.model, device=args.device)
    except JpegTraceError as exc:
        error(error_of(exc))
        return None


def load_network(args):
    """The network of ``--model`` as ``--device`` and ``--backend`` run it (the weights file's arrays where
    OpenVINO runs them on the CPU: torch is then never loaded; :func:`jpegtrace.analysis.load_network`),
    or None after printing why it cannot be loaded."""
    from ..analysis import load_network

    try:
        return load_network(args.model, device=args.device, backend=args.backend)
    except JpegTraceError as exc:
        error(error_of(exc))
        return None


def progress_bar(args, desc: str, unit: str):
    """A callable that wraps an iterable in a tqdm bar on standard error (off with --quiet or no TTY)."""
    if getattr(args, "quiet", False) or not sys.stderr.isatty():
        return iter  # no bar: no tqdm to import (20 ms of a one-image run in a pipeline)
    from tqdm import tqdm

    return lambda items: tqdm(items, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)


def data_files(args) -> dict[str, Path] | None:
    """The never-compressed images of ``--data`` (and ``--split``/``--subset``) by display name."""
    from ..io import LOSSLESS_SUFFIXES, list_images

    if args.split and not Path(args.split).is_file():
        error(f"{display(args.split)}: no such split file")
        return None
    try:
        paths = list_images(args.data, args.split, args.subset if args.split else None, suffixes=LOSSLESS_SUFFIXES)
    except FileNotFoundError:
        error(f"{display(args.data)}: not a directory")
        return None
    except (KeyError, OSError, csv.Error) as exc:
        error(f"{display(args.split)}: cannot read the split file ({exc})")
        return None
    if not paths:
        where = f" in split {args.subset!r}" if args.split else ""
        error(f"{display(args.data)}: no never-compressed images (PNG, TIFF, BMP, PPM, PGM){where}")
        return None
    return {display(p.relative_to(args.data)): p for p in paths}


def start_data_run(args) -> tuple[dict[str, Path], object] | None:
    """Files of ``--data``, the model and a writable ``--out``; None after printing what is wrong."""
    files = data_files(args)
    if files is None:
        return None
    model = load_model(args)
    if model is None or not prepare_out(args):
        return None
    return files, model


def data_run_settings(args, **extra) -> dict:
    """:func:`settings` of a run over ``--data`` (with its split and subset)."""
    return run_settings(args, data=display(args.data), split=display(args.split) if args.split else None,
                     subset=args.subset if args.split else None, **extra)


def run_settings(args, **extra) -> dict:
    from .. import __version__

    return {"jpegtrace": __version__, "model": display(args.model) if args.model else "shipped", **extra}


def prepare_out(args) -> bool:
    """Create ``--out`` before a long run; False after printing why it cannot be."""
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        error(f"{display(args.out)}: cannot create the output folder ({exc.strerror or exc})")
        return False
    if not os.access(args.out, os.W_OK):
        error(f"{display(args.out)}: output folder is not writable")
        return False
    return True


def write_error(exc: OSError) -> int:
    error(f"cannot write results: {exc.strerror or exc}" + (f" ({display(exc.filename)})" if exc.filename else ""))
    return 2


def report_failures(failures) -> None:
    for f in failures:
        error(f"{f.file}: {f.reason}")

