"""The paper's Fig. 3 and the collage benchmark: JPEG regions pasted into never-compressed images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..analysis import DEFAULT_TILE_SIZE, Analysis, analyze_array
from ..errors import ImageReadError
from ..io import as_analysis_array
from ..jpeg import jpeg_compress
from ..nn.qfnet import QFNet
from .common import Failure, Files, Progress, _named_files, _wrap
from .masks import MASK_SHAPES, random_mask
from .metrics import LocalizationScores, _finite_or_none, localization_scores


def fit_image(image: np.ndarray, height: int, width: int, *, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Crop ``image`` to ``(height, width)`` from ``offset``, first mirroring it where it is too small."""
    h, w = image.shape[:2]
    if h < height or w < width:
        pad = ((0, max(0, height - h)), (0, max(0, width - w))) + (((0, 0),) if image.ndim == 3 else ())
        image = np.pad(image, pad, mode="symmetric")
        h, w = image.shape[:2]
    y0 = min(max(int(offset[0]), 0), h - height)
    x0 = min(max(int(offset[1]), 0), w - width)
    return np.ascontiguousarray(image[y0:y0 + height, x0:x0 + width])


def make_collage(background: np.ndarray, donor: np.ndarray, quality: int, mask: np.ndarray, *,
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


def run_collage(model: QFNet, background: np.ndarray, donor: np.ndarray, quality: int, mask: np.ndarray, *,
                subsampling: str = "4:2:0", grid_offset: tuple[int, int] = (0, 0),
                threshold: float | None = None, tile_size: int = DEFAULT_TILE_SIZE,
                device: str | None = None, grid_check: bool = True) -> CollageResult:
    """Make the fake image of Fig. 3, analyse it and score the flag map against the mask.

    ``donor`` is cropped to (or mirrored up to) the background's size first, see :func:`fit_image`.
    The mask of the analysis is ``flag > threshold``, by default the model's calibrated
    ``flag_threshold``. The analysis is :func:`jpegtrace.analysis.analyze_array`'s, with the
    grid check unless ``grid_check`` is False.
    """
    if threshold is None:
        threshold = model.flag_threshold
    height, width = background.shape[:2]
    donor = fit_image(donor, height, width)
    fake = make_collage(background, donor, quality, mask, subsampling=subsampling, grid_offset=grid_offset)
    analysis = analyze_array(fake, model, tile_size=tile_size, device=device, grid_check=grid_check)
    return CollageResult(
        fake=fake, mask=mask, quality=int(quality), analysis=analysis,
        scores=localization_scores(analysis.flag_map, mask, threshold=threshold),
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
        mask, shape = random_mask(h, w, rng, shapes=shapes)
        yield _CollagePair(index=i, background_name=named[bg_index][0], donor_name=named[donor_index][0],
                           quality=quality, shape=shape, background=background,
                           donor=fit_image(donor, h, w, offset=offset), mask=mask)


def collage_benchmark(model: QFNet, files: Files, *, pairs: int = 100, seed: int = 0,
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
