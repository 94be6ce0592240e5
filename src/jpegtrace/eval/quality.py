"""The paper's Fig. 2 and Table 1: QF estimates and verdicts on JPEGs made from never-compressed images."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..analysis import DEFAULT_TILE_SIZE, JPEG_VERDICTS, NO_EVIDENCE, Analysis, analyze_array
from ..errors import ImageReadError
from ..io import as_analysis_array
from ..jpeg import camera_like_tables, ijg_equivalent_quality, jpeg_compress, to_grayscale
from ..nn.qfnet import QFNet
from .common import DEFAULT_QUALITIES, TABLE1_QUALITIES, Failure, Files, Progress, _named_files, _wrap, cell

#: The overall QF MAE counts the compressed test images up to this QF (the range of Fig. 2).
QF_MAE_MAX_QUALITY = 95


@dataclass(frozen=True)
class EvaluationRecord:
    """One analysed test image: ``quality`` is the true QF, None for the uncompressed original.

    ``verdict`` is the analysis's (:func:`jpegtrace.analysis.judge`), ``flag_verdict`` the one of
    its flag map alone (the paper's rule) and ``network_verdict`` the one of the network's own
    flag map, before the grid's evidence joined it in clipped blocks. ``grid_score`` is the score
    of :func:`jpegtrace.grid.find_jpeg_grid` (None when the check was not run), ``grid_found``
    whether a grid was found (by that score, or a coarse JPEG's by its flat blocks).
    ``estimated_quality`` and ``mean_flag`` are None when no pixel carries evidence.
    ``headline_quality`` is the analysis's headline QF (:attr:`jpegtrace.analysis.Analysis.headline_quality`:
    the table's where it was read, else the network's), ``quality_source`` where it comes from.
    """

    image: str
    quality: int | None
    estimated_quality: float | None
    mean_flag: float | None
    verdict: str
    flag_verdict: str
    network_verdict: str
    evidence_share: float = 1.0
    grid_score: float | None = None
    network_mean_flag: float | None = None
    headline_quality: float | None = None
    quality_source: str = "network"
    grid_found: bool | None = None

    @property
    def compressed(self) -> bool:
        """Whether the analysis found JPEG compression (in the whole image or in part)."""
        return self.verdict in JPEG_VERDICTS

    @property
    def abs_error(self) -> float | None:
        """``|estimated - true QF|``; None for the uncompressed original or without an estimate."""
        if self.quality is None or self.estimated_quality is None:
            return None
        return abs(self.estimated_quality - self.quality)

    @property
    def headline_abs_error(self) -> float | None:
        """``|headline - true QF|``; None for the uncompressed original or without a headline QF."""
        if self.quality is None or self.headline_quality is None:
            return None
        return abs(self.headline_quality - self.quality)

    def as_row(self) -> dict:
        """The record as a flat dict for CSV and JSON (``""`` for what is None)."""
        return {"image": self.image, "quality": cell(self.quality, 0),
                "estimated_quality": cell(self.estimated_quality, 4), "mean_flag": cell(self.mean_flag, 4),
                "network_mean_flag": cell(self.mean_flag if self.network_mean_flag is None
                                            else self.network_mean_flag, 4),
                "evidence_share": round(self.evidence_share, 4), "grid_score": cell(self.grid_score, 2),
                "grid_found": "" if self.grid_found is None else int(self.grid_found), "verdict": self.verdict, "abs_error": cell(self.abs_error, 4),
                "headline_quality": cell(self.headline_quality, 4), "quality_source": self.quality_source}


def evaluate_model(model: QFNet, images: dict[str, np.ndarray], qualities: Sequence[int | None], *,
                   subsampling: str = "4:2:0", grid_offset: tuple[int, int] = (0, 0),
                   grayscale: bool = False, device: str | None = None,
                   progress: Iterable | None = None, tile_size: int = DEFAULT_TILE_SIZE,
                   grid_check: bool = True, camera_tables_seed: int | None = None,
                   after_jpeg_seed: int | None = None) -> list[EvaluationRecord]:
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
    camera_tables_seed : int, optional
        Compress with random camera-like tables (:func:`jpegtrace.jpeg.camera_like_tables`) drawn
        around each QF from this seed, one per image and QF, instead of the IJG tables; the true QF
        of a record is then the IJG-equivalent QF of its luma table.
    after_jpeg_seed : int, optional
        Process every JPEG lightly after decoding (:func:`jpegtrace.train.camera.after_jpeg`: a
        gamma, mild noise or both), drawn from this seed, one draw per image and QF; the record's
        true QF stays the JPEG's.

    Returns
    -------
    list of EvaluationRecord
        One per image and QF, image-major, in the order given. The estimated QF of a test
        image is the evidence-weighted median of its quality map
        (:attr:`~jpegtrace.analysis.Analysis.median_quality`); it counts as compressed when its mean flag is
        above 0.5 or (with ``grid_check``) a JPEG grid is found.
    """
    jobs = [(name, q) for name in images for q in qualities]
    if after_jpeg_seed is not None:
        from ..train.camera import after_jpeg  # training's module imports scipy: only when asked for
    records = []
    for name, quality in (progress(jobs) if progress else jobs):
        source = to_grayscale(images[name]) if grayscale else images[name]
        tables = None
        if camera_tables_seed is not None and quality is not None:
            # One table per (image, QF), the same whatever else is evaluated.
            rng = np.random.default_rng((camera_tables_seed, zlib.crc32(name.encode()), int(quality)))
            tables = camera_like_tables(int(quality), rng)
            quality = ijg_equivalent_quality(tables[0])
        test = _test_image(source, quality, subsampling, grid_offset, tables)
        if after_jpeg_seed is not None and quality is not None:
            test = after_jpeg(test, np.random.default_rng((after_jpeg_seed, zlib.crc32(name.encode()), int(quality))))
        result = analyze_array(test, model, tile_size=tile_size, device=device, grid_check=grid_check)
        records.append(record_of(name, quality, result))
    return records


def record_of(image: str, quality: int | None, result: Analysis) -> EvaluationRecord:
    """The :class:`EvaluationRecord` of one analysed test image."""
    return EvaluationRecord(image, quality, result.median_quality, result.mean_flag, verdict=result.verdict,
                            flag_verdict=result.flag_verdict, network_verdict=result.network_verdict,
                            evidence_share=result.evidence_share,
                            grid_score=None if result.grid is None else result.grid.score,
                            network_mean_flag=result.network_mean_flag,
                            headline_quality=result.headline_quality, quality_source=result.quality_source,
                            grid_found=None if result.grid is None else bool(result.grid.found))


def _test_image(source: np.ndarray, quality: int | None, subsampling: str,
                grid_offset: tuple[int, int], tables=None) -> np.ndarray:
    """``source`` JPEG-compressed at ``quality`` or with ``tables`` (as it is for None), as the RGB array
    the network takes."""
    test = source if quality is None else jpeg_compress(source, int(quality), subsampling, grid_offset,
                                                        qtables=tables)
    return np.repeat(test[:, :, None], 3, axis=2) if test.ndim == 2 else test


def evaluate_files(model: QFNet, files: Files, *, qualities: Sequence[int] = DEFAULT_QUALITIES,
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
        at most 0.5 and no JPEG grid found, or no evidence), ``no_evidence`` (share whose verdict
        is "no evidence", which have no estimate), ``flag_judged_uncompressed`` (share whose mean
        flag is at most 0.5, the paper's rule) and ``network_judged_uncompressed`` (the same for
        the network's own flag map, before the grid's evidence joined it);
        ``table1``: the ``per_quality`` rows of QF 97, 98, 99, 100 and the originals that were
        tested, as ``quality``, ``label``, ``n`` and the three shares;
        ``qf_mae``: mean absolute QF error over the compressed test images with QF up to 95
        (the range of Fig. 2), None if there are none; ``qf_mae_all_qualities``: the same over
        every compressed test image; ``detection_accuracy``: share of test images whose verdict
        (compressed or not) is right; ``clean_judged_uncompressed``: share of originals judged
        uncompressed; ``headline_qf_mae``: ``qf_mae`` of the headline QF (the table's where it was
        read); ``n_images``: number of distinct images; ``n_records``. Each ``per_quality`` row
        also has ``mean_headline``, ``headline_mae`` and ``table_share`` (share whose headline is
        the table's).
    """
    by_quality: dict[int | None, list[EvaluationRecord]] = {}
    for r in records:
        by_quality.setdefault(r.quality, []).append(r)
    per_quality = []
    for quality in sorted(by_quality, key=lambda q: 101 if q is None else q):
        rs = by_quality[quality]
        # Images without evidence have no estimate: their share is the row's "no_evidence".
        est = np.array([r.estimated_quality for r in rs if r.estimated_quality is not None], dtype=np.float64)
        flags = [r.mean_flag for r in rs if r.mean_flag is not None]
        headline = np.array([r.headline_quality for r in rs if r.headline_quality is not None], dtype=np.float64)
        row = {"quality": quality, "n": len(rs),
               "mean_estimate": float(est.mean()) if est.size else None,
               "mean_headline": float(headline.mean()) if headline.size else None,
               "headline_mae": None if quality is None or not headline.size
               else float(np.abs(headline - quality).mean()),
               "table_share": float(np.mean([r.quality_source != "network" for r in rs])),
               "std_estimate": float(est.std()) if est.size else None,
               "mae": None if quality is None or not est.size else float(np.abs(est - quality).mean()),
               "mean_flag": float(np.mean(flags)) if flags else None,
               "judged_uncompressed": float(np.mean([r.verdict not in JPEG_VERDICTS for r in rs])),
               "flag_judged_uncompressed": float(np.mean([r.flag_verdict not in JPEG_VERDICTS for r in rs])),
               "network_judged_uncompressed": float(np.mean([r.network_verdict not in JPEG_VERDICTS for r in rs])),
               "no_evidence": float(np.mean([r.verdict == NO_EVIDENCE for r in rs]))}
        per_quality.append(row)
    shares = ("judged_uncompressed", "flag_judged_uncompressed", "network_judged_uncompressed")
    table1 = [{"quality": row["quality"], "label": "without JPEG" if row["quality"] is None else f"QF {row['quality']}",
               "n": row["n"], **{key: row[key] for key in shares}}
              for row in per_quality if row["quality"] is None or row["quality"] in TABLE1_QUALITIES]
    compressed = [r for r in records if r.quality is not None]
    errors = [r.abs_error for r in compressed if r.quality <= QF_MAE_MAX_QUALITY and r.abs_error is not None]
    all_errors = [r.abs_error for r in compressed if r.abs_error is not None]
    headline_errors = [r.headline_abs_error for r in compressed
                       if r.quality <= QF_MAE_MAX_QUALITY and r.headline_abs_error is not None]
    correct = [r.compressed == (r.quality is not None) for r in records]
    clean = [r for r in records if r.quality is None]
    return {
        "per_quality": per_quality,
        "table1": table1,
        "qf_mae": float(np.mean(errors)) if errors else None,
        "qf_mae_all_qualities": float(np.mean(all_errors)) if all_errors else None,
        "headline_qf_mae": float(np.mean(headline_errors)) if headline_errors else None,
        "detection_accuracy": float(np.mean(correct)) if correct else None,
        "clean_judged_uncompressed": float(np.mean([not r.compressed for r in clean])) if clean else None,
        "n_images": len({r.image for r in records}),
        "n_records": len(records),
    }
