"""``jpegtrace collage`` and ``collage-benchmark``: the paper's Fig. 3 and its benchmark over random pairs."""

from __future__ import annotations

from pathlib import Path

from ..errors import JpegTraceError
from .common import (
    add_data_options,
    add_grid_option,
    add_model_options,
    add_quiet,
    data_run_settings,
    display,
    error,
    flag_threshold_arg,
    load_model,
    positive_arg,
    prepare_out,
    progress_bar,
    qualities_arg,
    quality_arg,
    report_failures,
    run_settings,
    shapes_arg,
    start_data_run,
    write_error,
)


def add_collage(sub) -> None:
    from ..eval.masks import MASK_SHAPES

    p = sub.add_parser(
        "collage", help="paste a JPEG-compressed region into a clean image and score its localisation (Fig. 3)",
        description="Build the fake image of the paper's Fig. 3: the donor, JPEG-compressed at --quality, shows "
                    "through the mask; the never-compressed background everywhere else. The donor is cropped "
                    "(or mirrored) to the background's size. Analyse the fake image and score its flag map "
                    "against the mask: IoU and F1 of flag > threshold (the model's calibrated one unless --threshold "
                    "is given), and the pixel ROC AUC of the flag map. "
                    "Writes into OUT_DIR: fake.png, mask.png, fake_quality.png, fake_flag.png, fake_evidence.png, "
                    "fake_overlay.png (the maps at full resolution), fake_legend.png (their colour bars), "
                    "collage.png (all four panels), maps.npz and scores.json / scores.csv.")
    p.add_argument("--background", required=True, metavar="CLEAN_IMG", help="never-compressed image (PNG, TIFF, BMP...)")
    p.add_argument("--donor", required=True, metavar="IMG", help="image the pasted region comes from")
    p.add_argument("--quality", type=quality_arg, default=80, metavar="QF",
                   help="QF of the donor JPEG, 1..100 (default 80, as in the paper)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--mask", metavar="MASK_IMG",
                       help="mask image the size of the background: the donor shows where it is brighter than half scale")
    which.add_argument("--shape", choices=MASK_SHAPES, default="disc",
                       help="mask shape when no --mask is given: a centred disc (radius 30%% of the shorter side; "
                            "default), a centred rectangle half as high and wide, or a random blob (see --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed of the blob mask (default 0)")
    p.add_argument("--subsampling", choices=["4:2:0", "4:2:2", "4:4:4"], default="4:2:0",
                   help="chroma subsampling of the donor JPEG (default 4:2:0)")
    p.add_argument("--threshold", type=flag_threshold_arg, metavar="T",
                   help="flag above which a pixel counts as compressed in the mask (default: the model's, "
                        "calibrated on training collages; 0.5 for models without one)")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="folder for the results (created; other files kept)")
    add_grid_option(p)
    add_model_options(p)
    p.set_defaults(func=run_collage)


def run_collage(args) -> int:
    import numpy as np

    from ..eval.collage import run_collage
    from ..eval.masks import make_mask, read_mask
    from ..eval.reports import write_collage_report
    from ..io import as_analysis_array

    try:
        background, _, _ = as_analysis_array(Path(args.background))
        donor, _, _ = as_analysis_array(Path(args.donor))
        height, width = background.shape[:2]
        if args.mask:
            mask = read_mask(Path(args.mask), height=height, width=width)
        else:
            mask = make_mask(args.shape, height, width, rng=np.random.default_rng(args.seed))
    except JpegTraceError as exc:
        error(f"{display(exc.path)}: {exc.reason}" if exc.path else exc.reason)
        return 2
    model = load_model(args)
    if model is None or not prepare_out(args):
        return 2
    result = run_collage(model, background, donor, args.quality, mask, subsampling=args.subsampling,
                         threshold=args.threshold, tile_size=args.tile_size, device=args.device,
                         grid_check=args.grid_check)
    settings = run_settings(args, background=display(args.background), donor=display(args.donor),
                         mask=display(args.mask) if args.mask else args.shape,
                         seed=args.seed if not args.mask and args.shape == "blob" else None,
                         subsampling=args.subsampling, threshold=result.scores.threshold,
                         grid_check=args.grid_check)
    try:
        write_collage_report(args.out, result, settings)
    except OSError as exc:
        return write_error(exc)
    s = result.scores.as_dict()
    auc = "n/a" if s["auc"] is None else f"{s['auc']:.3f}"
    print(f"IoU {s['iou']:.3f}\tF1 {s['f1']:.3f} (flag > {s['threshold']:g})\tAUC {auc}\t"
          f"mean flag inside {result.flag_inside:.2f}, outside {result.flag_outside:.2f}")
    print(f"results written to {display(args.out)}")
    return 0


def add_collage_benchmark(sub) -> None:
    from ..eval.masks import MASK_SHAPES

    p = sub.add_parser(
        "collage-benchmark", help="mean localisation scores over many random collages (the forensic benchmark)",
        description="Make --pairs fake images from random background/donor pairs of DIR, each with a random "
                    "mask (disc, rectangle or blob) and a QF drawn from --qualities, as the collage command "
                    "does, and report the mean IoU, F1 (flag > threshold) and pixel AUC over them, overall, per QF "
                    "and per mask shape. Pair i depends only on --seed and i, so a run is reproducible. "
                    "Writes into OUT_DIR: pairs.csv, failures.csv, summary.json and scores.png. Unreadable files "
                    "are reported and their pairs skipped; the exit status is then 1.")
    add_data_options(p)
    p.add_argument("--pairs", type=positive_arg, default=100, help="number of fake images (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pairs, masks, crops and QFs (default 0)")
    p.add_argument("--qualities", type=qualities_arg, default=(80,), metavar="Q1,Q2,...",
                   help="QFs of the pasted regions, one drawn per pair (default 80)")
    p.add_argument("--shapes", type=shapes_arg, default=MASK_SHAPES, metavar="S1,S2,...",
                   help="mask shapes to draw from (default " + ",".join(MASK_SHAPES) + ")")
    p.add_argument("--crop", type=positive_arg, metavar="N",
                   help="use a random N x N window of each background (default: the whole image)")
    p.add_argument("--subsampling", choices=["4:2:0", "4:2:2", "4:4:4"], default="4:2:0",
                   help="chroma subsampling of the donor JPEGs (default 4:2:0)")
    p.add_argument("--threshold", type=flag_threshold_arg, metavar="T",
                   help="flag above which a pixel counts as compressed in the mask (default: the model's, "
                        "calibrated on training collages; 0.5 for models without one)")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="folder for the results (created; other files kept)")
    add_grid_option(p)
    add_model_options(p)
    add_quiet(p)
    p.set_defaults(func=run_collage_benchmark)


def run_collage_benchmark(args) -> int:
    from ..eval.collage import collage_benchmark, summarize_collage_benchmark
    from ..eval.reports import write_collage_benchmark_report

    started = start_data_run(args)
    if started is None:
        return 2
    files, model = started
    records, failures = collage_benchmark(
        model, files, pairs=args.pairs, seed=args.seed, qualities=args.qualities, shapes=args.shapes,
        crop=args.crop, subsampling=args.subsampling, threshold=args.threshold, tile_size=args.tile_size,
        device=args.device, progress=progress_bar(args, "collage-benchmark", " pair"), grid_check=args.grid_check)
    report_failures(failures)
    summary = summarize_collage_benchmark(records)
    settings = data_run_settings(args, pairs=args.pairs, seed=args.seed, qualities=list(args.qualities),
                              shapes=list(args.shapes), crop=args.crop, subsampling=args.subsampling,
                              threshold=model.flag_threshold if args.threshold is None else args.threshold,
                              grid_check=args.grid_check)
    try:
        write_collage_benchmark_report(args.out, records, summary, failures, settings)
    except OSError as exc:
        return write_error(exc)
    if not records:
        error("no pair could be made")
        return 1

    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    print(f"{summary['n']} fake images: mean IoU {fmt(summary['mean_iou'])}, mean F1 {fmt(summary['mean_f1'])} "
          f"(flag > {settings['threshold']:g}), "
          f"mean AUC {fmt(summary['mean_auc'])}")
    print(f"results written to {display(args.out)}")
    return 1 if failures else 0
