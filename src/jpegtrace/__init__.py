"""jpegtrace: find JPEG compression in an image from its pixels alone, pixel by pixel.

The main entry point is :func:`analyze`; see the README for the command-line tool.

The names below are imported on first use (PEP 562), so that ``import jpegtrace`` and ``jpegtrace --help``
do not load torch.
"""

import importlib

#: Public name -> the module that defines it.
_EXPORTS = {
    "Analysis": "analysis", "analyze": "analysis", "load_model": "analysis", "predict_maps": "analysis",
    "ImageReadError": "errors", "JpegTraceError": "errors", "ModelError": "errors",
    "GridEvidence": "grid.check", "find_jpeg_grid": "grid.check",
    "read_image": "io", "jpeg_compress": "jpeg",
    "NetConfig": "nn.qfnet", "QFNet": "nn.qfnet", "load_weights": "nn.weights", "save_weights": "nn.weights",
    "TableEstimate": "tables", "estimate_luma_table": "tables",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jpegtrace' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
