"""The network of Uchida, Tanaka and Okutomi (EI 2019) and safe loading of its weights.

Seven 3x3 convolutions with dilations 1, 2, 3, 4, 3, 2, 1 and 64 channels, ReLU after all
but the last. It maps an RGB image in [0, 1] to two maps of the same size: channel 0 is the
normalised quality map (0 means QF 100 or never compressed, 1 means QF 0) and channel 1 the
compression flag. The raw outputs are unclipped; callers clip them to [0, 1].
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from .errors import ModelError

PAPER_DILATIONS = (1, 2, 3, 4, 3, 2, 1)
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
    """

    width: int = 64
    dilations: tuple[int, ...] = PAPER_DILATIONS
    input_offset: float = 0.5

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "NetConfig":
        raw = json.loads(text)
        return cls(width=int(raw["width"]), dilations=tuple(int(d) for d in raw["dilations"]),
                   input_offset=float(raw["input_offset"]))


class QFNet(nn.Module):
    """Fully convolutional JPEG quality and compression-flag estimator.

    Parameters
    ----------
    config : NetConfig, optional
        Network shape; the paper's values by default.

    Notes
    -----
    Zero "same" padding keeps the output the size of the input for any height and width.
    ``forward`` takes a float tensor ``(N, 3, H, W)`` in [0, 1] and returns ``(N, 2, H, W)``.
    """

    def __init__(self, config: NetConfig | None = None):
        super().__init__()
        self.config = config or NetConfig()
        layers: list[nn.Module] = []
        channels = 3
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
        return 1 + 2 * sum(self.config.dilations)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image - self.config.input_offset)


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
    """

    def __init__(self, gain: float, mean_gain: float = 1.0):
        super().__init__()
        self.gain = float(gain)
        self.mean_gain = float(mean_gain)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        mean = weight.mean(dim=(2, 3), keepdim=True)
        return self.mean_gain * mean + self.gain * (weight - mean)


def emphasize_highpass_(model: QFNet, gain: float, mean_gain: float = 1.0) -> QFNet:
    """Reparametrize the first convolution of ``model`` with :class:`HighpassEmphasis` (in place)."""
    from torch.nn.utils import parametrize

    if gain != 1.0 or mean_gain != 1.0:
        parametrize.register_parametrization(model.layers[0], "weight", HighpassEmphasis(gain, mean_gain))
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


def flops_per_pixel(config: NetConfig | None = None) -> int:
    """Floating-point operations (multiply and add counted apart) of one output pixel."""
    config = config or NetConfig()
    widths = [3] + [config.width] * (len(config.dilations) - 1) + [2]
    return sum(2 * 9 * c_in * c_out for c_in, c_out in zip(widths[:-1], widths[1:]))


def default_weights_path() -> Path:
    """Path of the model shipped inside the package."""
    return Path(str(resources.files("jpegtrace") / "weights" / "qfnet.safetensors"))


def save_weights(model: QFNet, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` as a safetensors file that also records its :class:`NetConfig`.

    Training-time parametrizations are folded in, so the file always holds a plain network.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.to("cpu", torch.float32).contiguous() for k, v in plain_state_dict(model).items()}
    meta = {"format": "jpegtrace-qfnet", "net_config": model.config.to_json(), **(metadata or {})}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_weights(path: str | Path | None = None) -> QFNet:
    """Load a :class:`QFNet` from a safetensors file (the shipped model when ``path`` is None).

    Only safetensors is read, so loading never runs pickled code. The file must hold
    exactly the tensors of the network it describes, with the right shapes.

    Raises
    ------
    ModelError
        When the file is missing, is not a safetensors file, or its tensors do not match.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise ModelError(path, "weights file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(path, f"not a readable safetensors file ({exc})") from None
    try:
        config = NetConfig.from_json(metadata["net_config"]) if "net_config" in metadata else NetConfig()
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelError(path, f"bad net_config metadata ({exc})") from None
    model = QFNet(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        raise ModelError(path, f"missing tensor {missing[0]!r} ({len(missing)} missing in all)")
    if unexpected:
        raise ModelError(path, f"unexpected tensor {unexpected[0]!r} (not a QFNet of this shape)")
    for key, tensor in expected.items():
        if tuple(tensors[key].shape) != tuple(tensor.shape):
            raise ModelError(path, f"tensor {key!r} has shape {tuple(tensors[key].shape)}, "
                                   f"expected {tuple(tensor.shape)}")
        if not torch.isfinite(tensors[key]).all():
            raise ModelError(path, f"tensor {key!r} holds NaN or infinite values")
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    model.eval()
    return model
