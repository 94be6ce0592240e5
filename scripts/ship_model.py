"""Ship a trained model: its weights into the package, its records into docs/model/RUN_NAME/.

    python scripts/ship_model.py runs/qfnet-v11 --weights step-6000.safetensors \
        --calibrated scratch/qfnet-v11-calibrated.safetensors

Writes ``src/jpegtrace/weights/qfnet.safetensors`` from RUN_DIR's weights, with the quality calibration and flag
threshold of ``--calibrated`` (a ``jpegtrace calibrate`` output of the same weights) when given, and the run's
resolved ``config.toml`` in the metadata (``train_config``); copies ``config.toml``, ``log.csv`` and ``val.csv``
to ``docs/model/RUN_NAME/`` and draws ``learning_curve.png`` there. The model card
(``src/jpegtrace/weights/README.md``) is written by hand from the evaluations in that folder.
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

from jpegtrace.io import save_figure
from jpegtrace.nn.weights import load_weights, save_weights

ROOT = Path(__file__).resolve().parents[1]


def learning_curve(log_csv: Path, val_csv: Path, out: Path) -> Path:
    """Training loss (mean of every 100 steps) and the validation scores against the step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with open(log_csv, newline="") as f:
        rows = [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]
    buckets: dict[int, list[float]] = {}
    for step, loss in rows:
        buckets.setdefault((step - 1) // 100, []).append(loss)
    figure = Figure(figsize=(9, 3.4), layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, val_axes = figure.subplots(1, 2)
    loss_axes.plot([100 * (k + 1) for k in buckets], [sum(v) / len(v) for v in buckets.values()])
    loss_axes.set(xlabel="step", ylabel="training loss (mean of 100 steps)", yscale="log")
    if val_csv.exists():
        with open(val_csv, newline="") as f:
            val = list(csv.DictReader(f))
        steps = [int(r["step"]) for r in val]
        val_axes.plot(steps, [float(r["val_qf_mae"]) for r in val], "o-", label="val QF MAE (4:2:0)")
        twin = val_axes.twinx()
        twin.plot(steps, [float(r["val_collage_iou"]) for r in val], "s--", color="C1", label="val collage IoU")
        val_axes.set(xlabel="step", ylabel="QF MAE")
        twin.set_ylabel("collage IoU")
        val_axes.legend(loc="upper left", fontsize=8)
        twin.legend(loc="upper right", fontsize=8)
    return save_figure(figure, out, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="training run folder")
    parser.add_argument("--weights", required=True, help="weights file in the run, e.g. step-6000.safetensors")
    parser.add_argument("--calibrated", type=Path, help="the same weights with a fitted quality calibration")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "jpegtrace" / "weights" / "qfnet.safetensors")
    parser.add_argument("--records", type=Path, help="default: docs/model/RUN_NAME")
    args = parser.parse_args()
    model = load_weights(args.run / args.weights)
    metadata = {"run": args.run.name, "weights": args.weights,
                "train_config": (args.run / "config.toml").read_text()}
    if args.calibrated is not None:
        calibrated = load_weights(args.calibrated)
        model.quality_calibration, model.flag_threshold = calibrated.quality_calibration, calibrated.flag_threshold
    save_weights(model, args.out, metadata)
    records = args.records or ROOT / "docs" / "model" / args.run.name
    records.mkdir(parents=True, exist_ok=True)
    for name in ("config.toml", "log.csv", "val.csv"):
        if (args.run / name).exists():
            shutil.copyfile(args.run / name, records / name)
    learning_curve(args.run / "log.csv", args.run / "val.csv", records / "learning_curve.png")
    print(f"wrote {args.out} and {records}")


if __name__ == "__main__":
    main()
