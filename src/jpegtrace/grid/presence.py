"""The shipped network's grid-presence input channel: whether a JPEG block grid covers each pixel.

Frozen: the shipped weights were trained on exactly these values. ``tests/test_grid.py`` pins them
on a fixed image; a change here (or in :func:`jpegtrace.grid.dct.block_scores`) means retraining.
"""

from __future__ import annotations

import numpy as np

from .dct import block_scores

#: Blocks on a side of the lattice whose scores :func:`grid_presence` sums: 5 x 5 = 25 blocks,
#: 40 x 40 pixels, give a QF-100 JPEG's grid about 5 standard errors over a textured area.
PRESENCE_LATTICE = 5
#: The value :func:`grid_presence` subtracts: about the median, over 96-pixel patches of the
#: train split of ``shared/data/clean``, of the strongest of 64 grid phases in a never-compressed
#: image (2.3, the expected maximum of 64 standard normal values being 2.4).
PRESENCE_NULL = 2.3
#: Divides the result, and the ceiling it is clipped to after that: never-compressed images
#: then give about 0 (within 0.25 almost everywhere), JPEGs at QF 98-100 1 to 4, and lower QFs,
#: whose grid the RGB channels show anyway, no more than 4.
PRESENCE_SCALE, PRESENCE_CEILING = 2.0, 4.0


def _presence_context(lattice_size: int) -> tuple[int, int]:
    # the window of phases reaches 8 before and 6 after (two 8-pixel windows), the lattice 8 pixels
    # per block either way, and the block 3 before and 4 after
    return 8 + 8 * (lattice_size // 2) + 3, 6 + 8 * (lattice_size // 2) + 4


#: Rows (and columns) of context :func:`grid_presence` needs before and after a pixel: 27 and 26.
PRESENCE_CONTEXT = _presence_context(PRESENCE_LATTICE)


def grid_presence(luma, scores=None):
    """Per-pixel evidence that a JPEG block grid covers the pixel, whatever its phase.

    The block scores (:func:`block_scores`) are summed over a lattice of 5 x 5 blocks 8 pixels
    apart, divided by 5 (about N(0, 1) without a grid). Each of the 64 grid phases in an 8 x 8
    window is compared with the window's mean, and the pixel takes the strongest phase of the
    8 x 8 window around it: every pixel under a JPEG's grid gets the evidence, so the network reads "a
    grid is here" directly instead of finding the one phase in 64 that carries it.

    Parameters
    ----------
    luma : torch.Tensor
        ``(N, 1, H, W)`` integer-valued luma in 0..255 (:func:`luma_tensor`), float32.
    scores : torch.Tensor, optional
        :func:`block_scores` of ``luma``, when already computed.

    Returns
    -------
    torch.Tensor
        ``(N, 1, H, W)`` float32, ``(strongest phase - PRESENCE_NULL) / PRESENCE_SCALE`` clipped
        to at most :data:`PRESENCE_CEILING`: about 0 in a never-compressed image, 1 or more in a
        JPEG at QF 98-100 over a textured area. A pixel's value depends on the luma from
        :data:`PRESENCE_CONTEXT` pixels before to after it.
    """
    if scores is None:
        scores = block_scores(luma)
    return _strongest_phase(scores, PRESENCE_LATTICE)


def _strongest_phase(scores, lattice_size: int):
    """The presence of :func:`grid_presence` from a lattice of ``lattice_size`` blocks on a side."""
    import torch
    import torch.nn.functional as F

    height, width = scores.shape[2:]
    k = lattice_size
    with torch.autocast(scores.device.type, enabled=False):
        lattice = F.conv2d(scores, torch.full((1, 1, k, k), 1.0 / k, device=scores.device),
                           padding=8 * (k // 2), dilation=8)
        # Windows covering -4..+3 around each pixel: its 64 phases, and their strongest.
        phase_mean = F.avg_pool2d(lattice, 8, stride=1, padding=4, count_include_pad=False)[:, :, :height, :width]
        strongest = _window_max(lattice - phase_mean, 8, before=4)
        return ((strongest - PRESENCE_NULL) / PRESENCE_SCALE).clamp_(max=PRESENCE_CEILING)


def _window_max(x, size: int, *, before: int):
    """Max of ``x`` ``(N, C, H, W)`` over the ``size x size`` window that starts ``before`` pixels above
    and left of each pixel (beyond the edges: nothing), same shape as ``x``.

    The same values as ``max_pool2d(x, size, stride=1, padding=before)`` cropped to ``(H, W)``, which is
    about 25x slower on the CPU: a max is exact, so one pass per shift and axis changes nothing.
    """
    import torch
    import torch.nn.functional as F

    height, width = x.shape[-2:]
    after = size - 1 - before
    padded = F.pad(x, (before, after, before, after), value=float("-inf"))
    rows = padded[..., :height, :]
    for shift in range(1, size):  # no out=: the ONNX export traces this
        rows = torch.maximum(rows, padded[..., shift:shift + height, :])
    out = rows[..., :width]
    for shift in range(1, size):
        out = torch.maximum(out, rows[..., shift:shift + width])
    return out


def grid_presence_array(scores: np.ndarray) -> np.ndarray:
    """:func:`grid_presence` of one image's block scores, with numpy instead of torch.

    Parameters
    ----------
    scores : ndarray of float32, (H, W)
        :func:`jpegtrace.grid.dct.block_scores_array` of the image's luma.

    Returns
    -------
    ndarray of float32, (H, W)
        The grid presence; the same values as the torch function's up to float32 rounding (the
        sums are taken in another order).
    """
    height, width = scores.shape
    k, step = PRESENCE_LATTICE, 8
    reach = step * (k // 2)
    # The lattice: the sum over k x k blocks 8 pixels apart, centred on each pixel (zeros beyond the
    # image), divided by k: about N(0, 1) without a grid.
    padded = np.pad(scores.astype(np.float32, copy=False), reach)
    rows = sum(padded[step * a:step * a + height] for a in range(k))
    lattice = sum(rows[:, step * b:step * b + width] for b in range(k)) * np.float32(1.0 / k)
    # Windows covering -4..+3 around each pixel (within the image): its 64 phases, their mean and strongest.
    lattice -= window_mean(lattice, 8, before=4)
    strongest = _window_max_array(lattice, 8, before=4)
    return np.minimum((strongest - np.float32(PRESENCE_NULL)) / np.float32(PRESENCE_SCALE),
                      np.float32(PRESENCE_CEILING))


def window_mean(x: np.ndarray, size: int, *, before: int) -> np.ndarray:
    """Mean of ``x`` over the part within the image of the ``size x size`` window that starts ``before``
    pixels above and left of each pixel (``avg_pool2d`` without counting the padding), float32."""
    after = size - before  # the window is [i - before, i + after)
    sums = np.pad(x.astype(np.float64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)  # sums[i, j]: x[:i, :j]
    height, width = x.shape
    top, bottom = np.clip(np.arange(height) - before, 0, height), np.clip(np.arange(height) + after, 0, height)
    left, right = np.clip(np.arange(width) - before, 0, width), np.clip(np.arange(width) + after, 0, width)
    total = (sums[bottom][:, right] - sums[top][:, right] - sums[bottom][:, left] + sums[top][:, left])
    return (total / np.outer(bottom - top, right - left)).astype(np.float32)


def _window_max_array(x: np.ndarray, size: int, *, before: int) -> np.ndarray:
    """:func:`_window_max` of one ``(H, W)`` array: one pass per shift and axis, the edges padded with -inf."""
    height, width = x.shape
    after = size - 1 - before
    padded = np.pad(x, ((before, after), (before, after)), constant_values=-np.inf)
    rows = padded[:height].copy()
    for shift in range(1, size):
        np.maximum(rows, padded[shift:shift + height], out=rows)
    out = rows[:, :width].copy()
    for shift in range(1, size):
        np.maximum(out, rows[:, shift:shift + width], out=out)
    return out
