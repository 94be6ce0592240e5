"""Inference speed of jpegtrace against the machine's arithmetic limit.

Measures, in one run on one machine:

* the sustained fp32 rate of a large ``torch.mm`` (GFLOP/s): the practical arithmetic limit;
* the throughput (megapixels per second, 1 MP = 10^6 pixels) of whole-image analysis
  (:func:`jpegtrace.predict_maps`) at about 0.25, 1 and 4 MP, batch 1, and of a batch of 32
  patches of 256x256;
* for each, the plain eager baseline (jpegtrace's original implementation, overlapping 512x512
  tiles in NCHW) beside the optimised path, the achieved GFLOP/s of the network
  (``flops_per_pixel`` x output pixels / time), its ratio to the matmul rate, and the largest
  difference between the two outputs.

Usage::

    PYTHONPATH=src python benchmarks/bench_inference.py                 # CPU, fp32
    PYTHONPATH=src python benchmarks/bench_inference.py --precision fp32,bf16
    PYTHONPATH=src python benchmarks/bench_inference.py --device cuda   # adds fp16 by default

Weights do not change the speed; the shipped model is used when present, else random weights.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from common import OtherLoad, matmul_rate, start, timed

from jpegtrace.analysis import DEFAULT_TILE_SIZE, predict_maps
from jpegtrace.nn.engine import FastNet, eager_predict_maps
from jpegtrace.nn.qfnet import QFNet, flops_per_pixel
from jpegtrace.nn.weights import default_weights_path, load_weights

BASELINE_TILE = 512  # the tile size of the original implementation


def eager_batch(model: QFNet, patches: np.ndarray, device: torch.device) -> torch.Tensor:
    """The plain eager forward of a uint8 batch ``(N, H, W, 3)``: what the original code would do."""
    with torch.inference_mode():
        x = torch.from_numpy(patches).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        return model(x)


def qf_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Largest per-pixel and whole-image difference of the quality maps, in QF units."""
    qa = 100.0 * (1.0 - np.clip(a[0], 0.0, 1.0))
    qb = 100.0 * (1.0 - np.clip(b[0], 0.0, 1.0))
    return float(np.abs(qa - qb).max()), float(abs(qa.mean(dtype=np.float64) - qb.mean(dtype=np.float64)))


def _load_note(load: OtherLoad) -> str:
    busy = load.share()
    return "" if busy is None else f"   (other processes: {100 * busy:.0f}% of the CPUs)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--cpu-clock", action="store_true",
                        help="one thread, timed by process CPU time: per-core rates that other load on the "
                             "machine does not distort (for comparisons on a busy machine)")
    parser.add_argument("--sizes", default="0.25,1,4", help="image sizes in megapixels (2^20 pixels, square)")
    parser.add_argument("--batch", type=int, default=32, help="patches in the batch measurement (0: skip)")
    parser.add_argument("--patch", type=int, default=256, help="patch side of the batch measurement")
    parser.add_argument("--precision", help="optimised-path precisions, e.g. fp32,bf16 (default fp32; "
                                            "fp32,fp16 on CUDA)")
    parser.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE, help="tile size of the optimised path")
    parser.add_argument("--reps", type=int, default=2, help="timed repetitions per measurement (the best counts)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the eager baseline")
    parser.add_argument("--weights", help="safetensors weights (default: the shipped model, else random)")
    parser.add_argument("--json", metavar="FILE", help="append the results as one JSON line to FILE")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    info = start(device, args.threads, args.cpu_clock)
    precisions = (args.precision or ("fp32,fp16" if device.type == "cuda" else "fp32")).split(",")
    if args.weights or default_weights_path().is_file():
        model, weights = load_weights(args.weights), args.weights or "shipped"
    else:
        torch.manual_seed(0)
        model, weights = QFNet().eval(), "random"
    model = model.to(device).eval()
    fpp = flops_per_pixel(model.config)
    info["clock"] = "process CPU time, 1 thread" if args.cpu_clock else "wall clock"
    print(f"# network: {fpp / 1e3:.1f} kFLOP per pixel; weights: {weights}")

    load = OtherLoad()
    limit = matmul_rate(device, reps=args.reps + 1)
    print(f"fp32 matmul: {limit:.1f} GFLOP/s{_load_note(load)}", flush=True)
    rows = []

    def record(case, path, pixels, seconds, diff=None, qf=None):
        row = {"case": case, "path": path, "pixels": pixels, "seconds": seconds,
               "mp_per_s": pixels / seconds / 1e6, "gflops": fpp * pixels / seconds / 1e9, "max_diff": diff,
               "other_load": load.share()}
        if qf is not None:
            row["max_qf_diff"], row["mean_qf_diff"] = qf
        rows.append(row)
        print(f"  {case:<22} {path:<6} {seconds:8.3f} s  {row['gflops']:7.1f} GFLOP/s{_load_note(load)}", flush=True)
        load.start()

    rng = np.random.default_rng(0)
    for size in (float(s) for s in args.sizes.split(",")):
        side = int(round(math.sqrt(size * 2 ** 20)))
        image = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
        case = f"{side}x{side} ({side * side / 1e6:.2f} MP)"
        big = side * side > 2 ** 21
        reps = 1 if big else args.reps
        reference = None
        if not args.no_baseline:
            load.start()
            seconds, reference = timed(lambda: eager_predict_maps(model, image, BASELINE_TILE, device),
                                       device, reps, warmup=0)
            record(case, "eager", side * side, seconds)
        for precision in precisions:
            load.start()
            seconds, out = timed(lambda: predict_maps(model, image, tile_size=args.tile_size, device=device, precision=precision),
                                 device, reps, warmup=0)
            diff = None if reference is None else float(np.abs(out - reference).max())
            qf = None if reference is None or precision == "fp32" else qf_difference(out, reference)
            record(case, precision, side * side, seconds, diff, qf)

    if args.batch:
        patches = rng.integers(0, 256, size=(args.batch, args.patch, args.patch, 3), dtype=np.uint8)
        pixels = patches.shape[0] * args.patch ** 2
        case = f"{args.batch} x {args.patch}x{args.patch}"
        reference = None
        if not args.no_baseline:
            load.start()
            seconds, reference = timed(lambda: eager_batch(model, patches, device), device, args.reps, warmup=0)
            reference = reference.float().cpu().numpy()
            record(case, "eager", pixels, seconds)
        for precision in precisions:
            net = FastNet(model, device=device, precision=precision)
            load.start()
            seconds, out = timed(lambda: net.forward_uint8(patches), device, args.reps, warmup=0)
            out = out.cpu().numpy()
            diff = None if reference is None else float(np.abs(out - reference).max())
            qf = None
            if reference is not None and precision != "fp32":
                qf = max(qf_difference(o, r) for o, r in zip(out, reference))
            record(case, precision, pixels, seconds, diff, qf)

    load.start()
    first, again = limit, matmul_rate(device, reps=args.reps + 1)
    print(f"fp32 matmul again: {again:.1f} GFLOP/s{_load_note(load)}", flush=True)
    limit = max(limit, again)  # the higher (less disturbed) one: the conservative limit
    print(f"\nlimit: fp32 matmul {limit:.1f} GFLOP/s; network {fpp / 1e3:.1f} kFLOP/pixel")
    print(f"{'case':<22} {'path':<6} {'MP/s':>7} {'GFLOP/s':>8} {'of matmul':>9} {'speed-up':>8}  max|diff| vs eager")
    for row in rows:
        row["of_matmul"] = row["gflops"] / limit
        base = next(r for r in rows if r["case"] == row["case"])
        speedup = f"{base['seconds'] / row['seconds']:7.2f}x" if base["path"] == "eager" and base is not row else ""
        extra = "" if row["max_diff"] is None else f"  {row['max_diff']:.1e}"
        if "max_qf_diff" in row:
            extra += f" (QF: max {row['max_qf_diff']:.2f}, whole-image {row['mean_qf_diff']:.3f})"
        busy = row["other_load"]
        if busy is not None and busy > 0.05:
            extra += f"  [other load {100 * busy:.0f}%: disturbed]"
        print(f"{row['case']:<22} {row['path']:<6} {row['mp_per_s']:7.3f} {row['gflops']:8.1f} "
              f"{100 * row['of_matmul']:8.1f}% {speedup:>8}{extra}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "a") as f:
            f.write(json.dumps({"machine": info, "weights": weights, "matmul_gflops": limit,
                                "matmul_gflops_start_end": [first, again], "rows": rows}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
