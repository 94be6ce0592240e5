"""The network: :mod:`~jpegtrace.nn.qfnet` (QFNet and its named variants), :mod:`~jpegtrace.nn.weights`
(safetensors files with their metadata and quality calibration) and :mod:`~jpegtrace.nn.engine` (the
streaming runner)."""

from .qfnet import NetConfig, QFNet, create_model, qfnet, qfnet_paper, qfnet_presence
from .weights import QualityCalibration, load_weights, save_weights

__all__ = ["NetConfig", "QFNet", "QualityCalibration", "create_model", "load_weights", "qfnet", "qfnet_paper",
           "qfnet_presence", "save_weights"]
