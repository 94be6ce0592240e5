"""Shared helpers of the benchmarks: machine description, timing, the matrix-multiply limit."""

from __future__ import annotations

import datetime
import os
import platform
import time
from pathlib import Path

import torch


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine(device: torch.device) -> dict:
    """What the numbers were measured on."""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in cpu_flags(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def start(device: torch.device, threads: int | None, cpu_clock: bool) -> dict:
    """Set torch's threads and the clock, print what the numbers are measured on and return it."""
    if threads:
        torch.set_num_threads(threads)
    if cpu_clock:
        use_cpu_clock()
    info = machine(device)
    print(f"# {info['date']}  {info['cpu']}  ({info['logical_cpus']} logical CPUs, torch {info['torch']}, "
          f"{info['torch_threads']} threads)" + (f"  GPU: {info['gpu']}" if "gpu" in info else "")
          + ("  [timed by CPU time]" if cpu_clock else ""))
    return info


class OtherLoad:
    """Share of the machine's CPU time that other processes used since ``start()``.

    Timings taken while other programs run are low; benchmarks print this beside each number
    so that disturbed ones can be recognised (and rerun). Linux only; None elsewhere.
    """

    def __init__(self):
        self.start()

    @staticmethod
    def _busy_seconds() -> float | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_seconds() -> float:
        t = os.times()
        return t.user + t.system

    def start(self) -> None:
        self._busy, self._own, self._wall = self._busy_seconds(), self._own_seconds(), time.perf_counter()

    def share(self) -> float | None:
        busy = self._busy_seconds()
        wall = time.perf_counter() - self._wall
        if busy is None or self._busy is None or wall <= 0:
            return None
        others = (busy - self._busy) - (self._own_seconds() - self._own)
        return max(0.0, others / (wall * (os.cpu_count() or 1)))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: What :func:`timed` measures: wall-clock time, or this process's CPU time ("cpu"), which is
#: not inflated when other programs share the cores -- meaningful with one torch thread only.
CLOCK = {"clock": time.perf_counter}


def use_cpu_clock() -> None:
    """Time by process CPU time with a single torch thread (per-core rates, robust to other load)."""
    torch.set_num_threads(1)
    CLOCK["clock"] = time.process_time


def timed(fn, device: torch.device, reps: int = 3, warmup: int = 1):
    """``(seconds, result)``: the fastest of ``reps`` timed calls of ``fn`` after ``warmup``
    untimed ones, and the last call's result. The minimum is the least disturbed by other work."""
    clock = CLOCK["clock"]
    for _ in range(warmup):
        fn()
    synchronize(device)
    best, result = float("inf"), None
    for _ in range(max(1, reps)):
        start = clock()
        result = fn()
        synchronize(device)
        best = min(best, clock() - start)
    return best, result


def best_time(fn, device: torch.device, reps: int = 3, warmup: int = 1) -> float:
    """Seconds of the fastest of ``reps`` timed calls of ``fn`` (see :func:`timed`)."""
    return timed(fn, device, reps, warmup)[0]


def matmul_rate(device: torch.device, n: int | None = None, reps: int = 3, dtype=torch.float32) -> float:
    """Sustained rate of a large square matrix multiply in GFLOP/s: the practical arithmetic limit."""
    if n is None:
        n = 8192 if device.type == "cuda" else 4096
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    if device.type == "cuda" and dtype == torch.float32:
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False  # true fp32, as the network runs
        try:
            seconds = best_time(lambda: torch.mm(a, b, out=out), device, reps)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous
    else:
        seconds = best_time(lambda: torch.mm(a, b, out=out), device, reps)
    return 2 * n ** 3 / seconds / 1e9
