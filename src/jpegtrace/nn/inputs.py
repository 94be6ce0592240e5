"""What the network's first convolution sees, computed with numpy: the input of the runtimes without torch.

:func:`network_input_array` gives the same values as :func:`jpegtrace.nn.qfnet.network_input` (the
centred pixels and, for the shipped network, the grid presence), up to float32 rounding in the
presence, without importing torch: OpenVINO (:mod:`jpegtrace.nn.openvino`) runs the convolutions on it.
"""

from __future__ import annotations

import numpy as np

from ..grid.dct import block_scores_array, luma_as_torch
from ..grid.presence import grid_presence_array
from .config import NetConfig


def network_input_array(image: np.ndarray, config: NetConfig) -> np.ndarray:
    """The network's input ``(1, C, H, W)`` float32 for a uint8 ``(H, W, 3)`` image.

    Parameters
    ----------
    image : ndarray of uint8, (H, W, 3)
    config : NetConfig
        Which inputs the network reads: RGB, centred by ``input_offset``, and the grid presence
        when ``config.grid_presence``.

    Returns
    -------
    ndarray of float32, (1, C, H, W)
        As :func:`jpegtrace.nn.qfnet.network_input` of the pixels divided by 255.

    Notes
    -----
    The grid presence of a pixel depends on the luma up to
    :data:`~jpegtrace.grid.presence.PRESENCE_CONTEXT` pixels around it, so a tile's input is only
    exact where the image given holds that much context (the runners pass it).
    """
    height, width = image.shape[:2]
    out = np.empty((1, config.in_channels, height, width), np.float32)
    np.divide(image.transpose(2, 0, 1), np.float32(255.0), out=out[0, :3], dtype=np.float32)
    out[0, :3] -= np.float32(config.input_offset)
    if config.grid_presence:
        # The decoder's rounded luma of the 8-bit values, as luma_tensor computes it from the same pixels.
        out[0, 3] = grid_presence_array(block_scores_array(luma_as_torch(image)))
    return out

