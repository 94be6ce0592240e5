"""Fitting a model's flag threshold and quality calibration on training images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..analysis import (
    DEFAULT_TILE_SIZE,
    QUALITY_MEDIAN_STEP,
    analyze_array,
    check_pixels,
    predict_maps,
    weighted_median,
)
from ..evidence import MIN_EVIDENCE_SHARE
from ..jpeg import to_grayscale
from ..nn.qfnet import QUALITY_CHANNEL, QFNet, check_flag_threshold
from ..nn.weights import MAX_CALIBRATION_SLOPE, QualityCalibration
from .collage import _collage_pairs, make_collage
from .common import Files, Progress, _wrap
from .masks import MASK_SHAPES
from .metrics import _iou
from .quality import _test_image


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


def calibrate_flag_threshold(model: QFNet, files: Files, *, pairs: int = 100, seed: int = 1,
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
        fake = make_collage(pair.background, pair.donor, pair.quality, pair.mask, subsampling=subsampling)
        flag_map = analyze_array(fake, model, tile_size=tile_size, device=device, grid_check=grid_check).flag_map
        ious.append([_iou(flag_map > t, pair.mask) for t in thresholds])
    if not ious:
        raise ValueError("no collage could be made for the calibration")
    return ThresholdCalibration(thresholds=thresholds, mean_iou=tuple(np.mean(ious, axis=0).tolist()),
                                pairs=len(ious))


#: Knots of :func:`fit_quality_calibration`, in normalised quality (0 = QF 100): QF 100, 99, 98,
#: 97, 95, 90, 80, ..., 10, 5 and 0, the QFs of the paper's Fig. 2 and Table 1, where the data are.
CALIBRATION_KNOTS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


#: Step of the raw (0..1) medians the calibration is fitted on: the QF step at which
#: :func:`jpegtrace.analysis.summarize` reads its medians, in normalised quality.
MEDIAN_RESOLUTION = QUALITY_MEDIAN_STEP / 100


#: QFs :func:`fit_quality_calibration` compresses at: those of Fig. 2. Near-lossless JPEGs (QF 97-100)
#: are left out: the network tells them from QF 95 poorly, and fitting them too pulled the map's
#: high end up so far that QF 90 JPEGs of the val images came out 2.5 too high (the shipped network
#: of 2026-12-01); their estimates still gain from the QF 95 knot.
CALIBRATION_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)


#: The kinds of test image :func:`fit_quality_calibration` draws from, one per source image:
#: 4:2:0 twice as often as the others, as the default of Pillow and most cameras.
CALIBRATION_VARIANTS = ("4:2:0", "4:2:0", "4:4:4", "shifted", "grayscale")


def fit_quality_calibration(model: QFNet, images: Mapping[str, np.ndarray], *,
                            qualities: Sequence[int] = CALIBRATION_QUALITIES, per_image: int = 6, seed: int = 0,
                            variants: Sequence[str] = CALIBRATION_VARIANTS,
                            knots: Sequence[float] = CALIBRATION_KNOTS, max_slope: float | None = MAX_CALIBRATION_SLOPE,
                            tile_size: int = DEFAULT_TILE_SIZE,
                            device: str | None = None, progress: Progress | None = None) -> QualityCalibration:
    """Fit the monotone map of the quality map that puts image medians on the true QFs.

    Each source image is compressed at ``per_image`` QFs drawn from ``qualities`` (and also kept
    as it is, which counts as QF 100), as one kind of test image drawn from ``variants`` (a
    shifted grid at a random offset). The map is piecewise linear between ``knots`` and never
    decreasing, so it maps an image's weighted median of the raw quality map to the weighted
    median of the mapped map, and that is linear in the map's values at the knots: the values
    come from one least-squares fit of the images' mapped raw medians to their true normalised
    quality, with non-negative steps between knots, so the map never reverses, and none steeper
    than ``max_slope``. The
    medians are weighted by the evidence map, as the QF that :func:`jpegtrace.analysis.summarize`
    reports (:attr:`~jpegtrace.analysis.Analysis.median_quality`) is; test images that would get
    "no evidence" are left out.

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
    max_slope : float or None
        The steepest the map may rise between two knots (:data:`MAX_CALIBRATION_SLOPE`); None for no
        bound. A steeper map magnifies every pixel's error (and bf16's rounding) by its slope.
    tile_size, device
        As for :func:`jpegtrace.analysis.predict_maps`.
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

    Notes
    -----
    Until 2026-12-07 the means were plain means over all pixels, while the reported QF weighs pixels
    by their evidence: flat and clipped areas, whose raw quality says little, pulled the fit. On the
    50 ``val`` images (QF 5..95, the network's own QF) the weighted fit brought the MAE from 2.53 /
    2.60 / 2.35 / 2.47 to 2.48 / 2.24 / 2.24 / 2.44 (4:2:0 / 4:4:4 / shifted grid / grayscale) for the
    shipped network, and took out the map's flat stretches (QF 70-80 and 90-95 had mapped to one
    value each). Until 2026-12-08 the fit was for the weighted means, the whole-image QF of then; the
    median, with a calibration fitted for it, took the same MAE to 2.28 / 2.05 / 1.97 / 2.21 (see
    the research log): a mean of the per-pixel estimates, each a squared-error mean over the QFs its
    neighbourhood could come from, is pulled by the pixels that guess far off.
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
            evidence = check_pixels(test, grid_check=False).evidence
            if evidence.mean(dtype=np.float64) < MIN_EVIDENCE_SHARE:
                continue  # "no evidence": no QF is reported for such an image
            raw = predict_maps(model, test, tile_size=tile_size, device=device)[QUALITY_CHANNEL]
            median = weighted_median(np.clip(raw, 0.0, 1.0), evidence, high=1.0, resolution=MEDIAN_RESOLUTION)
            features.append(_hat_means(np.array([median]), knots))
            targets.append(0.0 if quality is None else (100 - quality) / 100)
    if not features:
        raise ValueError("no test image carries evidence to fit the quality calibration on")
    return _solve_calibration(np.asarray(features), np.asarray(targets), knots, max_slope=max_slope)


def _solve_calibration(features: np.ndarray, targets: np.ndarray, knots: np.ndarray, *,
                       max_slope: float | None = None) -> QualityCalibration:
    """The monotone map whose values at ``knots`` minimise ``sum((features @ values - targets) ** 2)``,
    with no stretch steeper than ``max_slope`` where given."""
    from scipy.optimize import lsq_linear, nnls

    # values = cumulative sums of non-negative steps: a monotone map whatever the data.
    cumulative = np.tril(np.ones((len(knots), len(knots))))
    if max_slope is None:
        steps, _ = nnls(features @ cumulative, targets)
    else:  # steps[0] is the value at the first knot, each later one the rise over a stretch
        upper = np.concatenate([[np.inf], max_slope * np.diff(knots)])
        steps = lsq_linear(features @ cumulative, targets, bounds=(np.zeros(len(knots)), upper)).x
    values = np.clip(cumulative @ steps, 0.0, 1.0)
    return QualityCalibration(tuple(knots.tolist()), tuple(values.tolist()))


def _hat_means(values: np.ndarray, knots: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean over ``values`` (weighted by ``weights``, of the same shape) of each piecewise-linear basis
    function of ``knots`` (1 at its knot)."""
    index = np.clip(np.searchsorted(knots, values.ravel(), side="right") - 1, 0, len(knots) - 2)
    upper = (values.ravel() - knots[index]) / (knots[index + 1] - knots[index])
    w = np.ones(values.size) if weights is None else weights.ravel().astype(np.float64)
    means = np.bincount(index, weights=w * (1.0 - upper), minlength=len(knots))
    means += np.bincount(index + 1, weights=w * upper, minlength=len(knots))
    return means / w.sum()
