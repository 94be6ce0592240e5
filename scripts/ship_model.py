"""Ship a trained model: copy its weights into the package and write its model card.

Usage:
    python scripts/ship_model.py RUN_DIR [--weights best.safetensors] [--command "jpegtrace train ..."]

Fits the quality calibration (a monotone map of the quality map, `jpegtrace.eval.fit_quality_calibration`)
on JPEGs of the train images and the flag threshold of localisation masks on collages of them, writes RUN_DIR's
weights with both to src/jpegtrace/weights/qfnet.safetensors, copies its training and validation logs
and its commands (RUN_DIR/command.txt, unless --command is given) beside them, evaluates the model on the
val split of ../shared/data/clean with the protocol of issue 4 (4:2:0, 4:4:4, a grid shifted by (3, 5) px
and grayscale JPEGs, and the collage benchmark: a QF-80 region pasted into a clean photo), draws the
learning curve and writes src/jpegtrace/weights/README.md with the exact training commands, the scores,
the reference scores and which goals of issue 4 are met.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
from datetime import date
from pathlib import Path

import numpy as np
from tqdm import tqdm

from jpegtrace.io import list_images, load_rgb
from jpegtrace.eval.calibration import calibrate_flag_threshold, fit_quality_calibration
from jpegtrace.eval.collage import collage_benchmark, summarize_collage_benchmark
from jpegtrace.eval.quality import evaluate_model, summarize_evaluation
from jpegtrace.grid.check import GRID_SCORE_THRESHOLD
from jpegtrace.nn.weights import load_weights, save_weights
from jpegtrace.io import save_figure, write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = ROOT / "src" / "jpegtrace" / "weights"
CLEAN = ROOT.parent / "shared" / "data" / "clean"

FIG2_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
TABLE1_QUALITIES = (97, 98, 99, 100)
VARIANTS = {  # name: evaluate_model keyword arguments
    "4:2:0 (default)": dict(subsampling="4:2:0"),
    "4:4:4": dict(subsampling="4:4:4"),
    "grid shifted by (3, 5) px": dict(subsampling="4:2:0", grid_offset=(3, 5)),
    "grayscale JPEG": dict(grayscale=True),
}
# The authors' released model on the same val split, as measured for issue 4.
REFERENCE_FIG2 = {"mean": [9.7, 14.3, 24.6, 36.3, 46.4, 55.7, 63.6, 72.6, 82.3, 91.2, 94.7],
                  "mae": [4.70, 4.34, 4.65, 6.27, 6.40, 5.72, 3.69, 2.93, 2.72, 1.88, 1.51], "all": 4.07}
REFERENCE_TABLE1 = {"4:2:0 (default)": [0.00, 0.00, 0.00, 0.04, 1.00, 4.23],
                    "4:4:4": [0.96, 1.00, 1.00, 1.00, 1.00, 4.63],
                    "grid shifted by (3, 5) px": [0.00, 0.00, 0.00, 0.04, 1.00, 5.08],
                    "grayscale JPEG": [0.00, 0.00, 0.00, 0.00, 0.00, 1.95]}
REFERENCE_COLLAGE_IOU = 0.87
# The collage benchmark of the model card: val images, QF 80, 256x256 crops, every mask shape.
COLLAGE_SETTINGS = dict(pairs=100, seed=0, qualities=(80,), crop=256)
# The flag threshold of localisation masks is chosen on the same kind of collages of the train images.
CALIBRATION_SETTINGS = dict(pairs=100, seed=1, qualities=(80,), crop=256)


def evaluate_variants(model, images) -> dict:
    results = {}
    for name, kwargs in VARIANTS.items():
        qualities = (FIG2_QUALITIES if name == "4:2:0 (default)" else (10, 30, 50, 70, 90)) + TABLE1_QUALITIES + (None,)
        records = evaluate_model(model, images, qualities, progress=lambda jobs: tqdm(jobs, desc=name), **kwargs)
        summary = summarize_evaluation(records)
        rows = {row["quality"]: row for row in summary["per_quality"]}
        near_lossless = [r.grid_score for r in records if r.quality in TABLE1_QUALITIES]
        results[name] = {
            "per_quality": summary["per_quality"],
            "judged_uncompressed": [rows[q]["judged_uncompressed"] for q in TABLE1_QUALITIES + (None,)],
            "flag_judged_uncompressed": [rows[q]["flag_judged_uncompressed"] for q in TABLE1_QUALITIES + (None,)],
            "network_judged_uncompressed": [rows[q]["network_judged_uncompressed"] for q in TABLE1_QUALITIES + (None,)],
            "grid_score_clean_max": max(r.grid_score for r in records if r.quality is None),
            "grid_score_qf97_100_min": min(near_lossless),
            "qf_mae_10_90": float(np.mean([rows[q]["mae"] for q in (10, 30, 50, 70, 90)])),
            "qf_mae_5_95": float(np.mean([rows[q]["mae"] for q in FIG2_QUALITIES])) if 5 in rows else None,
            "detection_accuracy": summary["detection_accuracy"],
        }
    return results


def evaluate_uncalibrated(model, images) -> dict:
    """Fig. 2 of the network's own quality map, without the quality calibration: what the calibration adds."""
    calibration, model.quality_calibration = model.quality_calibration, None
    try:
        records = evaluate_model(model, images, FIG2_QUALITIES, grid_check=False,
                                 progress=lambda jobs: tqdm(jobs, desc="4:2:0, uncalibrated"))
    finally:
        model.quality_calibration = calibration
    rows = summarize_evaluation(records)["per_quality"]
    return {"per_quality": rows, "qf_mae_5_95": float(np.mean([row["mae"] for row in rows]))}


def evaluate_collages(model, files, threshold: float | None = None) -> dict:
    """The collage benchmark of the model card, at the model's flag threshold unless one is given."""
    threshold = model.flag_threshold if threshold is None else threshold
    records, failures = collage_benchmark(model, files, threshold=threshold,
                                          progress=lambda jobs: tqdm(jobs, desc=f"collages, flag > {threshold:g}"),
                                          **COLLAGE_SETTINGS)
    assert not failures, failures
    return {"settings": {**{k: list(v) if isinstance(v, tuple) else v for k, v in COLLAGE_SETTINGS.items()},
                         "threshold": threshold},
            **summarize_collage_benchmark(records)}


def goals(results: dict, collages: dict) -> list[tuple[str, str, bool]]:
    """Issue 4's bar, one line per goal: (goal, what we measured, met)."""
    main = results["4:2:0 (default)"]
    maes = [row["mae"] for row in main["per_quality"] if row["quality"] in FIG2_QUALITIES]
    worst = max(zip((m - r for m, r in zip(maes, REFERENCE_FIG2["mae"])), FIG2_QUALITIES))
    lines = [(f"QF MAE over QF 5..95 (4:2:0) below the authors' {REFERENCE_FIG2['all']:.2f}",
              f"{main['qf_mae_5_95']:.2f}", main["qf_mae_5_95"] < REFERENCE_FIG2["all"]),
             ("no QF more than 0.5 worse than the authors'", f"worst: QF {worst[1]}, {worst[0]:+.2f}",
              worst[0] <= 0.5)]
    for name, result in results.items():
        for key, how in (("flag_judged_uncompressed", "flag map, mean flag ≤ 0.5 (the issue's rule)"),
                         ("judged_uncompressed", "with the JPEG grid check (jpegtrace's verdict)")):
            compressed_missed = max(result[key][:4])
            clean_found = result[key][4]
            lines.append((f"{name}: 0.00 judged uncompressed at QF 97-100, 1.00 for clean images; {how}",
                          f"{compressed_missed:.2f} (worst of QF 97-100), {clean_found:.2f}",
                          compressed_missed == 0.0 and clean_found == 1.0))
        if name != "4:2:0 (default)":
            lines.append((f"{name}: QF MAE (QF 10,30,50,70,90) at most 2.5", f"{result['qf_mae_10_90']:.2f}",
                          result["qf_mae_10_90"] <= 2.5))
    iou, threshold = collages["mean_iou"], collages["settings"]["threshold"]
    at_half = collages["at_threshold_0.5"]["mean_iou"]
    lines.append((f"collage benchmark IoU at least {REFERENCE_COLLAGE_IOU}",
                  f"{iou:.3f} (flag > {threshold:g}, calibrated on train collages; {at_half:.3f} at flag > 0.5)",
                  iou >= REFERENCE_COLLAGE_IOU))
    return lines


def recipe_changes(command_txt: Path) -> list[tuple[int, str]]:
    """(step, what) wherever a train command of the run switched the training data: the recipe, the
    share of collage patches, the share of QF 90+ patches or their subsampling, or the patch size; and
    where the grid feature joined the input (a run started from another's weights, see
    ``scripts/join_runs.py``)."""
    changes, current = [], None
    for line in command_txt.read_text().splitlines() if command_txt.exists() else []:
        start = re.search(r"# from step (\d+)", line)
        if not start:
            continue
        given = {name: m.group(1) for name, flag in (("recipe", "--recipe"), ("collage patches", "--splice-fraction"),
                                                    ("QF 90+ share", "--high-quality-fraction"),
                                                    ("QF 90+ subsampling", "--high-quality-subsampling"),
                                                    ("patch size", "--patch-size"))
                 if (m := re.search(flag + r" (\S+)", line))}
        if current is None:  # the run's first command: what it left out is train's default
            current = {"recipe": "jpegtrace", "collage patches": "0", "QF 90+ share": "0",
                       "QF 90+ subsampling": "any", "patch size": "48",
                       **given}
            continue
        changes += [(int(start.group(1)), f"{name} {value}") for name, value in given.items() if current[name] != value]
        if "--grid-feature" in line and not current.get("grid feature"):
            changes.append((int(start.group(1)), "grid feature input"))
            current["grid feature"] = True
        current.update(given)
    return changes


def learning_curve(val_csv: Path, log_csv: Path, out: Path, changes: list[tuple[int, str]] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(val_csv) as f:
        val = list(csv.DictReader(f))
    with open(log_csv) as f:
        log = list(csv.DictReader(f))
    seconds = np.cumsum([float(r["seconds"]) for r in log])
    log_steps = np.array([int(r["step"]) for r in log])
    steps = np.array([int(r["step"]) for r in val])
    mae = np.array([float(r["val_qf_mae"]) for r in val])
    hours = 2 * np.interp(steps, log_steps, seconds) / 3600  # 2 cores busy for the wall time
    iou = np.array([float(r.get("val_collage_iou") or "nan") for r in val])
    panels = 3 if np.isfinite(iou).any() else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.8), layout="constrained")
    plots = [(axes[0], steps, mae, "optimizer steps"), (axes[1], hours, mae, "CPU core-hours (2 cores x wall time)")]
    if panels == 3:
        plots.append((axes[2], steps, iou, "optimizer steps"))
    for ax, x, y, label in plots:
        ax.plot(x[np.isfinite(y)], y[np.isfinite(y)], "o-")
        for step, what in changes:
            where = step if x is steps else 2 * np.interp(step, log_steps, seconds) / 3600
            ax.axvline(where, color="tab:red", lw=0.8, ls=":")
            ax.text(where, 0.5, f"{what} from here ", color="tab:red", rotation=90, ha="right",
                    va="center", fontsize=8, transform=ax.get_xaxis_transform())
        if y is mae:
            ax.axhline(4.23, color="gray", ls="--", label="authors' model (QF 10..90)")
            ax.set_ylabel("val QF MAE (4:2:0, QF 10,30,50,70,90)")
        else:
            ax.axhline(REFERENCE_COLLAGE_IOU, color="gray", ls="--", label="authors' model (held-out benchmark)")
            ax.set_ylabel("val collage IoU (first 24 benchmark pairs)")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, out, dpi=100)
    plt.close(fig)


def model_card(command: str, meta: dict, results: dict, collages: dict, calibration: dict, run: Path,
               note: str = "", extra_inputs: tuple[str, ...] = (), uncalibrated: dict | None = None,
               quality_calibration=None) -> str:
    main = results["4:2:0 (default)"]
    raw_rows = {row["quality"]: row for row in uncalibrated["per_quality"]} if uncalibrated else {}
    rows = {row["quality"]: row for row in main["per_quality"]}
    described = {"grid_feature": "the per-pixel JPEG grid evidence of `jpegtrace.grid.grid_feature`",
                 "grid_presence": "whether a JPEG block grid covers each pixel, `jpegtrace.grid.grid_presence`"}
    network = "The paper's network (seven 3×3 convolutions, dilations 1,2,3,4,3,2,1, 64 channels)"
    if extra_inputs:
        network += (" with input channels beside RGB, fixed functions of the pixels: "
                    + "; ".join(f"{described[name]} (`NetConfig.{name}`)" for name in extra_inputs)
                    + " (nothing in them is learned but the first layer's kernels that read them)")
    lines = [
        "# The shipped model: `qfnet.safetensors`",
        "",
        f"{network}, trained by "
        "`jpegtrace train` on the `train` split (169 images) of `shared/data/clean` and evaluated on its `val` "
        "split (28 images) with the protocol of `jpegtrace evaluate` (Pillow JPEG; estimated QF = mean of the "
        "quality map; judged uncompressed = mean flag ≤ 0.5, and, for jpegtrace's own verdict, no JPEG grid "
        "found by the DCT check of `jpegtrace.grid`).",
        "",
        f"Shipped {date.today().isoformat()} from `{run.name}` at step {meta.get('step', '?')}.",
        "",
        "## Exact training commands",
        "",
        "In order, each with the step it started from (a `--resume` continues the same run):",
        "",
        "```bash",
        command.strip(),
        "```",
        "",
        *([note, ""] if note else []),
        "Training log: [`training_log.csv`](training_log.csv) (loss every 10 steps), validation during training: "
        "[`validation_log.csv`](validation_log.csv), full evaluation: [`evaluation.json`](evaluation.json).",
        "",
        "## Learning curve",
        "",
        "![learning curve](learning_curve.png)",
        "",
        "## QF estimation on val, 4:2:0 (the paper's Fig. 2)",
        "",
        "| QF | " + " | ".join(str(q) for q in FIG2_QUALITIES) + " | all |",
        "|---|" + "---|" * (len(FIG2_QUALITIES) + 1),
        "| mean estimated QF, ours | " + " | ".join(f"{rows[q]['mean_estimate']:.1f}" for q in FIG2_QUALITIES) + " | |",
        "| mean estimated QF, authors | " + " | ".join(f"{v:.1f}" for v in REFERENCE_FIG2["mean"]) + " | |",
        "| QF MAE, ours | " + " | ".join(f"{rows[q]['mae']:.2f}" for q in FIG2_QUALITIES) + f" | **{main['qf_mae_5_95']:.2f}** |",
        "| QF MAE, authors | " + " | ".join(f"{v:.2f}" for v in REFERENCE_FIG2["mae"]) + f" | {REFERENCE_FIG2['all']:.2f} |",
        *(["| mean estimated QF, ours without the quality calibration | "
           + " | ".join(f"{raw_rows[q]['mean_estimate']:.1f}" for q in FIG2_QUALITIES) + " | |",
           "| QF MAE, ours without the quality calibration | "
           + " | ".join(f"{raw_rows[q]['mae']:.2f}" for q in FIG2_QUALITIES)
           + f" | {uncalibrated['qf_mae_5_95']:.2f} |"] if uncalibrated else []),
        "",
        *(["The quality calibration (`QualityCalibration`, saved in the weights' metadata and applied by "
           "`jpegtrace.analysis.summarize`) maps each pixel of the clipped quality map through a monotone "
           "piecewise-linear curve fitted on the train images (`fit_quality_calibration`: each compressed at 6 "
           "QFs from 5 to 95, as 4:2:0, 4:4:4, grayscale or with a shifted grid, and kept as it is), so that "
           "their mean estimated QF lands on the true QF; the flag map is not touched. Its knots, network QF → "
           "calibrated QF: " + ", ".join(f"{100 * (1 - k):g} → {100 * (1 - v):.1f}"
                                          for k, v in zip(quality_calibration.knots, quality_calibration.values))
           + ".", ""] if quality_calibration is not None else []),
        "## Share of val images judged uncompressed (the paper's Table 1)",
        "",
        "\"Flag map\" is the paper's rule (mean flag ≤ 0.5), the one issue 4 sets its bar by, applied to the "
        "flag map of `jpegtrace analyze` and `evaluate`: the network's, raised in clipped blocks where the DCT "
        "check of `jpegtrace.grid` finds a JPEG grid around them on all four sides "
        "(`jpegtrace.grid.clipped_block_flag`). \"Network alone\" is the same rule on the network's own flag "
        "map (`--no-grid-check`). \"+ grid check\" is the verdict of `jpegtrace analyze`, `assess` and "
        "`evaluate`, which also call an image compressed when the DCT check finds a JPEG block grid (score "
        f"above {GRID_SCORE_THRESHOLD:g}, chosen on the train images).",
        "",
        "| variant | model | QF 97 | 98 | 99 | 100 | no JPEG | QF MAE (QF 10,30,50,70,90) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        ours = " | ".join(f"{v:.2f}" for v in result["flag_judged_uncompressed"])
        network = " | ".join(f"{v:.2f}" for v in result["network_judged_uncompressed"])
        checked = " | ".join(f"{v:.2f}" for v in result["judged_uncompressed"])
        ref = " | ".join(f"{v:.2f}" for v in REFERENCE_TABLE1[name][:5])
        lines.append(f"| {name} | ours, flag map | {ours} | {result['qf_mae_10_90']:.2f} |")
        lines.append(f"| | ours, network alone | {network} | |")
        lines.append(f"| | ours + grid check | {checked} | |")
        lines.append(f"| | authors | {ref} | {REFERENCE_TABLE1[name][5]:.2f} |")
    lines += ["", "Grid scores on val (a grid counts as found above "
              f"{GRID_SCORE_THRESHOLD:g}): " + "; ".join(
                  f"{name}: clean images at most {r['grid_score_clean_max']:.1f}, QF 97-100 JPEGs at least "
                  f"{r['grid_score_qf97_100_min']:.1f}" for name, r in results.items()) + "."]
    settings = collages["settings"]
    lines += ["", "## Localisation: the collage benchmark (the paper's Fig. 3)", "",
              f"`jpegtrace collage-benchmark` on the val images: {settings['pairs']} fake images (seed "
              f"{settings['seed']}), a QF-{settings['qualities'][0]} region (disc, rectangle or blob) pasted into "
              f"a {settings['crop']}×{settings['crop']} crop of a never-compressed photo; flag > threshold scored "
              "against the mask. The model's threshold, "
              f"{settings['threshold']:g}, is the one with the best mean IoU on {calibration['pairs']} collages of "
              f"the train images (seed {calibration['seed']}), saved in the weights' metadata; the collage "
              "commands use it unless `--threshold` is given. Whole-image verdicts do not use it: mean flag > 0.5, or a JPEG grid found.",
              "", "| | flag > | IoU | F1 | precision | recall | pixel AUC |", "|---|---|---|---|---|---|---|"]
    for label, scores in (("ours", collages), ("ours", collages["at_threshold_0.5"])):
        lines.append(f"| {label} | {scores['settings']['threshold']:g} | "
                     + " | ".join(f"{scores['mean_' + k]:.3f} ± {scores['std_' + k]:.3f}" for k in ("iou", "f1"))
                     + f" | {scores['mean_precision']:.3f} | {scores['mean_recall']:.3f} | "
                     f"{scores['mean_auc']:.3f} ± {scores['std_auc']:.3f} |")
    lines += [f"| authors (comparable held-out benchmark) | 0.5 | {REFERENCE_COLLAGE_IOU:.2f} | | | | |", "",
              "Mean IoU of the train collages against the threshold: "
              + ", ".join(f"{t:g}: {v:.3f}" for t, v in zip(calibration["thresholds"], calibration["mean_iou"])) + ".",
              "", "## The bar of issue 4", "", "| goal | ours | met |", "|---|---|---|"]
    lines += [f"| {goal} | {ours} | {'yes' if met else '**no**'} |" for goal, ours, met in goals(results, collages)]
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="training run folder")
    parser.add_argument("--command", help="the exact jpegtrace train commands of the run "
                                           "(default: the run's command.txt)")
    parser.add_argument("--weights", default="best.safetensors", help="weights file in the run (default best)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR,
                        help="folder for the weights and the model card (default: the package's weights folder)")
    parser.add_argument("--note", default="", help="a paragraph for the model card, e.g. how the run was stopped")
    calibration_choice = parser.add_mutually_exclusive_group()
    calibration_choice.add_argument("--no-quality-calibration", action="store_true",
                                    help="ship the network's quality map as it is, without fitting a quality calibration")
    calibration_choice.add_argument("--keep-quality-calibration", action="store_true",
                                    help="keep the quality calibration the weights file already carries (e.g. the "
                                         "shipped weights, re-scored after a change outside the network) instead of "
                                         "fitting it again, which takes most of an hour on 2 cores")
    args = parser.parse_args()
    source = args.run / args.weights
    model = load_weights(source)
    train_files = list_images(CLEAN, CLEAN / "split.csv", "train")
    if args.no_quality_calibration:
        model.quality_calibration = None
    elif not args.keep_quality_calibration or model.quality_calibration is None:
        model.quality_calibration = fit_quality_calibration(
            model, {p.name: load_rgb(p) for p in train_files}, progress=lambda names: tqdm(names, desc="quality calibration"))
    from safetensors import safe_open

    with safe_open(str(source), framework="pt") as f:
        meta = f.metadata() or {}
    command = args.command or (args.run / "command.txt").read_text()
    val_files = list_images(CLEAN, CLEAN / "split.csv", "val")
    images = {p.name: load_rgb(p) for p in val_files}
    results = evaluate_variants(model, images)
    uncalibrated = evaluate_uncalibrated(model, images) if model.quality_calibration is not None else None
    calibration = calibrate_flag_threshold(model, train_files, progress=lambda jobs: tqdm(jobs, desc="calibration"),
                                           **CALIBRATION_SETTINGS)
    model.flag_threshold = calibration.best
    collages = evaluate_collages(model, val_files)
    collages["at_threshold_0.5"] = evaluate_collages(model, val_files, threshold=0.5)
    calibration = {**calibration.as_dict(), "seed": CALIBRATION_SETTINGS["seed"]}
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    # The run's weights, now with the calibrated flag threshold and quality calibration in their metadata.
    save_weights(model, out / "qfnet.safetensors", meta)
    shutil.copyfile(args.run / "log.csv", out / "training_log.csv")
    shutil.copyfile(args.run / "val.csv", out / "validation_log.csv")
    write_json(out / "evaluation.json",
               {"weights": str(source), "metadata": meta, "results": results, "collage_benchmark": collages,
                "flag_threshold_calibration": calibration, "uncalibrated_quality": uncalibrated,
                "quality_calibration": None if model.quality_calibration is None else {
                    "knots": list(model.quality_calibration.knots), "values": list(model.quality_calibration.values)}})
    learning_curve(args.run / "val.csv", args.run / "log.csv", out / "learning_curve.png",
                   recipe_changes(args.run / "command.txt"))
    write_text(out / "README.md", model_card(command, meta, results, collages, calibration, args.run, args.note,
                                             extra_inputs=model.config.extra_inputs, uncalibrated=uncalibrated,
                                             quality_calibration=model.quality_calibration))
    for goal, ours, met in goals(results, collages):
        print(f"{'met    ' if met else 'NOT MET'}  {goal}: {ours}")


if __name__ == "__main__":
    main()
