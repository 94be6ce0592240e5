"""The Ray engine of ``jpegtrace assess`` against the local engine on the same generated images (issue 23).

Generates ``--images`` PNGs of ``--min-mp`` to ``--max-mp`` megapixels in two class folders (half
of them JPEG-origin: JPEG-compressed at QF 50-95, decoded and saved as PNG) and ``--bad`` bad files
among them (truncated, empty, text, a broken header), then audits them, each in a child process
of its own:

- ``local``: :func:`jpegtrace.eval.audit.assess_images`, one process, one torch thread;
- ``ray-N`` for each N of ``--workers``: a local Ray (``ray.init`` with this machine's CPUs) and
  :func:`jpegtrace.distributed.pipeline.run_ray_audit` with N network workers;
- ``ray-gpu``: one worker with one GPU, when torch sees a GPU (and ``local-gpu`` beside it).

For each it reports images/s (wall time of the audit, Ray's start excluded and given apart), CPU
time per image (every process of the run: the Ray daemons, the workers, the driver; sampled from
``/proc``), and the peak resident memory of each worker (``VmHWM``). Ray's overhead is its CPU time
per image at 2 workers against the local engine's; the issue's bound is 15 %. The rows of every
Ray run are checked against the local engine's records.

    PYTHONPATH=src python benchmarks/bench_ray.py                           # 200 images, 0.25-1 MP
    PYTHONPATH=src python benchmarks/bench_ray.py --images 10 --max-mp 0.05 # a quick check that it runs
    PYTHONPATH=src python benchmarks/bench_ray.py --json benchmarks/results/ray.jsonl  # append the results

Linux only (``/proc``). Exits 1 when the overhead at 2 workers is over the bound.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OVERHEAD_BOUND = 0.15
_TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# The images
# --------------------------------------------------------------------------------------------

def make_images(folder: Path, *, n: int, min_mp: float, max_mp: float, n_bad: int, seed: int = 0) -> dict:
    """Write the corpus into ``folder`` (``jpeg/`` and ``clean/``, the bad files among them); returns what it made."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    made = {"images": 0, "pixels": 0, "bad": []}
    for label in ("jpeg", "clean"):
        (folder / label).mkdir(parents=True, exist_ok=True)
    for i in range(n - n_bad):
        pixels = rng.uniform(min_mp, max_mp) * 1e6
        aspect = rng.choice([4 / 3, 3 / 4, 1.0, 3 / 2])
        height = max(16, int(round((pixels / aspect) ** 0.5)))
        width = max(16, int(round(height * aspect)))
        y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
        x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
        image = np.empty((height, width, 3), dtype=np.uint8)
        for c in range(3):
            f = rng.uniform(2, 12, size=4)
            value = (128 + 50 * np.sin(2 * np.pi * (f[0] * x + f[1] * y) + rng.uniform(0, 6))
                     + 30 * np.cos(2 * np.pi * (f[2] * x * y + f[3] * x)) + rng.normal(0, 6, (height, width)))
            image[:, :, c] = np.clip(value, 0, 255)
        label = "jpeg" if i % 2 == 0 else "clean"
        if label == "jpeg":
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, "JPEG", quality=int(rng.integers(50, 96)))
            image = np.asarray(Image.open(buffer).convert("RGB"))
        Image.fromarray(image).save(folder / label / f"{i:04d}.png")
        made["images"] += 1
        made["pixels"] += height * width
    sample = (folder / "clean").iterdir().__next__().read_bytes() if n - n_bad > 1 else b"\x89PNG\r\n\x1a\n"
    bad = [("truncated.png", sample[: max(64, len(sample) // 3)]), ("empty.png", b""),
           ("text.png", b"not an image\n"), ("header.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)]
    for k in range(n_bad):
        name, data = bad[k % len(bad)]
        path = folder / ("jpeg" if k % 2 else "clean") / f"bad{k:02d}_{name}"
        path.write_bytes(data)
        made["bad"].append(path.relative_to(folder).as_posix())
    return made


# --------------------------------------------------------------------------------------------
# Measuring the processes of a run from /proc
# --------------------------------------------------------------------------------------------

def _proc_table() -> dict[int, tuple[int, float, str]]:
    """``pid -> (ppid, CPU seconds, command line)`` of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except (OSError, ValueError):
            continue
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, cmdline.strip())
    return table


def _peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class ProcessSampler:
    """CPU seconds and peak memory of this process and all its descendants, sampled every ``interval``.

    A process's CPU time is the last value seen, so one that exits between samples loses at most
    ``interval`` seconds of it; Ray's workers live for the whole run.
    """

    def __init__(self, interval: float = 0.25):
        self.interval, self.root = interval, os.getpid()
        self.cpu: dict[int, float] = {}
        self.base: dict[int, float] = {}
        self.peak: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _descendants(self, table) -> set[int]:
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        found, stack = set(), [self.root]
        while stack:
            pid = stack.pop()
            found.add(pid)
            stack.extend(children.get(pid, ()))
        return found

    def sample(self) -> None:
        table = _proc_table()
        for pid in self._descendants(table):
            if pid not in table:
                continue
            _, seconds, cmdline = table[pid]
            self.cpu[pid] = seconds
            self.names[pid] = cmdline
            rss = _peak_rss_mib(pid)
            if rss is not None:
                self.peak[pid] = max(rss, self.peak.get(pid, 0.0))

    def start(self) -> None:
        """Take the CPU times now as the start (processes already there count from here)."""
        self.sample()
        self.base = dict(self.cpu)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self.sample()
        used = {pid: seconds - self.base.get(pid, 0.0) for pid, seconds in self.cpu.items()}
        workers = [pid for pid, name in self.names.items() if name.startswith("ray::")]
        return {
            "cpu_s_total": round(sum(used.values()), 2),
            "cpu_s_workers": round(sum(used[p] for p in workers), 2),
            "cpu_s_driver": round(used.get(self.root, 0.0), 2),
            "n_processes": len(used),
            "worker_peak_rss_mib": sorted((round(self.peak[p], 1) for p in workers if p in self.peak), reverse=True),
            "driver_peak_rss_mib": round(self.peak.get(self.root, 0.0), 1),
        }


# --------------------------------------------------------------------------------------------
# The runs (each in a child process)
# --------------------------------------------------------------------------------------------

def child_local(data: Path, out: Path, model_path: str | None, device: str) -> dict:
    import torch

    from jpegtrace.analysis import load_model
    from jpegtrace.eval.audit import assess_images
    from jpegtrace.io import list_images
    from jpegtrace.record import failure_record

    torch.set_num_threads(1)
    model = load_model(model_path, device=device)
    files = {p.relative_to(data).as_posix(): p for p in list_images(data, recursive=True)}
    t0, c0 = time.perf_counter(), os.times()
    records, failures = assess_images(model, files, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall, c1 = time.perf_counter() - t0, os.times()
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "records.jsonl", "w") as f:
        for r in [r.record for r in records] + [failure_record(x.file, x.reason) for x in failures]:
            f.write(json.dumps(r) + "\n")
    return {"files": len(files), "wall_s": round(wall, 2),
            "cpu_s_total": round((c1.user - c0.user) + (c1.system - c0.system), 2),
            "driver_peak_rss_mib": round(_peak_rss_mib(os.getpid()) or 0.0, 1), "worker_peak_rss_mib": []}


def child_ray(data: Path, out: Path, model_path: str | None, device: str, workers: int, gpus: float) -> dict:
    import ray

    from jpegtrace.analysis import load_model
    from jpegtrace.distributed.pipeline import RayAuditOptions, run_ray_audit
    from jpegtrace.distributed.sources import list_source
    from jpegtrace.distributed.store import ParquetStore

    model = load_model(model_path)
    listing = list_source(str(data), recursive=True)
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
    started = time.perf_counter() - t0
    try:
        sampler = ProcessSampler()
        sampler.start()
        options = RayAuditOptions(weights=None if model_path is None else Path(model_path).read_bytes(),
                                  device=device, num_workers=workers, num_gpus_per_worker=gpus)
        t1 = time.perf_counter()
        counts = run_ray_audit(listing, ParquetStore(out), options, quality_calibration=model.quality_calibration)
        wall = time.perf_counter() - t1
        measured = sampler.stop()
    finally:
        ray.shutdown()
    return {"files": counts.listed, "rows": counts.rows_written, "wall_s": round(wall, 2),
            "ray_start_s": round(started, 2), **measured}


def _row_differences(local_out: Path, ray_out: Path) -> list[str]:
    """``file: field (local -> ray)`` for every record that differs between the two runs (empty: equal)."""
    sys.path.insert(0, str(ROOT / "src"))
    from jpegtrace.distributed.store import ParquetStore

    local = {r["file"]: r for r in map(json.loads, (local_out / "records.jsonl").read_text().splitlines())}
    table = ParquetStore(ray_out).read(["file", "record"])
    ray = {f: json.loads(r) for f, r in zip(table.column("file").to_pylist(), table.column("record").to_pylist())}
    out = []
    for file in sorted(set(local) | set(ray)):
        a, b = local.get(file), ray.get(file)
        if a is None or b is None:
            out.append(f"{file}: only in {'ray' if a is None else 'local'}")
        elif a != b:
            out.extend(f"{file}: {key} ({str(a.get(key))[:80]} -> {str(b.get(key))[:80]})"
                       for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key))
    return out


def _run_child(args, kind: str, out: Path, **extra) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--data", str(args.data_dir), "--child-out", str(out)]
    if args.model:
        command += ["--model", args.model]
    for key, value in extra.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"bench_ray: the {kind} run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=200, help="files in all, bad ones included (default 200)")
    p.add_argument("--min-mp", type=float, default=0.25, help="smallest image in megapixels (default 0.25)")
    p.add_argument("--max-mp", type=float, default=1.0, help="largest image in megapixels (default 1)")
    p.add_argument("--bad", type=int, default=4, help="bad files among them (default 4)")
    p.add_argument("--workers", default="1,2", help="Ray worker counts to run, comma-separated (default 1,2)")
    p.add_argument("--model", help="safetensors weights (default: the shipped model)")
    p.add_argument("--no-gpu", action="store_true", help="skip the GPU runs even when a GPU is there")
    p.add_argument("--json", help="append the results as one JSON line to this file")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    p.add_argument("--n-workers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--gpus", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        if args.child == "local":
            result = child_local(Path(args.data), Path(args.child_out), args.model, args.device)
        else:
            result = child_ray(Path(args.data), Path(args.child_out), args.model, args.device, args.n_workers,
                               args.gpus)
        print(json.dumps(result))
        return 0

    import torch

    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        tmp = Path(tmp)
        args.data_dir = tmp / "data"
        made = make_images(args.data_dir, n=args.images, min_mp=args.min_mp, max_mp=args.max_mp, n_bad=args.bad)
        print(f"# {made['images']} images ({made['pixels'] / 1e6:.1f} MP in all) and {len(made['bad'])} bad files; "
              f"{os.cpu_count()} CPUs", flush=True)
        runs = {"local": _run_child(args, "local", tmp / "local")}
        for workers in [int(w) for w in args.workers.split(",") if w]:
            name = f"ray-{workers}"
            runs[name] = _run_child(args, "ray", tmp / name, n_workers=workers)
            differences = _row_differences(tmp / "local", tmp / name)
            runs[name]["rows_equal_local"] = not differences
            runs[name]["row_differences"] = differences[:20]
            for line in differences[:20]:
                print(f"  {name} differs: {line}", flush=True)
        if torch.cuda.is_available() and not args.no_gpu:
            runs["local-gpu"] = _run_child(args, "local", tmp / "local-gpu", device="cuda")
            runs["ray-gpu"] = _run_child(args, "ray", tmp / "ray-gpu", n_workers=1, gpus=1.0)
    n = runs["local"]["files"]
    print(f"{'run':<10} {'images/s':>9} {'CPU s/image':>12} {'wall s':>8} {'peak MiB per worker':>22}")
    for name, run in runs.items():
        run["images_per_s"] = round(n / run["wall_s"], 3) if run["wall_s"] else None
        run["cpu_s_per_image"] = round(run["cpu_s_total"] / n, 4)
        peak = run["worker_peak_rss_mib"] or [run["driver_peak_rss_mib"]]
        print(f"{name:<10} {run['images_per_s']:>9.3f} {run['cpu_s_per_image']:>12.4f} {run['wall_s']:>8.1f} "
              f"{max(peak):>15.0f} (max)" + ("" if run.get("rows_equal_local", True) else "  ROWS DIFFER"))
    overhead = None
    if "ray-2" in runs:
        overhead = runs["ray-2"]["cpu_s_per_image"] / runs["local"]["cpu_s_per_image"] - 1
        print(f"Ray's overhead at 2 workers: {100 * overhead:+.1f} % CPU time per image against the local engine "
              f"(bound {100 * OVERHEAD_BOUND:.0f} %); speed-up {runs['ray-2']['images_per_s'] / runs['local']['images_per_s']:.2f}x")
    if args.json:
        line = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "machine": platform.node(), "cpus": os.cpu_count(), "torch": torch.__version__,
                "images": args.images, "min_mp": args.min_mp, "max_mp": args.max_mp, "bad": args.bad,
                "overhead_2_workers": None if overhead is None else round(overhead, 4), "runs": runs}
        with open(args.json, "a") as f:
            f.write(json.dumps(line) + "\n")
    ok = all(run.get("rows_equal_local", True) for run in runs.values())
    return 0 if ok and (overhead is None or overhead <= OVERHEAD_BOUND) else 1


if __name__ == "__main__":
    sys.exit(main())
