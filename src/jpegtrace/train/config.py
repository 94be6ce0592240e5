"""Training settings: one dataclass, read from TOML config files with ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..nn.qfnet import NetConfig
from .data import SynthesisConfig

#: Settings of finished experiments, removed (see docs/model/runs.md).
REMOVED_SETTINGS = ("grid_feature", "wide_grid_presence", "only_grid_inputs")


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved in every checkpoint.

    Parameters
    ----------
    data : str
        Folder of never-compressed images.
    out : str
        Run folder: checkpoint, logs and exported weights go here.
    split : str, optional
        CSV with columns ``file``, ``split``; then ``train`` images train and ``val`` images validate.
    steps : int
        Optimizer steps in all (the learning-rate schedule ends here).
    batch_size, patch_size : int
        Patches per step and their side.
    lr : float
        Peak Adam learning rate, reached after ``warmup_steps`` and decayed by a cosine to
        ``lr * min_lr_ratio`` at ``steps``.
    flag_weight : float
        Weight of the flag map's MSE against the quality map's.
    min_quality, max_quality : int
        Range of the QFs drawn for compressed patches (paper: 5..100).
    uncompressed_fraction : float
        Share of patches left uncompressed (paper: 0.1).
    splice_fraction : float
        Share of patches that are collages of a compressed and a clean patch, labelled pixel by
        pixel (paper: 0; see :class:`jpegtrace.train.data.SynthesisConfig`).
    high_quality_fraction : float
        Share of compressed patches with a QF of 90 or more (from ``max(min_quality, 90)``
        to ``max_quality``), besides those the whole range gives (paper: 0).
    high_quality_subsampling : {'4:2:0', '4:2:2', '4:4:4'}, optional
        Chroma subsampling of those patches when in colour (default: drawn as for the others;
        see :class:`jpegtrace.train.data.SynthesisConfig`).
    recipe : {'jpegtrace', 'paper'}
        'paper' makes only 4:2:0 JPEGs aligned to the patch, in colour; 'jpegtrace' adds 4:4:4
        and 4:2:2, shifted grids and grayscale.
    output_init : bool
        Start the last layer near zero with biases at the mean labels (see :func:`build_model`);
        False keeps the plain He initialisation of the paper's network.
    highpass_gain : float
        Gain on the zero-mean part of the first layer's kernels during training (see
        :class:`jpegtrace.train.highpass.HighpassEmphasis`), and ``lowpass_gain`` on their mean part;
        both 1 train the plain parametrization. Exported weights are always a plain network.
    grid_presence : bool
        Give the network :func:`jpegtrace.grid.grid_presence` as a further input channel (see
        :attr:`jpegtrace.nn.qfnet.NetConfig.grid_presence`).
    grid_feature_gain : float
        Training-time gain on the first layer's kernels of the grid inputs (see
        :class:`jpegtrace.train.highpass.HighpassEmphasis`): they move that many times faster. Kernels
        that start at zero in a fine-tune (``init_weights`` without the feature) grow at about
        the learning rate per step, too slowly for the network to lean on the feature; 1 trains
        them plainly.
    init_weights : str, optional
        Start from these weights (a safetensors file) instead of a fresh initialisation: to
        fine-tune a shipped model, also after adding the grid feature, whose kernels then start
        at zero so that the network starts out computing what it computed before.
    precision : {'fp32', 'bf16'}
        'bf16' runs the convolutions under bfloat16 autocast (about 2x faster on CPUs with
        AVX-512 BF16); weights and optimizer stay fp32.
    """

    data: str
    out: str
    split: str | None = None
    steps: int = 20000
    batch_size: int = 32
    patch_size: int = 48
    lr: float = 1e-3
    warmup_steps: int = 200
    min_lr_ratio: float = 0.05
    flag_weight: float = 1.0
    recipe: str = "jpegtrace"
    min_quality: int = 5
    max_quality: int = 100
    uncompressed_fraction: float = 0.1
    splice_fraction: float = 0.0
    high_quality_fraction: float = 0.0
    high_quality_subsampling: str | None = None
    seed: int = 0
    workers: int = 1
    val_every: int = 1000
    checkpoint_every: int = 100
    log_every: int = 10
    precision: str = "fp32"
    device: str = "cpu"
    threads: int | None = None
    width: int = 64
    dilations: tuple[int, ...] = (1, 2, 3, 4, 3, 2, 1)
    input_offset: float = 0.5
    output_init: bool = True
    highpass_gain: float = 10.0
    lowpass_gain: float = 0.1
    grid_presence: bool = False
    grid_feature_gain: float = 1.0
    init_weights: str | None = None
    synthetic_fraction: float = 0.0
    synthetic_compressed_fraction: float = 0.4
    camera_look_fraction: float = 0.0
    vivid_fraction: float = 0.0
    camera_table_fraction: float = 0.0
    double_compression_fraction: float = 0.0
    after_jpeg_fraction: float = 0.0

    def synthesis(self) -> SynthesisConfig:
        """The :class:`~jpegtrace.train.data.SynthesisConfig` of the run: the recipe's, with this config's values."""
        if self.recipe == "paper":
            base = SynthesisConfig.paper(self.patch_size)
        elif self.recipe == "jpegtrace":
            base = SynthesisConfig(patch_size=self.patch_size)
        else:
            raise ValueError(f"unknown recipe {self.recipe!r} (use 'jpegtrace' or 'paper')")
        # Every setting of the data recipe that a TrainConfig names the same way (the recipe fixes the rest).
        shared = {f.name for f in dataclasses.fields(SynthesisConfig)} & {f.name for f in dataclasses.fields(self)}
        return dataclasses.replace(base, **{name: getattr(self, name) for name in shared})

    def net(self) -> NetConfig:
        return NetConfig(width=self.width, dilations=tuple(self.dilations), input_offset=self.input_offset,
                         grid_presence=self.grid_presence)

    @classmethod
    def from_checkpoint(cls, state: dict) -> "TrainConfig":
        """The config saved in a loaded ``checkpoint.pt``.

        Settings of finished experiments that this version removed are dropped when they were off,
        and refused (ValueError) when the run used them.
        """
        values = dict(state["config"])
        for name in REMOVED_SETTINGS:
            if values.pop(name, False):
                raise ValueError(f"the run used {name!r}, which this version of jpegtrace no longer has")
        return cls.from_values(values)

    @classmethod
    def from_values(cls, values: dict) -> "TrainConfig":
        """A config from plain values (a TOML table, a checkpoint's dict); unknown keys raise ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
        values = dict(values)
        if "dilations" in values:
            values["dilations"] = tuple(values["dilations"])
        return cls(**values)

    def to_toml(self) -> str:
        """The config as a TOML table that :func:`load_config` reads back to an equal config."""
        lines = []
        for key, value in asdict(self).items():
            if value is None:
                continue  # TOML has no null: a missing key takes the default, which is None
            lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return repr(value)


def parse_setting(text: str) -> tuple[str, object]:
    """``key=value`` as given to ``--set``: the value read as TOML (number, bool, list, quoted string),
    else taken as a bare string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"expected key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def load_config(path: str | Path | None = None, settings: Sequence[str] = (), *,
                base: dict | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from a TOML file, then ``key=value`` settings on top.

    Parameters
    ----------
    path : str or Path, optional
        A TOML file of :class:`TrainConfig` fields (``configs/train/*.toml``).
    settings : sequence of str
        ``key=value`` overrides (``--set``), applied after the file.
    base : dict, optional
        Values under the file's (a resumed run's saved config).
    """
    values = dict(base or {})
    if path is not None:
        with open(path, "rb") as f:
            values.update(tomllib.load(f))
    for text in settings:
        key, value = parse_setting(text)
        values[key] = value
    return TrainConfig.from_values(values)
