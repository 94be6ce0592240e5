"""Localisation scores of a flag map against a mask: IoU, precision, recall, pixel AUC."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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


def localization_scores(flag_map: np.ndarray, mask: np.ndarray, *, threshold: float = 0.5) -> LocalizationScores:
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
