"""The network of Uchida, Tanaka and Okutomi (EI 2019) and safe loading of its weights.

Seven 3x3 convolutions with dilations 1, 2, 3, 4, 3, 2, 1 and 64 channels, ReLU after all
but the last. It maps an RGB image in [0, 1] to two maps of the same size: channel 0 is the
normalised quality map (0 means QF 100 or never compressed, 1 means QF 0) and channel 1 the
compression flag. The raw outputs are unclipped; callers clip them to [0, 1].
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ModelError
from .grid import (FEATURE_CONTEXT, PRESENCE_CONTEXT, WIDE_PRESENCE_CONTEXT, block_scores, grid_feature,
                   grid_presence, luma_tensor, wide_grid_presence)

PAPER_DILATIONS = (1, 2, 3, 4, 3, 2, 1)
#: The input channels a network may have after RGB, in their order (NetConfig's flags of the same names).
EXTRA_INPUTS = ("grid_feature", "grid_presence", "wide_grid_presence")
QUALITY_CHANNEL = 0
FLAG_CHANNEL = 1


@dataclass(frozen=True)
class NetConfig:
    """Shape of a :class:`QFNet`; stored beside the weights so a file describes its own network.

    Parameters
    ----------
    width : int
        Channels of every hidden convolution (paper: 64).
    dilations : tuple of int
        Dilation of each 3x3 convolution, one per layer (paper: 1, 2, 3, 4, 3, 2, 1).
    input_offset : float
        Subtracted from the [0, 1] input before the first convolution. Centring the input
        lets training leave the trivial "predict the label mean" plateau sooner; 0 gives the
        paper's uncentred input.
    grid_feature : bool
        Feed the network a fourth input channel besides RGB: the per-pixel JPEG grid evidence of
        :func:`jpegtrace.grid.grid_feature`, fixed (not learned), computed from the pixels. It
        gives the flag the evidence of QF 97-100 JPEGs, whose pixels differ from the source by
        about one grey level (a network fine-tuned with it found most grayscale ones on val, but
        not 4:4:4 ones at QF 99-100; see the README), and costs about 17 % more time
        (``benchmarks/bench_grid_feature.py``). False gives the paper's network.
    grid_presence : bool
        A further input channel after those: :func:`jpegtrace.grid.grid_presence`, whether a
        block grid covers each pixel (from a lattice of 25 blocks, every pixel under the grid
        alike), also fixed. False gives the paper's network.
    wide_grid_presence : bool
        A further input channel after those: :func:`jpegtrace.grid.wide_grid_presence`, the same
        from a lattice of 169 blocks, which still finds the grid of QF 97-98 4:4:4 JPEGs whose
        pixels are mostly clipped, at the price of reaching about 50 pixels past a JPEG region.
        False gives the paper's network.
    """

    width: int = 64
    dilations: tuple[int, ...] = PAPER_DILATIONS
    input_offset: float = 0.5
    grid_feature: bool = False
    grid_presence: bool = False
    wide_grid_presence: bool = False

    @property
    def extra_inputs(self) -> tuple[str, ...]:
        """Names of the input channels after RGB, in order."""
        return tuple(name for name in EXTRA_INPUTS if getattr(self, name))

    @property
    def in_channels(self) -> int:
        """Channels the first convolution sees: RGB and the extra inputs that are on."""
        return 3 + len(self.extra_inputs)

    @property
    def input_context(self) -> tuple[int, int]:
        """Pixels before and after a pixel that its extra inputs depend on ((0, 0) without them)."""
        contexts = [FEATURE_CONTEXT if self.grid_feature else (0, 0),
                    PRESENCE_CONTEXT if self.grid_presence else (0, 0),
                    WIDE_PRESENCE_CONTEXT if self.wide_grid_presence else (0, 0)]
        return max(c[0] for c in contexts), max(c[1] for c in contexts)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "NetConfig":
        raw = json.loads(text)
        flags = {}
        for name in EXTRA_INPUTS:
            flags[name] = raw.get(name, False)  # files from before an input existed lack it
            if not isinstance(flags[name], bool):
                raise ValueError(f"{name} must be true or false, got {flags[name]!r}")
        return cls(width=int(raw["width"]), dilations=tuple(int(d) for d in raw["dilations"]),
                   input_offset=float(raw["input_offset"]), **flags)


@dataclass(frozen=True)
class QualityCalibration:
    """A monotone piecewise-linear map of the normalised quality map, fitted on training images.

    The network is trained on pixels with a squared error, so each pixel's quality is a mean over
    the QFs its receptive field could come from, and a whole image's mean inherits that pull (on the
    train images the paper's network shipped until 2026-12-01 put QF 40 JPEGs at about 42 and
    QF 95 ones at 94). Mapping
    every clipped pixel through a curve chosen so that image means land on the true QFs
    (:func:`jpegtrace.experiments.fit_quality_calibration`) removes that bias and keeps the
    paper's summary: the estimated QF of an image is still the mean of its quality map.

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


class QFNet(nn.Module):
    """Fully convolutional JPEG quality and compression-flag estimator.

    Parameters
    ----------
    config : NetConfig, optional
        Network shape; the paper's values by default.
    flag_threshold : float
        Flag above which a pixel is called JPEG-compressed in a localisation mask. The flag map
        is a posterior mean under the share of compressed pixels in training (about three in
        four for the shipped model), so for finding a pasted region in a mostly clean image a
        higher threshold, calibrated on training collages
        (:func:`jpegtrace.experiments.calibrate_flag_threshold`), makes better masks. Saved with
        the weights. Whole-image verdicts always use a mean flag of 0.5, as in the paper (with
        :mod:`jpegtrace.grid`'s check beside it).
    quality_calibration : QualityCalibration, optional
        Applied to the clipped quality map by :func:`jpegtrace.inference.summarize` (None: the
        network's map as it is). Saved with the weights; ``forward`` does not apply it.

    Notes
    -----
    Zero "same" padding keeps the output the size of the input for any height and width.
    ``forward`` takes a float tensor ``(N, 3, H, W)`` in [0, 1] (8-bit pixels divided by 255)
    and returns ``(N, 2, H, W)``.
    """

    def __init__(self, config: NetConfig | None = None, flag_threshold: float = 0.5,
                 quality_calibration: QualityCalibration | None = None):
        super().__init__()
        self.config = config or NetConfig()
        self.flag_threshold = check_flag_threshold(flag_threshold)
        self.quality_calibration = quality_calibration
        layers: list[nn.Module] = []
        channels = self.config.in_channels
        last = len(self.config.dilations) - 1
        for i, dilation in enumerate(self.config.dilations):
            out_channels = 2 if i == last else self.config.width
            layers.append(nn.Conv2d(channels, out_channels, 3, padding=dilation, dilation=dilation))
            if i != last:
                layers.append(nn.ReLU(inplace=True))
            channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation for the ReLU layers, zero biases.

        PyTorch's default convolution initialisation shrinks the signal about 2.4x per layer,
        which over seven layers leaves the output almost independent of the input.
        """
        for layer in self.layers:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the input square that one output pixel sees."""
        return 1 + 2 * sum(self.config.dilations) + sum(self.config.input_context)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(network_input(image, self.config))


def network_input(image: torch.Tensor, config: NetConfig) -> torch.Tensor:
    """What the first convolution sees: the centred image, and the grid feature when ``config`` has it.

    ``image`` is ``(N, 3, H, W)``, 8-bit pixels divided by 255.
    """
    centred = image - config.input_offset
    if not config.extra_inputs:
        return centred
    with torch.no_grad():  # fixed functions of the pixels: nothing to learn, no gradient
        luma = luma_tensor(torch.round(image.float() * 255.0))
        scores = block_scores(luma)
        extra = {"grid_feature": grid_feature, "grid_presence": grid_presence,
                 "wide_grid_presence": wide_grid_presence}
        channels = [extra[name](luma, scores).to(centred.dtype) for name in config.extra_inputs]
    return torch.cat([centred, *channels], dim=1)


def check_flag_threshold(value: float) -> float:
    """``value`` as a float when it can be a flag threshold (strictly between 0 and 1); else ValueError."""
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"flag threshold {value} must lie strictly between 0 and 1")
    return value


class HighpassEmphasis(nn.Module):
    """Parametrization of a kernel: its zero-mean part times ``gain``, its mean times ``mean_gain``.

    A kernel ``w`` is its spatial mean (which responds to the local average of the image) plus a
    zero-mean part (which responds only to local detail). JPEG traces are detail at the level of
    single grey levels, dwarfed by image content in the raw input, and a network left to find
    them from a plain initialisation sits on the trivial loss for a long time. Scaling the
    zero-mean part of the first layer's kernels amplifies detail in what the network sees and in
    the gradients, as a fixed high-pass input would, yet the effective kernel stays an ordinary
    3x3 kernel: exported weights are those of the paper's network, with no extra layer.
    Shrinking the mean part too (``mean_gain`` < 1) keeps the network's view of brightness,
    which it needs near black and white, from dominating early training.

    The kernels of the grid inputs (:attr:`NetConfig.grid_feature`, :attr:`NetConfig.grid_presence`),
    which carry no image brightness, are scaled whole by ``feature_gain``. Adam moves a raw weight
    by about its learning rate per step whatever its gradient, so a gain lets kernels that must grow
    from zero, as theirs do when a trained network is given them, grow that much faster.
    """

    def __init__(self, gain: float, mean_gain: float = 1.0, feature_gain: float = 1.0):
        super().__init__()
        self.gain = float(gain)
        self.mean_gain = float(mean_gain)
        if not feature_gain > 0:
            raise ValueError(f"feature_gain must be positive, got {feature_gain}")
        self.feature_gain = float(feature_gain)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        image, rest = weight[:, :3], weight[:, 3:]
        mean = image.mean(dim=(2, 3), keepdim=True)
        return torch.cat([self.mean_gain * mean + self.gain * (image - mean), self.feature_gain * rest], dim=1)

    def raw_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """Raw parameters whose parametrized kernel is ``weight`` (its mean part is lost when
        ``mean_gain`` is 0), to start training from trained weights.

        Not ``right_inverse``: torch would then apply it on registration, and a fresh network's
        first kernels would no longer start amplified.
        """
        image, rest = weight[:, :3], weight[:, 3:]
        mean = image.mean(dim=(2, 3), keepdim=True)
        scaled_mean = mean / self.mean_gain if self.mean_gain else torch.zeros_like(mean)
        return torch.cat([scaled_mean + (image - mean) / self.gain, rest / self.feature_gain], dim=1)


def emphasize_highpass_(model: QFNet, gain: float, mean_gain: float = 1.0, feature_gain: float = 1.0) -> QFNet:
    """Reparametrize the first convolution of ``model`` with :class:`HighpassEmphasis` (in place)."""
    from torch.nn.utils import parametrize

    if gain != 1.0 or mean_gain != 1.0 or feature_gain != 1.0:
        parametrize.register_parametrization(model.layers[0], "weight",
                                             HighpassEmphasis(gain, mean_gain, feature_gain))
    return model


def plain_state_dict(model: QFNet) -> dict[str, torch.Tensor]:
    """The effective weights of ``model`` under the keys of a plain :class:`QFNet`.

    Parametrized kernels (see :func:`emphasize_highpass_`) are folded into ordinary ones.
    """
    state = {}
    for index, layer in enumerate(model.layers):
        if isinstance(layer, nn.Conv2d):
            state[f"layers.{index}.weight"] = layer.weight.detach()
            state[f"layers.{index}.bias"] = layer.bias.detach()
    return state


def average_models(models: Sequence[QFNet]) -> QFNet:
    """A plain network whose weights are the mean of ``models``' (checkpoint averaging).

    Late checkpoints of one run, taken while the learning rate is small, lie in one basin of
    the loss; their mean usually scores better and moves less from one checkpoint to the
    next than any of them. All models must share one :class:`NetConfig`; the result takes
    the first one's flag threshold, and no quality calibration (one fitted to other weights
    does not fit the mean).
    """
    if not models:
        raise ValueError("no models to average")
    config = models[0].config
    if any(m.config != config for m in models):
        raise ValueError("models of different shapes cannot be averaged")
    states = [plain_state_dict(m) for m in models]
    averaged = QFNet(config, models[0].flag_threshold)
    averaged.load_state_dict({k: torch.stack([s[k].float() for s in states]).mean(dim=0) for k in states[0]})
    return averaged.eval()


def flops_per_pixel(config: NetConfig | None = None) -> int:
    """Floating-point operations (multiply and add counted apart) of one output pixel."""
    config = config or NetConfig()
    widths = [config.in_channels] + [config.width] * (len(config.dilations) - 1) + [2]
    convolutions = sum(2 * 9 * c_in * c_out for c_in, c_out in zip(widths[:-1], widths[1:]))
    # The extra inputs' 63 DCT kernels of 8x8, shared (the scoring after them is not counted).
    return convolutions + (2 * 63 * 64 if config.extra_inputs else 0)


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
    from safetensors.torch import save_file

    from .outputs import atomic_path

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


def load_weights(path: str | Path | None = None) -> QFNet:
    """Load a :class:`QFNet` from a safetensors file (the shipped model when ``path`` is None).

    Only safetensors is read, so loading never runs pickled code. The file must hold
    exactly the tensors of the network its metadata describes (the paper's network when it
    has none), with the right shapes, floating-point types and finite values; anything else
    is refused before a network is built.

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
        with safe_open(str(path), framework="pt") as f:
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
            for key, shape in expected.items():
                found = tuple(f.get_slice(key).get_shape())
                if found != shape:
                    raise ModelError(path, f"tensor {key!r} has shape {found}, expected {shape}")
            tensors = {k: f.get_tensor(k) for k in keys}
    except ModelError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, KeyError, OverflowError) as exc:
        if head[:2] == b"PK" or head[:1] == b"\x80":  # torch.save's zip or a bare pickle
            raise ModelError(path, "a pickled PyTorch file, not safetensors: jpegtrace never unpickles "
                                   "weights (convert it with jpegtrace.save_weights)") from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(path, f"not a readable safetensors file, or truncated ({reason})") from None
    for key, tensor in tensors.items():
        if not tensor.is_floating_point():
            raise ModelError(path, f"tensor {key!r} has dtype {tensor.dtype}, expected a floating-point type")
        if not torch.isfinite(tensor).all():
            raise ModelError(path, f"tensor {key!r} holds NaN or infinite values")
    model = QFNet(config, flag_threshold, calibration)
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    model.eval()
    return model
