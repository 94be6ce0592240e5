"""Training throughput: the data pipeline alone, full training steps, and the time steps wait for data.

Measures, in one run on one machine:

* the fp32 ``torch.mm`` rate (GFLOP/s), the practical arithmetic limit;
* patches per second of the data pipeline alone (:class:`jpegtrace.train.data.TrainingBatches`: crop,
  flips, JPEG encode and decode through Pillow), in this process and through the
  ``DataLoader`` with the given number of workers (default: ``TrainConfig``'s);
* one training step alone on a fixed batch (the loop's arithmetic: forward, both losses,
  backward, Adam), per precision: its achieved GFLOP/s (forward and backward counted as 3x the
  forward FLOPs) against the matmul rate;
* full training steps of :func:`jpegtrace.train.train` (the real loop and loader), per
  precision: steps and patches per second and the share of step time spent waiting for data
  (from the ``data_wait`` column of ``log.csv``; must stay below 5 %).

Usage::

    PYTHONPATH=src python benchmarks/bench_training.py --data ../shared/data/clean
    PYTHONPATH=src python benchmarks/bench_training.py --precision fp32,bf16 --steps 60

Without ``--data`` (or when the folder is missing) scikit-image's sample photos are used.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import OtherLoad, matmul_rate, start, timed
from PIL import Image

from jpegtrace.io import list_images, load_rgb
from jpegtrace.nn.qfnet import QFNet, flops_per_pixel
from jpegtrace.train.config import TrainConfig
from jpegtrace.train.data import TrainingBatches
from jpegtrace.train.loop import map_losses, train


def sample_folder(tmp: Path) -> Path:
    """A folder of never-compressed PNGs from scikit-image's sample data."""
    from skimage import data

    folder = tmp / "clean"
    folder.mkdir()
    for name in ("astronaut", "chelsea", "coffee", "rocket", "coins"):
        array = getattr(data, name)()
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        image = Image.fromarray(array)
        image.resize((image.width // 2, image.height // 2), Image.LANCZOS).save(folder / f"{name}.png")
    return folder


def pipeline_rate(batches: TrainingBatches, n: int, workers: int) -> float:
    """Patches per second the loader delivers when nothing else runs (``workers=0``: this process)."""
    loader = torch.utils.data.DataLoader(batches, batch_size=None, sampler=range(10_000, 10_000 + n + workers),
                                         num_workers=workers, prefetch_factor=4 if workers else None)
    iterator = iter(loader)
    for _ in range(workers):  # let the workers start before timing
        next(iterator)
    start = time.perf_counter()
    count = sum(patches.shape[0] for patches, _ in iterator)
    return count / (time.perf_counter() - start)


def step_alone(config: TrainConfig, patches: torch.Tensor, labels: torch.Tensor, reps: int) -> float:
    """Seconds of one optimizer step on a fixed batch: the training loop's arithmetic, without the loader."""
    device = torch.device(config.device)
    model = QFNet(config.net()).to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")
    patches, labels = patches.to(device), labels.to(device)

    def step():
        x = patches.to(torch.float32, memory_format=torch.channels_last).div_(255.0)
        with autocast:
            prediction = model(x)
        quality_loss, flag_loss = map_losses(prediction, labels)
        optimizer.zero_grad(set_to_none=True)
        (quality_loss + flag_loss).backward()
        optimizer.step()

    return timed(step, device, reps, warmup=2)[0]


def _load_note(load: OtherLoad, workers: int = 0) -> str:
    busy = load.share()
    if busy is None:
        return ""
    return f"   (other processes{' incl. the data workers' if workers else ''}: {100 * busy:.0f}% of the CPUs)"


def main(argv=None) -> int:
    defaults = TrainConfig(data="", out="")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder of never-compressed images")
    parser.add_argument("--split", help="split CSV (train images only); default: the folder's split.csv if any")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--cpu-clock", action="store_true",
                        help="one thread; matmul and the step alone timed by process CPU time (per-core rates "
                             "that other load does not distort); the real training loop stays wall-clock")
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help=f"data loader workers (default {defaults.workers}, as TrainConfig)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--patch-size", type=int, default=defaults.patch_size)
    parser.add_argument("--precision", default="fp32,bf16", help="training precisions to time (default fp32,bf16)")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per precision (after 10 warm-up)")
    parser.add_argument("--pipeline-batches", type=int, default=20, help="batches for the pipeline-alone rates")
    parser.add_argument("--json", metavar="FILE", help="append the results as one JSON line to FILE")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    info = start(device, args.threads, args.cpu_clock)
    if args.cpu_clock:
        args.threads = 1
    info["clock"] = "process CPU time, 1 thread (matmul, step alone)" if args.cpu_clock else "wall clock"
    fpp = flops_per_pixel()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = Path(args.data)
        split = args.split or (str(data / "split.csv") if (data / "split.csv").is_file() else None)
        if not data.is_dir():
            data, split = sample_folder(tmp), None
        print(f"# data: {data} ({len(list_images(data, split, 'train' if split else None))} training images), "
              f"batch {args.batch_size} x {args.patch_size}x{args.patch_size}, {args.workers} worker(s)")
        load = OtherLoad()
        limit = matmul_rate(device)
        print(f"fp32 matmul: {limit:.1f} GFLOP/s{_load_note(load)}", flush=True)

        config = TrainConfig(data=str(data), split=split, out="", batch_size=args.batch_size,
                             patch_size=args.patch_size, workers=args.workers, device=args.device,
                             threads=args.threads, val_every=0)
        images = [load_rgb(p) for p in list_images(data, split, "train" if split else None)]
        batches = TrainingBatches(images, args.batch_size, config.synthesis(), seed=0)
        results = {"machine": info, "matmul_gflops": limit, "pipeline": {}, "step_alone": [], "training": []}
        for workers in sorted({0, args.workers}):
            load.start()
            rate = pipeline_rate(batches, args.pipeline_batches, workers)
            results["pipeline"][workers] = rate
            where = "in this process" if workers == 0 else f"{workers} worker(s)"
            print(f"data pipeline alone, {where}: {rate:8.0f} patches/s{_load_note(load, workers)}", flush=True)

        flops_per_step = 3 * fpp * args.batch_size * args.patch_size ** 2  # forward + backward ~ 3x forward
        patches, labels = batches[0]
        for precision in args.precision.split(","):
            load.start()
            seconds = step_alone(dataclasses.replace(config, precision=precision), patches, labels, reps=5)
            row = {"precision": precision, "seconds_per_step": seconds, "gflops": flops_per_step / seconds / 1e9}
            row["of_matmul"] = row["gflops"] / limit
            results["step_alone"].append(row)
            print(f"training step alone {precision}: {1e3 * seconds:6.0f} ms/step  {row['gflops']:6.1f} GFLOP/s "
                  f"({100 * row['of_matmul']:.0f}% of matmul){_load_note(load)}", flush=True)

        for precision in args.precision.split(","):
            out = tmp / f"run-{precision}"
            warmup = 10
            run = dataclasses.replace(config, out=str(out), precision=precision, steps=warmup + args.steps,
                                      log_every=warmup, checkpoint_every=10 ** 9, warmup_steps=5)
            load.start()
            train(run, progress=False)
            with open(out / "log.csv") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) > warmup]
            seconds = sum(float(r["seconds"]) for r in rows)
            waited = sum(float(r["data_wait"]) for r in rows)
            steps = args.steps
            row = {"precision": precision, "steps": steps, "seconds_per_step": seconds / steps,
                   "patches_per_s": steps * args.batch_size / seconds, "data_wait_share": waited / seconds,
                   "gflops": flops_per_step * steps / seconds / 1e9}
            results["training"].append(row)
            print(f"training loop {precision} (wall clock): {1e3 * row['seconds_per_step']:6.0f} ms/step  "
                  f"{row['patches_per_s']:6.1f} patches/s  {row['gflops']:6.1f} GFLOP/s  "
                  f"waiting for data {100 * row['data_wait_share']:.1f}% of step time{_load_note(load, args.workers)}",
                  flush=True)

    load = OtherLoad()
    again = matmul_rate(device)
    print(f"fp32 matmul again: {again:.1f} GFLOP/s{_load_note(load)}")
    results["matmul_gflops_end"] = again
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "a") as f:
            f.write(json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
