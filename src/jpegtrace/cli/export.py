"""``jpegtrace export``: the network as an ONNX graph for other runtimes."""

from __future__ import annotations

from .common import add_model_options, display, error, load_model


def add_export(sub) -> None:
    p = sub.add_parser(
        "export", help="write the network as an ONNX graph",
        description="Write the network (the shipped one, or --model) as an ONNX graph: input 'image', float "
                    "(N, 3, H, W) in [0, 1]; output 'maps', the raw (N, 2, H, W) quality and flag maps, with dynamic "
                    "batch, height and width. The grid presence input is computed inside the graph; the quality "
                    "calibration and flag threshold are not (apply them as jpegtrace.analysis.summarize does). "
                    "Needs the onnx package.")
    p.add_argument("--onnx", required=True, metavar="FILE", help="the .onnx file to write")
    add_model_options(p)
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    model = load_model(args)
    if model is None:
        return 2
    try:
        from ..nn.onnx import export_onnx

        export_onnx(model.to("cpu"), args.onnx)
    except ImportError as exc:
        error(f"export: needs the onnx package ({exc})")
        return 2
    except OSError as exc:
        error(f"{display(args.onnx)}: cannot write ({exc.strerror or exc})")
        return 1
    print(f"ONNX graph written to {display(args.onnx)}")
    return 0
