"""The shipped network on every backend and precision, side by side in one run (issue 24).

    PYTHONPATH=src python benchmarks/bench_backends.py [--sizes 0.26,1,4] [--reps 3] [--json FILE]

Paths: jpegtrace's streaming torch engine (fp32, and bf16 where the CPU has native BF16), ONNX Runtime
(fp32, the graph of ``jpegtrace export``, in 1024-pixel tiles with halos) and OpenVINO (fp32 and bf16,
the graph of :mod:`jpegtrace.nn.openvino`), each where installed, and the default path
(``backend='auto', precision='auto'``). Per image size: the best of ``--reps`` timings of
:func:`jpegtrace.analysis.predict_maps`, the ratio to the fastest path, the network's GFLOP/s as a
share of the fp32 ``torch.mm`` rate measured in the same run, and the largest per-pixel QF difference
to torch fp32. Then the end-to-end wall time of ``jpegtrace analyze`` on a 1 MP PNG in a fresh
process (start-up, decode, grid check, evidence, table, network, summary), best of ``--reps``: of the
QF-80 JPEG's pixels (whose tables, chroma and double-JPEG test also run) and of the photo never compressed.
``--baseline REV`` times the end-to-end runs of the repository at ``REV`` too (``git archive``, its own
shipped model), alternating with this one's, for a ratio measured in the same run. ``--only-end-to-end``
skips the backends' table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
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
from jpegtrace.nn import backends
from jpegtrace.nn.engine import bf16_is_fast
from jpegtrace.nn.qfnet import flops_per_pixel
from jpegtrace.nn.weights import load_weights

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_name, matmul_rate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_image(megapixels: float, *, jpeg: bool = True) -> np.ndarray:
    """scikit-image's astronaut resized to ``megapixels``, as a QF-80 JPEG decodes it (or never compressed)."""
    from skimage import data

    side = int(round(np.sqrt(megapixels * 1e6)))
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((side, side), Image.LANCZOS))
    return jpeg_compress(photo, 80) if jpeg else photo


def best_of(reps: int, run) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(reps):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return min(times), out


def end_to_end(reps: int, *, jpeg: bool = True, sources: tuple[Path, ...] = (ROOT / "src",)) -> list[float]:
    """Best wall time of ``jpegtrace analyze`` on a 1 MP PNG in a fresh process, per source tree (the runs of
    the trees alternate): of a JPEG's pixels (the tables, chroma and double-JPEG test run) or of a
    never-compressed photo. Each tree's bytecode is compiled first, as ``pip install`` does for a user."""
    for source in sources:  # as installed: the modules' bytecode compiled once, not at every start
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(source)], check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as folder:
        png = Path(folder) / "photo.png"
        Image.fromarray(test_image(1.0, jpeg=jpeg)).save(png)
        times = [[] for _ in sources]
        for _ in range(reps):
            for source, runs in zip(sources, times):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "jpegtrace.cli", "analyze", str(png)], check=True,
                               capture_output=True, env={**os.environ, "PYTHONPATH": str(source)})
                runs.append(time.perf_counter() - start)
    return [min(runs) for runs in times]


def unpacked(revision: str, folder: str) -> Path:
    """The ``src`` folder of the repository at ``revision``, unpacked into ``folder`` with ``git archive``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return Path(folder) / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0.26,1,4", help="image sizes in megapixels")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", help="append the results as one JSON line to this file")
    parser.add_argument("--baseline", metavar="REV", help="also time the end-to-end runs of the repository at REV")
    parser.add_argument("--only-end-to-end", action="store_true", help="only the end-to-end runs")
    args = parser.parse_args()
    model = load_weights()
    installed = backends.installed_backends()
    paths = [("torch", "fp32")]
    if bf16_is_fast("cpu"):
        paths.append(("torch", "bf16"))
    if "onnxruntime" in installed:
        paths.append(("onnxruntime", "fp32"))
    if "openvino" in installed:
        paths += [("openvino", "fp32")] + ([("openvino", "bf16")] if bf16_is_fast("cpu") else [])
    default = backends.resolve(model)
    device = torch.device("cpu")
    matmul = matmul_rate(device)
    flops = flops_per_pixel(model.config)
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_name()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; fp32 matmul {matmul:.1f} GFLOP/s; default path: {default}\n")
    print("| MP | backend | precision | ms | × fastest | GFLOP/s | of matmul | max pixel QF diff to torch fp32 |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    rows = []
    for megapixels in ([] if args.only_end_to_end else (float(s) for s in args.sizes.split(","))):
        image = test_image(megapixels)
        results = {}
        for backend, precision in paths:
            predict_maps(model, image[:128, :128], backend=backend, precision=precision)  # warm-up, graph build
            results[(backend, precision)] = best_of(args.reps, lambda: predict_maps(
                model, image, backend=backend, precision=precision))
        fastest = min(seconds for seconds, _ in results.values())
        reference = results[("torch", "fp32")][1][0]
        for (backend, precision), (seconds, maps) in results.items():
            rate = flops * image.shape[0] * image.shape[1] / seconds / 1e9  # GFLOP/s, as matmul_rate
            row = {"megapixels": round(image.shape[0] * image.shape[1] / 1e6, 3), "backend": backend,
                   "precision": precision, "seconds": seconds, "of_fastest": seconds / fastest,
                   "of_matmul": rate / matmul, "max_pixel_qf_diff": 100 * float(np.abs(maps[0] - reference).max()),
                   "default": (backend, precision) == default}
            rows.append(row)
            mark = " (default)" if row["default"] else ""
            print(f"| {row['megapixels']:g} | {backend}{mark} | {precision} | {1000 * seconds:.0f} | "
                  f"{seconds / fastest:.2f} | {rate:.0f} | {100 * rate / matmul:.0f} % | "
                  f"{row['max_pixel_qf_diff']:.3f} |", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        sources = (ROOT / "src",) + ((unpacked(args.baseline, folder),) if args.baseline else ())
        walls = end_to_end(args.reps, sources=sources)
        clean_walls = end_to_end(args.reps, jpeg=False, sources=sources)
    wall, clean_wall = walls[0], clean_walls[0]
    print(f"\nend-to-end `jpegtrace analyze` of a 1 MP PNG (default settings, fresh process, best of {args.reps}): "
          f"{wall:.2f} s wall for a QF-80 JPEG's pixels, {clean_wall:.2f} s for a never-compressed photo")
    baseline = None
    if args.baseline:
        baseline = {"revision": args.baseline, "analyze_1mp_seconds": walls[1], "analyze_1mp_clean_seconds": clean_walls[1]}
        print(f"the repository at {args.baseline}, alternating with it: {walls[1]:.2f} s and {clean_walls[1]:.2f} s "
              f"({walls[1] / wall:.2f}x and {clean_walls[1] / clean_wall:.2f}x this one's time)")
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                                "cpu": cpu_name(), "threads": torch.get_num_threads(), "matmul_gflops": matmul,
                                "default": list(default), "rows": rows, "analyze_1mp_seconds": wall,
                                "analyze_1mp_clean_seconds": clean_wall,
                                **({"baseline": baseline} if baseline else {})}) + "\n")


if __name__ == "__main__":
    main()
