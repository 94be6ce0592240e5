"""The paper's Fig. 2 and Table 1: QF estimates and verdicts on JPEGs made from never-compressed images."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
import numpy as np
from ..jpeg import to_grayscale
from ..errors import ImageReadError
from ..io import as_analysis_array
from ..analysis import DEFAULT_TILE_SIZE, analyze_array, whole_image_verdict
from ..jpeg import jpeg_compress
from ..nn.qfnet import QFNet
from .common import Failure, Files, Progress, TABLE1_QUALITIES, _named_files, _wrap


#: The QFs of the paper's Fig. 2 plus the near-lossless ones of its Table 1.
DEFAULT_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97, 98, 99, 100)


#: The overall QF MAE counts the compressed test images up to this QF (the range of Fig. 2).
QF_MAE_MAX_QUALITY = 95


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
