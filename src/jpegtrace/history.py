"""Compression history beyond the last JPEG: traces of an earlier, coarser quantisation (double JPEG).

A JPEG decoded and compressed again on the same grid quantises each DCT coefficient twice: first to
multiples of the earlier step ``q1``, then to multiples of the last step ``q2``. Where ``q1 > q2``
only the multiples ``k * q2`` with ``k = round(m * q1 / q2)`` can occur, so the histogram of ``k``
has empty bins between them (the double-quantisation artefact of Popescu & Farid, read for the
primary table as by Bianchi & Piva and Galvan et al.). A single JPEG's histogram is smooth there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .jpeg import ijg_table
from .tables import TableEstimate, block_coefficients

#: Low frequencies (zig-zag order after DC) whose histograms are read: they hold most coefficients.
FREQUENCIES = ((0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0), (4, 0), (3, 1), (2, 2),
               (1, 3), (0, 4))
#: Fewest non-zero coefficients for a frequency's histogram to count.
MIN_COEFFICIENTS = 50
#: Fewest frequencies with bins the earlier table leaves empty for the test to say anything.
MIN_FREQUENCIES = 3
#: Double compression is reported when the mass in the bins an earlier IJG table leaves empty is under
#: this share of what a smooth histogram would put there. Measured on 12 train photos (Pillow, 4:2:0,
#: aligned): single JPEGs at QF 80 and 90 give 0.63-0.88 at their best candidate; QF 50->80, 40->75,
#: 60->90, 70->85 and 75->90 give 0.04-0.67, mostly under 0.2; 85->95 gives 0.35-0.70.
MAX_EMPTY_RATIO = 0.4
#: Largest bin index looked at (larger ones hold few coefficients).
MAX_BIN = 60
#: Among the candidate earlier tables under :data:`MAX_EMPTY_RATIO`, only those whose empty bins a smooth
#: histogram would fill with at least this share of the largest such mass compete on the ratio. A table a
#: step or two coarser than the last one at a few frequencies leaves a few bins empty, which in a double
#: JPEG of a much coarser earlier table are empty anyway: by the lowest ratio alone QF 30 then 90 read as
#: 88, 40 then 75 as 73. Chosen on 8 val images x 24 pairs of QFs (4:2:0, aligned; the earlier QF found
#: within 2 in 122 of 197 by the ratio alone, 138 with 0.5, 146 with 0.6 and 0.7, 113 with 0.9).
MIN_GAP_SHARE = 0.65


@dataclass(frozen=True)
class DoubleCompression:
    """The double-JPEG test of :func:`detect_double_compression`.

    Attributes
    ----------
    detected : bool
        The histograms show an earlier, coarser quantisation on the same grid: compressed at least twice.
    primary_quality : int or None
        The IJG QF of the earlier table that explains the empty bins best (when detected).
    empty_ratio : float
        At that QF, the coefficients in the bins its table leaves empty over what a smooth (single
        JPEG) histogram would put there: near 0 for a double JPEG, about 0.6-0.9 for a single one.
    frequencies : int
        Frequencies the ratio rests on.
    evidence : {'empty bins', 'table', None}
        What showed the earlier JPEG: the empty bins, or (where they did not) the table read from the
        pixels, whose steps were the earlier table's at some frequencies
        (:attr:`jpegtrace.tables.TableEstimate.earlier_quality`); None when not detected.
    """

    detected: bool
    primary_quality: int | None
    empty_ratio: float
    frequencies: int
    evidence: str | None = None

    def as_dict(self) -> dict:
        return {"detected": self.detected, "primary_quality": self.primary_quality,
                "empty_ratio": round(self.empty_ratio, 3), "frequencies": self.frequencies,
                "evidence": self.evidence}

    def describe(self) -> str:
        if not self.detected:
            return "no trace of an earlier JPEG"
        return f"compressed at least twice (earlier QF ≈ {self.primary_quality})"


def last_bin_histograms(coefficients: np.ndarray, last_steps: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Per frequency of :data:`FREQUENCIES` that :func:`empty_bin_ratio` can read: the histogram of the
    coefficients' bins of the last step (absolute bin index, bin 0 dropped; the last bin gathers the
    values beyond the 99th percentile, at most :data:`MAX_BIN`).

    What the empty-bin test reads of the coefficients does not depend on the candidate earlier table,
    so :func:`detect_double_compression` computes it once for all its candidates.
    """
    histograms = {}
    for u, v in FREQUENCIES:
        q2 = int(last_steps[u, v])
        if q2 <= 0:
            continue
        k = np.abs(np.rint(coefficients[:, 8 * u + v] / q2).astype(np.int64))
        k = k[k != 0]
        if k.size < MIN_COEFFICIENTS:
            continue
        top = min(int(np.percentile(k, 99)), MAX_BIN)
        if top < 3:
            continue
        histograms[u, v] = np.bincount(np.minimum(k, top + 1), minlength=top + 2).astype(np.float64)
    return histograms


def empty_bin_ratio(coefficients: np.ndarray, last_steps: np.ndarray, primary_steps: np.ndarray, *,
                    histograms: dict[tuple[int, int], np.ndarray] | None = None) -> tuple[float | None, int]:
    """Mass in the bins ``primary_steps`` leave empty over a smooth histogram's, and the frequencies used.

    Parameters
    ----------
    coefficients : ndarray, (n, 64)
        DCT coefficients of the blocks at the last JPEG's grid (:func:`jpegtrace.tables.block_coefficients`).
    last_steps, primary_steps : ndarray of int, (8, 8)
        The last table (0 where unknown) and a candidate earlier one.
    histograms : dict, optional
        :func:`last_bin_histograms` of ``coefficients`` and ``last_steps``, when already computed.
    """
    if histograms is None:
        histograms = last_bin_histograms(coefficients, last_steps)
    observed, expected, used = _empty_bins(histograms, last_steps, primary_steps)
    return (None if expected <= 0 else observed / expected), used


@functools.lru_cache(maxsize=4096)
def _empty_bin_indices(q1: int, q2: int, top: int) -> np.ndarray:
    """The bins 1..``top`` of a step-``q2`` histogram that no multiple of ``q1`` requantised to ``q2``
    reaches: ``rint(j q1 / q2)`` for j = 0, 1, ... (cached: the same steps recur across candidate tables)."""
    reached = np.rint(np.arange(top * q2 // q1 + 3) * q1 / q2).astype(np.int64)
    hit = np.zeros(top + 1, bool)
    hit[reached[reached <= top]] = True
    empty = np.flatnonzero(~hit[1:]) + 1
    empty.flags.writeable = False  # shared by the cache
    return empty


def _empty_bins(histograms: dict[tuple[int, int], np.ndarray], last_steps: np.ndarray,
                primary_steps: np.ndarray) -> tuple[float, float, int]:
    """The mass observed in the bins ``primary_steps`` leave empty, what a smooth histogram would put
    there, and the frequencies with such bins."""
    observed = expected = 0.0
    used = 0
    for (u, v), hist in histograms.items():
        q1, q2 = int(primary_steps[u, v]), int(last_steps[u, v])
        if q1 <= q2:
            continue  # no gaps unless the earlier step is the coarser
        empty = _empty_bin_indices(q1, q2, len(hist) - 2)
        if empty.size == 0:
            continue
        # What a smooth histogram would hold in an empty bin: the mean of its neighbours.
        smooth = (hist[empty - 1] + hist[empty + 1]) / 2.0
        observed += float(hist[empty].sum())
        expected += float(np.maximum(smooth, hist[empty]).sum())
        used += 1
    return observed, expected, used


def detect_double_compression(image: np.ndarray, table: TableEstimate, *,
                              max_ratio: float = MAX_EMPTY_RATIO) -> DoubleCompression | None:
    """Look for an earlier, coarser JPEG on the last one's grid.

    Parameters
    ----------
    image : ndarray of uint8
        As analysed.
    table : TableEstimate
        The last JPEG's table read from the pixels (:func:`jpegtrace.tables.estimate_luma_table`).
    max_ratio : float
        See :data:`MAX_EMPTY_RATIO`.

    Returns
    -------
    DoubleCompression or None
        None when the test cannot say anything (too few coefficients or frequencies, or no
        candidate earlier table coarser than the last).

    Notes
    -----
    Candidates are the IJG tables of QF 1 up to the last table's QF less 1 (earlier tables of other
    families are found only where an IJG table's gaps match theirs). Of the candidates under ``max_ratio``, those whose empty
    bins hold at least :data:`MIN_GAP_SHARE` of the largest expected mass compete, and the lowest ratio among them
    is kept (without one under ``max_ratio``, the lowest ratio is reported). Only an earlier JPEG on the same grid, coarser than the last, leaves these
    gaps; a finer earlier one (QF1 > QF2) or one on another grid is not detected here.

    References
    ----------
    .. [1] A. C. Popescu and H. Farid, "Statistical tools for digital forensics", IH 2004.
    .. [2] T. Bianchi and A. Piva, "Image forgery localization via block-grained analysis of JPEG
       artifacts", IEEE TIFS 7(3), 2012.
    .. [3] F. Galvan, G. Puglisi, A. R. Bruna and S. Battiato, "First quantization matrix
       estimation from double compressed JPEG images", IEEE TIFS 9(8), 2014.
    """
    last = table.ijg_quality if table.ijg_quality is not None else table.equivalent_quality
    if last is None or last <= 1:
        return None
    coefficients = block_coefficients(image, table.grid_offset)
    if len(coefficients) == 0:
        return None
    histograms = last_bin_histograms(coefficients, table.steps)
    candidates = []  # (ratio, quality, frequencies, the smooth histogram's mass in the empty bins)
    for quality in range(1, int(last)):
        observed, expected, used = _empty_bins(histograms, table.steps, ijg_table(quality))
        if expected > 0 and used >= MIN_FREQUENCIES:
            candidates.append((observed / expected, quality, used, expected))
    if not candidates:
        return None
    below = [c for c in candidates if c[0] < max_ratio]
    if below:
        # The earlier table is the one that explains the gaps best among those that explain most of them.
        most = max(c[3] for c in below)
        ratio, quality, used, _ = min(c for c in below if c[3] >= MIN_GAP_SHARE * most)
        return DoubleCompression(True, quality, float(ratio), used, "empty bins")
    ratio, quality, used, _ = min(candidates)
    if table.earlier_quality is not None:  # the table itself held the earlier steps
        return DoubleCompression(True, table.earlier_quality, float(ratio), used, "table")
    return DoubleCompression(False, None, float(ratio), used)
