"""Peak resident memory of `jpegtrace analyze` on a large image (default 8000 x 5000 = 40 MP).

A first child process writes a synthetic PNG and a random-weights model (memory does not depend
on the weights) into a temporary folder; a second runs the command-line tool on the PNG, and the
benchmark reports that child's peak resident set size against the 2 GiB bound, measured three
ways: ``ru_maxrss`` from ``wait4``, the kernel's ``VmHWM`` read by the child itself at exit, and
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` (the largest child so far), with the wall time.
A third child analyses a 1-pixel image to show the fixed cost of Python, torch and the model.

This process imports only the standard library and holds nothing big: on Linux a child's
``ru_maxrss`` also counts the memory of the parent it was forked from.

    python benchmarks/bench_memory.py                    # 40 MP, as recorded in benchmarks/RESULTS.md
    python benchmarks/bench_memory.py --size 2000x1500   # a quick run
    python benchmarks/bench_memory.py --megapixels 2     # N megapixels, 4:3
    python benchmarks/bench_memory.py --megapixels 64 --maps   # the worst case at the default pixel limit
    python benchmarks/bench_memory.py --maps             # also write the maps and overlay

``jpegtrace.io.DEFAULT_MAX_PIXELS`` rests on the worst case (``--maps`` at the limit: about 23 bytes a
pixel over the fixed cost); images over the limit are analysed with ``--max-pixels`` raised to their
size. Exits 1 when the peak is over the bound. On 2 busy CPU cores the 40 MP run takes several minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
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


#: Runs the CLI, then reports the kernel's high-water mark of its resident memory on stderr.
CHILD = """
import sys
from jpegtrace.cli import main
code = main(sys.argv[1:])
try:
    with open("/proc/self/status") as f:
        sys.stderr.write("".join(line for line in f if line.startswith("VmHWM")))
except OSError:
    pass
sys.exit(code)
"""


def run_child(argv: list[str]) -> tuple[int, float, float | None, float, str]:
    """Run ``argv`` under Python; return exit code, peak RSS and VmHWM in MiB, seconds and stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, *argv], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text, errors = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        sys.stderr.write(errors)
    hwm = [line.split()[1] for line in errors.splitlines() if line.startswith("VmHWM")]
    return proc.returncode, usage.ru_maxrss / 1024, int(hwm[0]) / 1024 if hwm else None, seconds, text


def prepare(folder: Path, width: int, height: int) -> None:
    """Write ``big.png``, ``tiny.png`` and ``random.safetensors`` into ``folder`` (run in a child)."""
    import torch
    from PIL import Image

    from jpegtrace.nn.qfnet import QFNet
    from jpegtrace.nn.weights import save_weights

    torch.manual_seed(0)
    save_weights(QFNet(), folder / "random.safetensors")
    Image.fromarray(synthetic_image(height, width)).save(folder / "big.png", compress_level=1)
    Image.new("RGB", (1, 1)).save(folder / "tiny.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="8000x5000", help="WIDTHxHEIGHT (default 8000x5000 = 40 MP)")
    parser.add_argument("--megapixels", type=float, metavar="N",
                        help="an image of N million pixels, 4:3 (instead of --size)")
    parser.add_argument("--tile-size", type=int, default=512)
    parser.add_argument("--maps", action="store_true", help="also write the maps and overlay (--maps)")
    parser.add_argument("--prepare", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.megapixels is not None:
        if not args.megapixels > 0:
            parser.error("--megapixels must be positive")
        width = max(1, round((args.megapixels * 1e6 * 4 / 3) ** 0.5))
        height = max(1, round(args.megapixels * 1e6 / width))
        args.size = f"{width}x{height}"
    width, height = map(int, args.size.lower().split("x"))
    if args.prepare:
        prepare(Path(args.prepare), width, height)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        code, *_ = run_child([__file__, "--prepare", str(tmp), "--size", args.size])
        if code != 0:
            return 2
        big, tiny, weights = tmp / "big.png", tmp / "tiny.png", tmp / "random.safetensors"
        print(f"wrote {width}x{height} PNG ({big.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s")

        code, base_mib, base_hwm, base_s, _ = run_child(
            ["-c", CHILD, "analyze", "--json", "--model", str(weights), str(tiny)])
        if code != 0:
            print("baseline run failed", file=sys.stderr)
            return 2
        extra = ["--maps", str(tmp / "maps")] if args.maps else []
        extra += ["--max-pixels", str(max(width * height, 1))]  # the default limit would refuse a larger image
        code, peak_mib, hwm_mib, seconds, out = run_child(
            ["-c", CHILD, "analyze", "--json", "--model", str(weights), "--tile-size", str(args.tile_size),
             *extra, str(big)])
        if code != 0:
            print(f"analysis failed (exit {code})", file=sys.stderr)
            return 2
        record = json.loads(out.splitlines()[-1])  # one JSON Lines record
        assert (record["height"], record["width"]) == (height, width)

    children_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    megapixels = width * height / 1e6
    peak = max(peak_mib, hwm_mib or 0)
    verdict = "PASS" if peak < BOUND_MIB else "FAIL"
    hwm = lambda value: f", VmHWM {value:.0f} MiB" if value is not None else ""  # noqa: E731
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"baseline (1x1 image): peak RSS {base_mib:.0f} MiB{hwm(base_hwm)} in {base_s:.1f} s")
    print(f"{width}x{height} ({megapixels:.1f} MP), tile {args.tile_size}{', with --maps' if args.maps else ''}: "
          f"peak RSS {peak_mib:.0f} MiB{hwm(hwm_mib)} in {seconds:.0f} s "
          f"({peak - base_mib:.0f} MiB over baseline = {(peak - base_mib) * 2**20 / (width * height):.1f} "
          f"bytes/pixel)")
    print(f"largest child (getrusage RUSAGE_CHILDREN, the image writer included): {children_mib:.0f} MiB")
    print(f"bound: {BOUND_MIB} MiB -> {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
