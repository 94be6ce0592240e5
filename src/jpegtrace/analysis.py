"""Pixelwise JPEG analysis of one image: quality map, compression-flag map and their summary.

The network is a torch :class:`~jpegtrace.nn.qfnet.QFNet` or the arrays of a weights file
(:class:`~jpegtrace.nn.weights.NetworkWeights`). :func:`analyze` of the shipped model on the CPU with
OpenVINO installed runs on the arrays and never imports torch (about 0.8 s of start-up).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .errors import JpegTraceError
from .evidence import MIN_EVIDENCE_SHARE, block_structure, evidence_map, fill_without_evidence, set_blocks
from .grid.check import GridEvidence, find_jpeg_grid
from .grid.clipped import clipped_block_flag, grid_block_origin
from .grid.coarse import find_coarse_grid
from .history import DoubleCompression, detect_double_compression
from .io import DEFAULT_MAX_PIXELS, read_analysis_input
from .regions import FLAG, Region, confirm_regions, find_regions, outside_regions, quality_regions_supported
from .nn import backends
from .nn.config import FLAG_CHANNEL, QUALITY_CHANNEL
from .nn.weights import NetworkWeights, QualityCalibration, load_weights, read_weights
from .chroma import estimate_chroma_table
from .tables import TableEstimate, estimate_luma_table, smooth_coarse_table

if TYPE_CHECKING:  # torch is imported where a torch network runs, not for OpenVINO's arrays
    import torch

    from .nn.qfnet import QFNet

#: Steps a non-standard table must have read for its IJG-equivalent QF to be the headline QF.
#: The IJG-equivalent QF of a table is that of all 64 steps; one read at fewer frequencies (the low
#: ones: high ones quantised to zero stay unknown) can be far from it for tables not shaped like IJG's
#: (on 6 val photos with camera-like tables: 54-64 steps read gave it within 0-3, 11-34 steps within
#: 0-25), so below this the network's QF is the headline, unless the table has IJG's shape.
MIN_TABLE_STEPS_FOR_QF = 48
#: A non-standard table whose known steps lie within this of a smooth table's shape, an IJG table's
#: or a power law's (:attr:`~jpegtrace.tables.TableEstimate.shape`), and number at least
#: :data:`MIN_SHAPED_STEPS` is the headline too: its unknown steps are then that shape's. Chosen on
#: camera-like tables of 40 train photos (``scripts/study_camera_tables.py``, seed 11): see the
#: research log.
MAX_SHAPE_RESIDUAL = 0.2
MIN_SHAPED_STEPS = 8
#: Bounds the output pixels computed at once to about ``DEFAULT_TILE_SIZE ** 2``.
DEFAULT_TILE_SIZE = 512
#: Smallest tile ONNX Runtime and OpenVINO get: smaller ones recompute their 16-pixel halo too often.
MIN_RUNTIME_TILE = 64


# The verdicts, one vocabulary for every output (text, JSON, CSV, reports).
NEVER_COMPRESSED = "never compressed"
COMPRESSED = "compressed"
PARTLY_COMPRESSED = "partly compressed"
NO_EVIDENCE = "no evidence"
VERDICTS = (NEVER_COMPRESSED, COMPRESSED, PARTLY_COMPRESSED, NO_EVIDENCE)
#: The verdicts that found JPEG compression somewhere (what counts as "judged compressed").
JPEG_VERDICTS = (COMPRESSED, PARTLY_COMPRESSED)


def judge(mean_flag: float | None, *, grid_found: bool = False,
          evidence_share: float = 1.0) -> str:
    """The whole-image verdict, one of :data:`VERDICTS`.

    Parameters
    ----------
    mean_flag : float or None
        Mean flag over the pixels with evidence (None when none has any).
    grid_found : bool
        The JPEG grid check found a grid: compressed, whatever the flag says.
    evidence_share : float
        Share of pixels with evidence (:func:`jpegtrace.evidence.evidence_map`).

    Notes
    -----
    A found grid is evidence in itself. Without it, an image with evidence in fewer than
    :data:`~jpegtrace.evidence.MIN_EVIDENCE_SHARE` of its pixels gets "no evidence"; otherwise the
    paper's rule decides: compressed when the mean flag is above 0.5.
    """
    if grid_found:
        return COMPRESSED
    if mean_flag is None or evidence_share < MIN_EVIDENCE_SHARE:
        return NO_EVIDENCE
    return COMPRESSED if mean_flag > 0.5 else NEVER_COMPRESSED


def weighted_mean(values: np.ndarray, weights: np.ndarray | None) -> float | None:
    """Mean of ``values`` weighted by ``weights`` (plain mean when None); None when the weights sum to 0."""
    if weights is None:
        return float(values.mean(dtype=np.float64))
    total = float(weights.sum(dtype=np.float64))
    if total <= 0.0:
        return None
    # float64 products without float64 copies of the maps (einsum casts in small buffers)
    return float(np.einsum("i,i->", values.reshape(-1), weights.reshape(-1), dtype=np.float64) / total)


def weighted_median(values: np.ndarray, weights: np.ndarray | None, *, low: float = 0.0, high: float = 100.0,
                    resolution: float = 0.01) -> float | None:
    """Median of ``values`` weighted by ``weights`` (plain median when None), to ``resolution``.

    Parameters
    ----------
    values : ndarray
        Values within ``low..high`` (those outside count as ``low`` or ``high``).
    weights : ndarray or None
        Non-negative, of the shape of ``values``.
    low, high, resolution : float
        The range of the values and the step of the histogram the median is read from.

    Returns
    -------
    float or None
        The smallest histogram step at which the cumulative weight reaches half the total;
        None when the weights sum to 0.

    Notes
    -----
    A histogram, filled a chunk of pixels at a time, instead of a sort: O(pixels), with no
    image-sized copy (a sort of a 64 MP map takes seconds and 256 MB more). The result lies within
    ``resolution / 2`` of the exact weighted median. A monotone map of the values moves their
    weighted median with it, which lets :func:`jpegtrace.eval.calibration.fit_quality_calibration`
    fit a calibration for it.
    """
    bins = int(round((high - low) / resolution)) + 1
    flat_values = values.reshape(-1)
    flat_weights = None if weights is None else weights.reshape(-1)
    counts = np.zeros(bins)
    scaled = np.empty(min(flat_values.size, MEDIAN_CHUNK), dtype=np.float32)  # bin numbers up to 10^4: exact
    for start in range(0, flat_values.size, MEDIAN_CHUNK):
        chunk = flat_values[start:start + MEDIAN_CHUNK]
        bin_of = scaled[:chunk.size]
        np.subtract(chunk, low, out=bin_of, casting="unsafe")
        bin_of /= resolution
        np.clip(np.rint(bin_of, out=bin_of), 0, bins - 1, out=bin_of)
        chunk_weights = None if flat_weights is None else flat_weights[start:start + MEDIAN_CHUNK]
        counts += np.bincount(bin_of.astype(np.intp), weights=chunk_weights, minlength=bins)
    cumulative = np.cumsum(counts)
    if cumulative[-1] <= 0.0:
        return None
    return float(low + resolution * np.searchsorted(cumulative, cumulative[-1] / 2))


#: Pixels :func:`weighted_median` bins at once (20 bytes of temporaries each).
MEDIAN_CHUNK = 1 << 16
#: QF step of the histogram :func:`summarize` reads the quality map's weighted median from.
QUALITY_MEDIAN_STEP = 0.01


@dataclass(frozen=True)
class Analysis:
    """Result of :func:`analyze`.

    Attributes
    ----------
    quality_map : ndarray of float32, (H, W)
        Estimated JPEG quality factor per pixel, 0..100 (100 also means never compressed).
    flag_map : ndarray of float32, (H, W)
        Estimated probability-like compression flag per pixel, 0..1: the network's, raised in
        clipped blocks where ``grid`` found a JPEG grid all around (see :func:`join_grid_evidence`),
        0 in piecewise-constant blocks where it found none (see :func:`analyze_array`).
    verdict : str
        The whole-image verdict, one of :data:`VERDICTS`: "never compressed", "compressed", "partly
        compressed" (flag regions in an image whose rest is not compressed, see
        :func:`partial_verdict`) or "no evidence" (:func:`judge`).
    mean_quality : float or None
        Mean of ``quality_map`` weighted by ``evidence_map``; None when the verdict is "no evidence".
    median_quality : float or None
        Median of ``quality_map`` weighted by ``evidence_map`` (:func:`weighted_median`): the maps'
        whole-image QF estimate, the one :attr:`headline_quality` quotes when no table is read, and
        the one the model's quality calibration is fitted for; None when the verdict is "no evidence".
    mean_flag : float or None
        Mean of ``flag_map`` weighted by ``evidence_map``; None when no pixel has evidence.
    evidence_map : ndarray of float32, (H, W) or None
        Where the pixels can carry JPEG evidence, 0..1 (:func:`jpegtrace.evidence.evidence_map`);
        None when it was not computed (then every pixel counts fully).
    evidence_share : float
        Mean of ``evidence_map`` (1 when it was not computed).
    grayscale : bool
        The image was analysed as grayscale (its three channels are equal).
    notes : tuple of str
        What was done to the input on the way (alpha dropped, 16-bit reduced, ...).
    grid : GridEvidence or None
        The DCT check for a JPEG block grid (:func:`jpegtrace.grid.find_jpeg_grid`), which
        catches QF 97-100 JPEGs the network misses; None when it was not run.
    network_mean_flag : float or None
        Mean of the network's flag map before the grid's evidence joined it or piecewise-constant
        blocks were set to 0 (see :func:`analyze_array`); None when neither changed it, the flag
        map then being the network's.
    table : TableEstimate or None
        The last JPEG's luma quantisation table read from the pixels at the grid found
        (:func:`jpegtrace.tables.estimate_luma_table`); None without a grid or when too few steps
        can be read.
    history : DoubleCompression or None
        The double-JPEG test on the table's grid (:func:`jpegtrace.history.detect_double_compression`):
        whether an earlier, coarser JPEG left its traces, and its QF; None without a table.
    regions : tuple of Region
        Areas of flagged blocks, and of flagged blocks whose QF differs from the rest
        (:func:`jpegtrace.regions.find_regions`).
    outside_flag : float or None
        Mean flag (evidence-weighted) outside the flag regions; None when there are none or no
        pixel outside carries evidence.
    """

    quality_map: np.ndarray
    flag_map: np.ndarray
    verdict: str
    mean_quality: float | None
    mean_flag: float | None
    evidence_map: np.ndarray | None = None
    evidence_share: float = 1.0
    grayscale: bool = False
    notes: tuple[str, ...] = field(default=())
    grid: GridEvidence | None = None
    network_mean_flag: float | None = None
    table: TableEstimate | None = None
    regions: tuple[Region, ...] = field(default=())
    outside_flag: float | None = None
    history: DoubleCompression | None = None
    median_quality: float | None = None

    @property
    def flag_regions(self) -> tuple[Region, ...]:
        """The regions of flagged blocks (largest first)."""
        return tuple(r for r in self.regions if r.kind == FLAG)

    @property
    def headline_quality(self) -> float | None:
        """The whole-image QF to quote: the table's where it is read with confidence, else the maps'.

        An IJG table read from the pixels gives the exact QF; a non-standard one read at
        :data:`MIN_TABLE_STEPS_FOR_QF` frequencies or more, or at :data:`MIN_SHAPED_STEPS` in a smooth
        table's shape (:data:`MAX_SHAPE_RESIDUAL`), its IJG-equivalent QF; otherwise (no grid,
        few steps readable) it is ``median_quality``, or for a partly compressed image the QF inside
        its largest flag region. :attr:`quality_source` says which.
        """
        source = self.quality_source
        if source == "table (IJG)":
            return float(self.table.ijg_quality)
        if source == "table (IJG range)":  # the maps' QF, kept within the QFs the table allows
            low, high = self.table.ijg_range
            return float(np.clip(self.median_quality if self.median_quality is not None else low, low, high))
        if source == "table (non-standard)":
            return float(self.table.equivalent_quality)
        if source == "region table (IJG)":
            return float(self.flag_regions[0].table.ijg_quality)
        if source == "region":
            return self.flag_regions[0].quality_inside
        return self.median_quality

    @property
    def quality_source(self) -> str:
        """Where :attr:`headline_quality` comes from: "table (IJG)", "table (IJG range)" (QF 96-100 IJG
        tables, whose steps of 1 cannot be read: the maps' QF within the QFs the table allows),
        "table (non-standard)", "region table (IJG)" (an IJG table read in the box of the largest flag
        region of a partly compressed image, where the whole image gave none), "region" (the network's
        QF inside that region) or "network"."""
        if self.table is not None and self.verdict in JPEG_VERDICTS:
            if self.table.ijg_quality is not None:
                return "table (IJG)"
            if self.table.ijg_range is not None:
                return "table (IJG range)"
            if self.table.equivalent_quality is not None and _table_quality_readable(self.table):
                return "table (non-standard)"
        if self.verdict == PARTLY_COMPRESSED:
            largest = self.flag_regions[0]
            if largest.table is not None and largest.table.ijg_quality is not None:
                return "region table (IJG)"
            if largest.quality_inside is not None:
                return "region"
        return "network"

    @property
    def compressed(self) -> bool:
        """Whether JPEG compression was found, in the whole image or in part (:data:`JPEG_VERDICTS`)."""
        return self.verdict in JPEG_VERDICTS

    @property
    def flag_verdict(self) -> str:
        """The verdict from the flag map alone (the paper's rule), without the grid check."""
        return judge(self.mean_flag, evidence_share=self.evidence_share)

    @property
    def network_verdict(self) -> str:
        """The verdict from the network's own flag map, before the grid's evidence joined it."""
        flag = self.mean_flag if self.network_mean_flag is None else self.network_mean_flag
        return judge(flag, evidence_share=self.evidence_share)

    @property
    def shape(self) -> tuple[int, int]:
        return self.quality_map.shape


def _table_quality_readable(table: TableEstimate) -> bool:
    """Whether a non-standard table's IJG-equivalent QF rests on enough of it: most steps read, or
    enough of them in a smooth table's shape (see :data:`MAX_SHAPE_RESIDUAL`)."""
    known = int(table.known.sum())
    if known >= MIN_TABLE_STEPS_FOR_QF:
        return True
    if known < MIN_SHAPED_STEPS:  # only a camera's coarse table: few steps, all large, smooth
        return smooth_coarse_table(table.steps)
    return table.shape.residual <= MAX_SHAPE_RESIDUAL


@functools.lru_cache(maxsize=4)
def _shipped_model(device: str) -> QFNet:
    # Only analyze() uses this copy, and never hands it out: callers get their own from load_model.
    return to_device(_shipped_arrays().to_model(), device)


@functools.lru_cache(maxsize=1)
def _shipped_arrays() -> NetworkWeights:
    return read_weights()


def _runs_on_arrays(device: str | torch.device | None, backend: str) -> bool:
    """Whether the network runs on OpenVINO on the CPU for these settings, so that its weights file's
    arrays do (:class:`~jpegtrace.nn.weights.NetworkWeights`) and torch need not be loaded."""
    return (backends.device_type(device) == "cpu" and backend in ("auto", "openvino")
            and "openvino" in backends.installed_backends())


def to_device(model: QFNet, device: str) -> QFNet:
    """``model`` moved to ``device``; JpegTraceError with a one-line reason when it does not exist or is unavailable."""
    try:
        return model.to(device)
    except (RuntimeError, AssertionError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JpegTraceError(None, f"cannot use device {device!r}: {reason}") from None


def load_model(weights: str | os.PathLike | None = None, *, device: str = "cpu") -> QFNet:
    """The network of a safetensors file (default: the shipped model), on ``device``, in eval mode.

    Each call returns a model of its own: changing it changes nothing elsewhere.

    Raises
    ------
    ModelError
        When the file is missing, not safetensors, or does not match the network.
    JpegTraceError
        When ``device`` does not exist or is not available.
    """
    return to_device(load_weights(weights), str(device))


def load_network(weights: str | os.PathLike | None = None, *, device: str = "cpu",
                 backend: str = "auto") -> QFNet | NetworkWeights:
    """The network of a safetensors file (default: the shipped model) as :func:`analyze_array` will run it
    with ``device`` and ``backend``: the file's arrays (:func:`jpegtrace.nn.weights.read_weights`)
    where OpenVINO runs them on the CPU, which needs no torch; else :func:`load_model`'s torch network.

    Raises
    ------
    ModelError
        When the file is missing, not safetensors, or does not match the network.
    JpegTraceError
        When ``device`` does not exist or is not available.
    """
    if _runs_on_arrays(device, backend):
        return read_weights(weights)
    return load_model(weights, device=device)


def predict_maps(model: QFNet | NetworkWeights, image: np.ndarray, *, tile_size: int = DEFAULT_TILE_SIZE,
                 device: str | torch.device | None = None, precision: str = "auto",
                 backend: str = "auto", grayscale: bool = False) -> np.ndarray:
    """Raw network output for one uint8 image, computed strip by strip (or tile by tile).

    Parameters
    ----------
    model : QFNet or NetworkWeights
        The network, or its weights file's arrays (:func:`jpegtrace.nn.weights.read_weights`), which
        OpenVINO and ONNX Runtime run as they are (OpenVINO without torch) and torch after building
        the network once.
    image : ndarray of uint8, (H, W, 3)
    tile_size : int
        Bounds memory: about ``tile_size ** 2`` output pixels are computed at once (the torch engine
        streams strips of that size; ONNX Runtime and OpenVINO compute square tiles of that side with
        a halo, at least :data:`MIN_RUNTIME_TILE`). The result equals a whole-image pass whatever its
        value (see :mod:`jpegtrace.nn.engine`).
    device : str or torch.device, optional
        Where to run; the model's own device by default.
    precision : {'auto', 'fp32', 'bf16'}
        Arithmetic of the inner convolutions (the first and last layers stay fp32). 'auto' (the
        default) is bf16 where the CPU computes it natively and this model was checked to keep the
        answer in bf16, fp32 otherwise (:func:`jpegtrace.nn.backends.resolve`).
    backend : {'auto', 'torch', 'onnxruntime', 'openvino'}
        What runs the network: jpegtrace's streaming torch engine, ONNX Runtime (fp32, CPU) or
        OpenVINO (CPU); 'auto' (the default) the fastest installed for the device and precision.
        The maps of every backend equal torch's within about 1e-5 in fp32.
    grayscale : bool
        The image is grayscale (its three channels equal): 'auto' precision then needs the model's
        grayscale check (:func:`jpegtrace.nn.backends.bf16_checked`).

    Returns
    -------
    ndarray of float32, (2, H, W)
        Unclipped normalised maps: channel 0 quality (0 = QF 100), channel 1 flag.
    """
    if tile_size < 1:
        raise ValueError("tile_size must be positive")
    if device is None:
        device = backends.model_device(model)
    backend, precision = backends.resolve(model, backend=backend, precision=precision, device=device,
                                          grayscale=grayscale)
    if backend != "torch":
        try:
            run = backends.runner(model, backend, precision)
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise JpegTraceError(None, f"the {backend} backend is not installed ({exc})") from None
        return run.predict_maps(image, tile_size=max(tile_size, MIN_RUNTIME_TILE))
    from .nn import engine

    model = backends.torch_model(model)
    if engine.supports(model):
        return engine.FastNet(model, device=device, precision=precision).predict_maps(image, tile_size)
    if precision != "fp32":
        raise ValueError(f"precision {precision!r} needs a plain QFNet")
    return engine.eager_predict_maps(model, image, tile_size=tile_size, device=device)


def summarize(raw_maps: np.ndarray, *, grayscale: bool = False, notes: tuple[str, ...] = (),
              inplace: bool = False, grid: GridEvidence | None = None,
              quality_calibration: QualityCalibration | None = None,
              network_mean_flag: float | None = None, evidence: np.ndarray | None = None,
              table: TableEstimate | None = None, find_local: bool = True) -> Analysis:
    """Turn raw network maps ``(2, H, W)`` into an :class:`Analysis` (maps clipped to [0, 1] first).

    ``grid``, the result of :func:`jpegtrace.grid.find_jpeg_grid` on the same image, joins the
    verdict (:func:`judge`). ``quality_calibration`` (a model's
    :attr:`~jpegtrace.nn.qfnet.QFNet.quality_calibration`) maps the clipped quality map before it
    becomes QF; the flag map is never changed here (:func:`analyze_array` joins the grid's evidence
    to it first, and passes the mean flag of the network's own map as ``network_mean_flag``).
    ``evidence`` (:func:`jpegtrace.evidence.evidence_map` of the image) weighs the means and decides
    "no evidence"; without it every pixel counts fully.
    ``find_local`` finds the maps' regions (:func:`jpegtrace.regions.find_regions`) and lets them
    make the verdict "partly compressed" (:func:`partial_verdict`).
    With ``inplace=True`` a float32 ``raw_maps`` is overwritten and the returned maps are views
    of it, so no image-sized copy is made (what :func:`analyze` does for large images).
    """
    if not inplace or raw_maps.dtype != np.float32:
        quality = np.clip(raw_maps[QUALITY_CHANNEL], 0.0, 1.0).astype(np.float32, copy=False)
        flag = np.clip(raw_maps[FLAG_CHANNEL], 0.0, 1.0).astype(np.float32, copy=False)
    else:
        quality = np.clip(raw_maps[QUALITY_CHANNEL], 0.0, 1.0, out=raw_maps[QUALITY_CHANNEL])
        flag = np.clip(raw_maps[FLAG_CHANNEL], 0.0, 1.0, out=raw_maps[FLAG_CHANNEL])
    if quality_calibration is not None:
        quality = quality_calibration(quality, out=quality)
    quality_map = np.subtract(1.0, quality, out=quality)  # QF = 100 * (1 - normalised quality)
    quality_map *= 100.0
    share = 1.0 if evidence is None else float(evidence.mean(dtype=np.float64))
    mean_flag = weighted_mean(flag, evidence)
    verdict = judge(mean_flag, grid_found=grid is not None and grid.found, evidence_share=share)
    mean_quality = weighted_mean(quality_map, evidence) if verdict != NO_EVIDENCE else None
    median_quality = (weighted_median(quality_map, evidence, resolution=QUALITY_MEDIAN_STEP)
                      if verdict != NO_EVIDENCE else None)
    regions = tuple(find_regions(quality_map, flag, evidence)) if find_local else ()
    outside_flag, outside_share = outside_regions(regions, flag, evidence)
    # A grid found is taken to cover the whole image here; analyze_array checks it outside the regions.
    verdict = partial_verdict(verdict, regions, outside_flag, outside_share,
                              grid_outside=grid is not None and grid.found)
    return Analysis(quality_map=quality_map, flag_map=flag, verdict=verdict, mean_quality=mean_quality,
                    mean_flag=mean_flag, evidence_map=evidence, evidence_share=share, grayscale=grayscale,
                    notes=tuple(notes), grid=grid, network_mean_flag=network_mean_flag, table=table,
                    regions=regions, outside_flag=outside_flag, median_quality=median_quality)


def partial_verdict(verdict: str, regions: Sequence[Region], outside_flag: float | None, outside_share: float, *,
                    grid_outside: bool) -> str:
    """``verdict`` (of :func:`judge`), made "partly compressed" where the flag regions are all there is.

    Parameters
    ----------
    verdict : str
        The whole-image verdict of :func:`judge`.
    regions : sequence of Region
        The image's regions (:func:`jpegtrace.regions.find_regions`).
    outside_flag : float or None
        Mean flag over the pixels with evidence outside the flag regions' boxes.
    outside_share : float
        Share of the image's pixels outside the boxes that carry evidence (evidence-weighted).
    grid_outside : bool
        Whether a JPEG grid is found outside the boxes.

    Notes
    -----
    An image is partly compressed when it has a confirmed flag region
    (:attr:`jpegtrace.regions.Region.confirmed`: a clear one, or one with a JPEG grid of its own) and,
    outside the flag regions' boxes, at least :data:`~jpegtrace.evidence.MIN_EVIDENCE_SHARE` of the
    image carries evidence, the mean flag there is at most 0.5 and no JPEG grid is found there:
    the rest of the image is then judged never compressed by the same rule as a whole image.
    """
    if not any(r.confirmed for r in regions) or outside_flag is None or verdict == NO_EVIDENCE:
        return verdict
    if outside_flag <= 0.5 and outside_share >= MIN_EVIDENCE_SHARE and not grid_outside:
        return PARTLY_COMPRESSED
    return verdict


def grid_found_outside(image: np.ndarray, regions: Sequence[Region]) -> bool:
    """Whether :func:`jpegtrace.grid.find_jpeg_grid` finds a grid in ``image`` outside the flag
    regions' boxes (grown by a block), which are painted flat first: the grid check leaves flat
    blocks out."""
    painted = image.copy()
    for r in regions:
        if r.kind == FLAG:
            top, left, bottom, right = r.box
            painted[max(0, top - 8):bottom + 8, max(0, left - 8):right + 8] = 128
    return find_jpeg_grid(painted).found


def join_grid_evidence(flag_map: np.ndarray, image: np.ndarray, grid: GridEvidence) -> None:
    """Raise ``flag_map`` in place to :func:`jpegtrace.grid.clipped_block_flag` over its blocks.

    Clipped blocks of a near-lossless JPEG keep too little of its grid for the network, and
    are left at a low flag even when the grid check finds the JPEG's grid all around them. Each
    pixel of such a block takes the larger of the two flags. Nothing changes when ``grid`` was
    not found or the image has no clipped blocks.

    Parameters
    ----------
    flag_map : ndarray of float32, (H, W)
        The network's flag map (clipped to [0, 1] or not).
    image : ndarray of uint8
        The image it was computed from, ``(H, W, 3)`` or ``(H, W)``.
    grid : GridEvidence
        :func:`jpegtrace.grid.find_jpeg_grid` of ``image``.
    """
    blocks = clipped_block_flag(image, grid)  # all 0 when the grid was not found
    if not blocks.any():
        return
    (oy, ox), (rows, cols) = grid_block_origin(grid.grid_offset), blocks.shape
    # A view: splitting each axis of the covered region into (blocks, 8) keeps it one.
    covered = flag_map[oy:oy + 8 * rows, ox:ox + 8 * cols].reshape(rows, 8, cols, 8)
    np.maximum(covered, blocks[:, None, :, None], out=covered)


def analyze(image: str | os.PathLike | Image.Image | np.ndarray, model: QFNet | NetworkWeights | None = None, *,
            tile_size: int = DEFAULT_TILE_SIZE, device: str | None = None,
            max_pixels: int = DEFAULT_MAX_PIXELS, grid_check: bool = True, allow_damaged: bool = False,
            backend: str = "auto", precision: str = "auto") -> Analysis:
    """Find JPEG compression in an image, pixel by pixel.

    Parameters
    ----------
    image : path, PIL.Image.Image or ndarray
        A file path, a PIL image, or an array: ``(H, W, 3)`` RGB or ``(H, W)`` grayscale,
        uint8 (or uint16, reduced to 8 bits); RGBA is flattened by dropping alpha, with a note.
    model : QFNet or NetworkWeights, optional
        The network; the shipped model (loaded once, then reused; as :func:`load_network` loads it) by default.
    tile_size : int
        Side of the region computed at once; bounds memory without changing the result.
    device : str, optional
        'cpu' or 'cuda'; the model's device by default.
    backend, precision : str
        What runs the network and in which arithmetic (:func:`predict_maps`); 'auto' by default: the
        fastest installed backend, bf16 where it was checked to keep the answer.
    max_pixels : int
        Files whose header claims more pixels are refused before decoding (decompression-bomb
        guard; default 64 million).
    grid_check : bool
        Also look for a JPEG block grid in the DCT coefficients (:mod:`jpegtrace.grid`), which
        finds near-lossless JPEGs the network misses, and let it join the verdict and, in clipped
        blocks, the flag map (:func:`join_grid_evidence`). False keeps the network's flag map
        and the paper's rule, mean flag above 0.5, alone.
    allow_damaged : bool
        Analyse a JPEG that decodes from missing or corrupt data instead of refusing it: a note says
        what is damaged, and the pixels the decoder filled in get no evidence (they are left out of
        the means and the verdict).

    Returns
    -------
    Analysis

    Raises
    ------
    ImageReadError
        When a file cannot be read (missing, unreadable, corrupt, truncated, damaged, over
        ``max_pixels``) or an array has an unusable shape, type or values. ``.path`` and ``.reason`` say which and why.
    ModelError
        When ``model`` is None and the shipped weights cannot be loaded.

    Examples
    --------
    >>> from jpegtrace import analyze
    >>> result = analyze("photo.png")          # doctest: +SKIP
    >>> result.compressed, round(result.median_quality)   # doctest: +SKIP
    (True, 31)
    """
    read = read_analysis_input(image, max_pixels=max_pixels, allow_damaged=allow_damaged)
    if model is None:
        model = _shipped_arrays() if _runs_on_arrays(device, backend) else _shipped_model(str(device or "cpu"))
    return analyze_array(read.rgb, model, tile_size=tile_size, device=device, grid_check=grid_check,
                         backend=backend, precision=precision,
                         grayscale=read.grayscale, notes=read.notes, valid=read.valid)


@dataclass(frozen=True)
class PixelChecks:
    """What :func:`analyze_array` finds in the pixels apart from the network (see :func:`check_pixels`).

    Attributes
    ----------
    grid : GridEvidence or None
        The DCT check for a JPEG block grid; None when it was not run.
    evidence : ndarray of float32, (H, W)
        The evidence map, zero in blocks that repeat exactly.
    piecewise_constant : ndarray of bool, (H // 8, W // 8)
        Blocks that are piecewise constant with an edge (their flag is set to 0 without a grid).
    coarse_table : TableEstimate or None
        Where a coarse JPEG's grid was found by its flat blocks, the coarse table that confirmed it
        (the analysis's luma table then, not read again).
    """

    grid: GridEvidence | None
    evidence: np.ndarray
    piecewise_constant: np.ndarray
    coarse_table: TableEstimate | None = None


def check_pixels(rgb: np.ndarray, *, grid_check: bool = True, valid: np.ndarray | None = None) -> PixelChecks:
    """The part of :func:`analyze_array` before the network: grid check, evidence map, block structure.

    ``valid`` (:attr:`jpegtrace.io.AnalysisInput.valid`) zeroes the evidence where a damaged JPEG
    was filled in by the decoder.

    Notes
    -----
    It needs no model, so a pipeline can run it apart from the network (on CPUs while a GPU runs
    the network, :mod:`jpegtrace.distributed`); :func:`finish_analysis` takes it with the network's
    maps and gives the same :class:`Analysis` as :func:`analyze_array`.
    """
    grid = find_jpeg_grid(rgb) if grid_check else None
    coarse_table = None
    if grid is not None and not grid.found:
        grid, coarse_table = _coarse_grid(rgb, grid)
    evidence = evidence_map(rgb)
    repeated, piecewise_constant = block_structure(rgb)
    set_blocks(evidence, repeated, 0.0)  # one period of a tile carries all of its evidence
    if valid is not None:
        evidence *= valid  # the decoder's fill of a damaged JPEG says nothing about the file
    return PixelChecks(grid=grid, evidence=evidence, piecewise_constant=piecewise_constant,
                       coarse_table=coarse_table)


def _coarse_grid(rgb: np.ndarray, grid: GridEvidence) -> tuple[GridEvidence, TableEstimate | None]:
    """``(grid, None)``, or the grid of a coarse JPEG and its table, where its flat blocks show one and
    a coarse table is read at their offset (:mod:`jpegtrace.grid.coarse`)."""
    offset = find_coarse_grid(rgb)
    if offset is None:
        return grid, None
    table = estimate_luma_table(rgb, grid_offset=offset, coarse=True)  # only a coarse table is read there
    if table is None:
        return grid, None
    return replace(grid, grid_offset=offset, method="flat blocks"), table


def analyze_array(rgb: np.ndarray, model: QFNet | NetworkWeights, *, tile_size: int = DEFAULT_TILE_SIZE,
                  device: str | torch.device | None = None, precision: str = "auto", backend: str = "auto",
                  grid_check: bool = True,
                  grayscale: bool = False, notes: Sequence[str] = (), valid: np.ndarray | None = None) -> Analysis:
    """:func:`analyze` of an 8-bit RGB array already read: the network's maps, the grid check, the summary.

    Parameters
    ----------
    rgb : ndarray of uint8, (H, W, 3)
        As :func:`jpegtrace.io.as_analysis_array` gives it.
    model : QFNet or NetworkWeights
    tile_size, device, precision, backend
        As for :func:`predict_maps`.
    grid_check : bool
        As for :func:`analyze`.
    grayscale, notes
        Passed on to the :class:`Analysis`: what reading the image found and did.
    valid : ndarray of bool, (H, W), optional
        The pixels decoded from the file's data (:attr:`jpegtrace.io.AnalysisInput.valid`); the
        evidence map is 0 elsewhere, so that a damaged JPEG's filled-in area is left out of the
        summary.

    Notes
    -----
    Two tests of the pixels' structure (:func:`jpegtrace.evidence.block_structure`) qualify the
    network's maps. Blocks that repeat exactly (tiles, stripes, checkerboards) are taken out of the
    evidence map: a JPEG of a tile is itself periodic, so the copies add nothing. Where no grid is
    found, blocks that are piecewise constant with an edge (pixel art, text, line drawings) get
    flag 0: quantising an edge's DCT rings on both sides of it, so no JPEG decodes to them.

    It is :func:`check_pixels`, :func:`predict_maps` and :func:`finish_analysis` in turn.
    """
    checks = check_pixels(rgb, grid_check=grid_check, valid=valid)
    raw = predict_maps(model, rgb, tile_size=tile_size, device=device, precision=precision, backend=backend,
                       grayscale=grayscale)
    return finish_analysis(rgb, raw, checks, quality_calibration=model.quality_calibration,
                           grayscale=grayscale, notes=notes)


def finish_analysis(rgb: np.ndarray, raw: np.ndarray, checks: PixelChecks, *,
                    quality_calibration: QualityCalibration | None = None,
                    grayscale: bool = False, notes: Sequence[str] = ()) -> Analysis:
    """The part of :func:`analyze_array` after the network: flag corrections, summary, regions, verdict.

    Parameters
    ----------
    rgb : ndarray of uint8, (H, W, 3)
    raw : ndarray of float32, (2, H, W)
        :func:`predict_maps`'s output for ``rgb``; changed in place.
    checks : PixelChecks
        :func:`check_pixels` of ``rgb``; its evidence map becomes the analysis's.
    quality_calibration : QualityCalibration, optional
        The model's (``model.quality_calibration``).
    grayscale, notes
        As for :func:`analyze_array`.
    """
    grid, evidence, piecewise_constant = checks.grid, checks.evidence, checks.piecewise_constant
    network_mean_flag = table = history = luma_table = None
    found = grid is not None and grid.found
    flag = np.clip(raw[FLAG_CHANNEL], 0.0, 1.0, out=raw[FLAG_CHANNEL])
    if found or piecewise_constant.any():
        network_mean_flag = weighted_mean(flag, evidence)
    # Where the pixels carry no evidence the network's flag is a guess (blotches in saturated areas):
    # it takes that of the pixels around with evidence. The grid's and the blocks' rules come after it.
    fill_without_evidence(flag, evidence)
    if found:
        join_grid_evidence(flag, rgb, grid)
        if checks.coarse_table is None:
            table = luma_table = estimate_luma_table(rgb, grid_offset=grid.grid_offset)
        else:
            table = checks.coarse_table
        if table is not None and not grayscale:
            table = replace(table, chroma=estimate_chroma_table(rgb, grid_offset=table.grid_offset))
        history = None if table is None else detect_double_compression(rgb, table)
    else:
        # An edge between exactly flat pixels is what a JPEG cannot leave (it rings); only a
        # coarse JPEG's DC-only blocks look so, and those show their grid. (No such block: nothing set.)
        set_blocks(flag, piecewise_constant, 0.0)
    result = summarize(raw, grayscale=grayscale, notes=tuple(notes), inplace=True, grid=grid,
                       quality_calibration=quality_calibration, network_mean_flag=network_mean_flag,
                       evidence=evidence, table=table)
    if history is not None:
        result = replace(result, history=history)
    if not result.flag_regions:
        return result
    # Each flag region's own grid confirms it; the image's grid may be the regions' own, so it is
    # looked for again without them.
    # A region covering the whole image gets the image's own checks: the same functions of the same pixels.
    regions = confirm_regions(rgb, result.regions, image_grid=grid, image_table=luma_table)
    # A quality region whose pixels read the image's own table is the network's QF wandering, not a region.
    regions = quality_regions_supported(regions, table)
    verdict = judge(result.mean_flag, grid_found=found, evidence_share=result.evidence_share)
    outside_share = outside_regions(regions, result.flag_map, result.evidence_map)[1]
    candidate = partial_verdict(verdict, regions, result.outside_flag, outside_share, grid_outside=False)
    if candidate == PARTLY_COMPRESSED and found:
        candidate = partial_verdict(verdict, regions, result.outside_flag, outside_share,
                                    grid_outside=grid_found_outside(rgb, regions))
    return replace(result, verdict=candidate, regions=regions)
