"""The network of Uchida, Tanaka and Okutomi (EI 2019), and its named variants.

Seven 3x3 convolutions with dilations 1, 2, 3, 4, 3, 2, 1 and 64 channels, ReLU after all
but the last. It maps an RGB image in [0, 1] to two maps of the same size: channel 0 is the
normalised quality map (0 means QF 100 or never compressed, 1 means QF 0) and channel 1 the
compression flag. The raw outputs are unclipped; callers clip them to [0, 1].

Variants, as timm names its models: :func:`qfnet_paper` is the paper's network as published
(uncentred input), :func:`qfnet` the same with a centred input, :func:`qfnet_presence` the shipped
one, which also reads the grid presence (:mod:`jpegtrace.grid.presence`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..grid.dct import block_scores, luma_tensor
from ..grid.presence import grid_presence
from .config import (EXTRA_INPUTS, FLAG_CHANNEL, PAPER_DILATIONS, QUALITY_CHANNEL,  # noqa: F401 (their home was here)
                     REMOVED_INPUTS, NetConfig, check_flag_threshold)

if TYPE_CHECKING:
    from .weights import QualityCalibration

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
        (:func:`jpegtrace.eval.calibration.calibrate_flag_threshold`), makes better masks. Saved with
        the weights. Whole-image verdicts always use a mean flag of 0.5, as in the paper (with
        :mod:`jpegtrace.grid`'s check beside it).
    quality_calibration : QualityCalibration, optional
        Applied to the clipped quality map by :func:`jpegtrace.analysis.summarize` (None: the
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
    """What the first convolution sees: the centred image, and the grid presence when ``config`` has it.

    ``image`` is ``(N, 3, H, W)``, 8-bit pixels divided by 255.
    """
    centred = image - config.input_offset
    if not config.grid_presence:
        return centred
    with torch.no_grad():  # a fixed function of the pixels: nothing to learn, no gradient
        luma = luma_tensor(torch.round(image.float() * 255.0))
        presence = grid_presence(luma, block_scores(luma)).to(centred.dtype)
    return torch.cat([centred, presence], dim=1)


def flops_per_pixel(config: NetConfig | None = None) -> int:
    """Floating-point operations (multiply and add counted apart) of one output pixel."""
    config = config or NetConfig()
    widths = [config.in_channels] + [config.width] * (len(config.dilations) - 1) + [2]
    convolutions = sum(2 * 9 * c_in * c_out for c_in, c_out in zip(widths[:-1], widths[1:]))
    # The grid presence's 63 DCT kernels of 8x8 (the scoring after them is not counted).
    return convolutions + (2 * 63 * 64 if config.extra_inputs else 0)


def qfnet_paper(**options) -> QFNet:
    """The paper's network: RGB in [0, 1] as it is (uncentred), 64 channels, dilations 1-2-3-4-3-2-1."""
    return QFNet(NetConfig(input_offset=0.0), **options)


def qfnet(**options) -> QFNet:
    """The paper's network with its input centred (minus 0.5), which trains out of the first plateau sooner."""
    return QFNet(NetConfig(), **options)


def qfnet_presence(**options) -> QFNet:
    """The shipped variant: :func:`qfnet` that also reads the grid presence as a fourth input channel."""
    return QFNet(NetConfig(grid_presence=True), **options)


#: Named variants, as ``create_model(name)`` takes them.
VARIANTS = {"qfnet_paper": qfnet_paper, "qfnet": qfnet, "qfnet_presence": qfnet_presence}


def create_model(name: str, **options) -> QFNet:
    """A freshly initialised network of a named variant (see :data:`VARIANTS`)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown model {name!r} (one of {', '.join(VARIANTS)})")
    return VARIANTS[name](**options)
