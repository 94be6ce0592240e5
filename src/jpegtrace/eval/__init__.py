"""The paper's experiments and the project's own, as functions that compute (nothing here writes files).

- :mod:`~jpegtrace.eval.quality`: QF accuracy per QF (Fig. 2) and the near-lossless verdicts (Table 1).
- :mod:`~jpegtrace.eval.masks` and :mod:`~jpegtrace.eval.metrics`: pasted-region masks and localisation scores.
- :mod:`~jpegtrace.eval.collage`: Fig. 3 and the collage benchmark.
- :mod:`~jpegtrace.eval.calibration`: a model's flag threshold and quality calibration.
- :mod:`~jpegtrace.eval.audit`: the data-set audit of Figs. 4-9.
- :mod:`~jpegtrace.eval.reports`: the result files and figures of all of these (imports matplotlib).

Files that cannot be read become :class:`Failure` records and the run goes on. Random choices come
from ``numpy.random.Generator`` objects seeded explicitly, so every result is reproducible.
"""

from .._lazy import lazy_exports

#: Public name -> the submodule that defines it (imported on first use, PEP 562: importing one
#: submodule does not import the others, nor torch where they need it).
_EXPORTS = {
    "AssessmentRecord": "audit", "CALIBRATION_KNOTS": "calibration", "CALIBRATION_QUALITIES": "calibration",
    "CALIBRATION_THRESHOLDS": "calibration", "CALIBRATION_VARIANTS": "calibration", "CollageBenchmarkRecord": "collage",
    "CollageResult": "collage", "DEFAULT_QUALITIES": "common", "EvaluationRecord": "quality",
    "Failure": "common", "HISTOGRAM_EDGES": "audit", "LocalizationScores": "metrics",
    "MASK_SHAPES": "masks", "NEGATIVES_SEED": "negatives", "NegativeRecord": "negatives",
    "QF_MAE_MAX_QUALITY": "quality", "TABLE1_QUALITIES": "common", "ThresholdCalibration": "calibration",
    "assess_images": "audit", "blob_mask": "masks", "calibrate_flag_threshold": "calibration",
    "collage_benchmark": "collage", "disc_mask": "masks", "evaluate_files": "quality",
    "evaluate_model": "quality", "evaluate_negatives": "negatives", "fit_image": "collage",
    "fit_quality_calibration": "calibration", "fresh_negatives": "negatives", "localization_scores": "metrics",
    "make_collage": "collage", "make_mask": "masks", "pixel_auc": "metrics",
    "random_mask": "masks", "read_mask": "masks", "record_of": "quality",
    "rectangle_mask": "masks", "run_collage": "collage", "summarize_assessment": "audit",
    "summarize_collage_benchmark": "collage", "summarize_evaluation": "quality", "summarize_negatives": "negatives",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
