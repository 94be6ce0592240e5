"""Cost of the grid inputs (``NetConfig.grid_feature``, ``NetConfig.grid_presence``) against the paper's network.

Times whole-image analysis (:func:`jpegtrace.predict_maps`, the streaming engine, fp32) of the
paper's network and of the same network with the grid feature as a fourth input channel, and with
the grid presence instead, on images of about 0.25, 1 and 4 MP, and prints each one's throughput,
each grid network's time as a ratio of the paper network's, and the time of each input alone
(:func:`jpegtrace.grid.grid_feature`, :func:`jpegtrace.grid.grid_presence` over the whole
image). Random weights: speed does not depend on them.

    PYTHONPATH=src python benchmarks/bench_grid_feature.py
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from common import OtherLoad, start, timed
from jpegtrace.grid import grid_feature
from jpegtrace.grid.presence import grid_presence
from jpegtrace.grid.dct import luma_tensor
from jpegtrace.analysis import predict_maps
from jpegtrace.nn.qfnet import NetConfig, QFNet

SIDES = {"0.25 MP": (512, 512), "1 MP": (1000, 1000), "4 MP": (2000, 2000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--reps", type=int, default=2, help="timed repetitions (the fastest counts)")
    args = parser.parse_args()
    device = torch.device("cpu")
    start(device, args.threads, cpu_clock=False)
    load = OtherLoad()
    paper, with_feature = QFNet().eval(), QFNet(NetConfig(grid_feature=True)).eval()
    with_presence = QFNet(NetConfig(grid_presence=True)).eval()
    print("| image | paper network MP/s | with grid feature MP/s | time ratio | feature alone MP/s "
          "| with grid presence MP/s | time ratio | presence alone MP/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, (height, width) in SIDES.items():
        image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        megapixels = height * width / 1e6
        plain_seconds, _ = timed(lambda: predict_maps(paper, image), device, reps=args.reps)
        pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        row = f"| {label} | {megapixels / plain_seconds:.3f} "
        for network, extra_input in ((with_feature, grid_feature), (with_presence, grid_presence)):
            seconds, _ = timed(lambda: predict_maps(network, image), device, reps=args.reps)
            with torch.inference_mode():
                alone, _ = timed(lambda: extra_input(luma_tensor(pixels)), device, reps=args.reps)
            row += f"| {megapixels / seconds:.3f} | {seconds / plain_seconds:.3f} | {megapixels / alone:.2f} "
        print(row + "|", flush=True)
    other = load.share()
    print(f"# other processes used {100 * other:.0f} % of the CPUs meanwhile" if other is not None else "")


if __name__ == "__main__":
    main()
