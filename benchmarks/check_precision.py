"""Does a lower inference precision keep the quality map within 0.5 QF of fp32?

Analyses evaluation images (the ``val`` split, uncompressed and as 4:2:0 JPEGs at several QFs)
with ``precision='fp32'`` and with each lower precision, and prints per precision: the largest
per-pixel difference of the quality maps in QF units, the mean per-pixel difference, the largest
whole-image (mean QF) difference, and the largest flag-map difference.

Usage::

    PYTHONPATH=src python benchmarks/check_precision.py --weights runs/x/best.safetensors
    PYTHONPATH=src python benchmarks/check_precision.py --random      # random weights
    PYTHONPATH=src python benchmarks/check_precision.py --device cuda --precision fp16,bf16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from jpegtrace.analysis import predict_maps, summarize
from jpegtrace.io import list_images, load_rgb
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.nn.qfnet import QFNet
from jpegtrace.nn.weights import default_weights_path, load_weights


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder with the evaluation images")
    parser.add_argument("--split", help="split CSV (default: the folder's split.csv; its 'val' images are used)")
    parser.add_argument("--images", type=int, default=8, help="evaluation images to use (default 8)")
    parser.add_argument("--qualities", default="none,10,50,90,98", help="QFs to test ('none': uncompressed)")
    parser.add_argument("--weights", help="safetensors weights (default: the shipped model)")
    parser.add_argument("--random", action="store_true", help="use random weights (seed 0)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="bf16", help="precisions to compare with fp32 (default bf16)")
    parser.add_argument("--tolerance", type=float, default=0.5, help="allowed per-pixel QF difference")
    args = parser.parse_args(argv)

    if args.random or not (args.weights or default_weights_path().is_file()):
        torch.manual_seed(0)
        model, weights = QFNet().eval(), "random weights (seed 0)"
    else:
        model, weights = load_weights(args.weights), args.weights or "shipped model"
    model = model.to(args.device)
    data = Path(args.data)
    split = args.split or (data / "split.csv" if (data / "split.csv").is_file() else None)
    if data.is_dir():
        paths = list_images(data, split, "val" if split else None)[: args.images]
        images = {p.name: load_rgb(p) for p in paths}
    else:
        from skimage import data as samples

        images = {n: getattr(samples, n)() for n in ("astronaut", "chelsea", "coffee")}
    qualities = [None if q == "none" else int(q) for q in args.qualities.split(",")]
    print(f"# {weights}; {len(images)} images x {len(qualities)} versions; device {args.device}")

    worst_ok = True
    for precision in args.precision.split(","):
        max_px = mean_px = max_whole = max_flag = 0.0
        n = 0
        for image in images.values():
            for quality in qualities:
                test = image if quality is None else jpeg_compress(image, quality, "4:2:0")
                exact = summarize(predict_maps(model, test, device=args.device))
                approx = summarize(predict_maps(model, test, device=args.device, precision=precision))
                diff = np.abs(exact.quality_map - approx.quality_map)
                max_px, mean_px = max(max_px, float(diff.max())), mean_px + float(diff.mean())
                max_whole = max(max_whole, abs(exact.mean_quality - approx.mean_quality))
                max_flag = max(max_flag, float(np.abs(exact.flag_map - approx.flag_map).max()))
                n += 1
        ok = max_px <= args.tolerance
        worst_ok &= ok
        print(f"{precision}: quality map vs fp32, QF units: max per pixel {max_px:.3f}, mean per pixel "
              f"{mean_px / n:.4f}, max whole-image {max_whole:.4f}; flag map max {max_flag:.4f} -> "
              f"{'within' if ok else 'NOT within'} {args.tolerance} QF per pixel")
    return 0 if worst_ok else 1


if __name__ == "__main__":
    sys.exit(main())
