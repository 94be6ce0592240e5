"""The network: :mod:`~jpegtrace.nn.qfnet` (QFNet and its named variants), :mod:`~jpegtrace.nn.weights`
(safetensors files with their metadata and quality calibration) and :mod:`~jpegtrace.nn.engine` (the
streaming runner)."""

from .._lazy import lazy_exports

#: Public name -> the submodule that defines it (imported on first use, PEP 562: importing one
#: submodule does not import the others, nor torch where they need it).
_EXPORTS = {
    "NetConfig": "qfnet", "QFNet": "qfnet", "QualityCalibration": "weights", "create_model": "qfnet",
    "load_weights": "weights", "qfnet_paper": "qfnet", "qfnet_presence": "qfnet",
    "save_weights": "weights",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
