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

from .audit import HISTOGRAM_EDGES, AssessmentRecord, assess_images, summarize_assessment
from .calibration import (
    CALIBRATION_KNOTS,
    CALIBRATION_QUALITIES,
    CALIBRATION_THRESHOLDS,
    CALIBRATION_VARIANTS,
    ThresholdCalibration,
    calibrate_flag_threshold,
    fit_quality_calibration,
)
from .collage import (
    CollageBenchmarkRecord,
    CollageResult,
    collage_benchmark,
    fit_image,
    make_collage,
    run_collage,
    summarize_collage_benchmark,
)
from .common import TABLE1_QUALITIES, Failure
from .masks import MASK_SHAPES, blob_mask, disc_mask, make_mask, random_mask, read_mask, rectangle_mask
from .metrics import LocalizationScores, localization_scores, pixel_auc
from .quality import (
    DEFAULT_QUALITIES,
    QF_MAE_MAX_QUALITY,
    EvaluationRecord,
    evaluate_files,
    evaluate_model,
    summarize_evaluation,
)

__all__ = ['AssessmentRecord', 'CALIBRATION_KNOTS', 'CALIBRATION_QUALITIES', 'CALIBRATION_THRESHOLDS', 'CALIBRATION_VARIANTS', 'CollageBenchmarkRecord', 'CollageResult', 'DEFAULT_QUALITIES', 'EvaluationRecord', 'Failure', 'HISTOGRAM_EDGES', 'LocalizationScores', 'MASK_SHAPES', 'QF_MAE_MAX_QUALITY', 'TABLE1_QUALITIES', 'ThresholdCalibration', 'assess_images', 'blob_mask', 'calibrate_flag_threshold', 'collage_benchmark', 'disc_mask', 'evaluate_files', 'evaluate_model', 'fit_image', 'fit_quality_calibration', 'localization_scores', 'make_collage', 'make_mask', 'pixel_auc', 'random_mask', 'read_mask', 'rectangle_mask', 'run_collage', 'summarize_assessment', 'summarize_collage_benchmark', 'summarize_evaluation']
