"""What a whole analysis costs now against an earlier version of jpegtrace, in the same run (issue 20's bar).

    PYTHONPATH=src python benchmarks/bench_analysis_cost.py [--baseline 30c06f6^] [--reps 3] [--json FILE]

Issue 20 asks that the inference cost stay within 10 % of what it was when the issue was filed. The
baseline is the repository at ``--baseline`` (default ``30c06f6^``, the last commit before the issue's
first change), unpacked with ``git archive`` into a temporary folder with its own shipped model. Each
version analyses the same images in a child process of its own (``jpegtrace.analyze(array, model)``,
default settings, the model loaded once, 2 threads): a 1 MP photo never compressed, its 4:2:0 JPEG at
QF 85, and a collage (a QF-80 disc pasted into it). The versions alternate, best of ``--reps`` per image;
the child also times the network alone (``predict_maps``, default backend), so the table shows what the
analysis around it adds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(2)
import jpegtrace
model = jpegtrace.load_model()
images = dict(np.load(sys.argv[1]))
out = {}
for name, image in images.items():
    jpegtrace.analyze(image, model)  # warm: caches, compiled graphs
    start = time.perf_counter(); jpegtrace.analyze(image, model); whole = time.perf_counter() - start
    start = time.perf_counter(); jpegtrace.predict_maps(model, image); network = time.perf_counter() - start
    out[name] = {"analysis_s": whole, "network_s": network}
print(json.dumps(out))
"""


def test_images() -> dict[str, np.ndarray]:
    from skimage import data

    from jpegtrace.jpeg import jpeg_compress

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((1024, 1024), Image.LANCZOS))
    jpeg = jpeg_compress(photo, 85, "4:2:0")
    yy, xx = np.mgrid[:1024, :1024]
    disc = (yy - 400) ** 2 + (xx - 600) ** 2 < 200 ** 2
    collage = photo.copy()
    collage[disc] = jpeg_compress(photo, 80, "4:2:0")[disc]
    return {"clean 1 MP": photo, "JPEG QF 85": jpeg, "collage": collage}


def run_child(src: Path, images: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, "-c", CHILD, str(images)], env=env, check=True,
                            capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="30c06f6^", help="git revision to compare with")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", help="append the results as one JSON line to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        archive = folder / "baseline.tar"
        subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), args.baseline, "src"], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(folder / "baseline", filter="data")
        images = folder / "images.npz"
        np.savez(images, **test_images())
        trees = {"baseline": folder / "baseline" / "src", "now": ROOT / "src"}
        best: dict = {}
        for _ in range(args.reps):
            for version, src in trees.items():
                for name, times in run_child(src, images).items():
                    slot = best.setdefault(version, {}).setdefault(name, {k: float("inf") for k in times})
                    for k, v in times.items():
                        slot[k] = min(slot[k], v)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"# {cpu_name()}, 2 threads; baseline {args.baseline}, now {commit}; best of {args.reps}\n")
    print("| image | baseline: analysis s (network s) | now: analysis s (network s) | now / baseline |")
    print("|---|---:|---:|---:|")
    for name in best["now"]:
        b, n = best["baseline"][name], best["now"][name]
        print(f"| {name} | {b['analysis_s']:.3f} ({b['network_s']:.3f}) | {n['analysis_s']:.3f} ({n['network_s']:.3f}) "
              f"| {n['analysis_s'] / b['analysis_s']:.2f} |")
    if args.json:
        with open(args.json, "a", encoding="utf-8") as f:
            f.write(json.dumps({"cpu": cpu_name(), "baseline": args.baseline, "now": commit, "reps": args.reps,
                                "best": best}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
