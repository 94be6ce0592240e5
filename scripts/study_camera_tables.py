"""Collect what the analysis reads from JPEGs with camera-like tables, for choosing how the headline QF uses a
partly read non-standard table (issue 20's camera-table bar).

Compresses each image of a split at the QFs of the evaluation with random camera-like tables
(:func:`jpegtrace.jpeg.camera_like_tables`, from ``--seed``; the evaluation's seed is 7, so fit on another),
analyses it and stores, per image and QF: the true luma table, its IJG-equivalent QF, the network's mean QF,
the read steps (0: unknown) and the analysis's headline QF and its source.

    PYTHONPATH=src python scripts/study_camera_tables.py --split train --images 40 --seed 11 --out /tmp/cam-train.npz
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np

from jpegtrace.analysis import analyze_array, load_model
from jpegtrace.eval.quality import _test_image
from jpegtrace.io import list_images, load_rgb
from jpegtrace.jpeg import camera_like_tables, ijg_equivalent_quality

QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/clean"))
    parser.add_argument("--split", required=True, choices=["train", "val", "test"])
    parser.add_argument("--images", type=int, default=40, help="every n-th image so that this many are used")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    files = list_images(args.data, Path(args.data) / "split.csv", args.split)
    files = files[:: max(1, len(files) // args.images)][: args.images]
    model = load_model()
    rows: dict[str, list] = {k: [] for k in ("image", "nominal", "truth", "network", "headline", "source",
                                              "steps", "true_table", "verdict")}
    for i, path in enumerate(files):
        image = load_rgb(path)
        for quality in QUALITIES:
            rng = np.random.default_rng((args.seed, zlib.crc32(path.name.encode()), quality))
            tables = camera_like_tables(quality, rng)
            truth = ijg_equivalent_quality(tables[0])
            result = analyze_array(_test_image(image, truth, "4:2:0", (0, 0), tables), model)
            table = result.table
            rows["image"].append(path.name)
            rows["nominal"].append(quality)
            rows["truth"].append(truth)
            rows["network"].append(np.nan if result.median_quality is None else result.median_quality)
            rows["headline"].append(np.nan if result.headline_quality is None else result.headline_quality)
            rows["source"].append(result.quality_source)
            rows["steps"].append(np.zeros((8, 8), np.int64) if table is None else table.steps)
            rows["true_table"].append(tables[0])
            rows["verdict"].append(result.verdict)
        print(f"{i + 1}/{len(files)} {path.name}", file=sys.stderr, flush=True)
        np.savez(args.out, **{k: np.asarray(v) for k, v in rows.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
