"""The paper's experiments as functions: QF estimation accuracy per QF (Fig. 2) and Table 1."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .data import to_grayscale
from .inference import predict_maps, summarize
from .jpeg import jpeg_compress
from .model import QFNet

#: The QFs of the paper's Fig. 2 plus the near-lossless ones of its Table 1.
DEFAULT_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97, 98, 99, 100)
#: QFs at which Table 1 reports the share of images judged uncompressed.
TABLE1_QUALITIES = (97, 98, 99, 100)


@dataclass(frozen=True)
class EvaluationRecord:
    """One analysed test image: ``quality`` is the true QF, None for the uncompressed original."""

    image: str
    quality: int | None
    estimated_quality: float
    mean_flag: float

    @property
    def judged_compressed(self) -> bool:
        return self.mean_flag > 0.5


def evaluate_model(model: QFNet, images: dict[str, np.ndarray], qualities: Sequence[int | None],
                   subsampling: str = "4:2:0", grid_offset: tuple[int, int] = (0, 0),
                   grayscale: bool = False, device: str | None = None,
                   progress: Iterable | None = None) -> list[EvaluationRecord]:
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
    """
    jobs = [(name, q) for name in images for q in qualities]
    records = []
    for name, quality in (progress(jobs) if progress else jobs):
        source = images[name]
        if grayscale:
            source = to_grayscale(source)
        test = source if quality is None else jpeg_compress(source, quality, subsampling, grid_offset)
        if test.ndim == 2:
            test = np.repeat(test[:, :, None], 3, axis=2)
        result = summarize(predict_maps(model, test, device=device))
        records.append(EvaluationRecord(name, quality, result.mean_quality, result.mean_flag))
    return records


def summarize_evaluation(records: Sequence[EvaluationRecord]) -> dict:
    """Per-QF statistics (Fig. 2), the share judged uncompressed (Table 1) and overall scores.

    Returns
    -------
    dict
        ``per_quality``: list of dicts with ``quality``, ``n``, ``mean_estimate``, ``std_estimate``,
        ``mae`` and ``judged_uncompressed``; ``qf_mae``: MAE over all compressed test images
        with QF < 100 excluded from nothing (all QFs tested count); ``detection_accuracy``: share
        of test images whose verdict (compressed or not) is right; ``clean_judged_uncompressed``.
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
               "judged_uncompressed": float(np.mean([not r.judged_compressed for r in rs]))}
        per_quality.append(row)
    compressed = [r for r in records if r.quality is not None]
    errors = [abs(r.estimated_quality - r.quality) for r in compressed]
    correct = [r.judged_compressed == (r.quality is not None) for r in records]
    clean = [r for r in records if r.quality is None]
    return {
        "per_quality": per_quality,
        "qf_mae": float(np.mean(errors)) if errors else None,
        "detection_accuracy": float(np.mean(correct)) if correct else None,
        "clean_judged_uncompressed": float(np.mean([not r.judged_compressed for r in clean])) if clean else None,
    }


def disc_mask(height: int, width: int, radius_fraction: float = 0.3,
              center: tuple[float, float] | None = None) -> np.ndarray:
    """Boolean ``(H, W)`` mask of a disc, by default centred with radius 30% of the shorter side."""
    cy, cx = center if center is not None else ((height - 1) / 2, (width - 1) / 2)
    yy, xx = np.mgrid[:height, :width]
    radius = radius_fraction * min(height, width)
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2


def make_collage(background: np.ndarray, donor: np.ndarray, quality: int, mask: np.ndarray,
                 subsampling: str = "4:2:0") -> np.ndarray:
    """The fake image of the paper's Fig. 3: ``donor`` JPEG-compressed, pasted into ``background``.

    Parameters
    ----------
    background : ndarray of uint8, (H, W, 3)
        Never-compressed image; stays uncompressed outside the mask.
    donor : ndarray of uint8, (H', W', 3)
        Source of the pasted region; its top-left ``(H, W)`` crop is JPEG-compressed at
        ``quality`` and used where ``mask`` is True. Must be at least as large as ``background``.
    quality : int
        QF of the donor JPEG (paper: 80).
    mask : ndarray of bool, (H, W)
        Where the compressed donor shows.

    Returns
    -------
    ndarray of uint8, (H, W, 3)
    """
    height, width = background.shape[:2]
    if donor.shape[0] < height or donor.shape[1] < width:
        raise ValueError(f"donor {donor.shape[:2]} is smaller than background {(height, width)}")
    if mask.shape != (height, width):
        raise ValueError(f"mask {mask.shape} does not match background {(height, width)}")
    compressed = jpeg_compress(np.ascontiguousarray(donor[:height, :width]), quality, subsampling)
    return np.where(mask[:, :, None], compressed, background).astype(np.uint8)
