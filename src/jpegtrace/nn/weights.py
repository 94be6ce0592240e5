"""Weights files: safetensors I/O with the network's description, flag threshold and quality calibration.

:func:`read_weights` reads a file into numpy arrays (:class:`NetworkWeights`) without importing torch,
for the runtimes that need none (OpenVINO); :func:`load_weights` builds the torch :class:`QFNet` from
the same read, and :func:`save_weights` writes one.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelError
from .config import NetConfig, check_flag_threshold

if TYPE_CHECKING:  # torch is imported where a torch network is built or written, not to read a file
    import torch

    from .qfnet import QFNet


#: Steepest stretch the quality calibration may have (QF out per QF in). Fitted for medians without a
#: bound (2026-12-08), the map rose from QF 100 to 95.6 between raw QF 98 and 97, a slope of 4.4: every
#: pixel's difference there came out 4.4 times larger, a quality map with a cliff at QF 96-98, and bf16
#: pixels up to 5.8 QF from fp32's (10 val images at QF 95, 98 and as they are; tolerance 2). The
#: calibration fitted for means, whose steepest stretch was 1.57, kept bf16 within 1.56 QF a pixel.
MAX_CALIBRATION_SLOPE = 1.6


@dataclass(frozen=True)
class QualityCalibration:
    """A monotone piecewise-linear map of the normalised quality map, fitted on training images.

    The network is trained on pixels with a squared error, so each pixel's quality is a mean over
    the QFs its receptive field could come from, and a whole image's mean inherits that pull (on the
    train images the paper's network shipped until 2026-12-01 put QF 40 JPEGs at about 42 and
    QF 95 ones at 94). Mapping
    every clipped pixel through a curve chosen so that image means land on the true QFs
    (:func:`jpegtrace.eval.calibration.fit_quality_calibration`) removes that bias and keeps the
    summary's calibration: the estimated QF of an image is the evidence-weighted median of its quality
    map (until 2026-12-08 its mean, the paper's summary), and the map is fitted for that.

    Parameters
    ----------
    knots : tuple of float
        Increasing normalised qualities (0 = QF 100, 1 = QF 0), from 0 to 1.
    values : tuple of float
        What each knot maps to: non-decreasing, within [0, 1]. Between knots the map is linear.
    """

    knots: tuple[float, ...]
    values: tuple[float, ...]

    def __post_init__(self):
        knots = tuple(float(k) for k in self.knots)
        values = tuple(float(v) for v in self.values)
        object.__setattr__(self, "knots", knots)
        object.__setattr__(self, "values", values)
        if len(knots) < 2 or len(knots) != len(values):
            raise ValueError(f"need as many values as knots, and at least 2 (got {len(knots)} and {len(values)})")
        if not all(math.isfinite(v) for v in knots + values):
            raise ValueError("knots and values must be finite")
        if knots[0] != 0.0 or knots[-1] != 1.0 or any(b <= a for a, b in zip(knots, knots[1:])):
            raise ValueError("knots must increase from 0 to 1")
        if any(b < a for a, b in zip(values, values[1:])) or values[0] < 0.0 or values[-1] > 1.0:
            raise ValueError("values must be non-decreasing and within [0, 1]")

    def __call__(self, quality: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Map normalised quality values in [0, 1]; ``out`` (float32, like ``quality``) may be ``quality`` itself.

        Works a block of rows at a time, so mapping a large map in place needs no copy of it.
        """
        quality = np.asarray(quality)
        if out is None:
            out = np.empty(quality.shape, dtype=np.float32)
        if quality.ndim < 2:
            out[...] = np.interp(quality, self.knots, self.values)
            return out
        rows = max(1, (1 << 20) // max(1, quality[0].size))  # np.interp computes in float64
        for r in range(0, quality.shape[0], rows):
            out[r:r + rows] = np.interp(quality[r:r + rows], self.knots, self.values)
        return out

    def to_json(self) -> str:
        return json.dumps({"knots": list(self.knots), "values": list(self.values)})

    @classmethod
    def from_json(cls, text: str) -> "QualityCalibration":
        raw = json.loads(text)
        return cls(knots=tuple(raw["knots"]), values=tuple(raw["values"]))


def plain_state_dict(model: QFNet) -> dict[str, torch.Tensor]:
    """The effective weights of ``model`` under the keys of a plain :class:`QFNet`.

    Parametrized kernels (see :func:`emphasize_highpass_`) are folded into ordinary ones.
    """
    from torch import nn

    state = {}
    for index, layer in enumerate(model.layers):
        if isinstance(layer, nn.Conv2d):
            state[f"layers.{index}.weight"] = layer.weight.detach()
            state[f"layers.{index}.bias"] = layer.bias.detach()
    return state


def default_weights_path() -> Path:
    """Path of the model shipped inside the package."""
    return Path(str(resources.files("jpegtrace") / "weights" / "qfnet.safetensors"))


#: Metadata entries of a weights file that describe its network: :func:`save_weights` writes them
#: from the model alone.
MODEL_METADATA = ("format", "net_config", "flag_threshold", "quality_calibration")


def save_weights(model: QFNet, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` as a safetensors file that also records its :class:`NetConfig`, flag threshold
    and quality calibration.

    Training-time parametrizations are folded in, so the file always holds a plain network.
    ``metadata`` adds entries of its own (a step, ...); those that describe the network come from
    ``model`` whatever ``metadata`` says, so another file's metadata can be passed on as it is.
    """
    import torch
    from safetensors.torch import save_file

    from ..io import atomic_path

    path = Path(path)
    tensors = {k: v.to("cpu", torch.float32).contiguous() for k, v in plain_state_dict(model).items()}
    meta = {k: v for k, v in (metadata or {}).items() if k not in MODEL_METADATA}
    meta.update({"format": "jpegtrace-qfnet", "net_config": model.config.to_json(),
                 "flag_threshold": repr(model.flag_threshold)})
    if model.quality_calibration is not None:
        meta["quality_calibration"] = model.quality_calibration.to_json()
    with atomic_path(path) as tmp:  # never a half-written weights file
        save_file(tensors, str(tmp), metadata=meta)
    return path


#: Bounds on a :class:`NetConfig` read from a file, so a foreign file cannot make us build a huge network.
MAX_WIDTH = 4096
MAX_LAYERS = 64
MAX_DILATION = 256


def _validate_config(config: NetConfig) -> None:
    if not 1 <= config.width <= MAX_WIDTH:
        raise ValueError(f"width {config.width} is outside 1..{MAX_WIDTH}")
    if not 1 <= len(config.dilations) <= MAX_LAYERS:
        raise ValueError(f"{len(config.dilations)} layers is outside 1..{MAX_LAYERS}")
    if not all(1 <= d <= MAX_DILATION for d in config.dilations):
        raise ValueError(f"dilations {config.dilations} must lie in 1..{MAX_DILATION}")
    if not math.isfinite(config.input_offset):
        raise ValueError(f"input_offset {config.input_offset} is not finite")


def expected_shapes(config: NetConfig) -> dict[str, tuple[int, ...]]:
    """Name and shape of every tensor of a :class:`QFNet` with this config (nothing is allocated)."""
    shapes: dict[str, tuple[int, ...]] = {}
    channels, last = config.in_channels, len(config.dilations) - 1
    for i in range(len(config.dilations)):
        out_channels = 2 if i == last else config.width
        shapes[f"layers.{2 * i}.weight"] = (out_channels, channels, 3, 3)
        shapes[f"layers.{2 * i}.bias"] = (out_channels,)
        channels = out_channels
    return shapes


@dataclass(frozen=True, eq=False)
class NetworkWeights:
    """A weights file's network as float32 numpy arrays, read without torch (:func:`read_weights`).

    It is what the runtimes that need no torch run (:mod:`jpegtrace.nn.openvino`), and what
    :func:`load_weights` builds a :class:`~jpegtrace.nn.qfnet.QFNet` from. Like a ``QFNet``, it has
    ``config``, ``flag_threshold`` and ``quality_calibration``; two objects are never equal (a
    runner is cached per object, as per model).

    Attributes
    ----------
    config : NetConfig
    tensors : dict of str to ndarray of float32
        The network's weights and biases under the names of a plain ``QFNet``'s state dict
        (``layers.0.weight``, ``layers.0.bias``, ``layers.2.weight``, ...).
    flag_threshold : float
    quality_calibration : QualityCalibration or None
    """

    config: NetConfig
    tensors: dict[str, np.ndarray]
    flag_threshold: float = 0.5
    quality_calibration: QualityCalibration | None = None

    def convolutions(self) -> list[tuple[np.ndarray, np.ndarray, int, bool]]:
        """``(weight (out, in, 3, 3), bias (out,), dilation, followed by a ReLU)`` of each layer in order."""
        last = len(self.config.dilations) - 1
        return [(self.tensors[f"layers.{2 * i}.weight"], self.tensors[f"layers.{2 * i}.bias"], d, i != last)
                for i, d in enumerate(self.config.dilations)]

    @classmethod
    def of_model(cls, model: QFNet) -> NetworkWeights:
        """The weights of a torch ``model`` now (parametrized kernels folded in, as :func:`save_weights` writes them)."""
        tensors = {k: v.to("cpu").float().numpy().copy() for k, v in plain_state_dict(model).items()}
        return cls(model.config, tensors, model.flag_threshold, model.quality_calibration)

    def to_model(self) -> QFNet:
        """A torch :class:`~jpegtrace.nn.qfnet.QFNet` with these weights, in eval mode."""
        import torch

        from .qfnet import QFNet

        model = QFNet(self.config, self.flag_threshold, self.quality_calibration)
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in self.tensors.items()})
        return model.eval()


def read_weights(path: str | Path | None = None) -> NetworkWeights:
    """Read a safetensors weights file (the shipped model when ``path`` is None) into numpy arrays.

    Only safetensors is read, so reading never runs pickled code, and torch is not imported. The
    file must hold exactly the tensors of the network its metadata describes (the paper's network
    when it has none), with the right shapes, floating-point types and finite values; anything else
    is refused before anything is built.

    Raises
    ------
    ModelError
        When the file is missing, unreadable, truncated, not a safetensors file, or its
        tensors do not match (the message names the first missing, unexpected or mis-shaped
        tensor).
    """
    from safetensors import SafetensorError, safe_open

    path = Path(os.fsdecode(path)) if isinstance(path, bytes) else (
        Path(path) if path is not None else default_weights_path())
    if path.is_dir():
        raise ModelError(path, "is a directory, not a weights file")
    if not path.is_file():
        raise ModelError(path, "weights file not found")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ModelError(path, f"cannot read weights file: {exc.strerror or exc}") from None
    try:
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
            keys = list(f.keys())
            try:
                config = NetConfig.from_json(metadata["net_config"]) if "net_config" in metadata else NetConfig()
                _validate_config(config)
            except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
                raise ModelError(path, f"bad net_config metadata ({exc})") from None
            try:  # files from before the threshold was calibrated mean the paper's 0.5
                flag_threshold = check_flag_threshold(metadata.get("flag_threshold", 0.5))
            except ValueError as exc:
                raise ModelError(path, f"bad flag_threshold metadata ({exc})") from None
            try:  # files from before the calibration existed map nothing
                calibration = (QualityCalibration.from_json(metadata["quality_calibration"])
                               if "quality_calibration" in metadata else None)
            except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
                raise ModelError(path, f"bad quality_calibration metadata ({exc})") from None
            expected = expected_shapes(config)
            missing = sorted(set(expected) - set(keys))
            unexpected = sorted(set(keys) - set(expected))
            if missing:
                raise ModelError(path, f"missing tensor {missing[0]!r} ({len(missing)} missing in all; "
                                       "not jpegtrace QFNet weights of this shape?)")
            if unexpected:
                raise ModelError(path, f"unexpected tensor {unexpected[0]!r} (not a QFNet of this shape)")
            dtypes = {}
            for key, shape in expected.items():
                found = f.get_slice(key)
                if tuple(found.get_shape()) != shape:
                    raise ModelError(path, f"tensor {key!r} has shape {tuple(found.get_shape())}, expected {shape}")
                dtypes[key] = found.get_dtype()
            for key, dtype in dtypes.items():
                if dtype not in _FLOAT_DTYPES:
                    raise ModelError(path, f"tensor {key!r} has dtype {_TORCH_DTYPE_NAMES.get(dtype, dtype)}, "
                                           "expected a floating-point type")
            # numpy has no bfloat16: those tensors are widened from their bytes
            tensors = {k: _bf16_tensor(path, k) if dtypes[k] == "BF16" else f.get_tensor(k) for k in keys}
    except ModelError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, KeyError, OverflowError) as exc:
        if head[:2] == b"PK" or head[:1] == b"\x80":  # torch.save's zip or a bare pickle
            raise ModelError(path, "a pickled PyTorch file, not safetensors: jpegtrace never unpickles "
                                   "weights (convert it with jpegtrace.save_weights)") from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(path, f"not a readable safetensors file, or truncated ({reason})") from None
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    for key, tensor in tensors.items():
        if not np.isfinite(tensor).all():
            raise ModelError(path, f"tensor {key!r} holds NaN or infinite values")
    return NetworkWeights(config, tensors, flag_threshold, calibration)


#: safetensors' floating-point dtypes, and torch's names of the others (what the refusal names).
_FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
_TORCH_DTYPE_NAMES = {"I64": "torch.int64", "I32": "torch.int32", "I16": "torch.int16", "I8": "torch.int8",
                      "U8": "torch.uint8", "BOOL": "torch.bool"}


def _bf16_tensor(path: Path, key: str) -> np.ndarray:
    """A bfloat16 tensor of a safetensors file as float32: its bytes, each value the top half of a float32's."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        entry = json.loads(f.read(length))[key]
        start, end = entry["data_offsets"]
        f.seek(8 + length + start)
        raw = np.frombuffer(f.read(end - start), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


def load_weights(path: str | Path | None = None) -> QFNet:
    """Load a :class:`~jpegtrace.nn.qfnet.QFNet` from a safetensors file (the shipped model when ``path``
    is None): :func:`read_weights`, then the torch network of those weights, in eval mode.

    Raises
    ------
    ModelError
        As :func:`read_weights`.
    """
    return read_weights(path).to_model()
