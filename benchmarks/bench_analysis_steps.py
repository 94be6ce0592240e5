"""What each step of ``analyze_array`` costs beside the network, at 1 MP, in one run.

The analysis around the network has grown: the grid check, the evidence map, the block structure
(repeated and piecewise-constant blocks), the table read, the double-JPEG test, the regions and
their grid checks. This times each step alone on the same images and reports it as a share of the
network's time and of the whole ``analyze_array``, so that "inference cost within 10 %" can be
checked: the steps added since the network's shipped analysis (``block_structure``, the regions,
the double-JPEG test, the coarse-grid search, the chroma table) are summed separately. The coarse-grid search
runs only where the grid check finds no grid, the chroma table only where a luma table is read.

Images: a made-up textured 1 MP image never compressed, its QF-85 JPEG, and a collage (a QF-80
region of 300 x 300 pixels in the never-compressed image, partly compressed: regions and their
grid checks run).

    PYTHONPATH=src python benchmarks/bench_analysis_steps.py [--reps 3] [--threads 2]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import OtherLoad, start, timed

from jpegtrace.analysis import analyze_array, load_model, predict_maps, summarize
from jpegtrace.chroma import estimate_chroma_table
from jpegtrace.evidence import block_structure, evidence_map
from jpegtrace.grid.coarse import find_coarse_grid
from jpegtrace.grid.check import find_jpeg_grid
from jpegtrace.history import detect_double_compression
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.regions import confirm_regions
from jpegtrace.tables import estimate_luma_table


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 120 + 50 * np.sin(xx / 13.0) * np.cos(yy / 9.0) + 30 * np.sin((xx + 2 * yy) / 31.0)
    return np.clip(base[:, :, None] + rng.normal(0, 6, (height, width, 3)), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    device = torch.device("cpu")
    start(device, args.threads, cpu_clock=False)
    load = OtherLoad()
    model = load_model()
    clean = textured(1000, 1000)
    jpeg = jpeg_compress(clean, 85)
    collage = clean.copy()
    collage[304:604, 304:604] = jpeg_compress(textured(1000, 1000, seed=1), 80)[304:604, 304:604]
    print(f"{'image':10s} {'step':26s} {'seconds':>8s} {'of network':>10s} {'of analysis':>11s}")
    for name, image in (("clean", clean), ("JPEG 85", jpeg), ("collage", collage)):
        network, raw = timed(lambda: predict_maps(model, image), device, args.reps)
        whole, result = timed(lambda: analyze_array(image, model), device, args.reps)
        grid = result.grid
        evidence = evidence_map(image)
        steps = {
            "grid check": lambda: find_jpeg_grid(image),
            "evidence map": lambda: evidence_map(image),
            "block structure (new)": lambda: block_structure(image),
            "coarse-grid search (new)": lambda: find_coarse_grid(image),
            "summary + regions (new)": lambda: summarize(raw.copy(), grid=grid, evidence=evidence),
        }
        if result.table is not None:
            steps["table read"] = lambda: estimate_luma_table(image, grid_offset=grid.grid_offset)
            steps["double-JPEG test (new)"] = lambda: detect_double_compression(image, result.table)
            steps["chroma table (new)"] = lambda: estimate_chroma_table(image, grid_offset=grid.grid_offset)
        if result.flag_regions:
            # As analyze_array does: a whole-image region reuses the image's grid check and luma table.
            luma_table = estimate_luma_table(image, grid_offset=grid.grid_offset) if grid and grid.found else None
            steps["regions' grid checks (new)"] = lambda: confirm_regions(image, result.regions, image_grid=grid,
                                                                          image_table=luma_table)
        added = 0.0
        for step, fn in steps.items():
            seconds, _ = timed(fn, device, args.reps)
            if "(new)" in step:
                added += seconds
            print(f"{name:10s} {step:26s} {seconds:8.3f} {seconds / network:10.1%} {seconds / whole:11.1%}")
        print(f"{name:10s} {'network':26s} {network:8.3f} {1:10.1%} {network / whole:11.1%}")
        print(f"{name:10s} {'analyze_array (all)':26s} {whole:8.3f} {whole / network:10.1%} {1:11.1%}")
        print(f"{name:10s} {'new steps together':26s} {added:8.3f} {added / network:10.1%} {added / whole:11.1%}"
              f"   verdict: {result.verdict}")
    print(f"# other processes used {load.share():.0%} of the CPU during the run" if load.share() is not None else "")


if __name__ == "__main__":
    main()
