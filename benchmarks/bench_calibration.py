"""Cost of the quality calibration (:class:`jpegtrace.nn.weights.QualityCalibration`) in the summary of a map.

For raw network maps of about 1, 4 and 16 MP, prints the throughput of
:func:`jpegtrace.analysis.summarize` (clipping, QF conversion and means, in place as ``analyze`` does it)
without and with a calibration of the 16 knots that ``fit_quality_calibration`` fits, their time ratio, and,
at 1 MP, the network's fp32 throughput and the share of a whole ``analyze`` the calibration adds.

    PYTHONPATH=src python benchmarks/bench_calibration.py
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import OtherLoad, start, timed

from jpegtrace.analysis import predict_maps, summarize
from jpegtrace.eval.calibration import CALIBRATION_KNOTS
from jpegtrace.nn.qfnet import QFNet
from jpegtrace.nn.weights import QualityCalibration

SIDES = {"1 MP": (1000, 1000), "4 MP": (2000, 2000), "16 MP": (4000, 4000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    device = torch.device("cpu")
    start(device, args.threads, cpu_clock=False)
    load = OtherLoad()
    knots = np.array(CALIBRATION_KNOTS)
    calibration = QualityCalibration(tuple(knots), tuple(np.sqrt(knots)))  # any monotone map costs the same
    rng = np.random.default_rng(0)
    print("| maps | summary MP/s | with calibration MP/s | time ratio | network fp32 MP/s | calibration's share of analyze |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, (height, width) in SIDES.items():
        raw = rng.uniform(-0.2, 1.2, (2, height, width)).astype(np.float32)
        megapixels = height * width / 1e6
        plain, _ = timed(lambda: summarize(raw.copy(), inplace=True), device)
        calibrated, _ = timed(lambda: summarize(raw.copy(), inplace=True, quality_calibration=calibration), device)
        copy, _ = timed(lambda: raw.copy(), device)  # the copy each call makes is not the summary's cost
        plain, calibrated = plain - copy, calibrated - copy
        network = share = ""
        if label == "1 MP":
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            net_seconds, _ = timed(lambda: predict_maps(QFNet().eval(), image), device, reps=2)
            network = f"{megapixels / net_seconds:.3f}"
            share = f"{100 * (calibrated - plain) / (net_seconds + calibrated):.2f} %"
        print(f"| {label} | {megapixels / plain:.1f} | {megapixels / calibrated:.1f} | {calibrated / plain:.2f} | "
              f"{network} | {share} |", flush=True)
    other = load.share()
    if other is not None:
        print(f"# other processes used {100 * other:.0f} % of the CPUs meanwhile")


if __name__ == "__main__":
    main()
