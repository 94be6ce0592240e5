"""JPEG block-grid evidence from the DCT coefficients of the luma, a check beside the network.

A JPEG decoder rebuilds each 8x8 block of the luma from integer multiples of the quantisation
steps and rounds the result to 8-bit pixels. Taking the DCT of the same blocks again gives back
those integers up to the rounding, about 0.3 in standard deviation, whatever the quality factor;
over blocks that are not aligned to the JPEG grid, and in a never-compressed image, the
fractional parts of the coefficients are spread evenly. The check scores each of the 64 possible
grid offsets by how close the coefficients lie to integers, and calls a grid found when one
offset stands far above the rest.

This catches what the network cannot: JPEGs at QF 97-100 (most of all 4:4:4 and grayscale ones,
whose pixels differ from the source by about one grey level) leave their grid in the coefficients
even where the flag map is unsure. It looks at the whole image, so it says nothing about where in
the image the compression is; the flag map does that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Score above which a grid counts as found, chosen on the train split of ``shared/data/clean``:
#: its 169 never-compressed images score at most 4.6 (RGB and grayscale versions; median 2.4).
#: On the val split, JPEGs at QF 97-100 score 9.6 or more whatever the subsampling and grid
#: offset (see the model card in ``jpegtrace/weights/README.md``).
GRID_SCORE_THRESHOLD = 8.0
#: Blocks with a pixel at 0 or 255 (clipped by the decoder) or a pixel standard deviation at or
#: below this many grey levels (flat: all their AC coefficients are near zero, hence near
#: integers, compressed or not) are left out.
MIN_BLOCK_STD = 1.0
#: Coefficients at most this far from zero are left out for the same reason. An integer cut
#: keeps the statistic unbiased: a JPEG's coefficient n + e (rounding error e) near the cut is
#: kept for e > 0 as often as for e < 0, and cos(2 pi e) is even; a cut at 0.5 would keep only
#: zeros pushed past it by their rounding, which count against the grid.
MIN_ABS_COEFFICIENT = 1.0
#: Fewest coefficients at the best offset for the score to mean anything.
MIN_COEFFICIENTS = 256
#: Larger images (over about 0.26 MP) are checked on evenly spaced rows of blocks only, bounding
#: the cost: 4,096 blocks per offset already give a QF-98 JPEG a score of about 100.
DEFAULT_MAX_BLOCKS = 4096

_JFIF_LUMA = np.array([0.299, 0.587, 0.114])


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)
    matrix = np.sqrt(2 / 8) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / 16)
    matrix[0] /= np.sqrt(2)
    return matrix  # orthonormal DCT-II, the transform of JPEG


#: The 2-D DCT of a block flattened row by row: ``block.reshape(64) @ _DCT_2D``. float32 keeps the
#: coefficients within about 1e-3 of exact.
_DCT_2D = np.kron(_dct_matrix(), _dct_matrix()).T.astype(np.float32)
#: Blocks transformed at once: bounds the memory of the check, whatever the image size.
CHUNK_BLOCKS = 256


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
    """

    score: float
    grid_offset: tuple[int, int]
    coefficients: int
    threshold: float = GRID_SCORE_THRESHOLD

    @property
    def found(self) -> bool:
        """True when the image carries a JPEG block grid."""
        return self.score > self.threshold


def luma(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """JFIF luma of uint8 pixels, rounded to integers as a decoder's is, and where pixels are clipped.

    Parameters
    ----------
    image : ndarray of uint8
        ``(H, W, 3)`` RGB or ``(H, W)`` grayscale.

    Returns
    -------
    luma : ndarray of float32, (H, W)
    clipped : ndarray of bool, (H, W)
        Pixels with a channel at 0 or 255.
    """
    if image.ndim == 2:
        return image.astype(np.float32), _clipped(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    # Recomputing the luma from decoded RGB undoes the colour conversion exactly up to the RGB
    # rounding (about 0.2), so rounding recovers the decoder's integer luma almost everywhere.
    y = np.rint(image @ _JFIF_LUMA.astype(np.float32))
    return y, _clipped(image)


def _clipped(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels of an RGB or grayscale uint8 image with a channel at 0 or 255."""
    clipped = (image == 0) | (image == 255)
    return clipped.any(axis=2) if clipped.ndim == 3 else clipped


def _band_sums(y: np.ndarray, clipped: np.ndarray, block_rows: np.ndarray, sums: np.ndarray,
               counts: np.ndarray) -> None:
    """Add, for each of the 64 offsets, sum(cos 2 pi c) and the count of used coefficients ``c``
    of the blocks whose first row is ``8 * b + row offset`` for ``b`` in ``block_rows``.

    ``y`` and ``clipped`` hold image rows ``8 * block_rows[0]`` onwards, 7 rows more than the blocks need.
    """
    first = 8 * int(block_rows[0])
    for row in range(8):
        starts = 8 * block_rows[:, None] - first + row + np.arange(8)
        starts = starts[starts[:, -1] < y.shape[0]]  # block rows that fit at this offset
        if len(starts) == 0:
            continue
        for col in range(8):
            cols = (y.shape[1] - col) // 8
            if cols <= 0:
                continue
            window = np.s_[col:col + 8 * cols]
            blocks = y[starts.ravel(), window].reshape(len(starts), 8, cols, 8)
            unclipped = ~clipped[starts.ravel(), window].reshape(len(starts), 8, cols, 8).any(axis=(1, 3))
            if not unclipped.any():
                continue
            # One matrix product for all blocks; the level shift of JPEG only moves DC, left out.
            ac = (blocks.transpose(0, 2, 1, 3)[unclipped].reshape(-1, 64) @ _DCT_2D)[:, 1:]
            # The AC energy of an orthonormal DCT is 64 times the pixel variance of the block.
            ac = ac[np.einsum("ij,ij->i", ac, ac) > 64 * MIN_BLOCK_STD ** 2]
            ac = ac[np.abs(ac) > MIN_ABS_COEFFICIENT]
            distance = ac - np.rint(ac)  # to the nearest integer, exact in float32
            sums[row, col] += float(np.cos(np.float32(2 * np.pi) * distance).sum(dtype=np.float64))
            counts[row, col] += ac.size


def find_jpeg_grid(image: np.ndarray, threshold: float = GRID_SCORE_THRESHOLD,
                   max_blocks: int = DEFAULT_MAX_BLOCKS) -> GridEvidence:
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
    rows_per_chunk = max(1, CHUNK_BLOCKS // per_row)
    for i in range(0, len(block_rows), rows_per_chunk):
        chunk = block_rows[i:i + rows_per_chunk]
        band = np.s_[8 * int(chunk[0]):min(height, 8 * int(chunk[-1]) + 15)]
        y, clipped = luma(image[band])
        _band_sums(y, clipped, chunk, sums, counts)
    # Under no grid cos(2 pi c) has mean 0 and variance 1/2, so this is a z statistic per offset.
    z = np.divide(sums, np.sqrt(counts / 2), out=np.zeros((8, 8)), where=counts > 0)
    best = np.unravel_index(int(np.argmax(z)), z.shape)
    if counts[best] < MIN_COEFFICIENTS:
        return GridEvidence(0.0, (0, 0), int(counts[best]), threshold)
    score = float(z[best] - np.median(np.delete(z.ravel(), np.ravel_multi_index(best, z.shape))))
    offset = ((8 - int(best[0])) % 8, (8 - int(best[1])) % 8)
    return GridEvidence(score, offset, int(counts[best]), threshold)


# ------------------------------------------------------------------------------------------------
# The same evidence pixel by pixel, as an input channel of the network (NetConfig.grid_feature)
# ------------------------------------------------------------------------------------------------

#: Rows (and columns) of context the grid feature of a pixel needs before and after it: its
#: block reaches 3 before and 4 after, and the lattice average adds one block (8) either way.
FEATURE_CONTEXT = (11, 12)
#: Multiplies the lattice average: the grid points of a QF-100 JPEG then stand at about 5, and a
#: never-compressed image's values at about 0.6 in standard deviation. The first layer's kernels
#: that read the feature start at zero when a trained network is given it; Adam moves a weight by
#: about its learning rate per step whatever the scale of its input (those kernels reached a mean
#: size of 0.01 in 2,000 steps at scale 0.5 and at scale 2 alike), so a larger scale gives the
#: feature its say sooner.
FEATURE_SCALE = 2.0
#: Block positions transformed at once by :func:`grid_feature`: 63 coefficient maps of this many
#: pixels (4 MiB) stay in the CPU caches, which makes the feature about 3x faster than in one go.
FEATURE_CHUNK_PIXELS = 16 * 1024


def _ac_basis():
    import torch

    # The 63 AC basis images as convolution kernels: conv2d of the luma gives at each position the
    # DCT coefficients of the 8x8 block starting there.
    return torch.from_numpy(np.ascontiguousarray(_DCT_2D.T[1:].reshape(63, 1, 8, 8)))


def luma_tensor(pixels):
    """Rounded JFIF luma ``(N, 1, H, W)`` of 8-bit RGB values ``(N, 3, H, W)`` in a float tensor."""
    import torch

    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32, device=pixels.device)
    with torch.autocast(pixels.device.type, enabled=False):  # bfloat16 would not round to the right level
        return torch.round(torch.einsum("nchw,c->nhw", pixels.float(), weights))[:, None]


def grid_feature(luma, scores=None):
    """Per-pixel JPEG grid evidence: how close to integers the DCT coefficients of nearby blocks lie.

    At each pixel, a z statistic like :func:`find_jpeg_grid`'s for the one 8x8 block around it
    (rows and columns -3..+4), averaged with the blocks 8 pixels away in each direction (a 3x3
    lattice), so that the value stands out at the pixels of a JPEG's grid and nowhere else. A
    never-compressed image gives values near 0 everywhere; a JPEG, at any QF, a lattice of
    spikes one pixel in 64, about 5 at QF 100 (and more wherever many coefficients survive the
    quantisation). Blocks that leave the image count as 0.

    Parameters
    ----------
    luma : torch.Tensor
        ``(N, 1, H, W)`` integer-valued luma in 0..255 (:func:`luma_tensor`), float32.
    scores : torch.Tensor, optional
        :func:`block_scores` of ``luma``, when already computed.

    Returns
    -------
    torch.Tensor
        ``(N, 1, H, W)`` float32. A pixel's value depends on the luma from
        :data:`FEATURE_CONTEXT` pixels before to after it, so a strip of rows with that
        much context on either side gives the whole image's values.

    Notes
    -----
    The score of a coefficient at distance ``d`` from the nearest integer is ``1 - 12 d**2``
    (mean 0 and variance 4/5 when ``d`` is uniform, as off the grid), about twice as cheap as
    the ``cos(2 pi d)`` of :func:`find_jpeg_grid` and as discriminating. Rows of blocks are
    transformed a few at a time so that the 63 coefficient maps stay in the CPU caches.
    """
    import torch
    import torch.nn.functional as F

    if scores is None:
        scores = block_scores(luma)
    with torch.autocast(scores.device.type, enabled=False):
        lattice = torch.full((1, 1, 3, 3), FEATURE_SCALE / 9, device=scores.device)
        return F.conv2d(scores, lattice, padding=8, dilation=8)


def block_scores(luma):
    """z statistic of the 8x8 block around each pixel (rows and columns -3..+4): how close to
    integers its AC coefficients lie, the per-block score :func:`grid_feature` and
    :func:`grid_presence` build on.

    ``luma`` is ``(N, 1, H, W)`` as for :func:`grid_feature`; returns ``(N, 1, H, W)`` float32, 0
    where the block would leave the image. About N(0, 1) in a never-compressed image; in a
    JPEG, positive on its grid (about 2 at QF 100 in textured blocks, more at lower QFs).
    """
    import torch
    import torch.nn.functional as F

    n, _, height, width = luma.shape
    if height < 8 or width < 8:
        return luma.new_zeros((n, 1, height, width), dtype=torch.float32)
    basis = _ac_basis().to(luma.device)
    luma = luma.float()
    z = luma.new_empty((n, 1, height - 7, width - 7))
    rows = max(1, FEATURE_CHUNK_PIXELS // (n * width))
    with torch.autocast(luma.device.type, enabled=False):  # fractional parts need fp32
        for y0 in range(0, height - 7, rows):
            y1 = min(height - 7, y0 + rows)
            coefficients = F.conv2d(luma[:, :, y0:y1 + 7], basis)
            used = coefficients.abs() > MIN_ABS_COEFFICIENT
            squared = coefficients.sub_(torch.round(coefficients)).square_().masked_fill_(~used, 0.0)
            counts = used.sum(dim=1, keepdim=True, dtype=torch.float32)
            z[:, :, y0:y1] = (counts - 12 * squared.sum(dim=1, keepdim=True)) / torch.sqrt(
                counts.clamp_(min=1.0) * 0.8)
    return F.pad(z, (3, 4, 3, 4))  # the value of the block covering -3..+4 around each pixel


# ------------------------------------------------------------------------------------------------
# Whether a block grid covers a pixel, as a further input channel (NetConfig.grid_presence)
# ------------------------------------------------------------------------------------------------

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
    8 x 8 window around it. Unlike :func:`grid_feature`, whose evidence stands at one pixel in
    64, every pixel under a JPEG's grid gets it, and from 25 blocks instead of 9: the network
    reads "a grid is here" directly instead of finding the one phase in 64 that carries it.

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
    return _strongest_phase(scores, PRESENCE_LATTICE, over_blocks_inside=False)


#: Blocks on a side of the lattice of :func:`wide_grid_presence`: 13 x 13 = 169 blocks, 104 x 104
#: pixels, enough for the faint grids of QF 97-98 JPEGs whose pixels are mostly clipped.
WIDE_PRESENCE_LATTICE = 13
#: Context of :func:`wide_grid_presence`, as :data:`PRESENCE_CONTEXT` with the wider lattice.
WIDE_PRESENCE_CONTEXT = _presence_context(WIDE_PRESENCE_LATTICE)


def wide_grid_presence(luma, scores=None):
    """:func:`grid_presence` over a lattice of 13 x 13 blocks: fainter grids, coarser places.

    Where the decoder clipped pixels to 0 or 255 the luma recomputed from RGB is no longer the
    decoder's, and a block's score keeps little of its grid: in the val photos with the most
    clipped pixels, a 4:4:4 JPEG at QF 97 gives its clipped blocks a mean score of 0.3 to 0.6
    (1.7 in unclipped ones), too little for 25 blocks to stand above the strongest of 64 phases.
    169 blocks are. The lattice sum is divided by the square root of the number of its blocks
    that lie inside the image (about N(0, 1) without a grid, as in :func:`grid_presence`),
    because at this size most pixels of a small image have lattice blocks outside it. The
    evidence of a JPEG region reaches about 50 pixels beyond it, so the network reads this
    beside :func:`grid_presence`, not instead of it.

    Parameters and returns as for :func:`grid_presence`; a pixel's value depends on the luma from
    :data:`WIDE_PRESENCE_CONTEXT` pixels before to after it.
    """
    if scores is None:
        scores = block_scores(luma)
    return _strongest_phase(scores, WIDE_PRESENCE_LATTICE, over_blocks_inside=True)


def _strongest_phase(scores, lattice_size: int, over_blocks_inside: bool):
    """The presence of :func:`grid_presence` from a lattice of ``lattice_size`` blocks on a side.

    The lattice sum is divided by ``lattice_size`` or, with ``over_blocks_inside``, by the square
    root of the number of its blocks inside the image.
    """
    import torch
    import torch.nn.functional as F

    height, width = scores.shape[2:]
    k = lattice_size
    with torch.autocast(scores.device.type, enabled=False):
        if over_blocks_inside:
            ones = torch.ones((1, 1, k, k), device=scores.device)
            inside = F.pad(scores.new_ones((1, 1, max(0, height - 7), max(0, width - 7))), (3, 4, 3, 4))
            blocks = F.conv2d(inside, ones, padding=8 * (k // 2), dilation=8)
            lattice = F.conv2d(scores, ones, padding=8 * (k // 2), dilation=8) / blocks.clamp_(min=1.0).sqrt_()
        else:
            lattice = F.conv2d(scores, torch.full((1, 1, k, k), 1.0 / k, device=scores.device),
                               padding=8 * (k // 2), dilation=8)
        # Windows covering -4..+3 around each pixel: its 64 phases, and their strongest.
        phase_mean = F.avg_pool2d(lattice, 8, stride=1, padding=4, count_include_pad=False)[:, :, :height, :width]
        strongest = F.max_pool2d(lattice - phase_mean, 8, stride=1, padding=4)[:, :, :height, :width]
        return ((strongest - PRESENCE_NULL) / PRESENCE_SCALE).clamp_(max=PRESENCE_CEILING)


# ------------------------------------------------------------------------------------------------
# The grid's evidence for clipped blocks, joined to the flag map when the grid check finds a grid
# ------------------------------------------------------------------------------------------------

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
    import torch
    import torch.nn.functional as F

    height, width = image.shape[:2]
    scores = np.empty((rows, cols), np.float64)
    per_band = max(1, _BAND_PIXELS // (8 * width))
    # The score of block i sits at pixel row oy + 8 i + 3; its offset mean reaches 4 rows before
    # and 3 after, each of those scores 3 before and 4 after: 16 rows either side are plenty.
    margin = 16
    for i0 in range(0, rows, per_band):
        i1 = min(rows, i0 + per_band)
        a, b = max(0, oy + 8 * i0 - margin), min(height, oy + 8 * i1 + margin)
        z = block_scores(torch.from_numpy(luma(image[a:b])[0])[None, None])
        n, h = z.shape[2], z.shape[3]
        z = z - F.avg_pool2d(z, 8, stride=1, padding=4, count_include_pad=False)[:, :, :n, :h]
        z = z[0, 0].numpy()
        scores[i0:i1] = z[oy + 8 * i0 + 3 - a:oy + 8 * i1 + 3 - a:8, ox + 3:ox + 3 + 8 * cols:8]
    return scores
