"""Does bf16 keep the answer? The check behind ``precision='auto'`` (``jpegtrace.nn.backends``).

Analyses the corpus' ``val`` images, never compressed and as 4:2:0 JPEGs at several QFs, once with
torch in fp32 and once per lower-precision path (torch bf16, OpenVINO bf16 where installed), and
compares per image: the headline QF (:attr:`~jpegtrace.analysis.Analysis.headline_quality`), every
pixel's QF (the quality map) and the verdict. A path is within tolerance when, on every image, the
headline QF stays within 0.25, every pixel within 2 QF and no verdict changes
(``jpegtrace.nn.backends.TOLERANCE``).

    PYTHONPATH=src python benchmarks/check_precision.py                    # the shipped model, all val images
    PYTHONPATH=src python benchmarks/check_precision.py --write            # and record it in weights/precision.json
    PYTHONPATH=src python benchmarks/check_precision.py --weights runs/x/best.safetensors --images 8
    PYTHONPATH=src python benchmarks/check_precision.py --variant 4:4:4 --backends openvino   # other JPEGs too

``--variant`` checks 4:4:4 JPEGs, a grid shifted by (3, 5) or grayscale ones instead of 4:2:0 (the variants of
``scripts/evaluate_generalisation.py``). ``precision='auto'`` reads the 4:2:0 check for colour images and the
grayscale one for grayscale images, so ``--write`` takes those two.

``--write`` records the result under the weights' fingerprint, where ``precision='auto'`` looks, with the
arithmetic of each layer of each path checked (``jpegtrace.nn.backends.bf16_layers``); the paths not checked keep
their records.
Exits 1 when a path is not within tolerance.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import sys
from pathlib import Path

import numpy as np

from jpegtrace.analysis import check_pixels, finish_analysis, predict_maps
from jpegtrace.io import list_images, load_rgb
from jpegtrace.jpeg import jpeg_compress, to_grayscale
from jpegtrace.nn.backends import PRECISION_RECORD, TOLERANCE, bf16_layers, installed_backends, weights_fingerprint
from jpegtrace.nn.engine import bf16_is_fast
from jpegtrace.nn.weights import load_weights

ROOT = Path(__file__).resolve().parents[1]
#: The JPEG variants the check can run: ``jpeg_compress`` options, and whether the image is made grayscale first.
VARIANTS = {"4:2:0": ({"subsampling": "4:2:0"}, False), "4:4:4": ({"subsampling": "4:4:4"}, False),
            "shifted": ({"subsampling": "4:2:0", "grid_offset": (3, 5)}, False), "grayscale": ({}, True)}


def compare(model, images: dict, qualities, paths, *, variant: str = "4:2:0") -> dict:
    """Per path, the worst differences to torch fp32 over every image and QF, as JPEGs of ``variant``."""
    options, gray = VARIANTS[variant]
    worst = {path: {"max_image_qf": 0.0, "max_pixel_qf": 0.0, "max_evidence_pixel_qf": 0.0, "verdict_changes": 0,
                    "n": 0} for path in paths}
    for name, image in images.items():
        for quality in qualities:
            source = to_grayscale(image) if gray else image
            test = source if quality is None else jpeg_compress(source, quality, **options)
            if test.ndim == 2:  # as the analysis reads a grayscale file (jpegtrace.io)
                test = np.repeat(test[:, :, None], 3, axis=2)
            checks = check_pixels(test)
            exact = finish_analysis(test, predict_maps(model, test, backend="torch", precision="fp32"),
                                    copy.deepcopy(checks), quality_calibration=model.quality_calibration,
                                    grayscale=gray)
            for backend, precision in paths:
                raw = predict_maps(model, test, backend=backend, precision=precision)
                approx = finish_analysis(test, raw, copy.deepcopy(checks), quality_calibration=model.quality_calibration,
                                     grayscale=gray)
                w = worst[(backend, precision)]
                w["n"] += 1
                difference = np.abs(exact.quality_map - approx.quality_map)
                w["max_pixel_qf"] = max(w["max_pixel_qf"], float(difference.max()))
                # Information only (the tolerance counts every pixel): the pixels whose QF enters a reported
                # number, those that carry evidence (jpegtrace.evidence; the means and regions weigh by it).
                if exact.evidence_map is not None and (exact.evidence_map > 0).any():
                    w["max_evidence_pixel_qf"] = max(w["max_evidence_pixel_qf"],
                                                     float(difference[exact.evidence_map > 0].max()))
                if (exact.headline_quality is None) != (approx.headline_quality is None):
                    w["max_image_qf"] = float("inf")
                elif exact.headline_quality is not None:
                    w["max_image_qf"] = max(w["max_image_qf"], abs(exact.headline_quality - approx.headline_quality))
                if exact.verdict != approx.verdict:
                    w["verdict_changes"] += 1
                    print(f"  {name} QF {quality}: {backend} {precision} says {approx.verdict!r}, fp32 "
                          f"{exact.verdict!r}", file=sys.stderr)
        print(f"  {name} done", file=sys.stderr, flush=True)
    for w in worst.values():
        w["within_tolerance"] = bool(w["max_image_qf"] <= TOLERANCE["max_image_qf"]
                                     and w["max_pixel_qf"] <= TOLERANCE["max_pixel_qf"]
                                     and w["verdict_changes"] <= TOLERANCE["verdict_changes"])
    return worst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "clean"),
                        help="the corpus (default ../shared/data/clean); its split.csv's val images are used")
    parser.add_argument("--images", type=int, help="use only the first N val images")
    parser.add_argument("--qualities", default="none,10,30,50,70,90,95,98",
                        help="versions of each image: 'none' (never compressed) and 4:2:0 JPEG QFs")
    parser.add_argument("--variant", choices=VARIANTS, default="4:2:0", help="the JPEGs (default 4:2:0)")
    parser.add_argument("--backends", default="torch,openvino",
                        help="which bf16 paths to check, of torch and openvino (default both; openvino where installed)")
    parser.add_argument("--weights", help="safetensors weights (default: the shipped model)")
    parser.add_argument("--write", action="store_true",
                        help=f"record the result in {PRECISION_RECORD.name} (a 4:2:0 check, or a grayscale one; "
                             "the paths not checked keep their records)")
    args = parser.parse_args(argv)
    wanted = set(args.backends.split(","))
    if args.write and args.variant not in ("4:2:0", "grayscale"):
        parser.error("--write records what precision='auto' reads: a 4:2:0 check, or a grayscale one")
    if not bf16_is_fast("cpu"):
        print("this CPU has no native bf16: nothing to check (precision='auto' is fp32 here)")
        return 0
    model = load_weights(args.weights)
    data = Path(args.data)
    paths = list_images(data, data / "split.csv", "val")[: args.images]
    images = {p.name: load_rgb(p) for p in paths}
    qualities = [None if q == "none" else int(q) for q in args.qualities.split(",")]
    candidates = ([("torch", "bf16")] if "torch" in wanted else []) + (
        [("openvino", "bf16")] if "openvino" in wanted and "openvino" in installed_backends() else [])
    fingerprint = weights_fingerprint(model)
    print(f"# {args.weights or 'shipped model'} ({fingerprint[:12]}); {len(images)} val images x "
          f"{len(qualities)} versions ({args.variant}); tolerance {TOLERANCE}")
    worst = compare(model, images, qualities, candidates, variant=args.variant)
    print("| path | max headline QF diff | max pixel QF diff | (pixels with evidence) | verdicts changed | images "
          "| within tolerance |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for (backend, precision), w in worst.items():
        print(f"| {backend} {precision} | {w['max_image_qf']:.3f} | {w['max_pixel_qf']:.3f} | "
              f"{w['max_evidence_pixel_qf']:.3f} | {w['verdict_changes']} | "
              f"{w['n']} | {'yes' if w['within_tolerance'] else 'no'} |")
    if args.write:
        record = json.loads(PRECISION_RECORD.read_text()) if PRECISION_RECORD.is_file() else {}
        record.setdefault("about", "bf16 checks of benchmarks/check_precision.py, by weights fingerprint "
                                   "(jpegtrace.nn.backends.weights_fingerprint); read by precision='auto'")
        record["tolerance"] = TOLERANCE
        models = record.setdefault("models", {})
        check = {
            "checked": datetime.date.today().isoformat(),
            "data": f"{len(images)} val images of {data.name} x QF {args.qualities} ({args.variant})",
            "command": "PYTHONPATH=src python benchmarks/check_precision.py " + " ".join(argv or sys.argv[1:]),
        }
        previous = models.get(fingerprint, {})
        if args.variant == "grayscale":
            previous = previous.get("grayscale", {})
        # the paths not checked now keep their records; each says when and how it was checked
        check["bf16"] = {**previous.get("bf16", {}), **{
            backend: {**w, "layers": bf16_layers(backend, len(model.config.dilations)), "checked": check["checked"],
                      "command": check["command"]} for (backend, _), w in worst.items()}}
        if args.variant == "grayscale":  # beside the colour check, which it leaves as it is
            models.setdefault(fingerprint, {})["grayscale"] = check
        else:
            grayscale = models.get(fingerprint, {}).get("grayscale")
            models[fingerprint] = {"weights": args.weights or "shipped (src/jpegtrace/weights/qfnet.safetensors)",
                                   **check, **({"grayscale": grayscale} if grayscale else {})}
        PRECISION_RECORD.write_text(json.dumps(record, indent=2) + "\n")
        print(f"recorded in {PRECISION_RECORD}")
    return 0 if all(w["within_tolerance"] for w in worst.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
