"""The grid's evidence for clipped blocks, joined to the flag map when the grid check finds a grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .check import GridEvidence
from .dct import _clipped, block_scores_array, luma
from .presence import window_mean

#: Blocks the decoder clipped at least this many pixels of (a channel at 0 or 255) take the
#: grid's evidence from around them: recomputing their luma from clipped RGB loses most of the
#: grid (a 4:4:4 JPEG at QF 97 gives such blocks a mean score of 0.3-0.6 against 1.7), so neither
#: the network nor the block itself can tell whether they were compressed.
CLIPPED_BLOCK_PIXELS = 8
#: Blocks on a side of each of the four quadrants of :func:`clipped_block_flag` (72 pixels).
QUADRANT_BLOCKS = 9
#: The quadrant evidence (the weakest of four) at which the flag of a clipped block starts to
#: rise and where it reaches 1: the 99.9th percentile and the maximum of the statistic over the
#: never-compressed train images of ``shared/data/clean`` read at two made-up grid offsets
#: (``scripts/clipped_block_null.py``).
QUADRANT_RAMP = (1.21, 1.99)
#: Blocks on a side of the neighbourhood and of the surroundings :attr:`BlockEvidence.local_deficit`
#: compares (40 and 136 pixels), and the deficit above which a clipped block is left unmarked: the
#: edge of a clean region pasted into a JPEG, whose quadrants all reach the JPEG, but whose own
#: neighbourhood scores well below them. Chosen on collages of the train images (2 against 3).
LOCAL_BLOCKS, SURROUNDING_BLOCKS, MAX_LOCAL_DEFICIT = 5, 17, 2.0
#: Image rows of blocks :func:`clipped_block_flag` scores at once.
_BAND_PIXELS = 1 << 22


def grid_block_origin(grid_offset: tuple[int, int]) -> tuple[int, int]:
    """First row and column of the first whole block of a grid at ``grid_offset`` (see :class:`GridEvidence`)."""
    return (8 - grid_offset[0]) % 8, (8 - grid_offset[1]) % 8


def clipped_block_flag(image: np.ndarray, grid: GridEvidence) -> np.ndarray:
    """A compression flag for the clipped blocks of an image whose JPEG grid was found.

    Where the decoder clipped pixels to 0 or 255 a block keeps little of its grid (see
    :data:`CLIPPED_BLOCK_PIXELS`), which is why the network misses near-lossless JPEGs of photos
    with many such blocks. Such a block takes the evidence of the grid around it: its four
    quadrants of 9 x 9 blocks (each with the block in its corner) are scored at the grid found
    by :func:`find_jpeg_grid`, each block's score less the mean over its 64 offsets (content
    that looks integer-like at every offset does not count), summed and divided by the square
    root of the blocks inside the image. The weakest quadrant decides, rising to 1 over
    :data:`QUADRANT_RAMP`: a clean block beside a convex JPEG region always has a quadrant
    away from it, so the evidence of the region does not spread into a clean photo around it.
    A never-compressed block inside a JPEG, whose quadrants all reach the JPEG, could be marked
    if it is clipped, unless its own neighbourhood scores well below its surroundings
    (:data:`MAX_LOCAL_DEFICIT`), as at the edge of a clean region; unclipped blocks are never
    marked.

    Parameters
    ----------
    image : ndarray of uint8
        ``(H, W, 3)`` RGB or ``(H, W)`` grayscale, as given to :func:`find_jpeg_grid`.
    grid : GridEvidence
        :func:`find_jpeg_grid` of ``image``.

    Returns
    -------
    ndarray of float32, (H // 8, W // 8) at most
        The flag of the whole blocks of the grid, block ``(i, j)`` covering rows ``oy + 8 i``
        to ``oy + 8 i + 7`` and the same for columns, ``(oy, ox)`` being
        :func:`grid_block_origin` of the grid's offset; all 0 when the grid was not found.
    """
    oy, ox, rows, cols = _whole_blocks(image, grid.grid_offset)
    if not grid.found or rows == 0 or cols == 0:
        return np.zeros((rows, cols), np.float32)
    clipped = _clipped_pixels_per_block(image, oy, ox, rows, cols)
    # Most images have no block this clipped: they skip the block scores, the costly part.
    if not (clipped >= CLIPPED_BLOCK_PIXELS).any():
        return np.zeros((rows, cols), np.float32)
    evidence = _block_evidence(image, oy, ox, clipped)
    low, high = QUADRANT_RAMP
    flag = np.clip((evidence.weakest_quadrant - low) / (high - low), 0.0, 1.0)
    marked = (evidence.clipped_pixels >= CLIPPED_BLOCK_PIXELS) & (evidence.local_deficit <= MAX_LOCAL_DEFICIT)
    return (flag * marked).astype(np.float32)


@dataclass(frozen=True)
class BlockEvidence:
    """Per-block statistics of :func:`block_evidence`, arrays of shape (rows, cols) of whole blocks.

    Attributes
    ----------
    weakest_quadrant : ndarray of float64
        The weakest of the four quadrant sums of each block (about -0.9 in a never-compressed
        image, whose 99.9th percentile is the start of :data:`QUADRANT_RAMP`).
    local_deficit : ndarray of float64
        How far the mean score of the block's 5 x 5 neighbourhood lies below that of its 17 x 17
        surroundings, in standard errors (about 0 under a uniform grid, or none).
    clipped_pixels : ndarray of int64
        Pixels of each block with a channel at 0 or 255.
    """

    weakest_quadrant: np.ndarray
    local_deficit: np.ndarray
    clipped_pixels: np.ndarray


def block_evidence(image: np.ndarray, grid_offset: tuple[int, int]) -> BlockEvidence:
    """The statistics :func:`clipped_block_flag` reads, for every whole block of a grid at ``grid_offset``."""
    oy, ox, rows, cols = _whole_blocks(image, grid_offset)
    if rows == 0 or cols == 0:
        return BlockEvidence(np.zeros((rows, cols)), np.zeros((rows, cols)), np.zeros((rows, cols), np.int64))
    return _block_evidence(image, oy, ox, _clipped_pixels_per_block(image, oy, ox, rows, cols))


def _whole_blocks(image: np.ndarray, grid_offset: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(oy, ox, rows, cols)``: where the whole blocks of a grid at ``grid_offset`` start, and how many."""
    height, width = image.shape[:2]
    oy, ox = grid_block_origin(grid_offset)
    return oy, ox, max(0, (height - oy) // 8), max(0, (width - ox) // 8)


def _block_evidence(image: np.ndarray, oy: int, ox: int, clipped_pixels: np.ndarray) -> BlockEvidence:
    """:func:`block_evidence` of the blocks from ``(oy, ox)``, their clipped pixels already counted."""
    rows, cols = clipped_pixels.shape
    scores = _phase_contrast_blocks(image, oy, ox, rows, cols)
    inside = np.ones((rows, cols))
    k = QUADRANT_BLOCKS
    weakest = np.full((rows, cols), np.inf)
    for axes in ((), (0,), (1,), (0, 1)):
        # Each quadrant ends at its block: flipping puts every corner at the bottom right.
        sums = np.flip(_trailing_box_sums(np.flip(scores, axes), k), axes)
        counts = np.flip(_trailing_box_sums(np.flip(inside, axes), k), axes)
        np.minimum(weakest, sums / np.sqrt(counts), out=weakest)
    (local, n_local), (surrounding, n_surrounding) = (
        (_centred_box_sums(scores, k), _centred_box_sums(inside, k)) for k in (LOCAL_BLOCKS, SURROUNDING_BLOCKS))
    deficit = (surrounding / n_surrounding - local / n_local) / np.sqrt(1 / n_local + 1 / n_surrounding)
    return BlockEvidence(weakest, deficit, clipped_pixels)


def _centred_box_sums(values: np.ndarray, k: int) -> np.ndarray:
    """Sum over the ``k`` x ``k`` box (``k`` odd) of ``values`` centred on each element (zeros outside)."""
    r = k // 2
    return _trailing_box_sums(np.pad(values, ((0, r), (0, r))), k)[r:, r:]


def _trailing_box_sums(values: np.ndarray, k: int) -> np.ndarray:
    """Sum over the ``k`` x ``k`` box of ``values`` that ends at each element (zeros outside)."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    table[1:, 1:] = values.cumsum(0).cumsum(1)
    r, c = np.arange(1, values.shape[0] + 1), np.arange(1, values.shape[1] + 1)
    r0, c0 = np.maximum(r - k, 0), np.maximum(c - k, 0)
    return table[r][:, c] - table[r0][:, c] - table[r][:, c0] + table[r0][:, c0]


def _clipped_pixels_per_block(image: np.ndarray, oy: int, ox: int, rows: int, cols: int) -> np.ndarray:
    """Pixels with a channel at 0 or 255 in each whole block of the grid starting at ``(oy, ox)``."""
    counts = np.empty((rows, cols), np.int64)
    per_band = max(1, _BAND_PIXELS // (8 * image.shape[1]))
    for i0 in range(0, rows, per_band):
        i1 = min(rows, i0 + per_band)
        clipped = _clipped(image[oy + 8 * i0:oy + 8 * i1, ox:ox + 8 * cols])
        counts[i0:i1] = clipped.reshape(i1 - i0, 8, cols, 8).sum(axis=(1, 3))
    return counts


def _phase_contrast_blocks(image: np.ndarray, oy: int, ox: int, rows: int, cols: int):
    """Block scores of the whole blocks from ``(oy, ox)`` less their mean over 64 offsets."""
    height, width = image.shape[:2]
    scores = np.empty((rows, cols), np.float64)
    per_band = max(1, _BAND_PIXELS // (8 * width))
    # The score of block i sits at pixel row oy + 8 i + 3; its offset mean reaches 4 rows before
    # and 3 after, each of those scores 3 before and 4 after: 16 rows either side are plenty.
    margin = 16
    for i0 in range(0, rows, per_band):
        i1 = min(rows, i0 + per_band)
        a, b = max(0, oy + 8 * i0 - margin), min(height, oy + 8 * i1 + margin)
        z = block_scores_array(luma(image[a:b])[0])
        z -= window_mean(z, 8, before=4)
        scores[i0:i1] = z[oy + 8 * i0 + 3 - a:oy + 8 * i1 + 3 - a:8, ox + 3:ox + 3 + 8 * cols:8]
    return scores
