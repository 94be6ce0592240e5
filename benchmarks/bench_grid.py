"""Cost of the JPEG grid check (:func:`jpegtrace.grid.find_jpeg_grid`) beside the network.

For images of about 0.25, 1, 4 and 16 MP (a made-up textured image, JPEG-compressed at QF 98 so
that the check has a grid to find), prints the check's throughput in megapixels per second, its
peak traced Python memory (it works on bands of at most ``CHUNK_BLOCKS`` blocks, and looks at no
more than ``DEFAULT_MAX_BLOCKS`` blocks per grid offset, so both its time and its memory stop
growing past about 1 MP), and, at 1 MP, the network's fp32 throughput and the share of a whole
``analyze`` the check adds. Then the same for the clipped blocks' flag
(:func:`jpegtrace.grid.clipped_block_flag`), which ``analyze`` computes where a grid was found, on
the same image with salt highlights at 255 over half of it (about 40 % of the blocks with 8 or
more clipped pixels) and on the unclipped image, where it stops after counting clipped pixels.

    PYTHONPATH=src python benchmarks/bench_grid.py
"""

from __future__ import annotations

import argparse
import tracemalloc

import numpy as np
import torch
from common import OtherLoad, start, timed

from jpegtrace.analysis import predict_maps
from jpegtrace.grid.check import find_jpeg_grid
from jpegtrace.grid.clipped import clipped_block_flag
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.nn.qfnet import QFNet

SIDES = {"0.25 MP": (512, 512), "1 MP": (1000, 1000), "4 MP": (2000, 2000), "16 MP": (4000, 4000)}


def made_jpeg(height: int, width: int, clipped: bool = False) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 120 + 60 * np.sin(xx / 13.0) * np.cos(yy / 9.0)
    rgb = np.clip(base[:, :, None] + rng.normal(0, 4, (height, width, 3)), 1, 254).astype(np.uint8)
    if clipped:
        highlights = np.sin(xx / 11.0 + 1.3) * np.sin(yy / 7.0) > 0
        rgb[highlights & (rng.random((height, width)) < 0.2)] = 255
    return jpeg_compress(rgb, 98, "4:4:4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    device = torch.device("cpu")
    start(device, args.threads, cpu_clock=False)
    load = OtherLoad()
    print("| image | grid check MP/s | peak traced memory | grid found | network fp32 MP/s | check's share of analyze |")
    print("|---|---:|---:|---|---:|---:|")
    model = QFNet().eval()  # random weights: speed does not depend on them
    for label, (height, width) in SIDES.items():
        image = made_jpeg(height, width)
        megapixels = height * width / 1e6
        seconds, evidence = timed(lambda: find_jpeg_grid(image), device)
        tracemalloc.start()
        find_jpeg_grid(image)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        network = share = ""
        if label == "1 MP":
            net_seconds, _ = timed(lambda: predict_maps(model, image), device, reps=2)
            network = f"{megapixels / net_seconds:.3f}"
            share = f"{100 * seconds / (seconds + net_seconds):.1f} %"
        print(f"| {label} | {megapixels / seconds:.2f} | {peak / 2 ** 20:.1f} MiB | {evidence.found} "
              f"(score {evidence.score:.0f}) | {network} | {share} |", flush=True)
    print()
    print("| image | clipped blocks' flag MP/s | blocks raised | share of analyze (1 MP) |")
    print("|---|---:|---:|---:|")
    for label in ("1 MP", "4 MP"):
        height, width = SIDES[label]
        megapixels = height * width / 1e6
        for clipped in (True, False):
            image = made_jpeg(height, width, clipped)
            evidence = find_jpeg_grid(image)
            seconds, flag = timed(lambda: clipped_block_flag(image, evidence), device)
            share = ""
            if label == "1 MP":
                net_seconds, _ = timed(lambda: predict_maps(model, image), device, reps=2)
                share = f"{100 * seconds / (seconds + net_seconds):.1f} %"
            print(f"| {label}, {'half clipped' if clipped else 'unclipped'} | {megapixels / seconds:.2f} | "
                  f"{100 * (flag > 0).mean():.0f} % | {share} |", flush=True)
    other = load.share()
    print(f"# other processes used {100 * other:.0f} % of the CPUs meanwhile" if other is not None else "")


if __name__ == "__main__":
    main()
