"""The null of the clipped blocks' flag: where ``jpegtrace.grid.clipped.QUADRANT_RAMP`` comes from.

Usage:
    python scripts/clipped_block_null.py --data ../shared/data/clean [--subset train]

Reads every block of the never-compressed images of the subset (``shared/data/clean``, train by
default) at two made-up grid offsets, (0, 0) and (3, 5), and prints percentiles of the weakest
quadrant evidence (``jpegtrace.grid.clipped.block_evidence``). The ramp of ``clipped_block_flag``
starts at the 99.9th percentile and reaches 1 at the maximum.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from jpegtrace.grid.clipped import QUADRANT_RAMP, block_evidence
from jpegtrace.io import list_images, load_rgb

OFFSETS = ((0, 0), (3, 5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of never-compressed images with its split.csv")
    parser.add_argument("--subset", default="train", choices=("train", "val"))
    args = parser.parse_args()
    paths = list_images(args.data, Path(args.data) / "split.csv", args.subset)
    values = np.concatenate([block_evidence(load_rgb(p), offset).weakest_quadrant.ravel()
                             for p in paths for offset in OFFSETS])
    levels = (50, 99, 99.9, 99.99, 100)
    print(f"{len(paths)} {args.subset} images, {values.size} blocks at offsets {OFFSETS}")
    print("weakest quadrant evidence, percentiles " + ", ".join(
        f"{level:g}: {value:.2f}" for level, value in zip(levels, np.percentile(values, levels))))
    print(f"QUADRANT_RAMP in jpegtrace.grid: {QUADRANT_RAMP}")


if __name__ == "__main__":
    main()
