"""Every score of the generalising issue for one model on one split of shared/data/clean, as one JSON.

    python scripts/evaluate_generalisation.py --model src/jpegtrace/weights/qfnet.safetensors \
        --data ../shared/data/clean --split val --out docs/model/qfnet-v11/generalisation-val.json

Scores: collage localisation (a QF-80 region pasted into a clean photo, flag > 0.5: mean IoU and pixel
precision over 100 pairs); clean photos (share of pixels with flag > 0.5, share judged compressed); fresh
non-photo negatives (held-out fonts and seeds: share judged compressed, by the grid check, flat kinds
"no evidence"); QF MAE over QF 5..95 for 4:2:0, 4:4:4, a grid shifted by (3, 5) and grayscale, with the mean
error at every QF (bias), each for the network's QF and the headline QF (the table's where it is
read from the pixels); camera-like tables (MAE against the IJG-equivalent QF); Table 1 (share judged
uncompressed at QF 97-100 per variant, and of the originals). Choose on ``val``; report ``test``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from jpegtrace.analysis import JPEG_VERDICTS, analyze_array, load_model
from jpegtrace.eval.collage import collage_benchmark, summarize_collage_benchmark
from jpegtrace.eval.negatives import evaluate_negatives, fresh_negatives, summarize_negatives
from jpegtrace.eval.quality import evaluate_model, summarize_evaluation
from jpegtrace.io import list_images, load_rgb, write_json

MAE_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
TABLE1 = (97, 98, 99, 100)
VARIANTS = {"4:2:0": {}, "4:4:4": {"subsampling": "4:4:4"}, "shifted": {"grid_offset": (3, 5)},
            "grayscale": {"grayscale": True}}


def _qf_scores(summary: dict) -> dict:
    rows = [r for r in summary["per_quality"] if r["quality"] is not None]
    return {"qf_mae": summary["qf_mae"], "headline_qf_mae": summary["headline_qf_mae"],
            "headline_bias_per_quality": {str(r["quality"]): None if r["mean_headline"] is None
                                          else round(r["mean_headline"] - r["quality"], 3) for r in rows},
            "table_share_per_quality": {str(r["quality"]): round(r["table_share"], 3) for r in rows},
            "bias_per_quality": {str(r["quality"]): None if r["mean_estimate"] is None
                                 else round(r["mean_estimate"] - r["quality"], 3) for r in rows},
            "max_abs_bias": max(abs(r["mean_estimate"] - r["quality"]) for r in rows if r["mean_estimate"] is not None),
            "no_evidence": {str(r["quality"]): r["no_evidence"] for r in rows if r["no_evidence"]}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="weights (default: the shipped model)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", required=True, choices=["train", "val", "test"])
    parser.add_argument("--split-csv", help="default: DATA/split.csv")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--negatives-per-kind", type=int, default=12)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--parts", default="collage,clean,negatives,qf",
                        help="which scores to compute (comma-separated; the QF scores alone for a calibration's effect)")
    parser.add_argument("--variants", default=",".join([*VARIANTS, "camera_tables"]),
                        help="which JPEG variants the QF part covers (comma-separated of "
                             f"{', '.join([*VARIANTS, 'camera_tables'])}); the JSON is written after each")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    files = list_images(args.data, args.split_csv or Path(args.data) / "split.csv", args.split)
    images = {p.name: load_rgb(p) for p in files}
    start = time.time()
    report: dict = {"model": args.model or "shipped", "split": args.split, "n_images": len(images)}

    parts = set(args.parts.split(","))
    if "collage" in parts:
        records, _ = collage_benchmark(model, files, pairs=args.pairs, seed=0, qualities=(80,), threshold=0.5)
        collage = summarize_collage_benchmark(records)
        report["collage_qf80"] = {k: collage[k] for k in ("n", "mean_iou", "mean_precision", "mean_recall", "mean_auc")}
        print("collage", report["collage_qf80"], file=sys.stderr)
    if "clean" in parts:
        clean_photos(report, model, images)
    if "negatives" in parts:
        photos = dict(list(images.items())[:8])
        negatives = evaluate_negatives(model, fresh_negatives(args.negatives_per_kind, photos=photos))
        report["negatives"] = summarize_negatives(negatives)
        print("negatives", {k: v for k, v in report["negatives"].items() if k != "per_kind"}, file=sys.stderr)
    write_json(args.out, report)  # what is done so far, should the QF part not finish
    if "qf" in parts:
        qf_scores(report, model, images, variants=args.variants.split(","),
                  save=lambda: write_json(args.out, report))
    report["seconds"] = round(time.time() - start, 1)
    write_json(args.out, report)
    return 0


def clean_photos(report: dict, model, images: dict) -> None:
    clean = [analyze_array(image, model) for image in images.values()]
    report["clean_photos"] = {
        "mean_flagged_share": float(np.mean([(r.flag_map > 0.5).mean() for r in clean])),
        "judged_compressed": float(np.mean([r.verdict in JPEG_VERDICTS for r in clean])),
        "grid_found": float(np.mean([r.grid.found for r in clean])),
        "verdicts": {v: sum(r.verdict == v for r in clean) for v in sorted({r.verdict for r in clean})}}
    print("clean", report["clean_photos"], file=sys.stderr)


def qf_scores(report: dict, model, images: dict, *, variants, save=lambda: None) -> None:
    report["qf"], report["table1"] = {}, {}
    for name, options in VARIANTS.items():
        if name not in variants:
            continue
        summary = summarize_evaluation(evaluate_model(model, images, MAE_QUALITIES + TABLE1 + (None,), **options))
        report["qf"][name] = _qf_scores(summary)
        report["table1"][name] = {str(r["quality"]): r["judged_uncompressed"] for r in summary["table1"]}
        print(name, report["qf"][name]["qf_mae"], report["qf"][name]["headline_qf_mae"], report["table1"][name],
              file=sys.stderr)
        save()
    if "camera_tables" not in variants:
        return
    tables = summarize_evaluation(evaluate_model(model, images, MAE_QUALITIES, camera_tables_seed=7))
    report["qf"]["camera_tables"] = {"qf_mae": tables["qf_mae"], "headline_qf_mae": tables["headline_qf_mae"]}
    print("camera tables", tables["qf_mae"], tables["headline_qf_mae"], file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
