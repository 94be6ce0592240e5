"""The grid of coarse JPEGs (QF 20 and below), which the coefficient check cannot see: flat blocks.

:func:`jpegtrace.grid.find_jpeg_grid` scores how close the AC coefficients lie to integers, in
textured blocks only. A coarse JPEG has few: quantisation leaves most blocks with their DC alone,
so that they decode flat, and the check scores 0 (on the corpus' val photos at QF 5, 15 of 20 had no
grid found). Such blocks are the grid's own signature: at the JPEG's offset a large share of the 8x8
blocks is flat, at any other offset a block straddles the edges between flat blocks and is not.
Never-compressed photos have few flat blocks, and as many at every offset.

:func:`find_coarse_grid` returns the offset where the share of flat blocks stands out. It is a
candidate only: the analysis calls it a grid when the quantisation table read at that offset
(:func:`jpegtrace.tables.estimate_luma_table`) is a coarse one, a scaled IJG table or large steps in a
smooth table's shape, which chance lattices of flat graphics, pixel art and upscales never are (their
flat blocks carry no coefficients to read).
"""

from __future__ import annotations

import numpy as np

from .dct import luma

#: A block is flat when its luma varies less than this (standard deviation, grey levels): a
#: DC-only block decodes to one luma value, give or take the rounding of the RGB it became.
FLAT_STD = 0.5
#: The share of flat blocks at the best offset must exceed the median of the other 63 by this much.
#: On 12 val photos: JPEGs at QF 5-20 by 0.10-0.45, never-compressed photos by at most 0.012.
MIN_FLAT_LEAD = 0.05
#: Fewest blocks at an offset for the shares to mean anything.
MIN_BLOCKS = 64
#: Block rows read at once (a band of 64 pixel rows).
BAND_BLOCK_ROWS = 8


def flat_block_shares(image: np.ndarray) -> np.ndarray:
    """``(8, 8)``: per block origin ``(dy, dx)`` (a block's first row and column), the share of the whole
    8x8 luma blocks that are flat.

    In integers (the decoder's rounded luma; a block's sums of values and squares are exact), one band
    of :data:`BAND_BLOCK_ROWS` block rows at a time: per band, the 8-row sums, then running sums along
    the row give every block's sums at once, so memory stays a band's whatever the image.
    """
    height, width = image.shape[:2]
    y = np.empty((height, width), np.uint8)  # the rounded luma, 0..255, computed a band at a time
    for r in range(0, height, 8 * BAND_BLOCK_ROWS):
        y[r:r + 8 * BAND_BLOCK_ROWS] = luma(image[r:r + 8 * BAND_BLOCK_ROWS])[0]
    flat = np.zeros((8, 8))
    total = np.zeros((8, 8))
    limit = int(64 * 64 * FLAT_STD ** 2)  # 64^2 variance = 64 sum(y^2) - sum(y)^2
    if width < 8:
        return flat
    for dy in range(8):
        rows = (height - dy) // 8
        for r0 in range(0, rows, BAND_BLOCK_ROWS):
            r1 = min(rows, r0 + BAND_BLOCK_ROWS)
            # int32 is exact: a block's sum of squares is at most 64 * 255^2, 64 times that under 2^31.
            band = y[dy + 8 * r0:dy + 8 * r1].astype(np.int32).reshape(r1 - r0, 8, width)
            sums = _running_8(band.sum(axis=1))
            squares = _running_8((band * band).sum(axis=1))
            for dx in range(8):
                s, q = sums[:, dx::8], squares[:, dx::8]
                flat[dy, dx] += np.count_nonzero(64 * q - s * s < limit)
                total[dy, dx] += s.size
    return np.divide(flat, total, out=np.zeros((8, 8)), where=total >= MIN_BLOCKS)


def _running_8(rows: np.ndarray) -> np.ndarray:
    """Sums of 8 consecutive columns, ``(n, W - 7)``."""
    running = np.cumsum(rows, axis=1)
    out = running[:, 7:].copy()
    out[:, 1:] -= running[:, :-8]
    return out


def find_coarse_grid(image: np.ndarray) -> tuple[int, int] | None:
    """The grid offset ``(dy, dx)`` (as :class:`jpegtrace.grid.GridEvidence`'s) where flat blocks stand
    out by :data:`MIN_FLAT_LEAD`, or None.

    Parameters
    ----------
    image : ndarray of uint8
        ``(H, W, 3)`` RGB or ``(H, W)`` grayscale.

    Notes
    -----
    A candidate, to be confirmed by the table read at it (see the module's notes). Images much
    larger than a megapixel are read on a centred crop of 1024 x 1024 pixels, which bounds the cost.
    """
    height, width = image.shape[:2]
    y0, x0 = max(0, (height - 1024) // 2) // 8 * 8, max(0, (width - 1024) // 2) // 8 * 8
    shares = flat_block_shares(image[y0:y0 + 1024, x0:x0 + 1024])
    best = int(np.argmax(shares))
    others = np.delete(shares.ravel(), best)
    if shares.flat[best] - np.median(others) < MIN_FLAT_LEAD:
        return None
    dy, dx = divmod(best, 8)
    # The offset of a grid is where pixel (0, 0) falls in its block; a block starting at (dy, dx) puts
    # pixel (0, 0) at ((8 - dy) % 8, (8 - dx) % 8) of its own.
    return (8 - dy) % 8, (8 - dx) % 8
