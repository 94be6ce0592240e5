"""Training's validation of a run's saved weights again, each step's file in a fresh model.

    python scripts/revalidate_run.py runs/qfnet-v12 [--weights step-1500.safetensors,step-3000.safetensors]
        [--also src/jpegtrace/weights/qfnet.safetensors] [--out FILE.csv]

Until 2026-12-07 a run's validations after its first used the OpenVINO graph built at the first, which
copied the weights of that moment (``jpegtrace.nn.backends.runner`` cached it per model object), so every
later row of its ``val.csv`` repeated the first one's scores (``qfnet-v12``). This recomputes
:func:`jpegtrace.train.loop.validate` on each ``step-N.safetensors`` of RUN_DIR (the weights saved at each
validation), and on the files of ``--also`` (their quality calibration left out, as training validates the
raw maps), on the run's own data and split, and writes the rows as ``val.csv`` does.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from jpegtrace.io import list_images, load_rgb
from jpegtrace.nn.weights import load_weights
from jpegtrace.train.config import load_config
from jpegtrace.train.loop import validate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="the run folder (its config.toml names the data and split)")
    parser.add_argument("--weights", help="comma-separated files of the run to validate (default: every step-N file)")
    parser.add_argument("--also", default="", help="comma-separated other weights files to validate the same way")
    parser.add_argument("--out", type=Path, help="CSV to write (default: standard output)")
    args = parser.parse_args(argv)
    config = load_config(args.run / "config.toml")
    if args.weights:
        files = [args.run / name for name in args.weights.split(",")]
    else:
        files = sorted(args.run.glob("step-*.safetensors"), key=lambda p: int(re.findall(r"\d+", p.stem)[0]))
    files += [Path(name) for name in args.also.split(",") if name]
    val_files = list_images(config.data, config.split, "val")
    images = {p.name: load_rgb(p) for p in val_files}
    rows = []
    for path in files:
        model = load_weights(path)
        model.quality_calibration = None  # training validates the raw maps
        scores = validate(model, images, collage_files=val_files)
        rows.append({"weights": str(path), **{k: f"{v:.4f}" for k, v in scores.items()}})
        print(rows[-1], file=sys.stderr, flush=True)
    out = open(args.out, "w", newline="") if args.out else sys.stdout
    with out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
