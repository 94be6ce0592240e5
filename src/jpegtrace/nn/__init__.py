"""The network: :mod:`~jpegtrace.nn.qfnet` (QFNet and its named variants), :mod:`~jpegtrace.nn.weights`
(safetensors files with their metadata and quality calibration) and :mod:`~jpegtrace.nn.engine` (the
streaming runner)."""

import importlib

#: Public name -> the submodule that defines it (imported on first use, PEP 562: importing one
#: submodule does not import the others, nor torch where they need it).
_EXPORTS = {
    "NetConfig": "qfnet", "QFNet": "qfnet", "QualityCalibration": "weights", "create_model": "qfnet",
    "load_weights": "weights", "qfnet": "qfnet", "qfnet_paper": "qfnet", "qfnet_presence": "qfnet",
    "save_weights": "weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
