"""JPEG block-grid evidence from the DCT of the luma: tools beside the network.

- :mod:`~jpegtrace.grid.dct`: the 8x8 DCT, the decoder's luma and the per-block statistic (frozen).
- :mod:`~jpegtrace.grid.check`: the whole-image grid check, :func:`find_jpeg_grid`.
- :mod:`~jpegtrace.grid.presence`: the shipped network's grid-presence input channel (frozen).
- :mod:`~jpegtrace.grid.clipped`: the grid's flag for clipped blocks, where a grid was found.
"""

from .check import GRID_SCORE_THRESHOLD, GridEvidence, find_jpeg_grid
from .clipped import clipped_block_flag, grid_block_origin
from .dct import block_scores, luma, luma_tensor
from .presence import PRESENCE_CONTEXT, grid_presence

__all__ = ["GRID_SCORE_THRESHOLD", "GridEvidence", "PRESENCE_CONTEXT", "block_scores", "clipped_block_flag",
           "find_jpeg_grid", "grid_block_origin", "grid_presence", "luma", "luma_tensor"]
