"""The shipped network on every backend and precision, side by side in one run.

    PYTHONPATH=src python benchmarks/bench_backends.py [--sizes 0.26,1,4] [--reps 2]

Backends: jpegtrace's streaming torch engine (fp32, and bf16 where the CPU has native BF16) and ONNX Runtime
(fp32, the graph of ``jpegtrace export``, in 1024-pixel tiles with halos; where onnxruntime is installed).
Reports per image size the best of ``--reps`` timings, the ratio to the fastest, the largest per-pixel QF
difference to torch fp32, and the end-to-end wall time of ``jpegtrace analyze`` on a 1 MP PNG (start-up,
decode, grid check, evidence, table, network, summary) in a fresh process.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from jpegtrace.analysis import predict_maps
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.nn.engine import bf16_is_fast
from jpegtrace.nn.weights import load_weights


def test_image(megapixels: float) -> np.ndarray:
    from skimage import data

    side = int(round(np.sqrt(megapixels * 1e6)))
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((side, side), Image.LANCZOS))
    return jpeg_compress(photo, 80)


def best_of(reps: int, run) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(reps):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0.26,1,4", help="image sizes in megapixels")
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    model = load_weights()
    paths = [("torch", "fp32")]
    if bf16_is_fast("cpu"):
        paths.append(("torch", "bf16"))
    try:
        import onnxruntime  # noqa: F401

        paths.append(("onnxruntime", "fp32"))
    except ImportError:
        pass
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; paths: {paths}\n")
    print("| MP | backend | precision | seconds | × fastest | max pixel QF diff to torch fp32 |")
    print("|---|---|---|---|---|---|")
    for megapixels in (float(s) for s in args.sizes.split(",")):
        image = test_image(megapixels)
        results = {}
        for backend, precision in paths:
            predict_maps(model, image[:128, :128], backend=backend, precision=precision)  # warm-up, export
            results[(backend, precision)] = best_of(args.reps, lambda: predict_maps(
                model, image, backend=backend, precision=precision))
        fastest = min(seconds for seconds, _ in results.values())
        reference = results[("torch", "fp32")][1][0]
        for (backend, precision), (seconds, maps) in results.items():
            difference = 100 * float(np.abs(maps[0] - reference).max())
            print(f"| {megapixels:g} | {backend} | {precision} | {seconds:.3f} | {seconds / fastest:.2f} | "
                  f"{difference:.3f} |", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        png = Path(folder) / "photo.png"
        Image.fromarray(test_image(1.0)).save(png)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "jpegtrace.cli", "analyze", str(png)], check=True, capture_output=True)
        print(f"\nend-to-end `jpegtrace analyze` of a 1 MP PNG: {time.perf_counter() - start:.2f} s wall")


if __name__ == "__main__":
    main()
