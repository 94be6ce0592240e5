"""Quality regions on one split of shared/data/clean: how many a plain JPEG gets (all false), how many of a
pasted square's are found, with and without the check of their box's table.

    python scripts/evaluate_quality_regions.py --data ../shared/data/clean --split val --out val-qregions.json

Per image: single 4:2:0 Pillow JPEGs at ``--qualities`` (every quality region there is false), and four
splices of a square of 45 % of the shorter side at a random place (seed 0): QF 40 into a QF-92 JPEG's pixels,
QF 95 into a QF-70 JPEG's (both left as PNG), and QF 40 into the never-compressed photo, the whole then saved at
QF 92 with the square on the same 8x8 grid and on another. A quality region "finds" a square when over half its
box lies inside it. "Without the check" are the quality regions the maps give
(:func:`jpegtrace.regions.find_regions` on the analysis's own maps), "with" those ``analyze`` reports
(:func:`jpegtrace.regions.quality_regions_supported`). Choose on ``val``; report ``test``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from jpegtrace.analysis import analyze_array, load_model
from jpegtrace.io import list_images, load_rgb, write_json
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.regions import QUALITY, confirm_regions, find_regions, same_quantisation

#: (name, QF of the square, QF of the JPEG around it or None, QF of a last JPEG of the whole or None, on the grid)
SPLICES = (("png 40 in 92", 40, 92, None, False), ("png 95 in 70", 95, 70, None, False),
           ("40, then 92 on the grid", 40, None, 92, True), ("40, then 92 off the grid", 40, None, 92, False))


def _cases(rgb: np.ndarray, qualities, rng):
    """``(case, image, square box or None)`` for one photo."""
    for quality in qualities:
        yield f"single {quality}", jpeg_compress(rgb, quality), None
    height, width = rgb.shape[:2]
    side = int(0.45 * min(height, width)) // 8 * 8
    for name, inner, outer, last, aligned in SPLICES:
        y, x = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        if aligned:
            y, x = y // 8 * 8, x // 8 * 8
        image = np.array(jpeg_compress(rgb, outer)) if outer else rgb.copy()
        image[y:y + side, x:x + side] = jpeg_compress(rgb[y:y + side, x:x + side], inner)
        yield name, jpeg_compress(image, last) if last else image, (y, x, y + side, x + side)


def _inside(box, square) -> float:
    """Share of ``box`` inside ``square`` (both top, left, bottom, right)."""
    top, left = max(box[0], square[0]), max(box[1], square[1])
    bottom, right = min(box[2], square[2]), min(box[3], square[3])
    return max(0, bottom - top) * max(0, right - left) / ((box[2] - box[0]) * (box[3] - box[1]))


def _described(regions, image_table) -> list[dict]:
    out = []
    for r in regions:
        table = r.table
        out.append({"box": list(r.box), "quality_inside": round(r.quality_inside, 1),
                    "quality_around": round(r.quality_around, 1),
                    "table_quality": None if table is None else table.ijg_quality,
                    "own_table": table is not None and not same_quantisation(table, image_table),
                    "earlier_quality": None if table is None else table.earlier_quality})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="weights (default: the shipped model)")
    parser.add_argument("--data", default="../shared/data/clean")
    parser.add_argument("--split", choices=("train", "val", "test"), required=True)
    parser.add_argument("--qualities", default="30,50,70,80,90", help="QFs of the single JPEGs")
    parser.add_argument("--images", type=int, help="only the first N images of the split (a quick look)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    data = Path(args.data)
    files = list_images(data, data / "split.csv", args.split)[: args.images]
    qualities = [int(q) for q in args.qualities.split(",")]
    rng = np.random.default_rng(0)
    records, start = [], time.perf_counter()
    for path in files:
        rgb = load_rgb(path)
        for case, image, square in _cases(rgb, qualities, rng):
            result = analyze_array(image, model)
            raw = [r for r in find_regions(result.quality_map, result.flag_map, result.evidence_map)
                   if r.kind == QUALITY]
            records.append({"file": path.name, "case": case, "square": square,
                            "without_check": _described(confirm_regions(image, raw), result.table),
                            "with_check": _described([r for r in result.regions if r.kind == QUALITY],
                                                     result.table)})
        print(f"{path.name} done", file=sys.stderr, flush=True)
    summary = {}
    for key in ("without_check", "with_check"):
        by_case = defaultdict(lambda: {"images": 0, "with_regions": 0, "regions": 0, "found": 0, "found_own_table": 0})
        for record in records:
            s = by_case[record["case"].split(" ")[0] if record["square"] is None else record["case"]]
            regions = record[key]
            s["images"] += 1
            s["with_regions"] += bool(regions)
            if record["square"] is None:
                s["regions"] += len(regions)
                s["reading_higher"] = s.get("reading_higher", 0) + sum(
                    r["quality_inside"] > r["quality_around"] for r in regions)
            else:
                hits = [r for r in regions if _inside(r["box"], record["square"]) > 0.5]
                s["found"] += bool(hits)
                s["found_own_table"] += any(r["own_table"] for r in hits)
                s["regions"] += len(regions) - len(hits)  # the other regions: false
        summary[key] = dict(by_case)
    report = {"model": args.model or "shipped", "split": args.split, "n_images": len(files),
              "qualities": qualities, "summary": summary, "records": records,
              "seconds": round(time.perf_counter() - start, 1)}
    write_json(args.out, report)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
