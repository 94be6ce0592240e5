"""The ``jpegtrace`` command: one parser, one sub-command per module of :mod:`jpegtrace.cli`."""

from __future__ import annotations

import argparse
import sys

from ..errors import JpegTraceError
from .analyze import add_analyze
from .assess import add_assess
from .calibrate import add_calibrate
from .collage import add_collage, add_collage_benchmark
from .common import PROG, error, error_of
from .evaluate import add_evaluate
from .export import add_export
from .tables import add_tables
from .train import add_train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Find JPEG compression in images from their pixels alone: a per-pixel map of the JPEG "
                    "quality factor and of whether each region was ever JPEG-compressed, even in PNG, BMP "
                    "or TIFF files.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_analyze(sub)
    add_train(sub)
    add_evaluate(sub)
    add_collage(sub)
    add_collage_benchmark(sub)
    add_assess(sub)
    add_calibrate(sub)
    add_tables(sub)
    add_export(sub)
    return parser


def _torch_options(args) -> str:
    """The options that made a command need torch, as the user gave them (' --device cuda'), or ''."""
    asked = [f" --{name} {value}" for name, value, default in (("backend", getattr(args, "backend", None), "auto"),
                                                               ("device", getattr(args, "device", None), "cpu"))
             if value not in (None, default)]
    return "".join(asked)


def import_openvino_runtime() -> None:
    """Import OpenVINO without its model-conversion API, where it is installed and not imported yet.

    ``openvino/__init__.py`` imports ``openvino.tools.ovc`` (``openvino.convert_model``) if it can, which
    brings telemetry, urllib and numpy.f2py: 0.06-0.3 s of every ``analyze`` that we never use, since
    the network's graph is built with the opsets. A ``None`` in ``sys.modules`` makes that import fail,
    which OpenVINO allows for; it is removed again at once, so a later ``import openvino.tools.ovc``
    works. Only the program itself does this (``main()`` with no arguments): in a caller's process
    ``openvino.convert_model`` stays where OpenVINO puts it.
    """
    import importlib.util

    if "openvino" in sys.modules or importlib.util.find_spec("openvino") is None:
        return
    sys.modules["openvino.tools.ovc"] = None
    try:
        import openvino  # noqa: F401
    except ImportError:
        pass  # a broken install: the command says so where it starts the backend
    finally:
        if sys.modules.get("openvino.tools.ovc", False) is None:
            del sys.modules["openvino.tools.ovc"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if argv is None and getattr(args, "backend", None) in ("auto", "openvino"):
        import_openvino_runtime()
    try:
        return args.func(args)
    except JpegTraceError as exc:
        error(error_of(exc))
        return 2
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "torch":
            raise
        # torch is an extra: analyze and assess run without it on OpenVINO; training, the torch engine,
        # GPUs, calibration, evaluation and the ONNX export need it.
        error(f"{args.command}{_torch_options(args)} needs PyTorch, which is not installed: "
              "pip install 'jpegtrace[torch]'")
        return 2
    except KeyboardInterrupt:
        error("interrupted")
        return 130
