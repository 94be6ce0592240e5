"""The whole-image JPEG grid check: is an 8x8 block grid of an earlier JPEG in the pixels?

The check scores each of the 64 possible grid offsets by how close the DCT coefficients of the
blocks at that offset lie to integers (see :mod:`jpegtrace.grid.dct`), and calls a grid found when
one offset stands far above the rest.

This catches what the network cannot: JPEGs at QF 97-100 (most of all 4:4:4 and grayscale ones,
whose pixels differ from the source by about one grey level) leave their grid in the coefficients
even where the flag map is unsure. It looks at the whole image, so it says nothing about where in
the image the compression is; the flag map does that.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .dct import _DCT_2D, CHUNK_BLOCKS, MIN_ABS_COEFFICIENT, _blas_threads, blas_on_one_thread, luma

#: Score above which a grid counts as found, chosen on the train split of ``shared/data/clean``:
#: its 169 never-compressed images score at most 4.6 (RGB and grayscale versions; median 2.4).
#: On the val split, JPEGs at QF 97-100 score 9.6 or more whatever the subsampling and grid
#: offset (see the model card in ``jpegtrace/weights/README.md``).
GRID_SCORE_THRESHOLD = 8.0
#: Blocks with a pixel at 0 or 255 (clipped by the decoder) or a pixel standard deviation at or
#: below this many grey levels (flat: all their AC coefficients are near zero, hence near
#: integers, compressed or not) are left out.
MIN_BLOCK_STD = 1.0
#: Blocks with at most this many grey levels are piecewise constant (3 x 3 cells of a 4x upscale or
#: of pixel art at most) and left out, as are repeated blocks: see :func:`_informative_blocks`.
MAX_PIECEWISE_LEVELS = 9
#: Image rows a row of blocks spans over its eight row offsets: 8 + 7.
BAND_ROWS = 15
#: Fewest coefficients at the best offset for the score to mean anything.
MIN_COEFFICIENTS = 256
#: Larger images (over about 0.26 MP) are checked on evenly spaced rows of blocks only, bounding
#: the cost: 4,096 blocks per offset already give a QF-98 JPEG a score of about 100.
DEFAULT_MAX_BLOCKS = 4096


@dataclass(frozen=True)
class GridEvidence:
    """Result of :func:`find_jpeg_grid`.

    Attributes
    ----------
    score : float
        How many standard errors the best grid offset's integer-closeness stands above the median
        of the other 63 offsets. Near 0 to 4 for never-compressed images.
    grid_offset : (int, int)
        ``(dy, dx)`` of the best offset: where pixel (0, 0) falls inside its 8x8 block, as in
        :func:`jpegtrace.jpeg.jpeg_compress` ((0, 0) for an uncropped JPEG).
    coefficients : int
        DCT coefficients the score at the best offset rests on.
    threshold : float
        Score above which :attr:`found` is true.
    method : {'coefficients', 'flat blocks'}
        How the grid was found: by the score, or (a coarse JPEG, whose score says nothing) by its
        flat blocks and an IJG table read at their offset (:mod:`jpegtrace.grid.coarse`).
    """

    score: float
    grid_offset: tuple[int, int]
    coefficients: int
    threshold: float = GRID_SCORE_THRESHOLD
    method: str = "coefficients"

    @property
    def found(self) -> bool:
        """True when the image carries a JPEG block grid."""
        return self.method == "flat blocks" or self.score > self.threshold


def _band_sums(y: np.ndarray, clipped: np.ndarray, block_rows: np.ndarray, height: int, sums: np.ndarray,
               counts: np.ndarray, seen: list[list[list[np.ndarray]]], pool: ThreadPoolExecutor | None = None) -> None:
    """Add, for each of the 64 offsets, sum(cos 2 pi c) and the count of used coefficients ``c``
    of the blocks whose first row is ``8 * b + row offset`` for ``b`` in ``block_rows``.

    ``y`` and ``clipped`` hold, per block row ``b``, image rows ``8 * b`` to ``8 * b + 14`` (the blocks
    of all eight row offsets; :data:`BAND_ROWS`), one after the other; ``height`` is the image's.
    ``seen[row][col]`` holds the hashes of the blocks already counted at that offset (repeats are
    left out, see :func:`_informative_blocks`), as a list of one sorted int64 array. With ``pool``
    the eight row offsets run on its threads: each touches only its own entries, in the same order,
    so the sums are the same as on one thread.
    """
    def row_offset(row: int) -> None:
        fits = 8 * block_rows + row + 7 < height  # block rows that fit at this offset
        starts = BAND_ROWS * np.flatnonzero(fits)[:, None] + row + np.arange(8)
        if len(starts) == 0:
            return
        for col in range(8):
            cols = (y.shape[1] - col) // 8
            if cols <= 0:
                continue
            window = np.s_[col:col + 8 * cols]
            blocks = y[starts.ravel(), window].reshape(len(starts), 8, cols, 8)
            unclipped = ~clipped[starts.ravel(), window].reshape(len(starts), 8, cols, 8).any(axis=(1, 3))
            if not unclipped.any():
                continue
            pixels = _informative_blocks(blocks.transpose(0, 2, 1, 3)[unclipped].reshape(-1, 64), seen[row][col])
            # One matrix product for all blocks; the level shift of JPEG only moves DC, left out.
            ac = (pixels @ _DCT_2D)[:, 1:]
            # The AC energy of an orthonormal DCT is 64 times the pixel variance of the block.
            ac = ac[np.einsum("ij,ij->i", ac, ac) > 64 * MIN_BLOCK_STD ** 2]
            ac = ac[np.abs(ac) > MIN_ABS_COEFFICIENT]
            distance = ac - np.rint(ac)  # to the nearest integer, exact in float32
            sums[row, col] += float(np.cos(np.float32(2 * np.pi) * distance).sum(dtype=np.float64))
            counts[row, col] += ac.size

    if pool is None:
        for row in range(8):
            row_offset(row)
    else:
        list(pool.map(row_offset, range(8)))


def _informative_blocks(pixels: np.ndarray, seen: list[np.ndarray]) -> np.ndarray:
    """The rows of ``pixels`` (blocks of 64 luma values) that can tell a grid from none: neither
    piecewise constant (at most :data:`MAX_PIECEWISE_LEVELS` grey levels) nor a repeat of another,
    in this call or of one whose hash is in ``seen[0]`` (a sorted int64 array, replaced by one that
    also holds the hashes of those kept: 8 bytes a block, where a set of Python ints took about 70).

    Notes
    -----
    The score treats coefficients as independent draws, which holds for photos. Pixel art,
    nearest-neighbour upscales and flat graphics make blocks of a few constant cells, whose
    coefficients are fixed multiples of integer steps; tiled patterns, checkerboards and text on a
    pitch of 8 or 16 pixels repeat the same block thousands of times. Either way a handful of
    coefficient values counts as thousands of draws, and an offset can score far above the rest
    with no JPEG. A JPEG's blocks (textured ones hold dozens of levels) are neither.
    """
    ordered = np.sort(pixels, axis=1)
    levels = 1 + np.count_nonzero(np.diff(ordered, axis=1), axis=1)
    pixels = pixels[levels > MAX_PIECEWISE_LEVELS]
    # A 64-bit hash of the block's integer levels (wrapping products: any fixed odd weights do).
    hashes = pixels.astype(np.int64) @ _HASH_WEIGHTS  # numpy's integer product: no (n, 64) temporary
    keep = np.zeros(len(pixels), dtype=bool)
    unique, first = np.unique(hashes, return_index=True)  # sorted, with the first of each in this call
    known = seen[0]
    at = np.searchsorted(known, unique)
    new = known[at.clip(max=known.size - 1)] != unique if known.size else np.ones(len(unique), dtype=bool)
    keep[first[new]] = True
    seen[0] = np.insert(known, at[new], unique[new])  # still sorted
    return pixels[keep]


_HASH_WEIGHTS = np.random.default_rng(0).integers(1, 2**62, size=64, dtype=np.int64) | 1


def find_jpeg_grid(image: np.ndarray, *, threshold: float = GRID_SCORE_THRESHOLD,
                   max_blocks: int = DEFAULT_MAX_BLOCKS, workers: int | None = None) -> GridEvidence:
    """Look for the 8x8 block grid of an earlier JPEG compression in the luma's DCT coefficients.

    Parameters
    ----------
    image : ndarray of uint8
        ``(H, W, 3)`` RGB or ``(H, W)`` grayscale, as decoded (no resampling since the JPEG).
    threshold : float
        Score above which the grid counts as found; the default keeps never-compressed photos
        well below it.
    max_blocks : int
        Bound on the blocks looked at per offset (evenly spaced rows of blocks in larger images).
    workers : int, optional
        Threads that share the 64 offsets (up to 8); by default as many as numpy's BLAS would use
        (so ``OMP_NUM_THREADS=1``, as in a Ray worker, means one). The score is the same either way.

    Returns
    -------
    GridEvidence
        Score 0 when fewer than a few hundred usable coefficients exist (tiny, flat or clipped
        images): no evidence either way.

    Notes
    -----
    Scaling, rotation or filtering after the JPEG erase the grid, as does heavy clipping. The
    score compares the best offset with the others, so content that looks integer-like at every
    offset (smooth synthetic gradients do) does not raise it.
    """
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        # checked here too: an image smaller than a block never reaches luma()
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    if max_blocks < 1:
        raise ValueError("max_blocks must be positive")
    height, width = image.shape[:2]
    block_rows = np.arange(0, (height - 8) // 8 + 1 if height >= 8 else 0)
    per_row = max(1, width // 8)
    step = max(1, -(-len(block_rows) * per_row // max_blocks))
    block_rows = block_rows[::step]  # evenly spaced rows of blocks in large images
    sums = np.zeros((8, 8))
    counts = np.zeros((8, 8), dtype=np.int64)
    seen = [[[np.empty(0, np.int64)] for _ in range(8)] for _ in range(8)]
    rows_per_chunk = max(1, CHUNK_BLOCKS // per_row)
    workers = min(8, _blas_threads()) if workers is None else workers
    if workers < 1:
        raise ValueError("workers must be positive")
    # BLAS on one thread: the same score whatever the core count; the cores share the row offsets instead.
    with blas_on_one_thread(), ThreadPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        for i in range(0, len(block_rows), rows_per_chunk):
            chunk = block_rows[i:i + rows_per_chunk]
            # Only the rows the chunk's blocks cover (not the rows skipped between them in a large image),
            # repeating the last row past the image's end (no block reads it).
            rows = np.minimum(8 * chunk[:, None] + np.arange(BAND_ROWS), height - 1).ravel()
            y, clipped = luma(image[rows])
            _band_sums(y, clipped, chunk, height, sums, counts, seen, pool)
    # Under no grid cos(2 pi c) has mean 0 and variance 1/2, so this is a z statistic per offset.
    z = np.divide(sums, np.sqrt(counts / 2), out=np.zeros((8, 8)), where=counts > 0)
    best = np.unravel_index(int(np.argmax(z)), z.shape)
    if counts[best] < MIN_COEFFICIENTS:
        return GridEvidence(0.0, (0, 0), int(counts[best]), threshold)
    score = float(z[best] - np.median(np.delete(z.ravel(), np.ravel_multi_index(best, z.shape))))
    offset = ((8 - int(best[0])) % 8, (8 - int(best[1])) % 8)
    return GridEvidence(score, offset, int(counts[best]), threshold)
