"""The network's shape and outputs, without torch: what a weights file describes and the runtimes build.

:class:`NetConfig` is stored beside the weights, so a file describes its own network; the output
channels and the flag threshold's bounds are here too. Nothing here imports torch, so the runtimes
that need none (:mod:`jpegtrace.nn.openvino`) and the command line's parser can use it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ..grid.presence import PRESENCE_CONTEXT

PAPER_DILATIONS = (1, 2, 3, 4, 3, 2, 1)
#: The input channels a network may have after RGB, in their order (NetConfig's flags of the same names).
EXTRA_INPUTS = ("grid_presence",)
#: Inputs of finished experiments that this version no longer computes: a weights file whose network
#: needs one is refused.
REMOVED_INPUTS = ("grid_feature", "wide_grid_presence")
QUALITY_CHANNEL = 0
FLAG_CHANNEL = 1


@dataclass(frozen=True)
class NetConfig:
    """Shape of a :class:`QFNet`; stored beside the weights so a file describes its own network.

    Parameters
    ----------
    width : int
        Channels of every hidden convolution (paper: 64).
    dilations : tuple of int
        Dilation of each 3x3 convolution, one per layer (paper: 1, 2, 3, 4, 3, 2, 1).
    input_offset : float
        Subtracted from the [0, 1] input before the first convolution. Centring the input
        lets training leave the trivial "predict the label mean" plateau sooner; 0 gives the
        paper's uncentred input.
    grid_presence : bool
        A fourth input channel besides RGB: :func:`jpegtrace.grid.presence.grid_presence`, whether
        a block grid covers each pixel (from a lattice of 25 blocks, every pixel under the grid
        alike), fixed (not learned), computed from the pixels. It gives the flag the evidence of
        QF 97-100 JPEGs, whose pixels differ from the source by about one grey level. False gives
        the paper's network.
    """

    width: int = 64
    dilations: tuple[int, ...] = PAPER_DILATIONS
    input_offset: float = 0.5
    grid_presence: bool = False

    @property
    def extra_inputs(self) -> tuple[str, ...]:
        """Names of the input channels after RGB, in order."""
        return tuple(name for name in EXTRA_INPUTS if getattr(self, name))

    @property
    def in_channels(self) -> int:
        """Channels the first convolution sees: RGB and the extra inputs that are on."""
        return 3 + len(self.extra_inputs)

    @property
    def input_context(self) -> tuple[int, int]:
        """Pixels before and after a pixel that its extra inputs depend on ((0, 0) without them)."""
        return PRESENCE_CONTEXT if self.grid_presence else (0, 0)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "NetConfig":
        raw = json.loads(text)
        for name in REMOVED_INPUTS:
            if raw.get(name):
                raise ValueError(f"the network needs the input {name!r}, which this version of jpegtrace no longer "
                                 "computes (an experiment's input; see docs/model/runs.md)")
        presence = raw.get("grid_presence", False)  # files from before the input existed lack it
        if not isinstance(presence, bool):
            raise ValueError(f"grid_presence must be true or false, got {presence!r}")
        return cls(width=int(raw["width"]), dilations=tuple(int(d) for d in raw["dilations"]),
                   input_offset=float(raw["input_offset"]), grid_presence=presence)


def check_flag_threshold(value: float) -> float:
    """``value`` as a float when it can be a flag threshold (strictly between 0 and 1); else ValueError."""
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"flag threshold {value} must lie strictly between 0 and 1")
    return value
