"""Where the pixels can carry JPEG evidence at all: the evidence map beside the quality and flag maps.

JPEG leaves its traces in local detail: quantised DCT coefficients, block edges, ringing. A region
with no detail above the 8-bit rounding (a flat colour, a saturated area, a smooth ramp or
gradient) looks the same compressed or not, and whatever the network says there is a guess. The
evidence map marks such regions 0 and textured ones 1, so that the summary can weigh the maps by
it and say "no evidence" instead of guessing where too few pixels carry any.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .grid.dct import luma

#: Standard deviation (pixels) of the Gaussian whose residual measures local detail. A linear ramp
#: or a plane is its own blur, so only the 8-bit rounding (about 0.29 grey levels rms) is left of
#: it; a JPEG's block edges and ringing, 1 to 8 pixels wide, are kept.
DETAIL_SIGMA = 1.5
#: Side (pixels) of the window over which the residual's rms is taken: two JPEG blocks, so that a
#: block edge anywhere in the window counts.
WINDOW = 16
#: The rms detail (grey levels) at which evidence starts, and where it is full. The floor lies above
#: the rounding noise of any 8-bit smooth content (0.29 for a ramp, up to about 0.45 for a dithered
#: gradient); a JPEG's weakest traces at QF 97-100 (about one grey level in a fraction of the pixels)
#: start to count at the top (``scripts/evidence_null.py`` measures both on the train split).
EVIDENCE_RAMP = (0.6, 1.2)
#: Fewest share of pixels with evidence for the whole image to get a verdict and a QF.
MIN_EVIDENCE_SHARE = 0.05


#: Pixels of the image converted to luma at once by :func:`evidence_map`.
_LUMA_BAND_PIXELS = 1 << 16


def evidence_map(image: np.ndarray, *, sigma: float = DETAIL_SIGMA, window: int = WINDOW,
                 ramp: tuple[float, float] = EVIDENCE_RAMP) -> np.ndarray:
    """How much each pixel's neighbourhood can show of a JPEG, 0 (nothing: flat, saturated, smooth) to 1.

    Parameters
    ----------
    image : ndarray of uint8
        ``(H, W, 3)`` RGB or ``(H, W)`` grayscale.
    sigma : float
        Gaussian whose residual is the local detail (see :data:`DETAIL_SIGMA`).
    window : int
        Side of the window of the residual's rms (see :data:`WINDOW`).
    ramp : (float, float)
        rms detail in grey levels at which evidence is 0 and 1 (see :data:`EVIDENCE_RAMP`).

    Returns
    -------
    ndarray of float32, (H, W)

    Notes
    -----
    The detail is the luma (JFIF, as a decoder computes it) less its Gaussian blur; its rms over a
    ``window`` square is mapped linearly from ``ramp[0]`` (0) to ``ramp[1]`` (1). Saturated regions
    need no rule of their own: a channel stuck at 0 or 255 has no detail, and the luma of a region
    clipped in every channel is flat.

    References
    ----------
    .. [1] Uchida, Tanaka and Okutomi, "Pixelwise JPEG compression detection and quality factor
       estimation based on convolutional neural network", Electronic Imaging 2019: the network
       that this map qualifies.
    """
    # In place, two image-sized float32 arrays at most (as analyze's memory bound needs); luma
    # converts its input to float, so it gets a band of rows at a time.
    y = np.empty(image.shape[:2], np.float32)
    rows = max(1, _LUMA_BAND_PIXELS // max(1, image.shape[1] if image.ndim > 1 else 1))  # luma refuses 1-D
    for r in range(0, image.shape[0], rows):
        y[r:r + rows] = luma(image[r:r + rows])[0]
    detail = ndimage.gaussian_filter(y, sigma, mode="reflect")
    np.subtract(y, detail, out=detail)
    np.multiply(detail, detail, out=detail)
    rms = ndimage.uniform_filter(detail, size=window, mode="reflect", output=y)
    del detail
    np.sqrt(np.maximum(rms, 0.0, out=rms), out=rms)
    low, high = ramp
    rms -= low
    rms /= high - low
    return np.clip(rms, 0.0, 1.0, out=rms)
