"""Every score of the generalising issue for one model on one split of shared/data/clean, as one JSON.

    python scripts/evaluate_generalisation.py --model src/jpegtrace/weights/qfnet.safetensors \
        --data ../shared/data/clean --split val --out docs/model/qfnet-v11/generalisation-val.json

Scores: collage localisation (a QF-80 region pasted into a clean photo, flag > 0.5: mean IoU and pixel
precision over 100 pairs); clean photos (share of pixels with flag > 0.5, share judged compressed); fresh
non-photo negatives (held-out fonts and seeds: share judged compressed, by the grid check, flat kinds
"no evidence"); QF MAE over QF 5..95 for 4:2:0, 4:4:4, a grid shifted by (3, 5) and grayscale, with the mean
error at every QF (bias), each for the network's QF and the headline QF (the table's where it is
read from the pixels); camera-like tables (MAE against the IJG-equivalent QF); Table 1 (share judged
uncompressed at QF 97-100 per variant, and of the originals); JPEGs lightly processed after decoding
(``after_jpeg``: a gamma, mild noise or both, QF 20..85: share judged compressed per QF, QF MAE); and, as a
stand-in for never-compressed camera photos with saturated colours (``saturated``), the collage and clean-photo
scores again on the split's photos with colour saturation x2 and contrast x1.3 (Pillow's ImageEnhance), which
puts a channel at 0 or 255 in about half of the pixels. Choose on ``val``; report ``test``.

The QF part of a large split can run as shards on several cores and be merged into the same scores
(each JPEG's table and QF depend on its image and QF only, not on what else runs)::

    python scripts/evaluate_generalisation.py --data ../shared/data/clean --split test --parts qf \
        --variants camera_tables --shard 0/2 --out shard0.json    # and --shard 1/2 --out shard1.json
    python scripts/evaluate_generalisation.py --merge shard0.json shard1.json --out test.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from jpegtrace.analysis import JPEG_VERDICTS, analyze_array, load_model
from jpegtrace.eval.collage import collage_benchmark, summarize_collage_benchmark
from jpegtrace.eval.negatives import evaluate_negatives, fresh_negatives, summarize_negatives
from jpegtrace.eval.quality import EvaluationRecord, evaluate_model, summarize_evaluation
from jpegtrace.io import list_images, load_rgb, write_json

MAE_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
#: QFs of the processed JPEGs (``after_jpeg``): those whose blocks such processing leaves
#: (:data:`jpegtrace.train.camera.AFTER_JPEG_MAX_QUALITY`).
AFTER_JPEG_QUALITIES = (20, 30, 50, 70, 85)
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
    parser.add_argument("--data")
    parser.add_argument("--split", choices=["train", "val", "test"])
    parser.add_argument("--split-csv", help="default: DATA/split.csv")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--negatives-per-kind", type=int, default=12)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--parts", default="collage,clean,negatives,saturated,qf",
                        help="which scores to compute (comma-separated; the QF scores alone for a calibration's effect)")
    parser.add_argument("--variants", default=",".join([*VARIANTS, "camera_tables"]),
                        help="which JPEG variants the QF part covers (comma-separated of "
                             f"{', '.join([*VARIANTS, 'camera_tables', 'after_jpeg'])}); the JSON is written "
                             "after each")
    parser.add_argument("--shard", help="I/N: only every N-th image of the split by file size, from the I-th, "
                                         "with the QF part's records kept in the JSON for --merge")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="the QF scores of the shards' JSONs, together")
    args = parser.parse_args()
    if args.merge:
        write_json(args.out, merged_report([json.loads(Path(f).read_text()) for f in args.merge]))
        return 0
    if not (args.data and args.split):
        parser.error("--data and --split are required (unless --merge)")
    if args.shard and set(args.parts.split(",")) != {"qf"}:
        parser.error("--shard runs the QF part only (--parts qf)")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    files = list_images(args.data, args.split_csv or Path(args.data) / "split.csv", args.split)
    if args.shard:
        index, count = (int(v) for v in args.shard.split("/"))
        files = sorted(files, key=lambda p: (p.stat().st_size, p.name))[index::count]
    images = {p.name: load_rgb(p) for p in files}
    start = time.time()
    report: dict = {"model": args.model or "shipped", "split": args.split, "n_images": len(images)}
    if args.shard:
        report["shard"], report["records"] = args.shard, {}

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
    if "saturated" in parts:
        saturated_photos(report, model, files, pairs=args.pairs)
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


def saturate(image: np.ndarray) -> np.ndarray:
    """A photo with its colours saturated x2 and contrast raised x1.3 (Pillow), clipping many channels."""
    from PIL import Image, ImageEnhance

    vivid = ImageEnhance.Contrast(ImageEnhance.Color(Image.fromarray(image)).enhance(2.0)).enhance(1.3)
    return np.asarray(vivid)


def saturated_photos(report: dict, model, files: list, *, pairs: int) -> None:
    """The collage and clean-photo scores on saturated versions of the split's photos (``saturate``)."""
    import tempfile

    from PIL import Image

    images = {f"{path.stem}.png": saturate(load_rgb(path)) for path in files}
    with tempfile.TemporaryDirectory() as folder:  # the collage benchmark reads files
        saturated = [Path(folder) / name for name in images]
        for path, image in zip(saturated, images.values()):
            Image.fromarray(image).save(path)
        records, _ = collage_benchmark(model, saturated, pairs=pairs, seed=0, qualities=(80,), threshold=0.5)
    collage = summarize_collage_benchmark(records)
    clean = {}
    clean_photos(clean, model, images)
    clipped = [((image == 0) | (image == 255)).any(axis=2).mean() for image in images.values()]
    report["saturated"] = {"clipped_pixel_share": float(np.mean(clipped)),
                           "collage_qf80": {k: collage[k] for k in ("n", "mean_iou", "mean_precision", "mean_recall",
                                                                    "mean_auc")},
                           "clean_photos": clean["clean_photos"]}
    print("saturated", report["saturated"], file=sys.stderr)


def qf_scores(report: dict, model, images: dict, *, variants, save=lambda: None) -> None:
    report["qf"], report["table1"] = {}, {}
    for name, options in VARIANTS.items():
        if name not in variants:
            continue
        records = evaluate_model(model, images, MAE_QUALITIES + TABLE1 + (None,), **options)
        _variant_scores(report, name, records)
        save()
    if "camera_tables" in variants:
        _variant_scores(report, "camera_tables", evaluate_model(model, images, MAE_QUALITIES, camera_tables_seed=7))
        save()
    if "after_jpeg" in variants:
        _variant_scores(report, "after_jpeg", evaluate_model(model, images, AFTER_JPEG_QUALITIES, after_jpeg_seed=11))


def _variant_scores(report: dict, name: str, records: list[EvaluationRecord]) -> None:
    """One variant's QF scores (and Table 1, but for camera-like tables) into ``report``; its records too
    where ``report`` is a shard's."""
    if "records" in report:
        report["records"][name] = [dataclasses.asdict(r) for r in records]
    summary = summarize_evaluation(records)
    if name == "after_jpeg":
        rows = [r for r in summary["per_quality"] if r["quality"] is not None]
        report["qf"][name] = {"qf_mae": summary["qf_mae"], "headline_qf_mae": summary["headline_qf_mae"],
                              "judged_compressed": float(np.mean([1 - r["judged_uncompressed"] for r in rows])),
                              "judged_compressed_per_quality": {str(r["quality"]): round(1 - r["judged_uncompressed"], 3)
                                                                for r in rows},
                              "table_share_per_quality": {str(r["quality"]): round(r["table_share"], 3) for r in rows}}
        print("after_jpeg", report["qf"][name], file=sys.stderr)
        return
    if name == "camera_tables":
        report["qf"][name] = {"qf_mae": summary["qf_mae"], "headline_qf_mae": summary["headline_qf_mae"]}
        print("camera tables", summary["qf_mae"], summary["headline_qf_mae"], file=sys.stderr)
        return
    report["qf"][name] = _qf_scores(summary)
    report["table1"][name] = {str(r["quality"]): r["judged_uncompressed"] for r in summary["table1"]}
    print(name, report["qf"][name]["qf_mae"], report["qf"][name]["headline_qf_mae"], report["table1"][name],
          file=sys.stderr)


def merged_report(shards: list[dict]) -> dict:
    """The QF scores of the shards of one split (:func:`main`'s ``--shard``) as one run's."""
    if len({(s["model"], s["split"]) for s in shards}) != 1 or not all("records" in s for s in shards):
        raise SystemExit("error: --merge takes the JSONs of --shard runs of one model on one split")
    report = {"model": shards[0]["model"], "split": shards[0]["split"],
              "n_images": sum(s["n_images"] for s in shards), "shards": [s["shard"] for s in shards],
              "qf": {}, "table1": {}, "seconds": sum(s.get("seconds", 0.0) for s in shards)}
    for name in shards[0]["records"]:
        records = [EvaluationRecord(**r) for s in shards for r in s["records"][name]]
        _variant_scores(report, name, records)
    return report


if __name__ == "__main__":
    sys.exit(main())
