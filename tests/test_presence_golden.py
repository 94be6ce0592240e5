"""The shipped network's grid-presence input, pinned: a change here means retraining the shipped model.

The image is made with numpy alone (no JPEG library, whose versions may differ): the left half
rebuilt from integer DCT coefficients on an 8x8 grid, as a decoder does, the right half noise.
The pinned numbers were computed by the code that trained the shipped weights (commit 54c5315).
"""

import numpy as np
import torch

from jpegtrace.grid.dct import _dct_matrix, block_scores, luma_tensor
from jpegtrace.grid.presence import grid_presence

#: sum, max, mean over the grid half, mean over the noise half.
GOLDEN_SUMMARY = [11187.74719, 4.0, 3.30384, 0.08776]
#: presence[::19, ::23]
GOLDEN_SAMPLES = [[0.88452, 1.74595, -0.08323, -0.58127, -0.66075], [1.79943, 3.56639, 1.39647, -0.14645, -0.29529],
                  [1.82268, 3.86803, 2.07749, -0.19862, -0.19207], [2.05544, 3.88118, 2.27228, -0.09577, -0.28689],
                  [1.60397, 3.56161, 2.05619, -0.28966, -0.23077], [0.30355, 1.55108, 0.75299, -0.53012, -0.55118]]


def _golden_image() -> np.ndarray:
    rng = np.random.default_rng(2019)
    d = _dct_matrix()
    luma = rng.normal(128, 20, (96, 96))
    for by in range(12):
        for bx in range(6):  # the left half: blocks of integer coefficients, as a JPEG at a fine step
            coefficients = np.round(rng.laplace(0, 6, (8, 8)))
            coefficients[0, 0] = 8 * rng.uniform(80, 170)
            luma[8 * by:8 * by + 8, 8 * bx:8 * bx + 8] = d.T @ coefficients @ d
    gray = np.clip(np.round(luma), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _presence() -> np.ndarray:
    pixels = torch.from_numpy(_golden_image().copy()).permute(2, 0, 1)[None].float()
    luma = luma_tensor(pixels)
    return grid_presence(luma, block_scores(luma))[0, 0].numpy().astype(np.float64)


def test_grid_presence_is_pinned():
    presence = _presence()
    assert presence.shape == (96, 96)
    left, right = presence[16:-16, 8:40], presence[16:-16, 56:88]
    assert left.mean() > 1.0 > 0.25 > right.mean()  # the grid is seen where it is, and not elsewhere
    np.testing.assert_allclose([presence.sum(), presence.max(), left.mean(), right.mean()],
                               GOLDEN_SUMMARY, rtol=1e-7, atol=1e-4)  # the sum of 9,216 floats: its order varies by CPU
    np.testing.assert_allclose(presence[::19, ::23], GOLDEN_SAMPLES, rtol=0, atol=1e-4)


def test_the_numpy_grid_presence_keeps_the_pinned_values():
    """The runtimes without torch compute the presence with numpy (jpegtrace.nn.inputs): the same values."""
    from jpegtrace.grid.dct import block_scores_array, luma
    from jpegtrace.grid.presence import grid_presence_array

    presence = grid_presence_array(block_scores_array(luma(_golden_image())[0])).astype(np.float64)
    left, right = presence[16:-16, 8:40], presence[16:-16, 56:88]
    # numpy's BLAS sums the DCT in another order than torch, and in another again on an AMD EPYC than
    # on the Intel CPUs that pinned these (up to 3.3e-4 there); an error in the statistic moves them by 0.1
    np.testing.assert_allclose([presence.sum(), presence.max(), left.mean(), right.mean()],
                               GOLDEN_SUMMARY, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(presence[::19, ::23], GOLDEN_SAMPLES, rtol=0, atol=1e-3)
