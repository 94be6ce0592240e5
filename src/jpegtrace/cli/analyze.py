"""``jpegtrace analyze``: one record per image (text, JSON Lines or CSV), streamed, and its maps."""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from pathlib import Path

from ..errors import JpegTraceError
from .common import (
    add_backend_options,
    add_grid_option,
    add_input_options,
    add_quiet,
    display,
    error,
    load_network,
    positive_int_arg,
    progress_bar,
    resolve_backend_args,
)

FORMATS = ("text", "jsonl", "csv")


def add_analyze(sub) -> None:
    p = sub.add_parser(
        "analyze", help="find JPEG compression in images, pixel by pixel",
        description="Analyse each IMAGE and print one record per image as it finishes: its verdict (never "
                    "compressed, compressed, partly compressed or no evidence), the headline QF and where it "
                    "comes from (the quantisation table read from the pixels, the largest region, or the "
                    "network's quality map), the regions of the flag and quality maps, the evidence share and "
                    "the JPEG grid check. --format text (default) prints a line for people: file, verdict, QF, "
                    "details, tab-separated; jsonl and csv are for scripts (the JSON Schema of a record is "
                    "src/jpegtrace/schema/record.schema.json). Failures are reported per file and the run goes "
                    "on; the exit status is 1 if any file failed.")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files (PNG, TIFF, BMP, JPEG, WebP, GIF, ...), folders with --recursive, or - for "
                        "standard input")
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text (one line per image), jsonl (one JSON object per line) or csv (a header, then "
                        "one row per image; numbers as numbers)")
    p.add_argument("--json", action="store_const", const="jsonl", dest="format",
                   help="the same as --format jsonl")
    p.add_argument("--recursive", "-r", action="store_true",
                   help="analyse the images in folders given as IMAGE, and in their sub-folders")
    p.add_argument("--maps", metavar="OUT_DIR",
                   help="write colour-mapped quality, flag and evidence maps at the image's resolution, an "
                        "overlay and their legend per image")
    p.add_argument("--view", metavar="OUT_DIR",
                   help="write one self-contained HTML page per image (STEM.html; opens offline): the image "
                        "with its maps and regions as layers, the values under the cursor, the summary")
    p.add_argument("--raw", metavar="OUT_DIR",
                   help="write the float quality, flag and evidence maps per image into STEM_maps.npz")
    p.add_argument("--model", metavar="WEIGHTS", help="safetensors weights (default: the shipped model)")
    p.add_argument("--tile-size", type=positive_int_arg, default=512,
                   help="side of the region computed at once; bounds memory, never changes the maps (default 512)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    add_backend_options(p)
    add_input_options(p)
    add_grid_option(p)
    add_quiet(p)
    p.set_defaults(func=run_analyze)


def expand_inputs(names, *, recursive: bool) -> list[tuple[str, str | Path | None, str | None]]:
    """``(shown name, path or None for stdin, reason it fails or None)`` for each input, folders
    expanded with ``recursive`` (sorted; an empty folder is a failure)."""
    from ..io import list_images

    out = []
    for name in names:
        if name == "-":
            out.append(("-", None, None))
            continue
        path = Path(name)
        if path.is_dir():
            if not recursive:
                out.append((display(name), path, "is a directory (use --recursive)"))
                continue
            files = list_images(path, recursive=True)
            if not files:
                out.append((display(name), path, "no image files in this folder"))
            out.extend((display(f), f, None) for f in files)
        elif not path.exists() and not path.is_symlink():
            # Known now, so that a run whose every file is missing answers at once, without loading the model.
            out.append((display(name), path, "no such file"))
        else:
            out.append((display(name), path, None))
    return out


def run_analyze(args) -> int:
    from ..record import CSV_COLUMNS, analysis_record, csv_row, failure_record, text_line

    inputs = expand_inputs(args.images, recursive=args.recursive)
    if sum(path is None for _, path, _ in inputs) > 1:
        error("-: standard input can be read once")
        return 2
    model = networks = None
    if any(reason is None for _, _, reason in inputs):  # else nothing to analyse: no model, no torch to load
        from ..analysis import analyze_array
        from ..io import native_stderr_captured
        from ..limits import time_limit
        from ..nn.backends import provenance_by_kind

        model = load_network(args)
        if model is None:
            return 2
        if not resolve_backend_args(args, model):
            return 2
        networks = provenance_by_kind(model, backend=args.backend, precision=args.precision, device=args.device)
    writer = None
    if args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
    failed, stems = 0, {}
    for shown, path, reason in progress_bar(args, "analyze", " image")(inputs):
        rgb = result = read = None  # free the previous image and maps before reading the next
        if reason is None:
            try:
                with time_limit(args.time_limit, shown):  # the file's whole work: reading, analysis, maps
                    with native_stderr_captured():  # libtiff prints its complaints itself; keep stderr to our line
                        read = _read(path, args.max_pixels, args.allow_damaged)
                    rgb = read.rgb
                    result = analyze_array(rgb, model, tile_size=args.tile_size, device=args.device,
                                           precision=args.precision, backend=args.backend,
                                           grid_check=args.grid_check, grayscale=read.grayscale, notes=read.notes,
                                           valid=read.valid)
                    maps = _write_maps(args, shown, path, rgb, result, stems)
            except JpegTraceError as exc:
                reason = " ".join(exc.reason.split())
            except OSError as exc:
                reason = f"cannot write results: {exc.strerror or exc}"
                if exc.filename is not None:
                    reason += f" ({display(exc.filename)})"
            except MemoryError:
                reason = "not enough memory (try a smaller --tile-size)"
            except Exception as exc:  # noqa: BLE001 -- one bad file must not lose the others' results
                reason = f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}"
        if reason is not None:
            failed += 1
            error(f"{shown}: {reason}")
            record = failure_record(shown, reason)
        else:
            record = analysis_record(result, file=shown, input_info=read.info, maps=maps,
                                     network=networks[read.grayscale])
        if args.format == "jsonl":
            print(json.dumps(record, ensure_ascii=False), flush=True)
        elif args.format == "csv":
            writer.writerow(csv_row(record))
            sys.stdout.flush()
        elif record["ok"]:
            print(text_line(record), flush=True)
    return 1 if failed else 0


def _read(path: Path | None, max_pixels: int, allow_damaged: bool):
    from ..io import read_analysis_input

    if path is not None:
        return read_analysis_input(path, max_pixels=max_pixels, allow_damaged=allow_damaged)
    # Standard input: the same hardened reader, on a private temporary copy of the bytes.
    with tempfile.NamedTemporaryFile(prefix="jpegtrace-stdin-") as copy:
        data = sys.stdin.buffer.read()
        if not data:
            raise JpegTraceError("-", "standard input is empty")
        copy.write(data)
        copy.flush()
        try:
            return read_analysis_input(Path(copy.name), max_pixels=max_pixels, allow_damaged=allow_damaged)
        except JpegTraceError as exc:
            raise JpegTraceError("-", exc.reason) from None


def _write_maps(args, shown: str, path: Path | None, rgb, result, stems: dict) -> dict:
    """The map files asked for (``--maps``, ``--raw``, ``--view``), by kind."""
    maps: dict[str, str] = {}
    if not (args.maps or args.view or args.raw):
        return maps
    stem = "stdin" if path is None else path.stem
    stems[stem] = stems.get(stem, 0) + 1
    if stems[stem] > 1:  # a/x.png and b/x.tif: do not overwrite the first one's maps
        stem = f"{stem}-{stems[stem]}"
    if args.maps:
        from ..eval.reports import save_maps

        maps.update({k: display(v) for k, v in save_maps(result, rgb, args.maps, stem).items()})
    if args.raw:
        from ..eval.reports import save_raw_maps

        maps["raw"] = display(save_raw_maps(result, args.raw, stem))
    if args.view:
        from ..viewer import write_viewer

        regions = [r.as_dict() for r in result.regions]
        maps["viewer"] = display(write_viewer(Path(args.view) / f"{stem}.html", rgb, result, regions=regions,
                                              title=shown))
    return maps
