"""``jpegtrace assess``: audit a data set (the paper's Figs. 4-9)."""

from __future__ import annotations

from pathlib import Path

from ..distributed.cli import add_engine_options, check_local_engine
from ..grid.check import GRID_SCORE_THRESHOLD
from .common import (
    add_backend_options,
    add_grid_option,
    add_input_options,
    add_model_options,
    add_quiet,
    display,
    error,
    load_network,
    positive_arg,
    prepare_out,
    progress_bar,
    report_failures,
    resolve_backend_args,
    run_settings,
    write_error,
)


def add_assess(sub) -> None:
    p = sub.add_parser(
        "assess", help="audit a folder of images for JPEG compression (Figs. 4-9)",
        description="Analyse every image of DIR (PNG, TIFF, BMP, PPM, PGM, WebP, GIF, JPEG) and write into OUT_DIR: "
                    "records.jsonl (one record per image as each finishes, the same as `jpegtrace analyze "
                    "--format jsonl` prints), table.csv (the same records as CSV rows), failures.csv (unreadable "
                    "files and why), assessment.json (settings, counts, histogram, the records as 'images', the "
                    "files left out as 'skipped' with their reason), qf_histogram.png (headline QF of the images "
                    "judged compressed) and index.html, which shows it all with a thumbnail, the flag map and "
                    "the quality map of each image (in OUT_DIR/thumbnails). An image is compressed when its "
                    f"mean flag is above 0.5 or the grid score above {GRID_SCORE_THRESHOLD:g}, partly compressed "
                    "when only regions of it are. Grayscale images are analysed too and marked. Unreadable files "
                    "are listed with the reason and the run goes on; the exit status is then 1.")
    p.add_argument("folder", metavar="SOURCE", nargs="?",
                   help="folder of images to audit; with --engine ray also a glob (data/*/*.png), a pyarrow URI "
                        "(s3://bucket/prefix) or none with --manifest")
    p.add_argument("--recursive", action="store_true", help="also audit the images in sub-folders (OUT_DIR excluded)")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="folder for the results (created; other files kept)")
    p.add_argument("--thumbnail-size", type=positive_arg, default=160, metavar="PX",
                   help="longer side of the thumbnails in the HTML page (default 160)")
    p.add_argument("--pages", action="store_true",
                   help="also write one self-contained HTML page per image into OUT_DIR/pages (the image with its "
                        "maps and regions as layers, the values under the cursor; about 3-4 bytes per pixel each), "
                        "linked from index.html")
    add_model_options(p)
    add_backend_options(p)
    add_input_options(p)
    add_grid_option(p)
    add_quiet(p)
    add_engine_options(p)
    p.set_defaults(func=run_assess)


def skipped_files(folder: Path, images, *, recursive: bool, exclude) -> list[dict]:
    """The files of ``folder`` that are not audited (not in ``images``), each with the reason."""
    from ..io import IMAGE_SUFFIXES

    chosen = {p.resolve() for p in images}
    excluded = Path(exclude).resolve()
    skipped = []
    for path in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        if not path.is_file() or path.resolve() in chosen or excluded in path.resolve().parents:
            continue
        suffix = path.suffix.lower()
        if suffix in {".heic", ".heif", ".avif", ".hif"}:
            reason = "HEIF/AVIF images are not supported"
        elif suffix in IMAGE_SUFFIXES:
            reason = "left out by the split"  # (not reached today: every image file is audited)
        else:
            reason = f"not an image file type ({suffix or 'no suffix'})"
        skipped.append({"file": display(path.relative_to(folder)), "reason": reason})
    return skipped


def run_assess(args) -> int:
    import json
    from collections import Counter

    from ..eval.audit import assess_images, summarize_assessment
    from ..eval.bias import local_bias, write_bias
    from ..eval.reports import save_thumbnails, write_assessment_report
    from ..io import list_images
    from ..record import failure_record

    if args.engine == "ray":
        from ..distributed.cli import run_ray_assess

        return run_ray_assess(args)
    if (problem := check_local_engine(args)) is not None:
        error(problem)
        return 2
    try:
        paths = list_images(args.folder, recursive=args.recursive, exclude=args.out)
    except FileNotFoundError:
        error(f"{display(args.folder)}: not a directory")
        return 2
    if not paths:
        error(f"{display(args.folder)}: no image files")
        return 2
    model = load_network(args)
    if model is None or not resolve_backend_args(args, model) or not prepare_out(args):
        return 2
    folder = Path(args.folder)
    files = {display(p.relative_to(folder)): p for p in paths}
    skipped = skipped_files(folder, paths, recursive=args.recursive, exclude=args.out)
    thumbnails: dict[str, tuple[str, ...]] = {}
    pages: dict[str, str] = {}
    out = Path(args.out)
    # records.jsonl grows one line per image as each finishes (the same records as `analyze --format jsonl`).
    stream = open(out / "records.jsonl", "w", encoding="utf-8")

    def write_line(record: dict) -> None:
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        stream.flush()

    def on_result(name, rgb, analysis):
        index = len(thumbnails) + 1
        thumbnails[name] = save_thumbnails(args.out, index, rgb, analysis.flag_map, args.thumbnail_size,
                                           quality_map=analysis.quality_map)
        if args.pages:
            from ..viewer import write_viewer

            pages[name] = f"pages/{index:05d}.html"  # numbered: file names may hold anything
            write_viewer(out / pages[name], rgb, analysis, regions=[r.as_dict() for r in analysis.regions],
                         title=name)

    try:
        with stream:
            records, failures = assess_images(
                model, files, tile_size=args.tile_size, device=args.device, backend=args.backend,
                precision=args.precision, progress=progress_bar(args, "assess", " image"), on_result=on_result,
                on_record=write_line,
                on_failure=lambda failure: write_line(failure_record(failure.file, failure.reason)),
                grid_check=args.grid_check, max_pixels=args.max_pixels, allow_damaged=args.allow_damaged,
                time_limit=args.time_limit)
        report_failures(failures)
        summary = summarize_assessment(records, failures)
        summary["n_skipped"] = len(skipped)
        summary["skipped_by_reason"] = dict(Counter(s["reason"] for s in skipped))
        bias = local_bias(records, failures) if args.recursive else None  # classes: the first folder level
        if bias is not None:
            write_bias(args.out, bias)
        settings = run_settings(args, folder=display(args.folder), recursive=args.recursive,
                                grid_check=args.grid_check, max_pixels=args.max_pixels, backend=args.backend,
                                precision=args.precision, runs_as="/".join(args.resolved))
        written = write_assessment_report(args.out, records, failures, summary, thumbnails, settings,
                                          pages=pages or None, skipped=skipped, bias=bias)
    except OSError as exc:
        return write_error(exc)
    print(f"{summary['n_compressed']} compressed ({summary['n_partly_compressed']} in part), "
          f"{summary['n_uncompressed']} never compressed, {summary['n_no_evidence']} without evidence "
          f"({summary['n_grayscale']} grayscale), {summary['n_failed']} unreadable, {len(skipped)} skipped")
    if bias is not None:
        print(f"format bias: {bias['summary']}")
    print(f"results written to {display(args.out)}; open {display(written['html'])}")
    return 1 if failures else 0
