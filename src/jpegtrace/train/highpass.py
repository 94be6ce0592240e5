"""The training-time reparametrisation of the first layer: detail amplified, brightness damped."""

from __future__ import annotations

import torch
from torch import nn

from ..nn.qfnet import QFNet


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

    The kernels of the grid inputs (:attr:`NetConfig.grid_presence`),
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
