"""Where ``jpegtrace.evidence.EVIDENCE_RAMP`` comes from: local detail of smooth content and of faint JPEGs.

Usage:
    python scripts/evidence_null.py --data ../shared/data/clean [--subset train]

Prints percentiles of the local rms detail (the statistic of ``jpegtrace.evidence.evidence_map``) over
(1) never-compressed smooth content that carries no JPEG evidence: flat colours, 8-bit ramps and
gradients (dithered or not) of ``jpegtrace.train.synthetic``, and (2) the photos of the subset. The
ramp starts (0.6) above the smooth content's maximum and is full at twice that (1.2), below the detail
of most of the photos' pixels (their flat sky and blur excepted, which is the point).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from jpegtrace.evidence import DETAIL_SIGMA, WINDOW
from jpegtrace.grid.dct import luma
from jpegtrace.io import list_images, load_rgb
from jpegtrace.train.synthetic import TEXTURELESS_KINDS, synthetic_image


def local_rms(image: np.ndarray) -> np.ndarray:
    y = luma(image)[0].astype(np.float32)
    detail = y - ndimage.gaussian_filter(y, DETAIL_SIGMA, mode="reflect")
    return np.sqrt(np.maximum(ndimage.uniform_filter(detail * detail, size=WINDOW, mode="reflect"), 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder of never-compressed images with its split.csv")
    parser.add_argument("--subset", default="train", choices=("train", "val"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    smooth = np.concatenate([local_rms(synthetic_image(rng, 192, 192, kind=kind)[0]).ravel()
                             for kind in TEXTURELESS_KINDS for _ in range(30)])
    print("smooth content rms: 99th %.3f, 99.9th %.3f, max %.3f" % tuple(np.percentile(smooth, [99, 99.9, 100])))
    photos = np.concatenate([local_rms(load_rgb(path)).ravel()
                             for path in list_images(args.data, Path(args.data) / "split.csv", args.subset)])
    print("photos' rms: 10th %.3f, 25th %.3f, median %.3f" % tuple(np.percentile(photos, [10, 25, 50])))


if __name__ == "__main__":
    main()
