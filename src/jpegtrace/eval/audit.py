"""Auditing a data set (the paper's Figs. 4-9): per-image verdicts and their summary."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..analysis import (DEFAULT_TILE_SIZE, JPEG_VERDICTS, NEVER_COMPRESSED, NO_EVIDENCE, PARTLY_COMPRESSED, Analysis,
                        analyze_array)
from ..errors import ImageReadError, TimeLimitError
from ..io import DEFAULT_MAX_PIXELS, read_analysis_input
from ..limits import time_limit as limited
from ..record import analysis_record
from .common import Failure, Files, Progress, _named_files, _wrap, cell

if TYPE_CHECKING:  # an audit on OpenVINO runs a weights file's arrays and never imports torch
    from ..nn.qfnet import QFNet
    from ..nn.weights import NetworkWeights

#: Edges of the QF histogram of an assessment: 20 bins of 5 QF.
HISTOGRAM_EDGES = tuple(range(0, 101, 5))


@dataclass(frozen=True)
class AssessmentRecord:
    """The whole-image verdict on one file of an audited data set.

    ``mean_quality`` is the mean of the quality map, ``quality`` the headline QF
    (:attr:`jpegtrace.analysis.Analysis.headline_quality`) and ``record`` the full record of the
    image (:func:`jpegtrace.record.analysis_record`), the one ``analyze`` prints.
    """

    file: str
    height: int
    width: int
    mean_quality: float | None
    mean_flag: float | None
    verdict: str
    evidence_share: float = 1.0
    grayscale: bool = False
    notes: tuple[str, ...] = field(default=())
    grid_score: float | None = None
    quality: float | None = None
    record: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def compressed(self) -> bool:
        """Whether JPEG compression was found (in the whole image or in part)."""
        return self.verdict in JPEG_VERDICTS

    def as_row(self) -> dict:
        """The record as a flat dict for CSV and JSON (``""`` for what is None)."""
        return {"file": self.file, "width": self.width, "height": self.height,
                "mean_quality": cell(self.mean_quality, 2), "mean_flag": cell(self.mean_flag, 4),
                "evidence_share": round(self.evidence_share, 4), "grid_score": cell(self.grid_score, 2),
                "verdict": self.verdict, "grayscale": self.grayscale, "notes": "; ".join(self.notes)}


def assess_images(model: QFNet | NetworkWeights, files: Files, *, tile_size: int = DEFAULT_TILE_SIZE, device: str | None = None,
                  backend: str = "auto", precision: str = "auto",
                  progress: Progress | None = None,
                  on_result: Callable[[str, np.ndarray, Analysis], None] | None = None,
                  on_failure: Callable[[Failure], None] | None = None,
                  on_record: Callable[[dict], None] | None = None,
                  grid_check: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS, allow_damaged: bool = False,
                  time_limit: float | None = None) -> tuple[list[AssessmentRecord], list[Failure]]:
    """Analyse every file of a data set and record its verdict (Figs. 4-9 of the paper).

    Parameters
    ----------
    model : QFNet or NetworkWeights
        As :func:`jpegtrace.analysis.load_network` gives it.
    files : mapping of name to path, or sequence of paths
        Any images; grayscale ones are analysed too and marked.
    tile_size, device
        As for :func:`jpegtrace.analyze`.
    backend, precision : str
        What runs the network (:func:`jpegtrace.analysis.predict_maps`); 'auto' by default.
    progress : callable, optional
        Wraps the list of ``(name, path)`` pairs, e.g. ``tqdm``.
    on_result : callable, optional
        Called as ``on_result(name, rgb, analysis)`` after each image is analysed, e.g. to
        write its thumbnails; the maps are not kept otherwise.
    on_failure : callable, optional
        Called with each :class:`~jpegtrace.eval.common.Failure` as it happens.
    on_record : callable, optional
        Called with each analysed image's record (:func:`jpegtrace.record.analysis_record`) as it
        is made, e.g. to stream it.
    grid_check : bool
        Also look for a JPEG block grid (:mod:`jpegtrace.grid`); a grid found makes the verdict
        "compressed" whatever the mean flag.
    max_pixels, allow_damaged
        As for :func:`jpegtrace.analyze`: files over the pixel limit, and damaged JPEGs unless
        ``allow_damaged``, are failures.
    time_limit : float, optional
        Seconds the reading and analysis of one file may take (:func:`jpegtrace.limits.time_limit`,
        main thread on Unix only); a file that takes longer is a failure ("took longer than N s")
        and the audit goes on.

    Returns
    -------
    records : list of AssessmentRecord
    failures : list of Failure
        Files that could not be read, each with its reason.
    """
    from ..nn.backends import provenance_by_kind

    records: list[AssessmentRecord] = []
    failures: list[Failure] = []
    networks = provenance_by_kind(model, backend=backend, precision=precision, device=device)
    for name, path in _wrap(progress, _named_files(files)):
        read = analysis = None  # free the previous image and maps first
        try:
            with limited(time_limit, path):
                read = read_analysis_input(path, max_pixels=max_pixels, allow_damaged=allow_damaged)
                analysis = analyze_array(read.rgb, model, tile_size=tile_size, device=device, backend=backend,
                                         precision=precision, grid_check=grid_check,
                                         grayscale=read.grayscale, notes=read.notes, valid=read.valid)
        except (ImageReadError, TimeLimitError) as exc:
            failures.append(Failure(name, exc.reason))
            if on_failure is not None:
                on_failure(failures[-1])
            continue
        rgb, grid = read.rgb, analysis.grid
        records.append(AssessmentRecord(file=name, height=int(rgb.shape[0]), width=int(rgb.shape[1]),
                                        mean_quality=analysis.mean_quality, mean_flag=analysis.mean_flag,
                                        verdict=analysis.verdict, evidence_share=analysis.evidence_share,
                                        grayscale=read.grayscale, notes=read.notes,
                                        grid_score=None if grid is None else grid.score,
                                        quality=analysis.headline_quality,
                                        record=analysis_record(analysis, file=name, input_info=read.info,
                                                               network=networks[read.grayscale])))
        if on_record is not None:
            on_record(records[-1].record)
        if on_result is not None:
            on_result(name, rgb, analysis)
    return records, failures


def summarize_assessment(records: Sequence[AssessmentRecord], failures: Sequence[Failure] = (), *,
                         edges: Sequence[float] = HISTOGRAM_EDGES) -> dict:
    """Counts of an audit and the histogram of the headline QF over the images judged compressed.

    Returns
    -------
    dict
        ``n_files`` (analysed and failed), ``n_analysed``, ``n_compressed`` (whole or in part),
        ``n_partly_compressed``, ``n_uncompressed`` (never compressed), ``n_no_evidence``,
        ``n_grayscale``, ``n_failed``, ``share_compressed``, ``mean_quality_compressed`` (None
        when none is compressed), ``histogram``: ``edges`` (bin edges in QF, the last bin closed)
        and ``counts``.
    """
    compressed = [r for r in records if r.compressed]
    headline = [r.mean_quality if r.quality is None else r.quality for r in compressed]  # (records made by hand)
    qualities = np.array([q for q in headline if q is not None], dtype=np.float64)
    counts, bin_edges = np.histogram(qualities, bins=np.asarray(edges, dtype=np.float64))
    return {
        "n_files": len(records) + len(failures),
        "n_analysed": len(records),
        "n_compressed": len(compressed),
        "n_partly_compressed": sum(r.verdict == PARTLY_COMPRESSED for r in records),
        "n_uncompressed": sum(r.verdict == NEVER_COMPRESSED for r in records),
        "n_no_evidence": sum(r.verdict == NO_EVIDENCE for r in records),
        "n_grayscale": sum(r.grayscale for r in records),
        "n_failed": len(failures),
        "share_compressed": round(len(compressed) / len(records), 4) if records else None,
        "mean_quality_compressed": round(float(qualities.mean()), 2) if qualities.size else None,
        "histogram": {"edges": [float(e) for e in bin_edges], "counts": [int(c) for c in counts]},
    }
