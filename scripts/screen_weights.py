"""Quick screen of weights files on the val split, in about a minute each on 2 CPU cores.

Usage:
    python scripts/screen_weights.py WEIGHTS [WEIGHTS ...]

For each file, by the network alone (no grid check): the QF MAE and mean estimate of 4:2:0 JPEGs at
QF 5, 90 and 95 (the QFs where the shipped model's margin to the authors' error is smallest), and the
share of 4:4:4 and grayscale JPEGs at QF 97-100, and of the clean images, judged uncompressed (mean
flag <= 0.5). ``scripts/ship_model.py`` scores a model on the whole protocol of issue 4.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jpegtrace.io import list_images, load_rgb
from jpegtrace.eval.quality import evaluate_model, summarize_evaluation
from jpegtrace.nn.weights import load_weights

CLEAN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clean"
NEAR_LOSSLESS = (97, 98, 99, 100, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="+", type=Path)
    args = parser.parse_args()
    images = {p.name: load_rgb(p) for p in list_images(CLEAN, CLEAN / "split.csv", "val")}

    def rows(model, qualities, **kwargs):
        records = evaluate_model(model, images, qualities, grid_check=False, **kwargs)
        return {row["quality"]: row for row in summarize_evaluation(records)["per_quality"]}

    for path in args.weights:
        model = load_weights(path)
        main_rows = rows(model, (5, 90, 95))
        print(f"{path}: 4:2:0 QF MAE (mean estimate) "
              + ", ".join(f"QF {q}: {main_rows[q]['mae']:.2f} ({main_rows[q]['mean_estimate']:.1f})" for q in (5, 90, 95)))
        for name, kwargs in (("4:4:4", dict(subsampling="4:4:4")), ("grayscale", dict(grayscale=True))):
            by_quality = rows(model, NEAR_LOSSLESS, **kwargs)
            shares = " / ".join(f"{by_quality[q]['flag_judged_uncompressed']:.2f}" for q in NEAR_LOSSLESS)
            print(f"  {name}, judged uncompressed at QF 97 / 98 / 99 / 100 / clean: {shares}", flush=True)


if __name__ == "__main__":
    main()
