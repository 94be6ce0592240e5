"""``jpegtrace evaluate``: the paper's Fig. 2 and Table 1 on a folder of never-compressed images."""

from __future__ import annotations

from .common import (
    add_data_options,
    add_grid_option,
    add_model_options,
    add_quiet,
    data_run_settings,
    display,
    error,
    offset_arg,
    progress_bar,
    qualities_arg,
    report_failures,
    start_data_run,
    write_error,
)


def add_evaluate(sub) -> None:
    from ..eval.common import DEFAULT_QUALITIES

    p = sub.add_parser(
        "evaluate", help="QF estimation and detection accuracy on never-compressed images (Fig. 2, Table 1)",
        description="Compress every never-compressed image of DIR at each QF, analyse it, and report per QF "
                    "the mean and standard deviation of the estimated QF (the quality map's evidence-weighted median) and its "
                    "mean absolute error (the paper's Fig. 2), and the share of images judged uncompressed "
                    "(mean flag at most 0.5 and no JPEG grid found; 'flag alone': the paper's rule, mean flag "
                    "at most 0.5) at QF 97, 98, 99, 100 and without JPEG (its Table 1), plus "
                    "the QF MAE over the QFs up to 95 and the detection accuracy. Writes into OUT_DIR: "
                    "records.csv, per_quality.csv, table1.csv, failures.csv, summary.json, fig2_quality.png "
                    "and table1.png. The same images and settings give the same numbers. Unreadable files "
                    "are reported and skipped; the exit status is then 1.")
    add_data_options(p)
    p.add_argument("--qualities", type=qualities_arg, default=DEFAULT_QUALITIES, metavar="Q1,Q2,...",
                   help="QFs to compress at (default: " + ",".join(map(str, DEFAULT_QUALITIES)) + "); "
                        "the images are also analysed as they are")
    p.add_argument("--subsampling", choices=["4:2:0", "4:2:2", "4:4:4"], default="4:2:0",
                   help="chroma subsampling of the test JPEGs (default 4:2:0)")
    p.add_argument("--grid-shift", type=offset_arg, nargs="?", const=(3, 5), default=(0, 0), metavar="DY,DX",
                   help="start the JPEG grid DY rows and DX columns before the image, as in a cropped JPEG "
                        "(without a value: 3,5; default: aligned grid)")
    p.add_argument("--grayscale", action="store_true", help="turn the images grayscale first (one-channel JPEGs)")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="folder for the results (created; other files kept)")
    add_model_options(p)
    add_grid_option(p)
    add_quiet(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args) -> int:
    from ..eval.quality import evaluate_files, summarize_evaluation
    from ..eval.reports import write_evaluation_report

    started = start_data_run(args)
    if started is None:
        return 2
    files, model = started
    records, failures = evaluate_files(
        model, files, qualities=args.qualities, subsampling=args.subsampling, grid_offset=args.grid_shift,
        grayscale=args.grayscale, device=args.device, tile_size=args.tile_size,
        progress=progress_bar(args, "evaluate", " test image"), grid_check=args.grid_check)
    report_failures(failures)
    if not records:
        error("no image could be read")
        return 1
    summary = summarize_evaluation(records)
    settings = data_run_settings(args, qualities=list(args.qualities), subsampling=args.subsampling,
                              grid_offset=list(args.grid_shift), grayscale=args.grayscale,
                              grid_check=args.grid_check)
    try:
        written = write_evaluation_report(args.out, records, summary, failures, settings)
    except OSError as exc:
        return write_error(exc)
    print("QF\tn\testimated QF (mean ± std)\tMAE\tjudged uncompressed" +
          ("\t(flag alone)\t(network alone)" if args.grid_check else ""))
    for row in summary["per_quality"]:
        q = "none" if row["quality"] is None else str(row["quality"])
        mae = "-" if row["mae"] is None else f"{row['mae']:.2f}"
        print(f"{q}\t{row['n']}\t{row['mean_estimate']:6.2f} ± {row['std_estimate']:5.2f}\t{mae}\t"
              f"{100 * row['judged_uncompressed']:.0f}%" +
              (f"\t{100 * row['flag_judged_uncompressed']:.0f}%\t{100 * row['network_judged_uncompressed']:.0f}%"
               if args.grid_check else ""))
    if summary["qf_mae"] is not None:
        print(f"QF MAE (QF <= 95): {summary['qf_mae']:.2f}")
    print(f"detection accuracy: {100 * summary['detection_accuracy']:.1f}%")
    print(f"results written to {display(args.out)} ({', '.join(p.name for p in written.values())})")
    return 1 if failures else 0
