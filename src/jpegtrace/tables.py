"""The last JPEG's luma quantisation table, read back from the pixels where its 8x8 grid survives.

A decoder rebuilds each block from integer multiples of the table's steps, so the DCT of the
decoded luma, taken again at the JPEG's grid, clusters near ``k * q[u, v]`` at every frequency
``(u, v)``. For each frequency the step is the largest ``q`` whose multiples explain the
coefficients: a periodicity test of the coefficients outside the zero bin, as in the
quantisation-table estimators of Fan & de Queiroz and of Nikoukhah et al. Frequencies whose
coefficients are (almost) all quantised to zero carry no information: their step is "unknown",
never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from .grid.check import find_jpeg_grid
from .grid.clipped import grid_block_origin
from .grid.dct import blas_on_one_thread, block_dct, dct_basis, luma
from .jpeg import ijg_equivalent_quality, ijg_table, ijg_tables, log_ijg_luma_tables

#: Largest step looked for (baseline JPEG steps are at most 255).
MAX_STEP = 255
#: Coefficients within this of zero are left out: they lie in the zero bin's tail (the rounding noise
#: reaches 1.3 at its 99th percentile) or come from the rounding of smooth content (a ramp's 8-bit
#: steps give fixed small values at some frequencies), and would pass for multiples of a step of 1 or 2.
AMBIGUOUS = 2.5
#: Fewest coefficients beyond :data:`AMBIGUOUS` for a frequency's step to be read: fewer say nothing,
#: and the step is "unknown".
MIN_SUPPORT = 24
#: Coefficients of one frequency a step is tested on at most (the largest ones are kept).
MAX_COEFFICIENTS = 1024
#: Standard deviation of a decoded coefficient about its multiple of the step: the 8-bit rounding of
#: the pixels (0.29) and libjpeg's integer IDCT; measured 0.48-0.51 on val photos at QF 30
#: (grayscale, 4:4:4 and 4:2:0 alike).
ROUNDING_SIGMA = 0.5
#: Share of coefficients allowed off every multiple (clipped neighbours, mixed regions, IDCT outliers).
OUTLIER_SHARE = 0.05
#: How many standard errors a lattice's periodicity (mean cos, variance 1/2 per coefficient without
#: one) must reach to count as there, and the least share of what the rounding noise leaves a true step
#: (``exp(-2 pi^2 sigma^2 / q^2)``): a step of 1 under noise of 0.5 is invisible, and stays unknown.
MIN_Z = 6.0
MIN_SHARE_OF_EXPECTED = 0.5
#: Log-likelihood (nats) by which the step must beat every other for it to be read, not "unknown".
MIN_MARGIN = 8.0
#: Steps up to this must have coefficients at twice the step or more: at least
#: :data:`MIN_SECOND_MULTIPLES` of them and :data:`MIN_SECOND_SHARE` of those read (on 20 val photos at
#: QF 5, a step of 3 was read at a frequency whose step was 255 in 5, all its coefficients at +-3).
MAX_LONE_STEP = 4
MIN_SECOND_MULTIPLES = 3
MIN_SECOND_SHARE = 0.1
#: ...and those second multiples must be on the lattice themselves, this many standard errors above
#: chance: where the true step is 1 (QF 95 and above), the coefficients just above :data:`AMBIGUOUS`
#: pile up at 2.5-3.0 and pass for a first multiple of 3, while the larger ones lie on every integer
#: (3 read for 1 at QF 95 in 13 of 80 JPEGs of 40 train photos).
SECOND_MIN_Z = 3.0
#: A decoded luma coefficient quantised to zero stays within this of zero (the rounding noise reaches
#: 1.3 at its 99th percentile, the decoder's artefacts at frequencies quantised to zero 2.6-3.0). A
#: step whose zero bin holds more than :data:`MAX_ZERO_BIN_SHARE` of the coefficients beyond it is
#: refuted: small coefficients look "near 0" to the periodicity test of a large step (35 was read for 2
#: at QF 95, most coefficients in its zero bin). Blocks of other pixels put a few there too (a flag
#: region's box with a margin of never-compressed pixels: 5.6 % at a step of 12), so a quarter it is.
ZERO_BIN_REACH = 3.5
MAX_ZERO_BIN_SHARE = 0.25
#: Blocks whose pixels vary less than this (grey levels, standard deviation) are left out.
MIN_BLOCK_STD = 1.0
#: Fewest steps read for a table to be reported at all: a few chance lattices (a never-compressed
#: image read at a made-up grid shows up to 4) are no table.
MIN_KNOWN_STEPS = 8
#: Fewer steps make a table when they are exactly those of a coarse IJG table (QF up to
#: :data:`MAX_FEW_STEPS_QUALITY`): low-QF JPEGs quantise most frequencies to zero (4-8 steps read at QF
#: 10 on val photos, all right), and chance lattices of never-compressed images are small steps, never
#: a coarse table's exact values at five frequencies.
MIN_KNOWN_IJG_STEPS = 5
MAX_FEW_STEPS_QUALITY = 50
#: Where a coarse JPEG's flat blocks gave the grid, 3 steps suffice when they are an IJG table's at QF
#: 20 or below, all of 40 or more: at QF 5 most frequencies are quantised to zero (3 steps read in 3 of
#: 20 val photos), and no chance lattice of a never-compressed image has steps that large.
MIN_KNOWN_COARSE_STEPS = 3
MAX_COARSE_QUALITY = 20
MIN_COARSE_STEP = 40
#: ...or, for a camera's coarse table that matches no IJG one, at least this many steps, all of
#: :data:`MIN_COARSE_STEP` or more, within this of a smooth table's shape (:func:`fit_table_shape`):
#: a jittered IJG table's one parameter leaves it about 0.15 off, a power law's three fit a few steps
#: of its own family within 0.01. On the 67 camera-like JPEGs of 30 train photos that had no table
#: (QF 3-22 mostly), 22 got one, 18 within 2 of the label.
MIN_KNOWN_COARSE_SMOOTH_STEPS = 4
MAX_COARSE_SHAPE_RESIDUAL = {"IJG": 0.2, "power law": 0.1}
#: Known frequencies where the last table's step is 2 or more that a double JPEG's must have.
MIN_DOUBLE_FREQUENCIES = 10
#: Pixels of block rows read at once by :func:`block_coefficients` (a few MiB of float32 a band).
_BAND_PIXELS = 1 << 20
#: Blocks read at most (evenly spaced), bounding the cost whatever the image size.
MAX_BLOCKS = 4096
#: Blocks with 1 to this many clipped pixels (of 64) have them recovered for the second read of a
#: non-standard table (:func:`recovered_clipped_coefficients`), in this many rounds.
MAX_RECOVERED_CLIPPED = 32
RECOVERY_ROUNDS = 30


@dataclass(frozen=True)
class TableEstimate:
    """The luma quantisation table read from the pixels (:func:`estimate_luma_table`).

    Attributes
    ----------
    steps : ndarray of int, (8, 8)
        The step of each frequency (natural order, DC at ``[0, 0]``); 0 where unknown.
    confidence : ndarray of float, (8, 8)
        How far each step's periodicity stands above the test's threshold, 0..1 (0 where unknown).
    grid_offset : (int, int)
        The grid the coefficients were read at (as :class:`jpegtrace.grid.GridEvidence`).
    blocks : int
        Blocks the estimate rests on.
    ijg_quality : int or None
        The QF whose IJG table matches every known step exactly, when the table is a scaled
        standard one (the lowest such QF when several match).
    equivalent_quality : int or None
        The IJG-equivalent QF (:func:`jpegtrace.jpeg.ijg_equivalent_quality`) of the table with its
        unknown steps taken from the shape of the known ones (:func:`completed_table`); None when
        fewer than 3 steps are known.
    chroma : ChromaEstimate or None
        The chroma table and subsampling (:func:`jpegtrace.chroma.estimate_chroma_table`), where
        they were read; :func:`estimate_luma_table` leaves it None, the analysis adds it.
    earlier_quality : int or None
        Where the read steps were the last IJG table's at most frequencies and an earlier IJG
        table's multiples of them at the others (:func:`match_ijg_double`): that earlier QF. The
        steps are then the last table's, and the image was compressed at least twice.
    """

    steps: np.ndarray
    confidence: np.ndarray
    grid_offset: tuple[int, int]
    blocks: int
    ijg_quality: int | None
    equivalent_quality: int | None
    chroma: object | None = None
    earlier_quality: int | None = None

    @property
    def known(self) -> np.ndarray:
        """Where a step was read."""
        return self.steps > 0

    @property
    def standard(self) -> bool:
        """Whether the known steps are those of a scaled IJG table."""
        return self.ijg_quality is not None

    @property
    def ijg_range(self) -> tuple[int, int] | None:
        """The lowest and highest IJG QF whose table matches every known step, where more than one does
        and they reach QF 96 (then :attr:`ijg_quality` is None: "QF ≥ lowest"); else None."""
        if self.ijg_quality is not None or self.earlier_quality is not None:
            return None
        matching = matching_ijg_qualities(self.steps)
        if len(matching) > 1 and matching[-1] >= MIN_AMBIGUOUS_HIGH_QUALITY:
            return matching[0], matching[-1]
        return None

    @property
    def ijg_shape_residual(self) -> float | None:
        """How far the known steps are from the shape of an IJG table: the root-mean-square log ratio of
        each known step to the nearest IJG table's over them (:func:`ijg_shape_residual`)."""
        return ijg_shape_residual(self.steps)

    @cached_property
    def shape(self) -> TableShape | None:
        """The smooth model of the whole table its unknown steps are taken from (:func:`fit_table_shape`),
        fitted once per estimate (the headline QF, the record and the report all ask)."""
        return fit_table_shape(self.steps)

    def within(self, top: int, left: int) -> "TableEstimate":
        """This table, read on a crop whose pixel (0, 0) is the image's ``(top, left)``, with its grid
        offset given in the image's coordinates."""
        dy, dx = self.grid_offset
        return replace(self, grid_offset=((dy - top) % 8, (dx - left) % 8))

    def describe(self) -> str:
        """One phrase, e.g. ``QF 84 (table, IJG)``, ``QF ≥ 96 (table, IJG)`` or ``QF ≈ 88 (non-standard table)``."""
        return describe_table({"ijg_quality": self.ijg_quality, "ijg_range": self.ijg_range,
                               "equivalent_quality": self.equivalent_quality})

    def as_dict(self) -> dict:
        shape = self.shape
        return {"steps": self.steps.tolist(), "confidence": np.round(self.confidence, 3).tolist(),
                "grid_offset": list(self.grid_offset), "blocks": self.blocks, "ijg_quality": self.ijg_quality,
                "equivalent_quality": self.equivalent_quality, "standard": self.standard,
                "known_steps": int(self.known.sum()), "earlier_quality": self.earlier_quality,
                "ijg_shape_residual": _rounded(self.ijg_shape_residual),
                "shape": None if shape is None else shape.family,
                "shape_residual": None if shape is None else _rounded(shape.residual),
                "ijg_range": None if self.ijg_range is None else list(self.ijg_range),
                "subsampling": None if self.chroma is None else self.chroma.subsampling,
                "chroma": None if self.chroma is None else self.chroma.as_dict()}


def describe_table(table: dict, *, offset: bool = False) -> str:
    """:meth:`TableEstimate.describe` of a table as :meth:`TableEstimate.as_dict` gives it (a record's),
    followed by `` at grid offset (y, x)`` with ``offset``."""
    if table.get("ijg_quality") is not None:
        text = f"QF {table['ijg_quality']} (table, IJG)"
    elif table.get("ijg_range") is not None:
        text = f"QF ≥ {table['ijg_range'][0]} (table, IJG)"
    elif table.get("equivalent_quality") is not None:
        text = f"QF ≈ {table['equivalent_quality']} (non-standard table)"
    else:
        text = "table unknown"
    if offset and table.get("grid_offset") is not None:
        dy, dx = table["grid_offset"]
        text += f" at grid offset ({dy}, {dx})"
    return text


def block_coefficients(image: np.ndarray, grid_offset: tuple[int, int], *,
                       max_blocks: int = MAX_BLOCKS) -> np.ndarray:
    """DCT coefficients ``(n, 64)`` (natural order, level-shifted DC) of the whole, unclipped, textured
    blocks of the grid at ``grid_offset``, at most ``max_blocks`` of them (evenly spaced among those)."""
    return block_dct(_grid_blocks(image, grid_offset, max_blocks=max_blocks)[0])


def _grid_blocks(image: np.ndarray, grid_offset: tuple[int, int], *, max_blocks: int,
                 partly_clipped: bool = False) -> tuple[np.ndarray, ...]:
    """``(blocks,)``: the level-shifted luma ``(n, 64)`` of the whole, unclipped, textured blocks of the
    grid at ``grid_offset``, at most ``max_blocks`` of them (evenly spaced); with ``partly_clipped``,
    ``(blocks, high, low)`` of those with 1 to :data:`MAX_RECOVERED_CLIPPED` clipped pixels instead, with
    per pixel ``(n, 64)`` whether it is clipped high (a channel or the luma at 255) and low (at 0).

    Bands of block rows are read twice, first to tell which blocks qualify, then to take the chosen ones,
    so that memory stays a band's whatever the image size (as in the grid check).
    """
    oy, ox = grid_block_origin(grid_offset)
    rows, cols = (image.shape[0] - oy) // 8, (image.shape[1] - ox) // 8
    empty = (np.empty((0, 64), np.float32),) + ((np.empty((0, 64), bool),) * 2 if partly_clipped else ())
    if rows <= 0 or cols <= 0:
        return empty
    per_band = max(1, _BAND_PIXELS // (64 * cols))
    bands = [(r0, min(rows, r0 + per_band)) for r0 in range(0, rows, per_band)]

    def as_blocks(plane: np.ndarray, r0: int, r1: int) -> np.ndarray:
        return plane.reshape(r1 - r0, 8, cols, 8).transpose(0, 2, 1, 3).reshape(-1, 64)

    def read(r0: int, r1: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        pixels = image[oy + 8 * r0:oy + 8 * r1, ox:ox + 8 * cols]
        y, clipped = luma(pixels)
        blocks = as_blocks(y - 128.0, r0, r1)
        # Pixels with a channel clipped in RGB, or whose luma the decoder clamped at 0 or 255 (an IDCT
        # overshoot, common at low QFs), are not the decoder's luma any more.
        count = as_blocks(clipped | (y <= 0) | (y >= 255), r0, r1).sum(axis=1)
        if partly_clipped:
            channels = pixels if pixels.ndim == 3 else pixels[..., None]
            arrays = (blocks, as_blocks((channels == 255).any(axis=-1) | (y >= 255), r0, r1),
                      as_blocks((channels == 0).any(axis=-1) | (y <= 0), r0, r1))
            wanted = (count >= 1) & (count <= MAX_RECOVERED_CLIPPED)
        else:
            arrays, wanted = (blocks,), count == 0
        # Smooth blocks round coherently (a flat block's 64 pixels all round the same way, which puts
        # its DC on a lattice of 8 whatever the step): only textured blocks keep the steps' lattice.
        return arrays, wanted & (blocks.std(axis=1) >= MIN_BLOCK_STD)

    first = read(*bands[0])
    usable = np.concatenate([first[1]] + [read(r0, r1)[1] for r0, r1 in bands[1:]])
    chosen = np.flatnonzero(usable)
    if len(chosen) > max_blocks:
        chosen = chosen[np.linspace(0, len(chosen) - 1, max_blocks).astype(int)]
    taken = []
    for index, (r0, r1) in enumerate(bands):
        here = chosen[(chosen >= r0 * cols) & (chosen < r1 * cols)] - r0 * cols
        if here.size:
            taken.append([a[here] for a in (first if index == 0 else read(r0, r1))[0]])
    if not taken:
        return empty
    return tuple(np.concatenate(parts) for parts in zip(*taken))


def recovered_clipped_coefficients(image: np.ndarray, grid_offset: tuple[int, int], steps: np.ndarray, *,
                                   max_blocks: int = MAX_BLOCKS) -> np.ndarray:
    """DCT coefficients ``(n, 64)`` of the textured blocks with 1 to :data:`MAX_RECOVERED_CLIPPED`
    clipped pixels, their clipped pixels recovered from the steps known (``steps``, 8x8, 0 where unknown).

    Notes
    -----
    A clipped pixel's luma is not the decoder's, which moves every coefficient of its block off the
    lattice; but the decoder's block is one whose coefficients are multiples of the steps, and it
    equals the decoded one at every unclipped pixel. Alternating projections find it: the known
    frequencies' coefficients onto the multiples of their steps, then the pixels onto what the decoded
    ones allow (unclipped pixels keep their luma; a pixel with a channel at 255 and none at 0 had a
    luma at least the one computed, since the luma weights are positive, one at 0 at most), for
    :data:`RECOVERY_ROUNDS` rounds. The unknown frequencies are left free, so that they can then be
    read: on val photos their coefficients came out on their own steps' multiples (81-89 % within a
    grey level at steps of 50 and 64, against 11-26 % before the recovery, where the raw coefficients
    read 49 and 63).
    """
    blocks, high, low = _grid_blocks(image, grid_offset, max_blocks=max_blocks, partly_clipped=True)
    if len(blocks) == 0:
        return np.empty((0, 64), np.float32)
    known = np.asarray(steps).ravel() > 0
    q = np.asarray(steps).ravel()[known].astype(np.float64)
    basis = dct_basis().astype(np.float64)
    decoded = blocks.astype(np.float64)
    free = high | low
    up, down = high & ~low, low & ~high
    pixels = decoded
    with blas_on_one_thread():
        for _ in range(RECOVERY_ROUNDS):
            c = pixels @ basis
            c[:, known] = np.round(c[:, known] / q) * q
            pixels = c @ basis.T
            pixels = np.where(free, pixels, decoded)
            pixels = np.where(up, np.maximum(pixels, decoded), np.where(down, np.minimum(pixels, decoded), pixels))
        return (pixels @ basis).astype(np.float32)


def estimate_step(coefficients: np.ndarray, *, max_step: int = MAX_STEP,
                  ambiguous: float = AMBIGUOUS, lone: bool = False, min_support: int = MIN_SUPPORT,
                  min_z: float = MIN_Z, zero_bin_reach: float | None = ZERO_BIN_REACH) -> tuple[int, float]:
    """The quantisation step of one frequency from its coefficients: ``(step, confidence)``, ``(0, 0)`` if unknown.

    Notes
    -----
    A candidate ``q`` counts only where a lattice of period ``q`` is there at all (the coefficients'
    mean ``cos(2 pi c / q)`` stands :data:`MIN_Z` standard errors above 0 and reaches half of what the
    rounding noise leaves a true step); among those, each is scored by the log-likelihood ratio of the coefficients under "multiples
    of ``q`` plus rounding noise" (Gaussian, :data:`ROUNDING_SIGMA`, with a share
    :data:`OUTLIER_SHARE` of outliers) against "spread evenly over a period": per coefficient at
    distance ``r`` from the nearest multiple, ``log((1 - e) q phi(r) + e)``, over the coefficients
    beyond :data:`AMBIGUOUS`. The true step beats its
    divisors by ``log 2`` or more per coefficient (its multiples are sparser, so fit tighter), and its
    multiples and near neighbours fail outright (odd multiples of the step lie half a period away, and
    ``q + 1`` misses ``q`` by a whole grey level). The step is read only when the coefficients away
    from zero (beyond :data:`AMBIGUOUS`) number :data:`MIN_SUPPORT` or more and the best ``q`` wins by :data:`MIN_MARGIN` nats;
    confidence rises from 0 at that margin to 1 at three times it. A step whose zero bin holds more
    than :data:`MAX_ZERO_BIN_SHARE` of the coefficients beyond ``zero_bin_reach`` (:data:`ZERO_BIN_REACH`;
    None: not tested) is refuted. A step up
    to :data:`MAX_LONE_STEP` must also show its second multiples, on its lattice (:data:`SECOND_MIN_Z`), unless ``lone`` (where the caller knows more: the rest of
    the table, :func:`_read_with_table`); ``min_support`` and ``min_z`` lower
    :data:`MIN_SUPPORT` and :data:`MIN_Z` there.
    """
    c = np.abs(np.asarray(coefficients, dtype=np.float64))
    away = c[c > ambiguous]
    if away.size < min_support:
        return 0, 0.0
    if away.size > MAX_COEFFICIENTS:
        away = np.sort(away)[-MAX_COEFFICIENTS:]
    # Steps up to just past the largest coefficient: larger ones put every coefficient in their zero
    # bin, and the coefficients beyond AMBIGUOUS refute that.
    top = int(min(max_step, np.ceil(away.max()) + 2))
    q = np.arange(1, top + 1, dtype=np.float64)[:, None]
    # A step whose zero bin holds coefficients a decoder could not have left there is no step; the steps
    # that pass are tested for a lattice (the costly cosines), and only those present are scored. (Each
    # step's values are computed row by row, so leaving the others out changes none of them.)
    possible = np.ones(top, dtype=bool)
    if zero_bin_reach is not None:
        in_zero_bin = (away[None, :] > zero_bin_reach) & (away[None, :] < q / 2)
        possible = in_zero_bin.mean(axis=1) <= MAX_ZERO_BIN_SHARE
    present = np.zeros(top, dtype=bool)
    present[possible] = _lattices_there(away, q[possible, 0], min_z=min_z)
    if not present.any():
        return 0, 0.0
    # Among the lattices that are there, the step is the one that explains the coefficients best.
    qp = q[present]
    r = away[None, :] - qp * np.round(away[None, :] / qp)
    density = np.exp(-0.5 * (r / ROUNDING_SIGMA) ** 2) / (ROUNDING_SIGMA * np.sqrt(2 * np.pi))
    score = np.full(top, -np.inf)
    score[present] = np.log((1 - OUTLIER_SHARE) * qp * density + OUTLIER_SHARE).sum(axis=1)
    best = int(np.argmax(score))
    others = np.delete(score, best)
    margin = float(score[best] - others.max()) if np.isfinite(others).any() else 3 * MIN_MARGIN
    if margin < MIN_MARGIN:
        return 0, 0.0
    step = best + 1
    if step <= MAX_LONE_STEP and not lone:
        # A small step must show several of its multiples: coefficients that all sit at one small value
        # (a coarse JPEG's decoder leaves +-3 at frequencies quantised to zero) are no lattice.
        higher = away[np.round(away / step) >= 2]
        if higher.size < max(MIN_SECOND_MULTIPLES, MIN_SECOND_SHARE * away.size):
            return 0, 0.0
        if not _lattices_there(higher, np.array([float(step)]), min_z=SECOND_MIN_Z)[0]:
            return 0, 0.0
    return step, float(min(1.0, (margin - MIN_MARGIN) / (2 * MIN_MARGIN)))


def _lattices_there(away: np.ndarray, steps: np.ndarray, *, min_z: float = MIN_Z) -> np.ndarray:
    """Per step of ``steps``, whether a lattice of that period is there at all in the coefficients
    ``away`` (absolute, beyond the zero bin): the histogram's Fourier coefficient at ``1 / q`` stands
    :data:`MIN_Z` standard errors above 0 and reaches :data:`MIN_SHARE_OF_EXPECTED` of what the
    rounding noise leaves a true step."""
    periodicity = np.cos(2 * np.pi * away[None, :] / steps[:, None]).mean(axis=1)
    expected = np.exp(-2 * np.pi ** 2 * ROUNDING_SIGMA ** 2 / steps ** 2)
    return (periodicity * np.sqrt(2 * away.size) > min_z) & (periodicity > MIN_SHARE_OF_EXPECTED * expected)


def estimate_luma_table(image: np.ndarray, *, grid_offset: tuple[int, int] | None = None,
                        max_blocks: int = MAX_BLOCKS, coarse: bool = False) -> TableEstimate | None:
    """Estimate the luma quantisation table of the last JPEG of ``image`` from its pixels.

    Parameters
    ----------
    image : ndarray of uint8
        ``(H, W, 3)`` RGB or ``(H, W)`` grayscale, as decoded.
    grid_offset : (int, int), optional
        The JPEG grid (as :class:`jpegtrace.grid.GridEvidence`); by default the grid check's, or
        where it finds none a coarse JPEG's (:func:`jpegtrace.grid.coarse.find_coarse_grid`, read
        with ``coarse``), and None is returned when neither finds a grid.
    max_blocks : int
        Blocks read at most.
    coarse : bool
        The grid was found by its flat blocks (:mod:`jpegtrace.grid.coarse`): then only a coarse table
        is reported, and as few as :data:`MIN_KNOWN_COARSE_STEPS` steps make one when they are the
        IJG table of a QF up to :data:`MAX_COARSE_QUALITY`, every one at least :data:`MIN_COARSE_STEP`,
        or :data:`MIN_KNOWN_COARSE_SMOOTH_STEPS` as large in a smooth table's shape
        (:func:`smooth_coarse_table`).

    Returns
    -------
    TableEstimate or None
        None when no grid is found or fewer than :data:`MIN_KNOWN_STEPS` steps can be read (or
        :data:`MIN_KNOWN_IJG_STEPS`, when they are exactly a coarse IJG table's).

    References
    ----------
    .. [1] Z. Fan and R. L. de Queiroz, "Identification of bitmap compression history: JPEG
       detection and quantizer estimation", IEEE Trans. Image Processing 12(2), 2003.
    .. [2] T. Nikoukhah, J. Anger, M. Colom, J.-M. Morel and R. Grompone von Gioi, "A reliable JPEG
       quantization table estimator", Image Processing On Line 12, 2022.
    """
    if grid_offset is None:
        grid = find_jpeg_grid(image)
        if grid.found:
            grid_offset = grid.grid_offset
        else:  # a coarse JPEG's grid shows in its flat blocks instead
            from .grid.coarse import find_coarse_grid

            grid_offset, coarse = find_coarse_grid(image), True
            if grid_offset is None:
                return None
    coefficients = block_coefficients(image, grid_offset, max_blocks=max_blocks)
    steps = np.zeros(64, np.int64)
    confidence = np.zeros(64)
    for k in range(64):
        steps[k], confidence[k] = estimate_step(coefficients[:, k])
    steps, confidence = steps.reshape(8, 8), confidence.reshape(8, 8)
    known = int((steps > 0).sum())
    if known < (MIN_KNOWN_COARSE_STEPS if coarse else MIN_KNOWN_IJG_STEPS):
        return None
    ijg, equivalent = match_ijg(steps)
    # only a few steps, or a flat-block grid, need it (more steps make a table whatever their shape)
    smooth_coarse = ijg is None and (coarse or known < MIN_KNOWN_STEPS) and smooth_coarse_table(steps)
    if known < MIN_KNOWN_IJG_STEPS and not smooth_coarse and (ijg is None or ijg > MAX_COARSE_QUALITY
                                                              or steps[steps > 0].min() < MIN_COARSE_STEP):
        return None
    if known < MIN_KNOWN_STEPS and not smooth_coarse and (ijg is None or ijg > MAX_FEW_STEPS_QUALITY):
        return None
    if coarse and ijg is None and not smooth_coarse:  # a flat-block grid is confirmed by a coarse table only
        return None
    earlier = None
    if ijg is None:
        double = match_ijg_double(coefficients, steps)
        if double is not None:  # the last table, with an earlier one's steps where they are its multiples
            (ijg, earlier), equivalent = double, double[0]
    if ijg is None and known >= MIN_KNOWN_STEPS:  # no IJG table: a camera's, read again as one table
        steps, confidence = _read_with_table(coefficients, steps, confidence, image=image, grid_offset=grid_offset,
                                             max_blocks=max_blocks)
        ijg, equivalent = match_ijg(steps)
    if ijg is not None:  # the read steps are within the decoder's bias of the IJG table's: report those
        steps = np.where(steps > 0, ijg_table(ijg), 0)
    return TableEstimate(steps, confidence, tuple(int(v) for v in grid_offset), int(len(coefficients)),
                         ijg, equivalent, earlier_quality=earlier)


def smooth_coarse_table(steps: np.ndarray) -> bool:
    """Whether a few steps matching no IJG table still make a table: a camera's coarse one (see
    :data:`MIN_KNOWN_COARSE_SMOOTH_STEPS`). Chance lattices of never-compressed images are small steps."""
    known = steps > 0
    if int(known.sum()) < MIN_KNOWN_COARSE_SMOOTH_STEPS or steps[known].min() < MIN_COARSE_STEP:
        return False
    shape = fit_table_shape(steps)
    return shape.residual <= MAX_COARSE_SHAPE_RESIDUAL[shape.family]


#: Where the known steps make a table, a step read with fewer coefficients (down to
#: :data:`PRIOR_MIN_SUPPORT`, periodicity down to :data:`PRIOR_MIN_Z` standard errors), or a small one
#: without its second multiples, is taken only within this factor of the nearest IJG table's step
#: there (:func:`_read_with_table`).
PRIOR_FACTOR = 1.5
PRIOR_MIN_SUPPORT = 12
PRIOR_MIN_Z = 4.0
#: A step up to :data:`MAX_LONE_STEP` read where the nearest IJG table's step is more than this many
#: times larger is dropped (see :func:`_read_with_table`).
MAX_SMALL_STEP_RATIO = 4.0


def _read_with_table(coefficients: np.ndarray, steps: np.ndarray, confidence: np.ndarray, *,
                     image: np.ndarray | None = None, grid_offset: tuple[int, int] | None = None,
                     max_blocks: int = MAX_BLOCKS) -> tuple[np.ndarray, np.ndarray]:
    """The steps and confidences (8, 8) read one frequency at a time, revised now that the known ones make
    a table that is no IJG table, single or double (``image`` and ``grid_offset``: where the partly
    clipped blocks are recovered from).

    Notes
    -----
    The steps of a table hang together: cameras and editors scale a standard table or follow a smooth
    family, so the IJG table nearest to the known steps (:func:`_nearest_ijg`) predicts each step to
    within a small factor. Two reads use it. A frequency left unknown for want of coefficients (a
    smooth or saturated photo keeps 12-20 of them beyond the zero bin at mid frequencies, where
    :func:`estimate_step` asks for :data:`MIN_SUPPORT`), or for want of second multiples (a smooth
    photo at QF 90 and above: all its coefficients at one multiple of 3), is read with those
    demands lowered, on the unclipped blocks and on the partly clipped ones whose clipped pixels the
    known steps recover (:func:`recovered_clipped_coefficients`; saturated photos keep a third of
    their blocks unclipped), and kept only within :data:`PRIOR_FACTOR` of the prediction. And a small step
    read where the prediction is more than :data:`MAX_SMALL_STEP_RATIO` times larger is dropped: the
    decoder leaves values just above :data:`AMBIGUOUS` (2.6 on val photos) at frequencies quantised
    to zero, which pass for a lattice of 3 (read for steps of 32 and 42 at QF 40 on val photos).
    Never-compressed images are not touched: they have no table to begin with.
    """
    steps, confidence = steps.ravel().copy(), confidence.ravel().copy()
    nearest = ijg_table(_nearest_ijg(steps)[0]).ravel()
    artefacts = (steps > 0) & (steps <= MAX_LONE_STEP) & (nearest > MAX_SMALL_STEP_RATIO * steps)
    steps[artefacts], confidence[artefacts] = 0, 0.0
    # First the unclipped blocks; then, for what is still unknown, the partly clipped ones too, recovered
    # with every step known by then (the more steps known, the better the recovery).
    for recover in (False, True) if image is not None else (False,):
        unknown = np.flatnonzero((steps == 0) & ~artefacts)
        if unknown.size == 0:
            break
        if recover:
            recovered = recovered_clipped_coefficients(image, grid_offset, steps.reshape(8, 8), max_blocks=max_blocks)
            coefficients = np.concatenate([coefficients, recovered])
        for k in unknown:
            step, trust = estimate_step(coefficients[:, k], lone=True, min_support=PRIOR_MIN_SUPPORT, min_z=PRIOR_MIN_Z)
            # a step of 1 stays unknown: under the rounding noise its lattice is there by chance alone
            if step >= 2 and nearest[k] / PRIOR_FACTOR <= step <= nearest[k] * PRIOR_FACTOR:
                steps[k], confidence[k] = step, trust
    return steps.reshape(8, 8), confidence.reshape(8, 8)


#: A read step matches an IJG step within this share of it: decoded coefficients of large steps sit
#: up to 2 % below their multiples (libjpeg's integer IDCT and the rounding of large block contrasts;
#: 66 read for 67 at QF 30), so steps under 40 must match exactly.
MATCH_TOLERANCE = 0.025
#: Several IJG QFs matching, up to this one or higher, name a range, not a QF (see :func:`match_ijg`).
MIN_AMBIGUOUS_HIGH_QUALITY = 96


def matching_ijg_qualities(steps: np.ndarray, *, chroma: bool = False) -> list[int]:
    """The IJG QFs whose luma (or ``chroma``) table matches every known step (0: unknown) within
    :data:`MATCH_TOLERANCE`, in increasing order."""
    steps = np.asarray(steps)
    known = steps > 0
    tables = ijg_tables(chroma=chroma)[:, known]  # (100, known steps)
    matches = np.all(np.abs(tables - steps[known]) <= np.floor(MATCH_TOLERANCE * tables), axis=1)
    return [int(q) + 1 for q in np.flatnonzero(matches)]


def _nearest_ijg(steps: np.ndarray) -> tuple[int, float]:
    """The IJG QF whose luma table is nearest to the known steps (least mean squared log ratio over them),
    and the root of that mean."""
    known = steps.ravel() > 0
    read = np.log(steps.ravel()[known].astype(np.float64))
    errors = ((log_ijg_luma_tables()[:, known] - read) ** 2).mean(axis=1)
    best = int(np.argmin(errors))
    return best + 1, float(np.sqrt(errors[best]))


def ijg_shape_residual(steps: np.ndarray) -> float | None:
    """The root-mean-square log ratio of the known steps (0: unknown) to the nearest IJG table's over them;
    None when fewer than 3 are known.

    Notes
    -----
    Tables that cameras and editors make by scaling the standard table their own way keep its shape
    (about 0.15 here for a 15 % per-step jitter); a table of another family (steps growing as a power
    of the frequency, say) lies further from every IJG table. Where the shape is IJG's, the unknown
    high-frequency steps (quantised to zero everywhere, so that the pixels cannot show them) are
    estimated by the nearest IJG table's; elsewhere nothing in the pixels bounds them.
    """
    if int((np.asarray(steps) > 0).sum()) < 3:
        return None
    return _nearest_ijg(np.asarray(steps))[1]


#: Exponents tried for the power-law shape of :func:`fit_table_shape`.
POWER_LAW_EXPONENTS = np.arange(0.3, 3.001, 0.05)
#: The power law completes a table instead of the IJG shape only where it fits the known steps better
#: by this much (root-mean-square log ratio): with three parameters to IJG's one it fits any few steps a
#: little better. Chosen on camera-like tables of 40 train photos (0 to 0.1 all did as well).
POWER_LAW_MARGIN = 0.05
_FREQUENCY_RADIUS = (np.add.outer(np.arange(8), np.arange(8)) / 14.0).ravel()  # (u + v) / 14, 0..1


@dataclass(frozen=True)
class TableShape:
    """A smooth model of a whole quantisation table fitted to the steps read from the pixels.

    Attributes
    ----------
    family : str
        ``"IJG"`` (a scaled standard table, one parameter: the QF) or ``"power law"`` (a step growing
        as a power of the frequency index ``(u + v) / 14``: ``a + b r^p``).
    steps : ndarray of float, (8, 8)
        The model's step at every frequency.
    residual : float
        Root-mean-square log ratio of the known steps to the model's.
    """

    family: str
    steps: np.ndarray
    residual: float


def fit_table_shape(steps: np.ndarray) -> TableShape | None:
    """The shape that fits the known steps (0: unknown) of a table best; None when fewer than 3 are known.

    Notes
    -----
    The pixels show the steps of the frequencies a JPEG left non-zero somewhere, the low ones; those
    quantised to zero everywhere stay unknown, yet the IJG-equivalent QF of the table
    (:func:`jpegtrace.jpeg.ijg_equivalent_quality`, over all 64 steps) weighs them as much as the
    rest. Tables are smooth in frequency, so the unknown steps are extrapolated from the known ones by
    one of two families: the IJG table nearest to them (cameras that scale the standard table their
    own way), or a power law in the frequency index, fitted by least squares in relative error over a
    grid of exponents (:data:`POWER_LAW_EXPONENTS`; phones' and editors' smooth tables). The power law
    is taken only where it fits better by :data:`POWER_LAW_MARGIN`.
    """
    steps = np.asarray(steps).ravel()
    known = steps > 0
    if int(known.sum()) < 3:
        return None
    quality, ijg_residual = _nearest_ijg(steps)
    shape = TableShape("IJG", ijg_table(quality).astype(np.float64), ijg_residual)
    read = steps[known].astype(np.float64)
    radius = _FREQUENCY_RADIUS[known]
    for exponent in POWER_LAW_EXPONENTS:
        # a + b r^p ~ s in relative error: rows divided by s, target 1
        design = np.stack([np.ones_like(radius), radius ** exponent], axis=1) / read[:, None]
        (a, b), *_ = np.linalg.lstsq(design, np.ones_like(read), rcond=None)
        model = a + b * _FREQUENCY_RADIUS ** exponent
        if np.any(model <= 0):
            continue
        residual = float(np.sqrt(np.mean(np.log(model[known] / read) ** 2)))
        if residual < shape.residual - (POWER_LAW_MARGIN if shape.family == "IJG" else 0.0):
            shape = TableShape("power law", model.reshape(8, 8), residual)
    return shape


def completed_table(steps: np.ndarray) -> np.ndarray | None:
    """The known steps (0: unknown) with the unknown ones taken from :func:`fit_table_shape`'s model,
    rounded and kept in 1..255; None when fewer than 3 are known."""
    shape = fit_table_shape(steps)
    if shape is None:
        return None
    model = np.clip(np.round(shape.steps), 1, MAX_STEP).astype(np.int64)
    return np.where(np.asarray(steps) > 0, steps, model)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def match_ijg(steps: np.ndarray) -> tuple[int | None, int | None]:
    """``(ijg_quality, equivalent_quality)`` of a table whose unknown steps are 0 (see :class:`TableEstimate`).

    Notes
    -----
    ``ijg_quality`` is the QF whose IJG table matches every known step (within
    :data:`MATCH_TOLERANCE`). Where several QFs do (the steps that tell them apart are unknown), the
    one that is a multiple of 5 is taken if there is exactly one such, as people set round QFs, and
    otherwise the middle one; but where those reach :data:`MIN_AMBIGUOUS_HIGH_QUALITY` (QF 96-100,
    whose steps of 1 are unreadable under the rounding noise) none is taken: the table is then
    :attr:`TableEstimate.ijg_range` only, "QF ≥ N", never a guessed QF.
    """
    known = steps > 0
    if known.sum() < 3:
        return None, None
    matching = matching_ijg_qualities(steps)
    ijg = None
    if matching and not (len(matching) > 1 and matching[-1] >= MIN_AMBIGUOUS_HIGH_QUALITY):
        round_ones = [q for q in matching if q % 5 == 0]
        ijg = round_ones[0] if len(round_ones) == 1 else matching[len(matching) // 2]
    # The unknown steps from the shape the known ones have (the nearest IJG table's, or a power law's).
    return ijg, ijg_equivalent_quality(completed_table(steps))


def lattice_present(coefficients: np.ndarray, step: int) -> bool:
    """Whether the coefficients beyond :data:`AMBIGUOUS` lie on the multiples of ``step`` (the
    presence test of :func:`estimate_step`; a step of 1 is never "present" under the rounding noise)."""
    c = np.abs(np.asarray(coefficients, dtype=np.float64))
    away = c[c > AMBIGUOUS]
    if away.size < MIN_SUPPORT or step < 2:
        return False
    return bool(_lattices_there(away, np.array([float(step)]))[0])


def match_ijg_double(coefficients: np.ndarray, steps: np.ndarray) -> tuple[int, int | None] | None:
    """``(last, earlier)`` IJG QFs of an aligned double JPEG whose read table mixes both (None when
    the coefficients are no such mix; ``earlier`` None when a single frequency shows it).

    Parameters
    ----------
    coefficients : ndarray, (n, 64)
        :func:`block_coefficients` at the grid.
    steps : ndarray of int, (8, 8)
        The steps read from them (0 where unknown), which matched no IJG table.

    Notes
    -----
    After a JPEG with step ``q1`` and a last one with ``q2 < q1``, a frequency's coefficients are
    multiples of ``q2`` that occupy only those near multiples of ``q1``: the sparser lattice explains
    them best, and the step read there is about ``q1`` (a multiple of ``q2``). The last table is then
    the finest IJG table whose lattice is present (:func:`lattice_present`) at every known frequency
    where its step is 2 or more (at least :data:`MIN_DOUBLE_FREQUENCIES` of them); at every known
    frequency where its step is not the one read, the step read must be twice the last one or more (about ``q1``: the sparse lattice is read to the nearest
    grey level, not always as an exact multiple of ``q2``), at two frequencies or more (or at one, as
    an exact multiple: then no earlier QF is named). The earlier QF is the IJG QF nearest to those
    steps (:func:`match_ijg`'s measure), each of which must lie within the last step of its own.

    The last table's own steps need not be read anywhere: where ``q1`` is several times ``q2``
    (QF 75 then 95) every frequency shows the earlier lattice, and the last table shows only in
    its lattices being present and in the earlier steps read as its multiples (25 for 26 under a
    last step of 5). On 12 val photos (Pillow 4:2:0, aligned) asking for a tenth of the steps to be
    the last table's left all 75 -> 95 JPEGs undetected; without it 11 of 12 are, their last table exact.
    """
    known = np.flatnonzero(steps.ravel() > 0)
    if known.size < MIN_KNOWN_STEPS:
        return None
    read = steps.ravel()[known]
    candidates = ijg_tables().reshape(100, 64)[:, known]  # row q - 1: QF q's steps at the known frequencies
    for last in range(99, 1, -1):
        table = candidates[last - 1]
        informative = table >= 2
        if informative.sum() < MIN_DOUBLE_FREQUENCIES:
            continue
        same = np.abs(table - read) <= np.floor(MATCH_TOLERANCE * table)
        if same.all():
            continue
        other = ~same
        if np.any(read[other] < 2 * table[other]):
            continue
        if not all(lattice_present(coefficients[:, k], int(t)) for k, t in zip(known[informative], table[informative])):
            continue
        if other.sum() < 2:
            # One step off, an exact multiple of the last: the last table, but one frequency does not
            # name an earlier table (a sparse histogram there could be chance).
            if read[other][0] % table[other][0] == 0:
                return last, None
            continue
        errors = np.mean((np.log(candidates[:last - 1][:, other]) - np.log(read[other])) ** 2, axis=1)
        earlier = int(np.argmin(errors)) + 1  # the first of the nearest, as min() over QF 1..last-1 took
        first = candidates[earlier - 1][other]
        # Each such step is the earlier one, read to within the last step (the sparse lattice's multiples of q2).
        if np.any(np.abs(read[other] - first) > table[other] + np.floor(MATCH_TOLERANCE * first)):
            continue
        return last, earlier
    return None


@dataclass(frozen=True)
class RegionTable:
    """The table read in one window of an image (:func:`estimate_tables_by_window`)."""

    y: int
    x: int
    height: int
    width: int
    table: TableEstimate

    def as_dict(self) -> dict:
        return {"box": [self.y, self.x, self.height, self.width], **self.table.as_dict()}


#: Grid score above which a tile of :func:`estimate_tables_by_window` is read at its best offset: the
#: never-compressed maximum (see :data:`jpegtrace.grid.check.GRID_SCORE_THRESHOLD`), since a 128-pixel
#: tile of a QF-50 JPEG scores only 7-8; the table's own tests then decide.
WINDOW_GRID_SCORE = 4.6


def estimate_tables_by_window(image: np.ndarray, *, window: int = 128) -> list[RegionTable]:
    """The table of every ``window`` x ``window`` tile (stride ``window``) with a grid and a table of its own.

    Each tile is checked and read on its own, grid offset included, so a region pasted from a JPEG with
    another table or another grid offset reports its own. Tiles whose grid scores at most
    :data:`WINDOW_GRID_SCORE`, or with too few steps read, are left out. Offsets are given in the whole
    image's coordinates.
    """
    out = []
    height, width = image.shape[:2]
    for y in range(0, max(1, height - window + 1), window):
        for x in range(0, max(1, width - window + 1), window):
            tile = image[y:y + window, x:x + window]
            grid = find_jpeg_grid(tile, threshold=WINDOW_GRID_SCORE)
            table = estimate_luma_table(tile, grid_offset=grid.grid_offset) if grid.found else None
            if table is not None:
                out.append(RegionTable(y, x, tile.shape[0], tile.shape[1], table.within(y, x)))
    return out


def format_table(steps: np.ndarray, confidence: np.ndarray | None = None) -> str:
    """An 8x8 table as rows of steps, ``?`` where unknown (as JPEGsnoop prints the DQT), with a
    confidence grid (0-9) beside it when given."""
    lines = []
    for u in range(8):
        row = " ".join(f"{int(v):4d}" if v > 0 else "   ?" for v in steps[u])
        if confidence is not None:
            row += "    " + " ".join(str(int(9 * c)) if s > 0 else "-" for s, c in zip(steps[u], confidence[u]))
        lines.append(row)
    return "\n".join(lines)


def file_tables(path) -> list[np.ndarray] | None:
    """The quantisation tables a JPEG file declares (luma first; Pillow's ``quantization``), None for
    any other file. This reads the file's header, not its pixels: beside the table read from the
    pixels it tells a JPEG re-saved from an older one (the pixels show the older table's traces).
    Of a multi-picture file (MPO: a camera's JPEG with others after it), the first picture's."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format not in ("JPEG", "MPO"):
                return None
            return [np.array(im.quantization[k], dtype=np.int64).reshape(8, 8) for k in sorted(im.quantization)]
    except (OSError, ValueError, SyntaxError):
        return None
