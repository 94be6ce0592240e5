"""Peak resident memory of `jpegtrace analyze` on a large image (default 8000 x 5000 = 40 MP).

Writes a synthetic PNG and a random-weights model (memory does not depend on the weights) into a
temporary folder, runs the command-line tool on it in a child process, and reports the child's
peak resident set size (``ru_maxrss`` from ``wait4``) against the 2 GiB bound. A second child
analyses a 1-pixel image to show the fixed cost of Python, torch and the model.

    python benchmarks/bench_memory.py                    # 40 MP, as recorded in benchmarks/RESULTS.md
    python benchmarks/bench_memory.py --size 2000x1500   # a quick run
    python benchmarks/bench_memory.py --maps             # also write the maps and overlay

Exits 1 when the peak is over the bound. On 2 busy CPU cores the 40 MP run takes several minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOUND_MIB = 2048


def synthetic_image(height: int, width: int):
    """Smooth gradients with a little noise: cheap to make and to compress, natural enough to decode."""
    import numpy as np

    rng = np.random.default_rng(0)
    image = np.empty((height, width, 3), dtype=np.uint8)
    cols = np.linspace(0, 255, width, dtype=np.float32)
    for y0 in range(0, height, 500):
        rows = np.arange(y0, min(height, y0 + 500), dtype=np.float32)[:, None]
        block = image[y0:y0 + len(rows)]
        block[:, :, 0] = (cols[None, :] * 0.7 + rows * 0.03) % 256
        block[:, :, 1] = (cols[None, :] * 0.2 + rows * 0.05) % 256
        block[:, :, 2] = (128 + 60 * np.sin(cols[None, :] / 40.0 + rows / 55.0))
        block += rng.integers(0, 4, size=block.shape, dtype=np.uint8)
    return image


def run_child(args: list[str]) -> tuple[int, float, float, str]:
    """Run ``jpegtrace`` with ``args``; return exit code, peak RSS in MiB, seconds and stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-m", "jpegtrace.cli", *args], stdout=out, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode()
    peak_mib = usage.ru_maxrss / 1024  # kilobytes on Linux
    return proc.returncode, peak_mib, seconds, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="8000x5000", help="WIDTHxHEIGHT (default 8000x5000 = 40 MP)")
    parser.add_argument("--tile-size", type=int, default=512)
    parser.add_argument("--maps", action="store_true", help="also write the maps and overlay (--maps)")
    args = parser.parse_args()
    width, height = map(int, args.size.lower().split("x"))

    import torch
    from PIL import Image

    sys.path.insert(0, str(ROOT / "src"))
    from jpegtrace.model import QFNet, save_weights

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        weights = save_weights(QFNet(), tmp / "random.safetensors")
        t0 = time.perf_counter()
        big = tmp / "big.png"
        Image.fromarray(synthetic_image(height, width)).save(big, compress_level=1)
        tiny = tmp / "tiny.png"
        Image.new("RGB", (1, 1)).save(tiny)
        print(f"wrote {width}x{height} PNG ({big.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s")

        code, base_mib, base_s, _ = run_child(["analyze", "--json", "--model", str(weights), str(tiny)])
        if code != 0:
            print("baseline run failed", file=sys.stderr)
            return 2
        extra = ["--maps", str(tmp / "maps")] if args.maps else []
        code, peak_mib, seconds, out = run_child(["analyze", "--json", "--model", str(weights),
                                                  "--tile-size", str(args.tile_size), *extra, str(big)])
        if code != 0:
            print(f"analysis failed (exit {code})", file=sys.stderr)
            return 2
        record = json.loads(out)["images"][0]
        assert (record["height"], record["width"]) == (height, width)

    megapixels = width * height / 1e6
    verdict = "PASS" if peak_mib < BOUND_MIB else "FAIL"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"baseline (1x1 image): peak RSS {base_mib:.0f} MiB in {base_s:.1f} s")
    print(f"{width}x{height} ({megapixels:.1f} MP), tile {args.tile_size}{', with --maps' if args.maps else ''}: "
          f"peak RSS {peak_mib:.0f} MiB in {seconds:.0f} s "
          f"({peak_mib - base_mib:.0f} MiB over baseline, {(peak_mib - base_mib) * 2**20 / (width * height):.1f} "
          f"bytes/pixel)")
    print(f"bound: {BOUND_MIB} MiB -> {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
