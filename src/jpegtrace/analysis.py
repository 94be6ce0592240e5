"""Pixelwise JPEG analysis of one image: quality map, compression-flag map and their summary."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .nn import engine
from .errors import JpegTraceError
from .grid.check import GridEvidence, find_jpeg_grid
from .grid.clipped import clipped_block_flag, grid_block_origin
from .io import DEFAULT_MAX_PIXELS, as_analysis_array
from .nn.qfnet import FLAG_CHANNEL, QUALITY_CHANNEL, QFNet
from .nn.weights import QualityCalibration, load_weights

#: Bounds the output pixels computed at once to about ``DEFAULT_TILE_SIZE ** 2``.
DEFAULT_TILE_SIZE = 512


def whole_image_verdict(mean_flag: float, grid_found: bool = False) -> bool:
    """The whole-image verdict: mean flag above 0.5 (the paper's rule) or a JPEG grid found."""
    return mean_flag > 0.5 or grid_found


@dataclass(frozen=True)
class Analysis:
    """Result of :func:`analyze`.

    Attributes
    ----------
    quality_map : ndarray of float32, (H, W)
        Estimated JPEG quality factor per pixel, 0..100 (100 also means never compressed).
    flag_map : ndarray of float32, (H, W)
        Estimated probability-like compression flag per pixel, 0..1: the network's, raised in
        clipped blocks where ``grid`` found a JPEG grid all around (see :func:`join_grid_evidence`).
    mean_quality : float
        Mean of ``quality_map``: the whole-image QF estimate.
    mean_flag : float
        Mean of ``flag_map``.
    compressed : bool
        The whole-image verdict: True when ``mean_flag > 0.5`` (the paper's rule) or when
        ``grid`` found the block grid of a JPEG.
    grayscale : bool
        The image was analysed as grayscale (its three channels are equal).
    notes : tuple of str
        What was done to the input on the way (alpha dropped, 16-bit reduced, ...).
    grid : GridEvidence or None
        The DCT check for a JPEG block grid (:func:`jpegtrace.grid.find_jpeg_grid`), which
        catches QF 97-100 JPEGs the network misses; None when it was not run.
    network_mean_flag : float or None
        Mean of the network's flag map before the grid's evidence joined it; None when no grid
        was found (or looked for), the flag map then being the network's.
    """

    quality_map: np.ndarray
    flag_map: np.ndarray
    mean_quality: float
    mean_flag: float
    compressed: bool
    grayscale: bool = False
    notes: tuple[str, ...] = field(default=())
    grid: GridEvidence | None = None
    network_mean_flag: float | None = None

    @property
    def flag_judged_compressed(self) -> bool:
        """The paper's verdict from the flag map: ``mean_flag > 0.5``."""
        return whole_image_verdict(self.mean_flag)

    @property
    def network_judged_compressed(self) -> bool:
        """The paper's verdict from the network's own flag map, before the grid's evidence joined it."""
        return whole_image_verdict(self.mean_flag if self.network_mean_flag is None else self.network_mean_flag)

    @property
    def shape(self) -> tuple[int, int]:
        return self.quality_map.shape


@functools.lru_cache(maxsize=4)
def _cached_model(path: str | None, mtime_ns: int, device: str) -> QFNet:
    return to_device(load_weights(path), device)


def to_device(model: QFNet, device: str) -> QFNet:
    """``model`` moved to ``device``; JpegTraceError with a one-line reason when it does not exist or is unavailable."""
    try:
        return model.to(device)
    except (RuntimeError, AssertionError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JpegTraceError(None, f"cannot use device {device!r}: {reason}") from None


def load_model(weights: str | os.PathLike | None = None, device: str = "cpu") -> QFNet:
    """The network from a safetensors file (default: the shipped model), loaded once and reused.

    Repeated calls with the same file (unchanged on disk) and device return the same module.

    Raises
    ------
    ModelError
        When the file is missing, not safetensors, or does not match the network.
    JpegTraceError
        When ``device`` does not exist or is not available.
    """
    path = None if weights is None else os.fspath(weights)
    try:
        mtime = Path(path).stat().st_mtime_ns if path is not None else 0
    except (OSError, ValueError):
        mtime = 0  # load_weights says what is wrong with the path
    return _cached_model(path, mtime, str(device))


def predict_maps(model: QFNet, image: np.ndarray, tile_size: int = DEFAULT_TILE_SIZE,
                 device: str | torch.device | None = None, precision: str = "fp32") -> np.ndarray:
    """Raw network output for one uint8 image, computed strip by strip.

    Parameters
    ----------
    model : QFNet
    image : ndarray of uint8, (H, W, 3)
    tile_size : int
        Bounds memory: about ``tile_size ** 2`` output pixels are computed at once. The result
        equals a whole-image pass whatever its value (see :mod:`jpegtrace.nn.engine`).
    device : str or torch.device, optional
        Where to run; the model's own device by default.
    precision : {'fp32', 'bf16', 'fp16'}
        Arithmetic of the convolutions; the default fp32 matches the plain network.

    Returns
    -------
    ndarray of float32, (2, H, W)
        Unclipped normalised maps: channel 0 quality (0 = QF 100), channel 1 flag.
    """
    if tile_size < 1:
        raise ValueError("tile_size must be positive")
    if engine.supports(model):
        return engine.FastNet(model, device=device, precision=precision).predict_maps(image, tile_size)
    if precision != "fp32":
        raise ValueError(f"precision {precision!r} needs a plain QFNet")
    return engine.eager_predict_maps(model, image, tile_size=tile_size, device=device)


def summarize(raw_maps: np.ndarray, grayscale: bool = False, notes: tuple[str, ...] = (),
              inplace: bool = False, grid: GridEvidence | None = None,
              quality_calibration: QualityCalibration | None = None,
              network_mean_flag: float | None = None) -> Analysis:
    """Turn raw network maps ``(2, H, W)`` into an :class:`Analysis` (maps clipped to [0, 1] first).

    ``grid``, the result of :func:`jpegtrace.grid.find_jpeg_grid` on the same image, joins the
    verdict: the image counts as compressed when its mean flag is above 0.5 or a grid was found.
    ``quality_calibration`` (a model's :attr:`~jpegtrace.nn.qfnet.QFNet.quality_calibration`) maps the
    clipped quality map before it becomes QF; the flag map is never changed here
    (:func:`analyze_array` joins the grid's evidence to it first, and passes the mean flag of the
    network's own map as ``network_mean_flag``).
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
    mean_flag = float(flag.mean(dtype=np.float64))
    return Analysis(quality_map=quality_map, flag_map=flag,
                    mean_quality=float(quality_map.mean(dtype=np.float64)), mean_flag=mean_flag,
                    compressed=whole_image_verdict(mean_flag, grid is not None and grid.found),
                    grayscale=grayscale, notes=tuple(notes), grid=grid, network_mean_flag=network_mean_flag)


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


def analyze(image: str | os.PathLike | Image.Image | np.ndarray, model: QFNet | None = None,
            tile_size: int = DEFAULT_TILE_SIZE, device: str | None = None,
            max_pixels: int = DEFAULT_MAX_PIXELS, grid_check: bool = True) -> Analysis:
    """Find JPEG compression in an image, pixel by pixel.

    Parameters
    ----------
    image : path, PIL.Image.Image or ndarray
        A file path, a PIL image, or an array: ``(H, W, 3)`` RGB or ``(H, W)`` grayscale,
        uint8 (or uint16, reduced to 8 bits); RGBA is flattened by dropping alpha, with a note.
    model : QFNet, optional
        The network; the shipped model (loaded once, then reused) by default.
    tile_size : int
        Side of the region computed at once; bounds memory without changing the result.
    device : str, optional
        'cpu' or 'cuda'; the model's device by default.
    max_pixels : int
        Files whose header claims more pixels are refused before decoding (decompression-bomb
        guard; default 400 million).
    grid_check : bool
        Also look for a JPEG block grid in the DCT coefficients (:mod:`jpegtrace.grid`), which
        finds near-lossless JPEGs the network misses, and let it join the verdict and, in clipped
        blocks, the flag map (:func:`join_grid_evidence`). False keeps the network's flag map
        and the paper's rule, mean flag above 0.5, alone.

    Returns
    -------
    Analysis

    Raises
    ------
    ImageReadError
        When a file cannot be read (missing, unreadable, corrupt, truncated, over ``max_pixels``)
        or an array has an unusable shape or type. ``.path`` and ``.reason`` say which and why.
    ModelError
        When ``model`` is None and the shipped weights cannot be loaded.

    Examples
    --------
    >>> from jpegtrace import analyze
    >>> result = analyze("photo.png")          # doctest: +SKIP
    >>> result.compressed, round(result.mean_quality)   # doctest: +SKIP
    (True, 31)
    """
    rgb, grayscale, notes = as_analysis_array(image, max_pixels=max_pixels)
    if model is None:
        model = load_model(device=device or "cpu")
    return analyze_array(rgb, model, tile_size=tile_size, device=device, grid_check=grid_check,
                         grayscale=grayscale, notes=notes)


def analyze_array(rgb: np.ndarray, model: QFNet, tile_size: int = DEFAULT_TILE_SIZE,
                  device: str | torch.device | None = None, precision: str = "fp32", grid_check: bool = True,
                  grayscale: bool = False, notes: Sequence[str] = ()) -> Analysis:
    """:func:`analyze` of an 8-bit RGB array already read: the network's maps, the grid check, the summary.

    Parameters
    ----------
    rgb : ndarray of uint8, (H, W, 3)
        As :func:`jpegtrace.io.as_analysis_array` gives it.
    model : QFNet
    tile_size, device, precision
        As for :func:`predict_maps`.
    grid_check : bool
        As for :func:`analyze`.
    grayscale, notes
        Passed on to the :class:`Analysis`: what reading the image found and did.
    """
    grid = find_jpeg_grid(rgb) if grid_check else None
    raw = predict_maps(model, rgb, tile_size=tile_size, device=device, precision=precision)
    network_mean_flag = None
    if grid is not None and grid.found:
        flag = np.clip(raw[FLAG_CHANNEL], 0.0, 1.0, out=raw[FLAG_CHANNEL])
        network_mean_flag = float(flag.mean(dtype=np.float64))
        join_grid_evidence(flag, rgb, grid)
    return summarize(raw, grayscale=grayscale, notes=tuple(notes), inplace=True, grid=grid,
                     quality_calibration=model.quality_calibration, network_mean_flag=network_mean_flag)
