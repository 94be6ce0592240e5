"""Training: settings as TOML config files, training data made online, one loop.

- :mod:`~jpegtrace.train.config`: :class:`TrainConfig` and :func:`load_config` (``configs/train/*.toml``).
- :mod:`~jpegtrace.train.data`: patches and labels, a pure function of ``(seed, batch index)``.
- :mod:`~jpegtrace.train.synthetic` and :mod:`~jpegtrace.train.camera`: never-compressed non-photo
  content and the camera look, for the training data.
- :mod:`~jpegtrace.train.highpass`: the first layer's training-time reparametrisation.
- :mod:`~jpegtrace.train.loop`: :func:`train`, read top to bottom.
"""

from .._lazy import lazy_exports

#: Public name -> the submodule that defines it (imported on first use, PEP 562: importing one
#: submodule does not import the others, nor torch where they need it).
_EXPORTS = {
    "HELD_OUT_FONTS": "synthetic", "HighpassEmphasis": "highpass", "KINDS": "synthetic",
    "REMOVED_SETTINGS": "config", "SynthesisConfig": "data", "TEXTURELESS_KINDS": "synthetic",
    "TRAINING_FONTS": "synthetic", "TrainConfig": "config", "TrainingBatches": "data",
    "VAL_COLLAGE_CROP": "loop", "VAL_COLLAGE_PAIRS": "loop", "VAL_HARD_QUALITY": "loop",
    "VAL_QUALITIES": "loop", "bayer_demosaic": "camera", "build_model": "loop",
    "camera_look": "camera", "emphasize_highpass_": "highpass", "export_checkpoint": "loop",
    "font_path": "synthetic", "learning_rate": "loop", "load_config": "config",
    "make_patch": "data", "make_spliced_patch": "data", "make_synthetic_patch": "data",
    "map_losses": "loop", "mean_labels": "loop", "parse_setting": "config",
    "patch_mask": "data", "quality_label": "data", "rescaled": "synthetic",
    "synthetic_image": "synthetic", "train": "loop", "validate": "loop",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
