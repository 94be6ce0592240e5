"""The paper's experiments as functions.

* QF estimation accuracy per QF (Fig. 2) and the near-lossless detection rates (Table 1):
  :func:`evaluate_model`, :func:`evaluate_files`, :func:`summarize_evaluation`.
* Localisation of a region pasted from a JPEG (Fig. 3) and its benchmark over random pairs:
  :func:`make_collage`, :func:`run_collage`, :func:`localization_scores`, :func:`collage_benchmark`,
  :func:`summarize_collage_benchmark`, :func:`calibrate_flag_threshold` (the threshold of the masks), and
  the masks :func:`disc_mask`, :func:`rectangle_mask`, :func:`blob_mask`, :func:`random_mask`.
* The data-set audit of Figs. 4-9: :func:`assess_images`, :func:`summarize_assessment`.
* Beyond the paper, the quality calibration of a trained model: :func:`fit_quality_calibration`.

Everything here computes; nothing writes files (see :mod:`jpegtrace.reports`). Files that cannot
be read become :class:`Failure` records and the run goes on. Random choices come from
``numpy.random.Generator`` objects seeded explicitly, so every result is reproducible.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .data import to_grayscale
from .errors import ImageReadError
from .images import as_analysis_array
from .inference import DEFAULT_TILE_SIZE, Analysis, analyze_array, predict_maps, whole_image_verdict
from .jpeg import jpeg_compress
from .model import QUALITY_CHANNEL, QFNet, QualityCalibration, check_flag_threshold

#: The QFs of the paper's Fig. 2 plus the near-lossless ones of its Table 1.
DEFAULT_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97, 98, 99, 100)
#: QFs at which Table 1 reports the share of images judged uncompressed.
TABLE1_QUALITIES = (97, 98, 99, 100)
#: The overall QF MAE counts the compressed test images up to this QF (the range of Fig. 2).
QF_MAE_MAX_QUALITY = 95
#: Mask shapes of the collage experiments.
MASK_SHAPES = ("disc", "rectangle", "blob")
#: Edges of the QF histogram of an assessment: 20 bins of 5 QF.
HISTOGRAM_EDGES = tuple(range(0, 101, 5))

Progress = Callable[[Iterable], Iterable]
Files = Mapping[str, "str | os.PathLike"] | Sequence["str | os.PathLike"]


@dataclass(frozen=True)
class Failure:
    """A file an experiment could not use and the one-line reason; the run went on without it."""

    file: str
    reason: str


def _named_files(files: Files) -> list[tuple[str, Path]]:
    """``(name, path)`` pairs: a mapping gives its own names, a sequence is named by its paths."""
    if isinstance(files, Mapping):
        return [(str(name), Path(path)) for name, path in files.items()]
    named = []
    for path in files:
        text = os.fsdecode(path)
        named.append((text.encode("utf-8", "backslashreplace").decode("utf-8"), Path(text)))
    return named


def _wrap(progress: Progress | None, items):
    return progress(items) if progress is not None else items


# --------------------------------------------------------------------------------------------
# Fig. 2 and Table 1: QF estimation and detection of compression
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationRecord:
    """One analysed test image: ``quality`` is the true QF, None for the uncompressed original.

    ``grid_score`` is the score of :func:`jpegtrace.grid.find_jpeg_grid` (None when the check was
    not run) and ``grid_found`` whether it found a JPEG grid. ``mean_flag`` is the mean of the
    analysis's flag map; ``network_mean_flag`` that of the network's own, before the grid's
    evidence joined it in clipped blocks (None when it is ``mean_flag``).
    """

    image: str
    quality: int | None
    estimated_quality: float
    mean_flag: float
    grid_score: float | None = None
    grid_found: bool = False
    network_mean_flag: float | None = None

    @property
    def judged_compressed(self) -> bool:
        """The verdict of :func:`jpegtrace.analyze`: mean flag above 0.5 or a JPEG grid found."""
        return whole_image_verdict(self.mean_flag, self.grid_found)

    @property
    def flag_judged_compressed(self) -> bool:
        """The paper's verdict from the flag map: mean flag above 0.5."""
        return whole_image_verdict(self.mean_flag)

    @property
    def network_judged_compressed(self) -> bool:
        """The paper's verdict from the network's own flag map: its mean above 0.5."""
        return whole_image_verdict(self.mean_flag if self.network_mean_flag is None else self.network_mean_flag)

    @property
    def abs_error(self) -> float | None:
        """``|estimated - true QF|``; None for the uncompressed original."""
        return None if self.quality is None else abs(self.estimated_quality - self.quality)

    def as_row(self) -> dict:
        """The record as a flat dict for CSV and JSON (true QF ``""`` for the original)."""
        return {"image": self.image, "quality": "" if self.quality is None else self.quality,
                "estimated_quality": round(self.estimated_quality, 4), "mean_flag": round(self.mean_flag, 4),
                "network_mean_flag": round(self.mean_flag if self.network_mean_flag is None
                                           else self.network_mean_flag, 4),
                "grid_score": "" if self.grid_score is None else round(self.grid_score, 2),
                "judged_compressed": self.judged_compressed,
                "abs_error": "" if self.abs_error is None else round(self.abs_error, 4)}


def evaluate_model(model: QFNet, images: dict[str, np.ndarray], qualities: Sequence[int | None],
                   subsampling: str = "4:2:0", grid_offset: tuple[int, int] = (0, 0),
                   grayscale: bool = False, device: str | None = None,
                   progress: Iterable | None = None, tile_size: int = DEFAULT_TILE_SIZE,
                   grid_check: bool = True) -> list[EvaluationRecord]:
    """Compress every image at every QF, analyse it and record the whole-image estimates.

    Parameters
    ----------
    model : QFNet
    images : dict of str to ndarray
        Never-compressed uint8 RGB images by name.
    qualities : sequence of int or None
        QFs to test; None stands for the uncompressed original.
    subsampling : str
        Chroma subsampling of the test JPEGs.
    grid_offset : (int, int)
        Where the JPEG grid starts, as for a cropped JPEG (see :func:`jpegtrace.jpeg.jpeg_compress`).
    grayscale : bool
        Convert the images to grayscale first (one-channel JPEGs).
    progress : callable, optional
        Wraps the iterator of (name, quality) jobs, e.g. ``tqdm``.
    tile_size : int
        Side of the region the network computes at once (does not change the result).
    grid_check : bool
        Also run the JPEG grid check of :mod:`jpegtrace.grid` on every test image.

    Returns
    -------
    list of EvaluationRecord
        One per image and QF, image-major, in the order given. The estimated QF of a test
        image is the mean of its quality map; it counts as compressed when its mean flag is
        above 0.5 or (with ``grid_check``) a JPEG grid is found.
    """
    jobs = [(name, q) for name in images for q in qualities]
    records = []
    for name, quality in (progress(jobs) if progress else jobs):
        source = to_grayscale(images[name]) if grayscale else images[name]
        test = _test_image(source, quality, subsampling, grid_offset)
        result = analyze_array(test, model, tile_size=tile_size, device=device, grid_check=grid_check)
        grid = result.grid
        records.append(EvaluationRecord(name, quality, result.mean_quality, result.mean_flag,
                                        grid_score=None if grid is None else grid.score,
                                        grid_found=grid is not None and grid.found,
                                        network_mean_flag=result.network_mean_flag))
    return records


def _test_image(source: np.ndarray, quality: int | None, subsampling: str,
                grid_offset: tuple[int, int]) -> np.ndarray:
    """``source`` JPEG-compressed at ``quality`` (as it is for None), as the RGB array the network takes."""
    test = source if quality is None else jpeg_compress(source, int(quality), subsampling, grid_offset)
    return np.repeat(test[:, :, None], 3, axis=2) if test.ndim == 2 else test


def evaluate_files(model: QFNet, files: Files, qualities: Sequence[int] = DEFAULT_QUALITIES,
                   include_original: bool = True, subsampling: str = "4:2:0",
                   grid_offset: tuple[int, int] = (0, 0), grayscale: bool = False,
                   device: str | None = None, tile_size: int = DEFAULT_TILE_SIZE,
                   progress: Progress | None = None, grid_check: bool = True
                   ) -> tuple[list[EvaluationRecord], list[Failure]]:
    """:func:`evaluate_model` over image files, read one at a time.

    Parameters
    ----------
    model : QFNet
    files : mapping of name to path, or sequence of paths
        Never-compressed images (PNG, TIFF, BMP...). Names label the records.
    qualities : sequence of int
        QFs the images are compressed at.
    include_original : bool
        Also analyse each image as it is (the "without JPEG" column of Table 1).
    subsampling, grid_offset, grayscale, device, tile_size, grid_check
        As for :func:`evaluate_model`.
    progress : callable, optional
        Wraps the list of ``(image, QF)`` jobs, e.g. ``tqdm``; each image is read once.

    Returns
    -------
    records : list of EvaluationRecord
    failures : list of Failure
        Files that could not be read; they are left out of the records.
    """
    tested: list[int | None] = [int(q) for q in qualities]
    if include_original:
        tested.append(None)
    named = _named_files(files)
    jobs = [(index, quality) for index in range(len(named)) for quality in tested]
    records: list[EvaluationRecord] = []
    failures: list[Failure] = []
    loaded: tuple[int, np.ndarray | None] = (-1, None)
    for index, quality in _wrap(progress, jobs):
        name, path = named[index]
        if loaded[0] != index:
            try:
                loaded = (index, as_analysis_array(path)[0])
            except ImageReadError as exc:
                failures.append(Failure(name, exc.reason))
                loaded = (index, None)
        if loaded[1] is None:
            continue
        records.extend(evaluate_model(model, {name: loaded[1]}, [quality], subsampling=subsampling,
                                      grid_offset=grid_offset, grayscale=grayscale, device=device,
                                      tile_size=tile_size, grid_check=grid_check))
    return records, failures


def summarize_evaluation(records: Sequence[EvaluationRecord]) -> dict:
    """Per-QF statistics (Fig. 2), the share judged uncompressed (Table 1) and overall scores.

    Returns
    -------
    dict
        ``per_quality``: list of dicts with ``quality`` (None for the originals, listed last),
        ``n``, ``mean_estimate``, ``std_estimate`` (population standard deviation), ``mae``,
        ``mean_flag``, ``judged_uncompressed`` (share of images not judged compressed: mean flag
        at most 0.5 and no JPEG grid found), ``flag_judged_uncompressed`` (share whose mean
        flag is at most 0.5, the paper's rule) and ``network_judged_uncompressed`` (the same for
        the network's own flag map, before the grid's evidence joined it);
        ``table1``: the ``per_quality`` rows of QF 97, 98, 99, 100 and the originals that were
        tested, as ``quality``, ``label``, ``n`` and the three shares;
        ``qf_mae``: mean absolute QF error over the compressed test images with QF up to 95
        (the range of Fig. 2), None if there are none; ``qf_mae_all_qualities``: the same over
        every compressed test image; ``detection_accuracy``: share of test images whose verdict
        (compressed or not) is right; ``clean_judged_uncompressed``: share of originals judged
        uncompressed; ``n_images``: number of distinct images; ``n_records``.
    """
    by_quality: dict[int | None, list[EvaluationRecord]] = {}
    for r in records:
        by_quality.setdefault(r.quality, []).append(r)
    per_quality = []
    for quality in sorted(by_quality, key=lambda q: 101 if q is None else q):
        rs = by_quality[quality]
        est = np.array([r.estimated_quality for r in rs])
        row = {"quality": quality, "n": len(rs),
               "mean_estimate": float(est.mean()), "std_estimate": float(est.std()),
               "mae": None if quality is None else float(np.abs(est - quality).mean()),
               "mean_flag": float(np.mean([r.mean_flag for r in rs])),
               "judged_uncompressed": float(np.mean([not r.judged_compressed for r in rs])),
               "flag_judged_uncompressed": float(np.mean([not r.flag_judged_compressed for r in rs])),
               "network_judged_uncompressed": float(np.mean([not r.network_judged_compressed for r in rs]))}
        per_quality.append(row)
    shares = ("judged_uncompressed", "flag_judged_uncompressed", "network_judged_uncompressed")
    table1 = [{"quality": row["quality"], "label": "without JPEG" if row["quality"] is None else f"QF {row['quality']}",
               "n": row["n"], **{key: row[key] for key in shares}}
              for row in per_quality if row["quality"] is None or row["quality"] in TABLE1_QUALITIES]
    compressed = [r for r in records if r.quality is not None]
    errors = [r.abs_error for r in compressed if r.quality <= QF_MAE_MAX_QUALITY]
    all_errors = [r.abs_error for r in compressed]
    correct = [r.judged_compressed == (r.quality is not None) for r in records]
    clean = [r for r in records if r.quality is None]
    return {
        "per_quality": per_quality,
        "table1": table1,
        "qf_mae": float(np.mean(errors)) if errors else None,
        "qf_mae_all_qualities": float(np.mean(all_errors)) if all_errors else None,
        "detection_accuracy": float(np.mean(correct)) if correct else None,
        "clean_judged_uncompressed": float(np.mean([not r.judged_compressed for r in clean])) if clean else None,
        "n_images": len({r.image for r in records}),
        "n_records": len(records),
    }


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------


def disc_mask(height: int, width: int, radius_fraction: float = 0.3,
              center: tuple[float, float] | None = None) -> np.ndarray:
    """Boolean ``(H, W)`` mask of a disc, by default centred with radius 30% of the shorter side."""
    cy, cx = center if center is not None else ((height - 1) / 2, (width - 1) / 2)
    yy, xx = np.mgrid[:height, :width]
    radius = radius_fraction * min(height, width)
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2


def rectangle_mask(height: int, width: int, size_fraction: tuple[float, float] = (0.5, 0.5),
                   center: tuple[float, float] | None = None) -> np.ndarray:
    """Boolean ``(H, W)`` mask of an axis-aligned rectangle, by default centred, half as high and wide.

    ``size_fraction`` is ``(height, width)`` of the rectangle as fractions of the image's; the
    rectangle is clipped to the image and has at least one pixel.
    """
    cy, cx = center if center is not None else ((height - 1) / 2, (width - 1) / 2)
    rh = max(1, int(round(size_fraction[0] * height)))
    rw = max(1, int(round(size_fraction[1] * width)))
    y0 = int(round(cy - (rh - 1) / 2))
    x0 = int(round(cx - (rw - 1) / 2))
    y0, x0 = min(max(y0, 0), max(height - rh, 0)), min(max(x0, 0), max(width - rw, 0))
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y0 + rh, x0:x0 + rw] = True
    return mask


def blob_mask(height: int, width: int, rng: np.random.Generator, area_fraction: float = 0.25,
              control_points: int = 5) -> np.ndarray:
    """Boolean ``(H, W)`` mask of a random smooth blob covering about ``area_fraction`` of the image.

    Smooth noise (a ``control_points`` square grid of Gaussian values, bicubically upsampled)
    minus a radial fall-off around a random centre is thresholded at the quantile that gives
    the wanted area. The same generator state gives the same blob.
    """
    if not 0 < area_fraction < 1:
        raise ValueError("area_fraction must be in (0, 1)")
    noise = rng.standard_normal((control_points, control_points)).astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7, size=2)
    smooth = np.asarray(Image.fromarray(noise, mode="F").resize((width, height), Image.BICUBIC), dtype=np.float64)
    yy = (np.arange(height)[:, None] + 0.5) / height - cy
    xx = (np.arange(width)[None, :] + 0.5) / width - cx
    score = smooth - 8.0 * (yy ** 2 + xx ** 2)
    threshold = np.quantile(score, 1.0 - area_fraction)
    mask = score >= threshold
    if not mask.any():
        mask.flat[int(np.argmax(score))] = True
    return mask


def make_mask(shape: str, height: int, width: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """The standard mask of a shape: a centred disc (radius 30% of the shorter side), a centred
    rectangle half as high and wide, or a random blob of a quarter of the image from ``rng``.
    """
    if shape == "disc":
        return disc_mask(height, width)
    if shape == "rectangle":
        return rectangle_mask(height, width)
    if shape == "blob":
        return blob_mask(height, width, rng if rng is not None else np.random.default_rng(0))
    raise ValueError(f"mask shape must be one of {', '.join(MASK_SHAPES)}, got {shape!r}")


def random_mask(height: int, width: int, rng: np.random.Generator,
                shapes: Sequence[str] = MASK_SHAPES) -> tuple[np.ndarray, str]:
    """A random mask of a random shape drawn from ``shapes``, lying wholly inside the image.

    Discs have a radius of 15-35% of the shorter side, rectangles sides of 25-60% of the
    image's, blobs an area of 10-35%.

    Returns
    -------
    mask : ndarray of bool, (H, W)
    shape : str
    """
    unknown = set(shapes) - set(MASK_SHAPES)
    if unknown or not shapes:
        raise ValueError(f"shapes must be a non-empty subset of {', '.join(MASK_SHAPES)}")
    shape = shapes[int(rng.integers(0, len(shapes)))]
    if shape == "disc":
        fraction = rng.uniform(0.15, 0.35)
        radius = fraction * min(height, width)
        cy = rng.uniform(min(radius, (height - 1) / 2), max(height - 1 - radius, (height - 1) / 2))
        cx = rng.uniform(min(radius, (width - 1) / 2), max(width - 1 - radius, (width - 1) / 2))
        mask = disc_mask(height, width, fraction, (cy, cx))
    elif shape == "rectangle":
        fh, fw = rng.uniform(0.25, 0.6, size=2)
        rh, rw = fh * height, fw * width
        cy = rng.uniform((rh - 1) / 2, height - 1 - (rh - 1) / 2)
        cx = rng.uniform((rw - 1) / 2, width - 1 - (rw - 1) / 2)
        mask = rectangle_mask(height, width, (fh, fw), (cy, cx))
    else:
        mask = blob_mask(height, width, rng, area_fraction=rng.uniform(0.1, 0.35))
    if not mask.any():  # a degenerate tiny image
        mask[height // 2, width // 2] = True
    return mask, shape


def read_mask(path: str | os.PathLike, height: int | None = None, width: int | None = None) -> np.ndarray:
    """A mask image file as booleans: pixels brighter than half scale are True.

    Raises
    ------
    ImageReadError
        When the file cannot be read, or its size is not ``(height, width)`` when those are given.
    """
    from .images import read_image

    array, _ = read_image(path)
    if array.ndim == 3:
        array = array.max(axis=2)
    mask = array > (32767 if array.dtype == np.uint16 else 127)
    if height is not None and width is not None and mask.shape != (height, width):
        raise ImageReadError(path, f"mask is {mask.shape[1]}x{mask.shape[0]} pixels, "
                                   f"the background {width}x{height}")
    return mask


# --------------------------------------------------------------------------------------------
# Fig. 3: localisation of a pasted JPEG region
# --------------------------------------------------------------------------------------------


def pixel_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of per-pixel ``scores`` against boolean ``labels``.

    Rank-based (Mann-Whitney U, ties counted half), exact, ``O(n log n)``. NaN when the labels
    are all True or all False.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in size")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mean_rank = ends - (counts - 1) / 2.0  # 1-based mean rank of each group of tied scores
    rank_sum = float(mean_rank[inverse.ravel()][labels].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


@dataclass(frozen=True)
class LocalizationScores:
    """How well a flag map finds a pasted region (the ``mask``).

    Attributes
    ----------
    iou : float
        Intersection over union of ``flag > threshold`` and the mask (1 when both are empty).
    f1 : float
        Dice / F1 score of the same sets (1 when both are empty).
    auc : float
        Pixel ROC AUC of the flag map against the mask; NaN when the mask is empty or full.
    precision, recall : float
        Of ``flag > threshold``; NaN when nothing is predicted or the mask is empty.
    threshold : float
    """

    iou: float
    f1: float
    auc: float
    precision: float
    recall: float
    threshold: float = 0.5

    def as_dict(self, digits: int = 4) -> dict:
        """The scores rounded, NaN as None (valid JSON)."""
        return {k: _finite_or_none(getattr(self, k), digits)
                for k in ("iou", "f1", "auc", "precision", "recall", "threshold")}


def _finite_or_none(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _iou(predicted: np.ndarray, mask: np.ndarray) -> float:
    """Intersection over union of two boolean maps; 1 when both are empty."""
    union = np.count_nonzero(predicted | mask)
    return np.count_nonzero(predicted & mask) / union if union else 1.0


def localization_scores(flag_map: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> LocalizationScores:
    """Score a flag map against the true mask: IoU and F1 of ``flag > threshold``, and pixel AUC."""
    flag_map = np.asarray(flag_map)
    mask = np.asarray(mask, dtype=bool)
    if flag_map.shape != mask.shape:
        raise ValueError(f"flag map {flag_map.shape} and mask {mask.shape} differ in shape")
    predicted = flag_map > threshold
    tp = int(np.count_nonzero(predicted & mask))
    fp = int(np.count_nonzero(predicted & ~mask))
    fn = int(np.count_nonzero(~predicted & mask))
    iou = _iou(predicted, mask)
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return LocalizationScores(iou=iou, f1=f1, auc=pixel_auc(flag_map, mask), precision=precision,
                              recall=recall, threshold=threshold)


def fit_image(image: np.ndarray, height: int, width: int, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Crop ``image`` to ``(height, width)`` from ``offset``, first mirroring it where it is too small."""
    h, w = image.shape[:2]
    if h < height or w < width:
        pad = ((0, max(0, height - h)), (0, max(0, width - w))) + (((0, 0),) if image.ndim == 3 else ())
        image = np.pad(image, pad, mode="symmetric")
        h, w = image.shape[:2]
    y0 = min(max(int(offset[0]), 0), h - height)
    x0 = min(max(int(offset[1]), 0), w - width)
    return np.ascontiguousarray(image[y0:y0 + height, x0:x0 + width])


def make_collage(background: np.ndarray, donor: np.ndarray, quality: int, mask: np.ndarray,
                 subsampling: str = "4:2:0", grid_offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The fake image of the paper's Fig. 3: ``donor`` JPEG-compressed, pasted into ``background``.

    Parameters
    ----------
    background : ndarray of uint8, (H, W, 3)
        Never-compressed image; stays uncompressed outside the mask.
    donor : ndarray of uint8, (H', W', 3)
        Source of the pasted region; its top-left ``(H, W)`` crop is JPEG-compressed at
        ``quality`` and used where ``mask`` is True. Must be at least as large as ``background``
        (see :func:`fit_image`).
    quality : int
        QF of the donor JPEG (paper: 80).
    mask : ndarray of bool, (H, W)
        Where the compressed donor shows.
    subsampling : str
        Chroma subsampling of the donor JPEG.
    grid_offset : (int, int)
        Where the donor's JPEG grid starts (see :func:`jpegtrace.jpeg.jpeg_compress`).

    Returns
    -------
    ndarray of uint8, (H, W, 3)
    """
    height, width = background.shape[:2]
    if donor.shape[0] < height or donor.shape[1] < width:
        raise ValueError(f"donor {donor.shape[:2]} is smaller than background {(height, width)}")
    if mask.shape != (height, width):
        raise ValueError(f"mask {mask.shape} does not match background {(height, width)}")
    compressed = jpeg_compress(np.ascontiguousarray(donor[:height, :width]), quality, subsampling, grid_offset)
    return np.where(mask[:, :, None], compressed, background).astype(np.uint8)


@dataclass(frozen=True)
class CollageResult:
    """A fake image of Fig. 3, its analysis and how well the analysis finds the pasted region.

    Attributes
    ----------
    fake : ndarray of uint8, (H, W, 3)
    mask : ndarray of bool, (H, W)
        Where the JPEG-compressed donor shows.
    quality : int
        QF of the donor JPEG.
    analysis : Analysis
        Maps of the fake image.
    scores : LocalizationScores
    flag_inside, flag_outside : float
        Mean flag inside and outside the mask.
    quality_inside, quality_outside : float
        Mean estimated QF inside and outside the mask.
    """

    fake: np.ndarray
    mask: np.ndarray
    quality: int
    analysis: Analysis
    scores: LocalizationScores
    flag_inside: float
    flag_outside: float
    quality_inside: float
    quality_outside: float

    def as_dict(self) -> dict:
        """The numbers of the result (not the arrays), rounded, for JSON and CSV."""
        return {"quality": self.quality, "height": int(self.mask.shape[0]), "width": int(self.mask.shape[1]),
                "mask_fraction": round(float(self.mask.mean()), 4), **self.scores.as_dict(),
                "flag_inside": _finite_or_none(self.flag_inside), "flag_outside": _finite_or_none(self.flag_outside),
                "quality_inside": _finite_or_none(self.quality_inside),
                "quality_outside": _finite_or_none(self.quality_outside),
                "mean_quality": round(self.analysis.mean_quality, 4), "mean_flag": round(self.analysis.mean_flag, 4)}


def _region_mean(values: np.ndarray, where: np.ndarray) -> float:
    return float(values[where].mean(dtype=np.float64)) if where.any() else float("nan")


def run_collage(model: QFNet, background: np.ndarray, donor: np.ndarray, quality: int, mask: np.ndarray,
                subsampling: str = "4:2:0", grid_offset: tuple[int, int] = (0, 0),
                threshold: float | None = None, tile_size: int = DEFAULT_TILE_SIZE,
                device: str | None = None, grid_check: bool = True) -> CollageResult:
    """Make the fake image of Fig. 3, analyse it and score the flag map against the mask.

    ``donor`` is cropped to (or mirrored up to) the background's size first, see :func:`fit_image`.
    The mask of the analysis is ``flag > threshold``, by default the model's calibrated
    ``flag_threshold``. The analysis is :func:`jpegtrace.inference.analyze_array`'s, with the
    grid check unless ``grid_check`` is False.
    """
    if threshold is None:
        threshold = model.flag_threshold
    height, width = background.shape[:2]
    donor = fit_image(donor, height, width)
    fake = make_collage(background, donor, quality, mask, subsampling, grid_offset)
    analysis = analyze_array(fake, model, tile_size=tile_size, device=device, grid_check=grid_check)
    return CollageResult(
        fake=fake, mask=mask, quality=int(quality), analysis=analysis,
        scores=localization_scores(analysis.flag_map, mask, threshold),
        flag_inside=_region_mean(analysis.flag_map, mask), flag_outside=_region_mean(analysis.flag_map, ~mask),
        quality_inside=_region_mean(analysis.quality_map, mask),
        quality_outside=_region_mean(analysis.quality_map, ~mask))


@dataclass(frozen=True)
class CollageBenchmarkRecord:
    """One random pair of the collage benchmark and its scores (see :func:`collage_benchmark`)."""

    pair: int
    background: str
    donor: str
    shape: str
    quality: int
    height: int
    width: int
    mask_fraction: float
    iou: float
    f1: float
    auc: float
    precision: float
    recall: float
    flag_inside: float
    flag_outside: float
    quality_inside: float
    threshold: float = 0.5

    def as_row(self) -> dict:
        """The record rounded, NaN as an empty cell/None, for CSV and JSON."""
        row = {}
        for key, value in self.__dict__.items():
            row[key] = _finite_or_none(value) if isinstance(value, float) else value
        return row


@dataclass(frozen=True)
class _CollagePair:
    index: int
    background_name: str
    donor_name: str
    quality: int
    shape: str
    background: np.ndarray
    donor: np.ndarray
    mask: np.ndarray


def _collage_pairs(files: Files, pairs: int, seed: int, qualities: Sequence[int], shapes: Sequence[str],
                   crop: int | None, progress: Progress | None, failures: dict[str, Failure]):
    """The random pairs of :func:`collage_benchmark`; unreadable files go into ``failures``."""
    named = _named_files(files)
    if not named:
        raise ValueError("no images for the collage benchmark")
    if not qualities:
        raise ValueError("no qualities for the collage benchmark")
    cache: dict[int, np.ndarray | None] = {}

    def load(index: int) -> np.ndarray | None:
        if index not in cache:
            if len(cache) >= 4:
                cache.pop(next(iter(cache)))
            name, path = named[index]
            try:
                cache[index] = as_analysis_array(path)[0]
            except ImageReadError as exc:
                failures.setdefault(name, Failure(name, exc.reason))
                cache[index] = None
        return cache[index]

    for i in _wrap(progress, range(pairs)):
        rng = np.random.default_rng((int(seed), i))
        bg_index = int(rng.integers(0, len(named)))
        donor_index = bg_index
        if len(named) > 1:
            donor_index = int(rng.integers(0, len(named) - 1))
            donor_index += donor_index >= bg_index
        quality = int(qualities[int(rng.integers(0, len(qualities)))])
        background, donor = load(bg_index), load(donor_index)
        if background is None or donor is None:
            continue
        h, w = background.shape[:2]
        if crop is not None and (h > crop or w > crop):
            ch, cw = min(h, crop), min(w, crop)
            y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            background = np.ascontiguousarray(background[y0:y0 + ch, x0:x0 + cw])
            h, w = ch, cw
        dh, dw = donor.shape[:2]
        offset = (int(rng.integers(0, max(dh - h, 0) + 1)), int(rng.integers(0, max(dw - w, 0) + 1)))
        mask, shape = random_mask(h, w, rng, shapes)
        yield _CollagePair(index=i, background_name=named[bg_index][0], donor_name=named[donor_index][0],
                           quality=quality, shape=shape, background=background,
                           donor=fit_image(donor, h, w, offset), mask=mask)


def collage_benchmark(model: QFNet, files: Files, pairs: int = 100, seed: int = 0,
                      qualities: Sequence[int] = (80,), shapes: Sequence[str] = MASK_SHAPES,
                      crop: int | None = None, subsampling: str = "4:2:0", threshold: float | None = None,
                      tile_size: int = DEFAULT_TILE_SIZE, device: str | None = None,
                      progress: Progress | None = None, grid_check: bool = True
                      ) -> tuple[list[CollageBenchmarkRecord], list[Failure]]:
    """The forensic benchmark: localise JPEG regions pasted into never-compressed images.

    For pair ``i``, a generator seeded with ``(seed, i)`` draws a background and a different
    donor among ``files`` (the same one when there is only one), a QF among ``qualities``, a
    mask shape among ``shapes``, the crops and the mask (:func:`random_mask`); the donor is
    JPEG-compressed at that QF and pasted into the background through the mask, and the
    analysis of the fake image is scored with :func:`localization_scores`. The result depends
    on ``seed`` and the inputs alone, and pair ``i`` is the same whatever ``pairs`` is.

    Parameters
    ----------
    model : QFNet
    files : mapping of name to path, or sequence of paths
        Never-compressed images (PNG, TIFF, BMP...).
    pairs : int
        Number of fake images.
    seed : int
    qualities : sequence of int
        QFs of the pasted regions (paper: 80).
    shapes : sequence of str
        Mask shapes to draw from (:data:`MASK_SHAPES`).
    crop : int, optional
        Cut a random ``crop`` x ``crop`` window of each background (the whole image when it is
        smaller, or when ``crop`` is None).
    subsampling, threshold, tile_size, device, grid_check
        As for :func:`run_collage`.
    progress : callable, optional
        Wraps the range of pair indices, e.g. ``tqdm``.

    Returns
    -------
    records : list of CollageBenchmarkRecord
        One per pair whose images could be read.
    failures : list of Failure
        Unreadable files, each once; pairs that need one are skipped.
    """
    records, failures = [], {}
    for pair in _collage_pairs(files, pairs, seed, qualities, shapes, crop, progress, failures):
        result = run_collage(model, pair.background, pair.donor, pair.quality, pair.mask, subsampling=subsampling,
                             threshold=threshold, tile_size=tile_size, device=device, grid_check=grid_check)
        s = result.scores
        h, w = pair.mask.shape
        records.append(CollageBenchmarkRecord(
            pair=pair.index, background=pair.background_name, donor=pair.donor_name, shape=pair.shape,
            quality=pair.quality, height=h, width=w, mask_fraction=float(pair.mask.mean()), iou=s.iou, f1=s.f1,
            auc=s.auc, precision=s.precision, recall=s.recall, flag_inside=result.flag_inside,
            flag_outside=result.flag_outside, quality_inside=result.quality_inside, threshold=s.threshold))
    return records, list(failures.values())


@dataclass(frozen=True)
class ThresholdCalibration:
    """Mean collage IoU of a model at each candidate flag threshold.

    Attributes
    ----------
    thresholds : tuple of float
    mean_iou : tuple of float
        Mean IoU of ``flag > threshold`` over the collages, one per threshold.
    pairs : int
        Number of collages.
    """

    thresholds: tuple[float, ...]
    mean_iou: tuple[float, ...]
    pairs: int

    @property
    def best(self) -> float:
        """The threshold with the highest mean IoU (the lowest of any ties)."""
        return self.thresholds[int(np.argmax(self.mean_iou))]

    def as_dict(self) -> dict:
        return {"best": self.best, "pairs": self.pairs, "thresholds": list(self.thresholds),
                "mean_iou": [round(v, 4) for v in self.mean_iou]}


#: Candidate thresholds of :func:`calibrate_flag_threshold`.
CALIBRATION_THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(4, 20))


def calibrate_flag_threshold(model: QFNet, files: Files, pairs: int = 100, seed: int = 1,
                             thresholds: Sequence[float] = CALIBRATION_THRESHOLDS,
                             qualities: Sequence[int] = (80,), shapes: Sequence[str] = MASK_SHAPES,
                             crop: int | None = 256, subsampling: str = "4:2:0",
                             tile_size: int = DEFAULT_TILE_SIZE, device: str | None = None,
                             progress: Progress | None = None, grid_check: bool = True) -> ThresholdCalibration:
    """Choose the flag threshold of localisation masks on collages of ``files``.

    Makes the collages of :func:`collage_benchmark` and picks the threshold with the best mean
    IoU. Use training images, never those the model is then measured on; set the result as
    ``model.flag_threshold`` and it is saved with the weights.

    Parameters
    ----------
    model : QFNet
    files : mapping of name to path, or sequence of paths
        Never-compressed images, not the evaluation images.
    pairs, seed, qualities, shapes, crop, subsampling, tile_size, device, progress, grid_check
        As for :func:`collage_benchmark`.
    thresholds : sequence of float
        Candidates, each strictly between 0 and 1.

    Returns
    -------
    ThresholdCalibration

    Raises
    ------
    ValueError
        When no collage could be made (every file unreadable) or a candidate is outside (0, 1).
    """
    thresholds = tuple(check_flag_threshold(t) for t in thresholds)
    if not thresholds:
        raise ValueError("no calibration thresholds")
    ious = []
    for pair in _collage_pairs(files, pairs, seed, qualities, shapes, crop, progress, {}):
        fake = make_collage(pair.background, pair.donor, pair.quality, pair.mask, subsampling)
        flag_map = analyze_array(fake, model, tile_size=tile_size, device=device, grid_check=grid_check).flag_map
        ious.append([_iou(flag_map > t, pair.mask) for t in thresholds])
    if not ious:
        raise ValueError("no collage could be made for the calibration")
    return ThresholdCalibration(thresholds=thresholds, mean_iou=tuple(np.mean(ious, axis=0).tolist()),
                                pairs=len(ious))


#: Knots of :func:`fit_quality_calibration`, in normalised quality (0 = QF 100): QF 100, 99, 98,
#: 97, 95, 90, 80, ..., 10, 5 and 0, the QFs of the paper's Fig. 2 and Table 1, where the data are.
CALIBRATION_KNOTS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
#: QFs :func:`fit_quality_calibration` compresses at: those of Fig. 2. Near-lossless JPEGs (QF 97-100)
#: are left out: the network tells them from QF 95 poorly, and fitting them too pulled the map's
#: high end up so far that QF 90 JPEGs of the val images came out 2.5 too high (the shipped network
#: of 2026-12-01); their estimates still gain from the QF 95 knot.
CALIBRATION_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
#: The kinds of test image :func:`fit_quality_calibration` draws from, one per source image:
#: 4:2:0 twice as often as the others, as the default of Pillow and most cameras.
CALIBRATION_VARIANTS = ("4:2:0", "4:2:0", "4:4:4", "shifted", "grayscale")


def fit_quality_calibration(model: QFNet, images: Mapping[str, np.ndarray],
                            qualities: Sequence[int] = CALIBRATION_QUALITIES, per_image: int = 6, seed: int = 0,
                            variants: Sequence[str] = CALIBRATION_VARIANTS,
                            knots: Sequence[float] = CALIBRATION_KNOTS, tile_size: int = DEFAULT_TILE_SIZE,
                            device: str | None = None, progress: Progress | None = None) -> QualityCalibration:
    """Fit the monotone map of the quality map that puts image means on the true QFs.

    Each source image is compressed at ``per_image`` QFs drawn from ``qualities`` (and also kept
    as it is, which counts as QF 100), as one kind of test image drawn from ``variants`` (a
    shifted grid at a random offset). The map is piecewise linear between ``knots``; since an
    image's mean of such a map is linear in its values at the knots, the values come from one
    non-negative least-squares fit of the images' mean calibrated quality to their true
    normalised quality, with non-negative steps between knots, so the map never reverses.

    Parameters
    ----------
    model : QFNet
        Its own :attr:`~QFNet.quality_calibration` is ignored: the fit starts from the raw maps.
    images : mapping of str to ndarray
        Never-compressed uint8 RGB images: training images, never those the model is measured on.
    qualities : sequence of int
        QFs to draw from.
    per_image : int
        QFs per source image.
    seed : int
    variants : sequence of str
        Kinds of test image, each of '4:2:0', '4:4:4', 'shifted' (4:2:0 with the grid off the
        origin) and 'grayscale'; repeat one to draw it more often.
    knots : sequence of float
        Increasing, from 0 to 1.
    tile_size, device
        As for :func:`jpegtrace.inference.predict_maps`.
    progress : callable, optional
        Wraps the iterator of image names, e.g. ``tqdm``.

    Returns
    -------
    QualityCalibration
        Set it as ``model.quality_calibration`` and it is applied and saved with the weights.

    Raises
    ------
    ValueError
        With no images, ``per_image`` outside 1..len(qualities), or an unknown variant.
    """
    unknown = sorted(set(variants) - set(CALIBRATION_VARIANTS))
    if unknown or not variants:
        raise ValueError(f"unknown calibration variant {unknown[0]!r}" if unknown else "no calibration variants")
    if not images:
        raise ValueError("no images to fit the quality calibration on")
    if not 1 <= per_image <= len(qualities):
        raise ValueError(f"per_image must lie in 1..{len(qualities)}, got {per_image}")
    knots = np.asarray(knots, dtype=np.float64)
    QualityCalibration(tuple(knots), tuple(knots))  # checks the knots
    rng = np.random.default_rng(seed)
    features, targets = [], []
    for name in _wrap(progress, list(images)):
        variant = variants[rng.integers(len(variants))]
        chosen = rng.choice(np.asarray(qualities), size=per_image, replace=False)
        offset = tuple(int(v) for v in rng.integers(1, 8, size=2)) if variant == "shifted" else (0, 0)
        source = to_grayscale(images[name]) if variant == "grayscale" else images[name]
        subsampling = "4:4:4" if variant == "4:4:4" else "4:2:0"
        for quality in [None, *chosen.tolist()]:
            test = _test_image(source, quality, subsampling, offset)
            raw = predict_maps(model, test, tile_size=tile_size, device=device)[QUALITY_CHANNEL]
            features.append(_hat_means(np.clip(raw, 0.0, 1.0), knots))
            targets.append(0.0 if quality is None else (100 - quality) / 100)
    return _solve_calibration(np.asarray(features), np.asarray(targets), knots)


def _solve_calibration(features: np.ndarray, targets: np.ndarray, knots: np.ndarray) -> QualityCalibration:
    """The monotone map whose values at ``knots`` minimise ``sum((features @ values - targets) ** 2)``."""
    from scipy.optimize import nnls

    # values = cumulative sums of non-negative steps: a monotone map whatever the data.
    cumulative = np.tril(np.ones((len(knots), len(knots))))
    steps, _ = nnls(features @ cumulative, targets)
    values = np.clip(cumulative @ steps, 0.0, 1.0)
    return QualityCalibration(tuple(knots.tolist()), tuple(values.tolist()))


def _hat_means(values: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Mean over ``values`` of each piecewise-linear basis function of ``knots`` (1 at its knot)."""
    index = np.clip(np.searchsorted(knots, values.ravel(), side="right") - 1, 0, len(knots) - 2)
    upper = (values.ravel() - knots[index]) / (knots[index + 1] - knots[index])
    means = np.bincount(index, weights=1.0 - upper, minlength=len(knots))
    means += np.bincount(index + 1, weights=upper, minlength=len(knots))
    return means / values.size


def _score_means(records: Sequence[CollageBenchmarkRecord]) -> dict:
    def mean(key):
        values = np.array([getattr(r, key) for r in records], dtype=np.float64)
        values = values[np.isfinite(values)]
        return round(float(values.mean()), 4) if values.size else None

    def std(key):
        values = np.array([getattr(r, key) for r in records], dtype=np.float64)
        values = values[np.isfinite(values)]
        return round(float(values.std()), 4) if values.size else None

    return {"n": len(records), "mean_iou": mean("iou"), "std_iou": std("iou"), "mean_f1": mean("f1"),
            "std_f1": std("f1"), "mean_auc": mean("auc"), "std_auc": std("auc"),
            "mean_precision": mean("precision"), "mean_recall": mean("recall"),
            "mean_flag_inside": mean("flag_inside"), "mean_flag_outside": mean("flag_outside"),
            "mean_quality_inside": mean("quality_inside")}


def summarize_collage_benchmark(records: Sequence[CollageBenchmarkRecord]) -> dict:
    """Mean (and standard deviation) of the scores over all pairs, per QF and per mask shape.

    NaN scores (an undefined precision or AUC) are left out of their means.

    Returns
    -------
    dict
        The keys of the overall scores (``n``, ``mean_iou``, ``std_iou``, ``mean_f1``, ``std_f1``,
        ``mean_auc``, ``std_auc``, ``mean_precision``, ``mean_recall``, ``mean_flag_inside``,
        ``mean_flag_outside``, ``mean_quality_inside``), plus ``by_quality`` and ``by_shape``:
        lists of the same dicts with a ``quality`` or ``shape`` key.
    """
    summary = _score_means(records)
    summary["by_quality"] = [{"quality": q, **_score_means([r for r in records if r.quality == q])}
                             for q in sorted({r.quality for r in records})]
    summary["by_shape"] = [{"shape": s, **_score_means([r for r in records if r.shape == s])}
                           for s in MASK_SHAPES if any(r.shape == s for r in records)]
    return summary


# --------------------------------------------------------------------------------------------
# Figs. 4-9: auditing a data set
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssessmentRecord:
    """The whole-image verdict on one file of an audited data set."""

    file: str
    height: int
    width: int
    mean_quality: float
    mean_flag: float
    compressed: bool
    grayscale: bool = False
    notes: tuple[str, ...] = field(default=())
    grid_score: float | None = None

    @property
    def verdict(self) -> str:
        return "compressed" if self.compressed else "uncompressed"

    def as_row(self) -> dict:
        """The record as a flat dict for CSV and JSON."""
        return {"file": self.file, "width": self.width, "height": self.height,
                "mean_quality": round(self.mean_quality, 2), "mean_flag": round(self.mean_flag, 4),
                "grid_score": "" if self.grid_score is None else round(self.grid_score, 2),
                "verdict": self.verdict, "grayscale": self.grayscale, "notes": "; ".join(self.notes)}


def assess_images(model: QFNet, files: Files, tile_size: int = DEFAULT_TILE_SIZE, device: str | None = None,
                  progress: Progress | None = None,
                  on_result: Callable[[str, np.ndarray, Analysis], None] | None = None,
                  grid_check: bool = True) -> tuple[list[AssessmentRecord], list[Failure]]:
    """Analyse every file of a data set and record its verdict (Figs. 4-9 of the paper).

    Parameters
    ----------
    model : QFNet
    files : mapping of name to path, or sequence of paths
        Any images; grayscale ones are analysed too and marked.
    tile_size, device
        As for :func:`jpegtrace.analyze`.
    progress : callable, optional
        Wraps the list of ``(name, path)`` pairs, e.g. ``tqdm``.
    on_result : callable, optional
        Called as ``on_result(name, rgb, analysis)`` after each image is analysed, e.g. to
        write its thumbnails; the maps are not kept otherwise.
    grid_check : bool
        Also look for a JPEG block grid (:mod:`jpegtrace.grid`); a grid found makes the verdict
        "compressed" whatever the mean flag.

    Returns
    -------
    records : list of AssessmentRecord
    failures : list of Failure
        Files that could not be read, each with its reason.
    """
    records: list[AssessmentRecord] = []
    failures: list[Failure] = []
    for name, path in _wrap(progress, _named_files(files)):
        try:
            rgb, grayscale, notes = as_analysis_array(path)
        except ImageReadError as exc:
            failures.append(Failure(name, exc.reason))
            continue
        analysis = analyze_array(rgb, model, tile_size=tile_size, device=device, grid_check=grid_check,
                                 grayscale=grayscale, notes=notes)
        grid = analysis.grid
        records.append(AssessmentRecord(file=name, height=int(rgb.shape[0]), width=int(rgb.shape[1]),
                                        mean_quality=analysis.mean_quality, mean_flag=analysis.mean_flag,
                                        compressed=analysis.compressed, grayscale=grayscale, notes=notes,
                                        grid_score=None if grid is None else grid.score))
        if on_result is not None:
            on_result(name, rgb, analysis)
    return records, failures


def summarize_assessment(records: Sequence[AssessmentRecord], failures: Sequence[Failure] = (),
                         edges: Sequence[float] = HISTOGRAM_EDGES) -> dict:
    """Counts of an audit and the histogram of the estimated QF over the images judged compressed.

    Returns
    -------
    dict
        ``n_files`` (analysed and failed), ``n_analysed``, ``n_compressed``, ``n_uncompressed``,
        ``n_grayscale``, ``n_failed``, ``share_compressed``, ``mean_quality_compressed`` (None
        when none is compressed), ``histogram``: ``edges`` (bin edges in QF, the last bin closed)
        and ``counts``.
    """
    compressed = [r for r in records if r.compressed]
    qualities = np.array([r.mean_quality for r in compressed], dtype=np.float64)
    counts, bin_edges = np.histogram(qualities, bins=np.asarray(edges, dtype=np.float64))
    return {
        "n_files": len(records) + len(failures),
        "n_analysed": len(records),
        "n_compressed": len(compressed),
        "n_uncompressed": len(records) - len(compressed),
        "n_grayscale": sum(r.grayscale for r in records),
        "n_failed": len(failures),
        "share_compressed": round(len(compressed) / len(records), 4) if records else None,
        "mean_quality_compressed": round(float(qualities.mean()), 2) if qualities.size else None,
        "histogram": {"edges": [float(e) for e in bin_edges], "counts": [int(c) for c in counts]},
    }
