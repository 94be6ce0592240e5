"""The last JPEG's chroma quantisation table and chroma subsampling, read back from the pixels.

A JPEG stores Cb and Cr either at full resolution (4:4:4) or halved horizontally (4:2:2) or in both
directions (4:2:0), in 8x8 blocks of the stored plane, quantised with the chroma table. The decoder
(libjpeg's "fancy" upsampling, which Pillow, ImageMagick and most viewers use) brings a halved plane
back to full size with a triangle filter: each output sample is 3/4 of its nearest stored sample and
1/4 of the next. The average of the two outputs of one stored sample is then that sample filtered by
``[1/8, 3/4, 1/8]``, a tridiagonal system solved exactly here (its gain is at least 1/2 at every
frequency, so the pixels' rounding is at most doubled). The stored plane's blocks are then DCT'd and
read as the luma table is (:func:`jpegtrace.tables.estimate_step`).

Each subsampling is tried; within one, the chroma block grid (the MCU, 16 pixels where a direction
is halved, so 2 choices per halved direction) is the one whose blocks are most often flat (at the
true grid, coarse quantisation leaves whole blocks flat; a grid 8 pixels off cuts across their
edges). The subsampling is the one under which the steps are read with the most confidence (summed
over frequencies; at a wrong one, the coefficients fall on multiples of a step at few frequencies),
and only when it leads the next by :data:`MIN_LEAD`, or is the only one whose steps are an IJG
chroma table's.

Measured on the images of ``benchmarks/bench_tables.py`` (its results in ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grid.clipped import grid_block_origin
from .grid.dct import block_dct
from .tables import MAX_BLOCKS, MIN_BLOCK_STD, estimate_step, matching_ijg_qualities

#: The subsamplings read, and the axes (0 rows, 1 columns) each halves.
SUBSAMPLINGS = {"4:4:4": (), "4:2:2": (1,), "4:2:0": (0, 1)}
#: Chroma coefficients within this of zero are left out (luma: 2.5). Chroma recomputed from 8-bit RGB,
#: and undone upsampling, are noisier: frequencies quantised to zero then show chance lattices of 3.
CHROMA_AMBIGUOUS = 4.0
#: A block of the stored plane is "flat" below this standard deviation (grey levels).
FLAT_STD = 0.6
#: Fewest chroma steps read for a chroma table (and a subsampling) to be reported.
MIN_KNOWN_CHROMA_STEPS = 6
#: The winning subsampling's summed step confidence must be this many times the runner-up's.
MIN_LEAD = 1.1
#: Side of the centred region read at most (bounds the cost: about 4k blocks of 4:4:4 chroma).
MAX_SIDE = 1024


@dataclass(frozen=True)
class ChromaEstimate:
    """The chroma table and subsampling read from the pixels (:func:`estimate_chroma_table`).

    Attributes
    ----------
    subsampling : str
        '4:4:4', '4:2:2' or '4:2:0'.
    steps : ndarray of int, (8, 8)
        The chroma table's step per frequency (natural order), 0 where unknown; Cb and Cr pooled
        (encoders almost always share one chroma table).
    confidence : ndarray of float, (8, 8)
    block_origin : (int, int)
        Row and column, in pixels of the image, of a corner of the chroma block grid (mod 8 for
        4:4:4, mod 16 in a halved direction).
    blocks : int
        Chroma blocks read (Cb and Cr together).
    ijg_quality : int or None
        The QF whose IJG chroma table matches every known step, when one does.
    runner_up : int
        Steps read under the best of the other subsamplings (how clearly this one won).
    """

    subsampling: str
    steps: np.ndarray
    confidence: np.ndarray
    block_origin: tuple[int, int]
    blocks: int
    ijg_quality: int | None
    runner_up: int

    @property
    def known(self) -> np.ndarray:
        return self.steps > 0

    def as_dict(self) -> dict:
        return {"subsampling": self.subsampling, "steps": self.steps.tolist(),
                "confidence": np.round(self.confidence, 3).tolist(), "block_origin": list(self.block_origin),
                "blocks": self.blocks, "ijg_quality": self.ijg_quality, "known_steps": int(self.known.sum()),
                "runner_up_known_steps": self.runner_up}


def chroma_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cb and Cr of 8-bit RGB as JPEG (JFIF, ITU-R 601 full range) computes them, float64."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128.0
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128.0
    return cb, cr


def undo_fancy_upsampling(plane: np.ndarray, axis: int, phase: int) -> np.ndarray:
    """The halved plane along ``axis`` that libjpeg's triangle-filter upsampling made ``plane`` from.

    ``phase`` (0 or 1) is the first full-resolution index of a stored sample's pair of outputs.
    The pairs' averages are the stored samples filtered by ``[1/8, 3/4, 1/8]`` (the edge sample
    repeated at the ends), solved here as a tridiagonal system.
    """
    p = np.moveaxis(plane, axis, 0)[phase:]
    n = p.shape[0] // 2
    if n < 2:
        return np.moveaxis(p[:0], 0, axis)
    pairs = 0.5 * (p[0:2 * n:2] + p[1:2 * n:2])
    diagonal = np.full(n, 3 / 4)
    diagonal[0] = diagonal[-1] = 7 / 8  # the edge sample is its own neighbour
    stored = _solve_tridiagonal(1 / 8, diagonal, pairs.reshape(n, -1)).reshape(pairs.shape)
    return np.moveaxis(stored, 0, axis)


def _solve_tridiagonal(off_diagonal: float, diagonal: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``x`` with ``A @ x = rhs`` for the symmetric tridiagonal ``A`` of ``diagonal`` and a constant
    ``off_diagonal``, for every column of ``rhs`` ``(n, m)`` at once (the Thomas algorithm).

    Notes
    -----
    Stable without pivoting because ``A`` is diagonally dominant (3/4 and 7/8 against 1/8 + 1/8). It
    stands in for ``scipy.linalg.solve_banded``, whose import costs about 0.25 s of a 1 MP analysis.
    """
    n = len(diagonal)
    x = np.array(rhs, dtype=np.float64)
    pivots = np.empty(n)
    pivots[0] = diagonal[0]
    for i in range(1, n):  # forward elimination of the sub-diagonal
        factor = off_diagonal / pivots[i - 1]
        pivots[i] = diagonal[i] - factor * off_diagonal
        x[i] -= factor * x[i - 1]
    x[-1] /= pivots[-1]
    for i in range(n - 2, -1, -1):  # back substitution
        x[i] -= off_diagonal * x[i + 1]
        x[i] /= pivots[i]
    return x


def _blocks(plane: np.ndarray, origin: tuple[int, int]) -> tuple[np.ndarray, float]:
    """The textured 8x8 blocks ``(n, 64)`` of ``plane`` from ``origin`` on, and the share of flat blocks."""
    p = plane[origin[0]:, origin[1]:]
    rows, cols = p.shape[0] // 8, p.shape[1] // 8
    if rows == 0 or cols == 0:
        return np.empty((0, 64)), 0.0
    blocks = p[:8 * rows, :8 * cols].reshape(rows, 8, cols, 8).transpose(0, 2, 1, 3).reshape(-1, 64) - 128.0
    spread = blocks.std(axis=1)
    return blocks[spread >= MIN_BLOCK_STD], float(np.mean(spread < FLAT_STD))


def _read(parts, max_blocks: int):
    """Steps and confidences of the blocks ``parts`` (:func:`_blocks` of each plane), and how many were read."""
    blocks = np.concatenate(parts)
    if len(blocks) > max_blocks:
        blocks = blocks[np.linspace(0, len(blocks) - 1, max_blocks).astype(int)]
    coefficients = block_dct(blocks)
    # No zero-bin test here: recomputed chroma leaves more coefficients in a step's zero bin than decoded
    # luma does, and with the luma's test 16 was read for 47 (Pillow 4:4:4 at QF 50, tests/test_chroma.py).
    read = [estimate_step(coefficients[:, k], ambiguous=CHROMA_AMBIGUOUS, zero_bin_reach=None) for k in range(64)]
    steps = np.array([s for s, _ in read], np.int64).reshape(8, 8)
    confidence = np.array([c for _, c in read]).reshape(8, 8)
    return steps, confidence, len(blocks)


def estimate_chroma_table(rgb: np.ndarray, *, grid_offset: tuple[int, int],
                          max_blocks: int = MAX_BLOCKS) -> ChromaEstimate | None:
    """Estimate the chroma subsampling and chroma table of the last JPEG of an RGB image.

    Parameters
    ----------
    rgb : ndarray of uint8, (H, W, 3)
        As decoded (a grayscale image has no chroma: None).
    grid_offset : (int, int)
        The luma JPEG grid (:attr:`jpegtrace.grid.GridEvidence.grid_offset`).
    max_blocks : int
        Chroma blocks read at most per candidate.

    Returns
    -------
    ChromaEstimate or None
        None for grayscale input, or when the winning subsampling has fewer than
        :data:`MIN_KNOWN_CHROMA_STEPS` steps read or does not lead clearly.

    Notes
    -----
    Assumes the decoder's triangle-filter ("fancy") upsampling, libjpeg's default; a decoder that
    repeats samples instead leaves 4:2:0 chroma that reads as no table here.

    References
    ----------
    .. [1] T. Nikoukhah, J. Anger, M. Colom, J.-M. Morel and R. Grompone von Gioi, "A reliable JPEG
       quantization table estimator", Image Processing On Line 12, 2022.
    .. [2] Independent JPEG Group, libjpeg ``jdsample.c`` (``h2v1_fancy_upsample``, ``h2v2_fancy_upsample``).
    """
    if rgb.ndim != 3 or (rgb.strides[2] == 0) or (np.array_equal(rgb[..., 0], rgb[..., 1])
                                                  and np.array_equal(rgb[..., 1], rgb[..., 2])):
        return None
    oy, ox = grid_block_origin(grid_offset)
    # A centred region, cut at the luma grid's 16-pixel period so every MCU choice stays in it.
    height, width = rgb.shape[:2]
    y0 = oy + 16 * max(0, (height - oy - MAX_SIDE) // 32)
    x0 = ox + 16 * max(0, (width - ox - MAX_SIDE) // 32)
    region = rgb[y0:y0 + MAX_SIDE, x0:x0 + MAX_SIDE]
    cb, cr = chroma_planes(region)
    results = {}
    for subsampling, halved in SUBSAMPLINGS.items():
        planes = []
        for plane in (cb, cr):
            for axis in halved:  # the region starts on the luma grid, so stored pairs start there too
                plane = undo_fancy_upsampling(plane, axis, 0)
            planes.append(plane)
        # In a halved direction the chroma blocks are 16 pixels: the luma grid or 8 pixels further.
        shifts = [(dy, dx) for dy in ((0, 4) if 0 in halved else (0,)) for dx in ((0, 4) if 1 in halved else (0,))]
        # The shift whose blocks are flattest is the stored grid (quantisation zeroes a block's AC); only
        # its steps are read (the first of equals).
        candidates = []
        for dy, dx in shifts:
            parts, flat = zip(*(_blocks(p, (dy, dx)) for p in planes))
            candidates.append((float(np.mean(flat)), (dy, dx), parts))
        flat, shift, parts = max(candidates, key=lambda candidate: candidate[0])
        results[subsampling] = (*_read(parts, max_blocks), shift, flat)
    # The subsampling whose steps are read with the most confidence (about one per step read); one
    # whose steps are exactly an IJG chroma table's goes first (a wrongly halved direction reads
    # steps near half the true ones, no IJG table's), as encoders without tables of their own use them.
    ijg = {s: match_ijg_chroma(r[0]) for s, r in results.items()}
    standard = {s: ijg[s] is not None and int((r[0] > 0).sum()) >= MIN_KNOWN_CHROMA_STEPS for s, r in results.items()}
    ranked = sorted(results, key=lambda s: (standard[s], float(results[s][1].sum())), reverse=True)
    winner, second = ranked[0], ranked[1]
    steps, confidence, blocks, (dy, dx), _ = results[winner]
    known = int((steps > 0).sum())
    runner_up = int((results[second][0] > 0).sum())
    clear = (standard[winner] and not standard[second]) or confidence.sum() >= MIN_LEAD * results[second][1].sum()
    if known < MIN_KNOWN_CHROMA_STEPS or not clear:
        return None
    # Shifts are in samples of the stored plane: 2 pixels each in a halved direction.
    origin = (y0 + dy * (2 if winner == "4:2:0" else 1), x0 + dx * (1 if winner == "4:4:4" else 2))
    return ChromaEstimate(winner, steps, confidence, (int(origin[0]), int(origin[1])), int(blocks),
                          ijg[winner], runner_up)


def match_ijg_chroma(steps: np.ndarray) -> int | None:
    """The QF whose IJG chroma table matches every known step, within the luma match's tolerance
    (:func:`jpegtrace.tables.matching_ijg_qualities`); the lowest when several do, None when none does."""
    if not (steps > 0).any():
        return None
    matching = matching_ijg_qualities(steps, chroma=True)
    return matching[0] if matching else None
