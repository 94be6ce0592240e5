"""Training: settings as TOML config files, training data made online, one loop.

- :mod:`~jpegtrace.train.config`: :class:`TrainConfig` and :func:`load_config` (``configs/train/*.toml``).
- :mod:`~jpegtrace.train.data`: patches and labels, a pure function of ``(seed, batch index)``.
- :mod:`~jpegtrace.train.synthetic` and :mod:`~jpegtrace.train.camera`: never-compressed non-photo
  content and the camera look, for the training data.
- :mod:`~jpegtrace.train.highpass`: the first layer's training-time reparametrisation.
- :mod:`~jpegtrace.train.loop`: :func:`train`, read top to bottom.
"""

from .config import TrainConfig, load_config, parse_setting
from .data import (
    SynthesisConfig,
    TrainingBatches,
    make_patch,
    make_spliced_patch,
    make_synthetic_patch,
    patch_mask,
    quality_label,
)
from .highpass import HighpassEmphasis, emphasize_highpass_
from .loop import (
    VAL_COLLAGE_CROP,
    VAL_COLLAGE_PAIRS,
    VAL_HARD_QUALITY,
    VAL_QUALITIES,
    build_model,
    export_checkpoint,
    learning_rate,
    map_losses,
    mean_labels,
    train,
    validate,
)

__all__ = ['HighpassEmphasis', 'SynthesisConfig', 'TrainConfig', 'TrainingBatches', 'VAL_COLLAGE_CROP', 'VAL_COLLAGE_PAIRS', 'VAL_HARD_QUALITY', 'VAL_QUALITIES', 'build_model', 'emphasize_highpass_', 'export_checkpoint', 'learning_rate', 'load_config', 'make_patch', 'make_spliced_patch', 'make_synthetic_patch', 'map_losses', 'mean_labels', 'parse_setting', 'patch_mask', 'quality_label', 'train', 'validate']
