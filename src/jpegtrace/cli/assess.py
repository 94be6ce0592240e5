"""``jpegtrace assess``: audit a data set (the paper's Figs. 4-9)."""

from __future__ import annotations

from ..grid.check import GRID_SCORE_THRESHOLD
from .common import (
    add_grid_option,
    add_input_options,
    add_model_options,
    add_quiet,
    display,
    error,
    load_model,
    positive_arg,
    prepare_out,
    progress_bar,
    report_failures,
    run_settings,
    write_error,
)


def add_assess(sub) -> None:
    p = sub.add_parser(
        "assess", help="audit a folder of images for JPEG compression (Figs. 4-9)",
        description="Analyse every image of DIR (PNG, TIFF, BMP, PPM, PGM, WebP, GIF, JPEG) and write into OUT_DIR: "
                    "table.csv (one row per image: file, size, mean estimated QF, mean flag, JPEG grid "
                    "score, verdict, grayscale, notes; compressed when the mean flag is above 0.5 or the grid "
                    f"score above {GRID_SCORE_THRESHOLD:g}), failures.csv (unreadable files and why), assessment.json (counts, "
                    "histogram, rows), qf_histogram.png (estimated QF of the images judged compressed) and "
                    "index.html, which shows it all with a thumbnail and the flag map of each image "
                    "(in OUT_DIR/thumbnails). Grayscale images are analysed too and marked. Unreadable files "
                    "are listed with the reason and the run goes on; the exit status is then 1.")
    p.add_argument("folder", metavar="DIR", help="folder of images to audit")
    p.add_argument("--recursive", action="store_true", help="also audit the images in sub-folders (OUT_DIR excluded)")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="folder for the results (created; other files kept)")
    p.add_argument("--thumbnail-size", type=positive_arg, default=160, metavar="PX",
                   help="longer side of the thumbnails in the HTML page (default 160)")
    add_model_options(p)
    add_input_options(p)
    add_grid_option(p)
    add_quiet(p)
    p.set_defaults(func=run_assess)


def run_assess(args) -> int:
    from ..eval.audit import assess_images, summarize_assessment
    from ..eval.reports import save_thumbnails, write_assessment_report
    from ..io import list_images

    try:
        paths = list_images(args.folder, recursive=args.recursive, exclude=args.out)
    except FileNotFoundError:
        error(f"{display(args.folder)}: not a directory")
        return 2
    if not paths:
        error(f"{display(args.folder)}: no image files")
        return 2
    model = load_model(args)
    if model is None or not prepare_out(args):
        return 2
    files = {display(p.relative_to(args.folder)): p for p in paths}
    thumbnails: dict[str, tuple[str, str]] = {}

    def on_result(name, rgb, analysis):
        thumbnails[name] = save_thumbnails(args.out, len(thumbnails) + 1, rgb, analysis.flag_map,
                                           args.thumbnail_size)

    try:
        records, failures = assess_images(model, files, tile_size=args.tile_size, device=args.device,
                                          progress=progress_bar(args, "assess", " image"), on_result=on_result,
                                          grid_check=args.grid_check, max_pixels=args.max_pixels,
                                          allow_damaged=args.allow_damaged, time_limit=args.time_limit)
        report_failures(failures)
        summary = summarize_assessment(records, failures)
        settings = run_settings(args, folder=display(args.folder), recursive=args.recursive,
                             grid_check=args.grid_check)
        written = write_assessment_report(args.out, records, failures, summary, thumbnails, settings)
    except OSError as exc:
        return write_error(exc)
    print(f"{summary['n_compressed']} compressed, {summary['n_uncompressed']} uncompressed "
          f"({summary['n_grayscale']} grayscale), {summary['n_failed']} unreadable")
    print(f"results written to {display(args.out)}; open {display(written['html'])}")
    return 1 if failures else 0
