"""Fuzz jpegtrace's image loader: random bytes and corrupted valid files, many thousands of them.

Each input is written to a file and read with :func:`jpegtrace.read_image`. The only outcomes
allowed are a sane array or :class:`jpegtrace.ImageReadError`; anything else (another exception,
a hang, a wrong array) is a failure, saved under ``fuzz/failures/`` to reproduce.

    python fuzz/fuzz_loader.py --runs 20000 --seed 1

Prints the count of each outcome and exits 1 if anything failed. The seeds and mutations are
those of tests/test_fuzz.py, which runs a few hundred examples in the test suite.
"""

from __future__ import annotations

import argparse
import collections
import random
import re
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

import numpy as np  # noqa: E402
from test_fuzz import MAGIC, MAX_PIXELS, SEEDS, fix_png_crcs  # noqa: E402

from jpegtrace import ImageReadError, read_image  # noqa: E402

HANG_SECONDS = 20


class Hang(Exception):
    pass


def mutate(rng: random.Random) -> tuple[str, bytes]:
    """One fuzz input and a label saying how it was made."""
    kind = rng.random()
    if kind < 0.1:
        return "random", rng.randbytes(rng.randint(0, 4096))
    if kind < 0.2:
        return "magic+random", rng.choice(MAGIC) + rng.randbytes(rng.randint(0, 2048))
    name = rng.choice(sorted(SEEDS))
    data = bytearray(SEEDS[name])
    for _ in range(rng.choice((1, 1, 2, 4, 8, 32))):
        op = rng.random()
        if op < 0.5 and data:  # overwrite bytes, often with extreme values
            at = rng.randrange(len(data))
            data[at:at + 1] = bytes([rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))])
        elif op < 0.65 and data:  # overwrite a 16/32-bit field with a large number (sizes, offsets, lengths)
            at = rng.randrange(len(data))
            width = rng.choice((2, 4))
            value = rng.choice((0, 1, 0xFFFF, 0x7FFF, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(1 << (8 * width))))
            data[at:at + width] = (value % (1 << (8 * width))).to_bytes(width, rng.choice(("big", "little")))
        elif op < 0.75:  # insert junk
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.randbytes(rng.randint(1, 64))
        elif op < 0.85 and len(data) > 1:  # delete a span
            at = rng.randrange(len(data))
            del data[at:at + rng.randint(1, 64)]
        elif data:  # duplicate a span
            at = rng.randrange(len(data))
            data[at:at] = data[at:at + rng.randint(1, 256)]
    if rng.random() < 0.2:
        del data[rng.randrange(len(data) + 1):]
    data = bytes(data)
    if name.startswith("png") and rng.random() < 0.5:
        data = fix_png_crcs(data)
        name += "+crc"
    return name, data


def category(reason: str) -> str:
    reason = re.sub(r"\d[\d,]*", "N", reason)
    return reason.split(":")[0].split("(")[0].strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                        help=f"pixel limit passed to read_image (default {MAX_PIXELS}, as in the tests)")
    parser.add_argument("--save-slowest", metavar="FILE", help="write the slowest input here")
    parser.add_argument("--failures", default=str(ROOT / "fuzz" / "failures"))
    args = parser.parse_args()

    rng = random.Random(args.seed)
    outcomes: collections.Counter[str] = collections.Counter()
    by_source: collections.Counter[str] = collections.Counter()
    failures = 0
    slowest = (0.0, "", "", b"")

    def alarm(signum, frame):
        raise Hang()

    signal.signal(signal.SIGALRM, alarm)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.img"
        for run in range(args.runs):
            source, data = mutate(rng)
            path.write_bytes(data)
            t0 = time.perf_counter()
            signal.alarm(HANG_SECONDS)
            try:
                array, _ = read_image(path, max_pixels=args.max_pixels)
                ok = (array.dtype in (np.uint8, np.uint16) and array.size > 0
                      and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)))
                outcome = "decoded" if ok else "FAILURE: bad array"
            except ImageReadError as exc:
                outcome = f"refused: {category(exc.reason)}"
                if not exc.reason or "\n" in exc.reason or exc.path != str(path):
                    outcome = "FAILURE: malformed ImageReadError"
            except Hang:
                outcome = f"FAILURE: no answer within {HANG_SECONDS} s"
            except Exception as exc:  # noqa: BLE001 -- exactly what the fuzzer looks for
                outcome = f"FAILURE: {type(exc).__name__}: {exc}"[:200]
            finally:
                signal.alarm(0)
            took = time.perf_counter() - t0
            if took > slowest[0]:
                slowest = (took, source, outcome, data)
            outcomes[outcome] += 1
            by_source[source.split("+")[0]] += 1
            if outcome.startswith("FAILURE"):
                failures += 1
                out = Path(args.failures)
                out.mkdir(parents=True, exist_ok=True)
                (out / f"run{run}-{source}.bin").write_bytes(data)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.runs} inputs (seed {args.seed}, max_pixels {args.max_pixels}) in {elapsed:.0f} s; "
          f"peak RSS {peak:.0f} MiB")
    print(f"slowest input: {slowest[0] * 1000:.0f} ms, {len(slowest[3])} bytes from {slowest[1]}: {slowest[2]}")
    if args.save_slowest:
        Path(args.save_slowest).write_bytes(slowest[3])
    print("inputs by source: " + ", ".join(f"{k} {v}" for k, v in sorted(by_source.items())))
    for outcome, count in outcomes.most_common():
        print(f"{count:7d}  {outcome}")
    print(f"failures: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
