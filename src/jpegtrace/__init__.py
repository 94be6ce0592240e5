"""jpegtrace: find JPEG compression in an image from its pixels alone, pixel by pixel.

The main entry point is :func:`analyze`; see the README for the command-line tool.

The names below are imported on first use (PEP 562), so that ``import jpegtrace`` and ``jpegtrace --help``
do not load torch.
"""

from ._lazy import lazy_exports

#: Public name -> the module that defines it.
_EXPORTS = {
    "Analysis": "analysis", "analyze": "analysis", "load_model": "analysis", "predict_maps": "analysis",
    "ImageReadError": "errors", "JpegTraceError": "errors", "ModelError": "errors",
    "GridEvidence": "grid.check", "find_jpeg_grid": "grid.check",
    "read_image": "io", "jpeg_compress": "jpeg",
    "NetConfig": "nn.qfnet", "QFNet": "nn.qfnet", "load_weights": "nn.weights", "save_weights": "nn.weights",
    "TableEstimate": "tables", "estimate_luma_table": "tables",
}

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
