"""Where the pixels can carry JPEG evidence at all: the evidence map beside the quality and flag maps.

JPEG leaves its traces in local detail: quantised DCT coefficients, block edges, ringing. A region
with no detail above the 8-bit rounding (a flat colour, a saturated area, a smooth ramp or
gradient) looks the same compressed or not, and whatever the network says there is a guess. The
evidence map marks such regions 0 and textured ones 1, so that the summary can weigh the maps by
it and say "no evidence" instead of guessing where too few pixels carry any.
"""

from __future__ import annotations

import numpy as np

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
#: Pixels of the image filtered at once (a band of rows) by :func:`gaussian_blur` and :func:`box_mean`.
_FILTER_BAND_PIXELS = 1 << 14


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
    # Two image-sized float32 arrays at most (as analyze's memory bound needs); luma converts its input
    # to float, so it gets a band of rows at a time, and the filters work in bands of rows too.
    y = np.empty(image.shape[:2], np.float32)
    rows = max(1, _LUMA_BAND_PIXELS // max(1, image.shape[1] if image.ndim > 1 else 1))  # luma refuses 1-D
    for r in range(0, image.shape[0], rows):
        y[r:r + rows] = luma(image[r:r + rows])[0]
    detail = gaussian_blur(y, sigma)
    np.subtract(y, detail, out=detail)
    np.multiply(detail, detail, out=detail)
    rms = box_mean(detail, window, out=y)
    del detail
    np.sqrt(np.maximum(rms, 0.0, out=rms), out=rms)
    low, high = ramp
    rms -= low
    rms /= high - low
    return np.clip(rms, 0.0, 1.0, out=rms)


def _reflected(indices: np.ndarray, size: int) -> np.ndarray:
    """``indices`` folded into ``range(size)`` by mirroring about the edges (``d c b a | a b c d | d c b a``)."""
    folded = np.mod(indices, 2 * size)
    return np.where(folded >= size, 2 * size - 1 - folded, folded)


def _filter_rows_and_columns(image: np.ndarray, before: int, after: int, combine, out: np.ndarray | None
                             ) -> np.ndarray:
    """``combine(padded, axis, length)`` along the rows, then the columns, of a 2-D float32 image mirrored
    at its edges, written to ``out`` (not ``image``).

    Both passes go in bands of rows, so that the working memory is a band's, not the image's: the second
    runs in place over the first's result, keeping a copy of the rows above each band that the band
    before overwrote.
    """
    height, width = image.shape
    out = np.empty_like(image) if out is None else out
    if np.shares_memory(out, image):
        raise ValueError("the output of a filter cannot be its input")
    reach = before + after
    band = max(reach, 1, _FILTER_BAND_PIXELS // max(1, width))
    columns = _reflected(np.arange(-before, width + after), width)
    for top in range(0, height, band):
        out[top:top + band] = combine(image[top:top + band][:, columns], 1, width)
    above_start, above = 0, out[:0].copy()  # rows of the first pass that the band before overwrote
    for top in range(0, height, band):
        bottom = min(height, top + band)
        rows = _reflected(np.arange(top - before, bottom + after), height)
        overwritten = rows < top
        padded = np.empty((len(rows), width), np.float32)
        padded[~overwritten] = out[rows[~overwritten]]
        padded[overwritten] = above[rows[overwritten] - above_start]
        above_start = max(0, bottom - reach)
        above = out[above_start:bottom].copy()
        out[top:bottom] = combine(padded, 0, bottom - top)
    return out


def gaussian_blur(image: np.ndarray, sigma: float, *, out: np.ndarray | None = None) -> np.ndarray:
    """A 2-D float32 image convolved with a Gaussian, mirrored at its edges (numpy only).

    Parameters
    ----------
    image : ndarray of float32, (H, W)
    sigma : float
        Standard deviation in pixels; the kernel reaches ``int(4 * sigma + 0.5)`` pixels either side.
    out : ndarray of float32, (H, W), optional
        Where to write the result (not ``image``).

    Returns
    -------
    ndarray of float32, (H, W)

    Notes
    -----
    The same filter as ``scipy.ndimage.gaussian_filter(image, sigma, mode="reflect")`` (within
    float32 rounding, which a test checks): numpy alone, because importing ``scipy.ndimage`` costs
    about 0.3 s, a fifth of the start-up of ``jpegtrace analyze``.
    """
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights = (weights / weights.sum()).astype(np.float32)

    def correlate(padded: np.ndarray, axis: int, length: int) -> np.ndarray:
        take = (lambda k: padded[k:k + length]) if axis == 0 else (lambda k: padded[:, k:k + length])
        total = take(0) * weights[0]
        for k in range(1, len(weights)):
            total += take(k) * weights[k]
        return total

    return _filter_rows_and_columns(image, radius, radius, correlate, out)


#: Reach (pixels, a Gaussian's standard deviation) of :func:`fill_without_evidence`: the flags of pixels
#: without evidence come from the pixels with evidence about this far around them.
FILL_SIGMA = 12.0
#: Side (pixels) of the cells :func:`fill_without_evidence` averages over before it blurs: the filled-in
#: field is smooth at this scale, so it is computed on a grid 16 times smaller.
FILL_CELL = 4


def fill_without_evidence(values: np.ndarray, evidence: np.ndarray, *, sigma: float = FILL_SIGMA) -> np.ndarray:
    """Pull each pixel's value towards that of the nearby pixels with evidence, as far as it lacks any.

    Parameters
    ----------
    values : ndarray of float32, (H, W)
        A map such as the flag map; changed in place.
    evidence : ndarray of float32, (H, W)
        :func:`evidence_map` of the image (0 to 1).
    sigma : float
        How far (pixels) the pixels with evidence are looked for.

    Returns
    -------
    ndarray of float32, (H, W)
        ``values``: ``e * v + (1 - e) * f`` at each pixel, with ``e`` its evidence, ``v`` its value and
        ``f`` the evidence-weighted Gaussian mean of the values around it (normalised convolution);
        unchanged where no pixel within reach carries evidence.

    Notes
    -----
    The network's flag in a region without detail (a saturated or flat area) is a guess, and in
    never-compressed photos with saturated colours it guesses "compressed" in blotches (issue 20: pixel
    precision 0.50-0.74 on held-out camera photos). A pasted JPEG region keeps its textured pixels'
    flags, and its flat parts take them; a clean photo's saturated patches take the flags of the clean
    pixels around them. Chosen on the ``val`` split (research log of 2026-12-07; ``sigma`` 12 against 4, 8,
    16 and 32): with ``scripts/evaluate_generalisation.py``, collage IoU 0.924 -> 0.940, pixel precision
    0.945 -> 0.964, and on the same images with saturation and contrast raised (its ``saturated`` part, 54 %
    of the pixels with a channel at 0 or 255) IoU 0.784 -> 0.809, precision 0.857 -> 0.889.
    The weighted means are computed on cells of :data:`FILL_CELL` pixels and interpolated linearly,
    band by band: no image-sized temporary.

    References
    ----------
    .. [1] H. Knutsson and C.-F. Westin, "Normalized and differential convolution", CVPR 1993.
    """
    height, width = values.shape
    if height == 0 or width == 0:
        return values
    cell = FILL_CELL
    rows, cols = -(-height // cell), -(-width // cell)
    weighted = np.zeros((rows, cols), np.float32)  # sums of at most 16 values in [0, 1]: float32 is exact enough
    weights = np.zeros((rows, cols), np.float32)
    band = max(1, _FILTER_BAND_PIXELS // (cell * width)) * cell
    for y0 in range(0, height, band):
        y1 = min(height, y0 + band)
        e = evidence[y0:y1]
        _add_cells(weighted[y0 // cell:], values[y0:y1] * e, cell)
        _add_cells(weights[y0 // cell:], e, cell)
    blurred_weights = gaussian_blur(weights, sigma / cell)
    field = gaussian_blur(weighted, sigma / cell)
    reached = blurred_weights > np.float32(1e-3 * cell ** 2)  # a mean evidence of 0.001 around
    np.divide(field, blurred_weights, out=field, where=reached)
    field[~reached] = np.nan
    # Linear interpolation between the cells' centres (clamped at the edges), band by band.
    centres = (np.arange(width) + 0.5) / cell - 0.5
    left = np.clip(np.floor(centres).astype(np.int64), 0, cols - 1)
    right = np.minimum(left + 1, cols - 1)
    across = np.clip(centres - left, 0.0, 1.0).astype(np.float32)
    for y0 in range(0, height, band):
        y1 = min(height, y0 + band)
        down = (np.arange(y0, y1) + 0.5) / cell - 0.5
        top = np.clip(np.floor(down).astype(np.int64), 0, rows - 1)
        bottom = np.minimum(top + 1, rows - 1)
        t = np.clip(down - top, 0.0, 1.0).astype(np.float32)[:, None]
        lines = field[top] * (1 - t) + field[bottom] * t
        filled = lines[:, left] * (1 - across) + lines[:, right] * across
        e = evidence[y0:y1]
        keep = np.isnan(filled)
        blended = e * values[y0:y1] + (1 - e) * filled
        values[y0:y1] = np.where(keep, values[y0:y1], blended)
    return values


def _add_cells(cells: np.ndarray, pixels: np.ndarray, cell: int) -> None:
    """Add the sums of ``pixels`` over ``cell`` x ``cell`` cells (partial ones at the edges) to ``cells``."""
    h, w = pixels.shape
    padded = np.zeros((-(-h // cell) * cell, -(-w // cell) * cell), np.float32)
    padded[:h, :w] = pixels
    sums = padded.reshape(padded.shape[0] // cell, cell, padded.shape[1] // cell, cell).sum(axis=(1, 3))
    cells[:sums.shape[0], :sums.shape[1]] += sums


def box_mean(image: np.ndarray, size: int, *, out: np.ndarray | None = None) -> np.ndarray:
    """The mean of a 2-D float32 image over a ``size`` square around each pixel, mirrored at its edges.

    Parameters
    ----------
    image : ndarray of float32, (H, W)
    size : int
        Side of the square; for an even side it reaches ``size // 2`` pixels before the pixel and
        ``size // 2 - 1`` after it.
    out : ndarray of float32, (H, W), optional
        Where to write the result (not ``image``).

    Returns
    -------
    ndarray of float32, (H, W)

    Notes
    -----
    The same filter as ``scipy.ndimage.uniform_filter(image, size, mode="reflect")`` (within float32
    rounding, which a test checks), computed from running sums in float64.
    """
    before = size // 2
    after = size - 1 - before

    def window_mean(padded: np.ndarray, axis: int, length: int) -> np.ndarray:
        sums = np.cumsum(padded, axis=axis, dtype=np.float64)
        if axis == 0:
            upper, lower, first = sums[size - 1:size - 1 + length], sums[:length - 1], sums[size - 1]
        else:
            upper, lower, first = sums[:, size - 1:size - 1 + length], sums[:, :length - 1], sums[:, size - 1]
        means = np.empty(upper.shape, np.float32)
        index = (slice(1, None),) if axis == 0 else (slice(None), slice(1, None))
        np.subtract(upper[index], lower, out=means[index], casting="same_kind")
        means[(0,) if axis == 0 else (slice(None), 0)] = first
        return np.multiply(means, np.float32(1.0 / size), out=means)

    return _filter_rows_and_columns(image, before, after, window_mean, out)


#: Side of the blocks :func:`block_structure` judges (the JPEG block).
BLOCK = 8
#: Longest period (pixels, along each axis) at which :func:`block_structure` looks for exact repetition.
MAX_PERIOD = 32
#: A block is piecewise constant when at least this share of its adjacent pixel pairs (inside the
#: block) are exactly equal... Cells of 2 x 2 pixels (pixel art, nearest-neighbour upscales by 2)
#: make 4 of the 7 pairs of each row and column equal (57 %).
PIECEWISE_EQUAL_SHARE = 0.55
#: ... and it holds an edge: two adjacent pixels at least this far apart (grey levels, in some channel).
PIECEWISE_MIN_JUMP = 24
#: Pixels judged at once by :func:`block_structure` (bands of whole block rows, 64 rows at least),
#: bounding its memory on a large image.
_BAND_PIXELS = 1 << 15


def block_structure(image: np.ndarray, *, max_period: int = MAX_PERIOD) -> tuple[np.ndarray, np.ndarray]:
    """Which 8x8 blocks repeat exactly, and which are piecewise constant with an edge.

    Parameters
    ----------
    image : ndarray of uint8
        ``(H, W, 3)`` RGB or ``(H, W)`` grayscale.
    max_period : int
        Longest period (pixels) looked for along each axis.

    Returns
    -------
    repeated : ndarray of bool, (H // 8, W // 8)
        Blocks equal, pixel for pixel, to the content one period away along both axes (a period of
        1 is a constant direction): tiles, stripes, checkerboards and flat areas.
    piecewise_constant : ndarray of bool, (H // 8, W // 8)
        Blocks that are not repeated, whose adjacent pixels are mostly exactly equal
        (:data:`PIECEWISE_EQUAL_SHARE`) and which still hold an edge (:data:`PIECEWISE_MIN_JUMP`):
        pixel art, text, line drawings.

    Notes
    -----
    The two say different things. Exactly repeated content carries the evidence of one period
    only: a JPEG of a tile on a period of 8 or 16 is itself exactly periodic, so such blocks are
    no evidence either way and :func:`jpegtrace.analysis.analyze_array` takes them out of the
    evidence map. A piecewise-constant block with an edge is evidence *against* a last JPEG:
    quantising the DCT of an edge rings on both sides of it, so a decoded JPEG block is almost
    never exactly flat on both sides of a jump: at most 0.3 % of the blocks of photos' JPEGs at QF
    20-98 (4:2:0 and 4:4:4) and 1.1 % at QF 10 are, and 0.6 % of never-compressed photos' (the
    worst of 30 train images each). Pairs of pixels across block edges are left out, as the
    coarsest JPEGs' blocks keep little but their DC; such JPEGs show their grid, and the analysis
    uses the test only when the grid check finds none. The image is judged in bands of block rows; a pixel without a partner one period
    ahead in its band is compared with the one a period behind.
    """
    x = image if image.ndim == 3 else image[:, :, None]
    height, width = x.shape[:2]
    rows, cols = height // BLOCK, width // BLOCK
    repeated = np.zeros((rows, cols), bool)
    piecewise = np.zeros((rows, cols), bool)
    if rows == 0 or cols == 0:
        return repeated, piecewise
    band_rows = max(2 * max_period, _BAND_PIXELS // width) // BLOCK
    for band in range(0, rows, band_rows):
        if rows - band < band_rows + band_rows // 2:
            band_rows = rows - band  # no short last band: it could not hold the longer periods
        y0, y1 = BLOCK * band, BLOCK * (band + band_rows)
        pixels = x[y0:y1, :BLOCK * cols]
        code = pixels[..., 0].astype(np.int32)
        for channel in range(1, pixels.shape[2]):
            code <<= 8
            code |= pixels[..., channel]
        done = slice(band, band + band_rows)
        repeated[done] = (_periodic_blocks(code, axis=1, max_period=max_period)
                          & _periodic_blocks(code, axis=0, max_period=max_period))
        piecewise[done] = _piecewise_constant_blocks(pixels, code)
        if y1 >= BLOCK * rows:
            break
    piecewise &= ~repeated
    return repeated, piecewise


def _piecewise_constant_blocks(pixels: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Blocks of ``pixels`` (whole blocks) mostly exactly flat between adjacent pixels, with an edge."""
    rows, cols = code.shape[0] // BLOCK, code.shape[1] // BLOCK
    equal = np.zeros((rows, cols), np.int32)
    jump = np.zeros((rows, cols), np.int16)
    for axis in (0, 1):
        # Adjacent pairs inside each block: pairs across block edges would make a coarse JPEG's
        # flat blocks look piecewise constant.
        ahead = np.moveaxis(code, axis, 1)
        pairs = (ahead[:, 1:] == ahead[:, :-1]).reshape(ahead.shape[0], -1)
        steps = np.zeros(ahead.shape, np.int16)
        channels = np.moveaxis(pixels, axis, 1)
        for channel in range(channels.shape[2]):
            c = channels[..., channel]
            np.maximum(steps[:, 1:], np.abs(c[:, 1:].astype(np.int16) - c[:, :-1]), out=steps[:, 1:])
        equal_full = np.zeros(ahead.shape, bool)
        equal_full[:, 1:] = pairs
        inside = (np.arange(ahead.shape[1]) % BLOCK) != 0  # pair (i-1, i) lies in one block
        equal_full[:, ~inside] = False
        steps[:, ~inside] = 0
        equal_blocks = _block_reduce(np.moveaxis(equal_full, 1, axis), np.add)
        jump_blocks = _block_reduce(np.moveaxis(steps, 1, axis), np.maximum)
        equal += equal_blocks
        np.maximum(jump, jump_blocks, out=jump)
    return (equal >= PIECEWISE_EQUAL_SHARE * 2 * BLOCK * (BLOCK - 1)) & (jump >= PIECEWISE_MIN_JUMP)


def _periodic_blocks(code: np.ndarray, *, axis: int, max_period: int) -> np.ndarray:
    """Blocks of ``code`` (whole blocks) equal, at every pixel, to the pixels one period
    ``p <= max_period`` away along ``axis`` (one ``p`` per block, any of them).

    A pixel without a partner ``p`` ahead is compared with the one ``p`` behind. Periods that a
    sample of lines shows equal for under 5 % of its non-flat pixels are not tested in full (cost).
    """
    length = code.shape[axis]
    moved = np.moveaxis(code, axis, 1)  # periods run along axis 1
    sample = moved[::BLOCK]
    # Flat runs are equal at every period: the sample counts only pixels unlike their neighbour.
    unlike = sample[:, 1:] != sample[:, :-1]
    found = np.zeros((code.shape[0] // BLOCK, code.shape[1] // BLOCK), bool)
    equal = np.empty(moved.shape, bool)
    for p in range(1, min(max_period, length // 2) + 1):
        if p > 1:
            candidates = unlike[:, p - 1:]
            if not candidates.any() or (sample[:, p:] == sample[:, :-p])[candidates].mean() < 0.05:
                continue
        np.equal(moved[:, :-p], moved[:, p:], out=equal[:, :-p])
        np.equal(moved[:, -p:], moved[:, -2 * p:-p], out=equal[:, -p:])
        found |= _block_reduce(np.moveaxis(equal, 1, axis), np.logical_and)
    return found


def _block_reduce(values: np.ndarray, ufunc) -> np.ndarray:
    """``ufunc`` reduced over each 8x8 block of ``values`` (whole blocks only)."""
    r, c = values.shape[0] // BLOCK, values.shape[1] // BLOCK
    blocks = values[:BLOCK * r, :BLOCK * c].reshape(r, BLOCK, c, BLOCK)
    return ufunc.reduce(ufunc.reduce(blocks, axis=3), axis=1)


def set_blocks(pixel_map: np.ndarray, blocks: np.ndarray, value: float) -> None:
    """Set ``pixel_map`` to ``value`` in place over the 8x8 blocks (from the origin) where ``blocks`` is true.

    The last block row and column also cover the image's remainder (under 8 pixels), so that a
    judged image is judged to its edges.
    """
    rows, cols = blocks.shape
    if rows == 0 or cols == 0 or not blocks.any():
        return
    row_of = np.minimum(np.arange(pixel_map.shape[0]) // BLOCK, rows - 1)
    col_of = np.minimum(np.arange(pixel_map.shape[1]) // BLOCK, cols - 1)
    for r in np.flatnonzero(blocks.any(axis=1)):
        pixel_rows = np.flatnonzero(row_of == r)
        mask = blocks[r][col_of]
        pixel_map[pixel_rows[0]:pixel_rows[-1] + 1, mask] = value
