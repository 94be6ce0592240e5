"""jpegtrace: find JPEG compression in an image from its pixels alone, pixel by pixel.

The main entry point is :func:`analyze`; see the README for the command-line tool.
"""

from .analysis import Analysis, analyze, load_model, predict_maps
from .errors import ImageReadError, JpegTraceError, ModelError
from .grid.check import GridEvidence, find_jpeg_grid
from .io import read_image
from .jpeg import jpeg_compress
from .nn.qfnet import NetConfig, QFNet
from .nn.weights import load_weights, save_weights

__all__ = [
    "Analysis", "GridEvidence", "ImageReadError", "JpegTraceError", "ModelError", "NetConfig", "QFNet",
    "analyze", "find_jpeg_grid", "jpeg_compress", "load_model", "load_weights", "predict_maps", "read_image", "save_weights",
]
__version__ = "0.1.0"
