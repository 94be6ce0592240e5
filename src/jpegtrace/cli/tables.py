"""``jpegtrace tables``: the last JPEG's luma quantisation table read from the pixels, as JPEGsnoop prints a DQT."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import JpegTraceError
from .common import display, error, positive_int_arg


def add_tables(sub) -> None:
    p = sub.add_parser(
        "tables", help="read the last JPEG's quantisation table from the pixels",
        description="Read the luma quantisation table of the last JPEG compression from the pixels, where its 8x8 "
                    "grid survives (also in PNG, BMP or TIFF files and cropped JPEGs): each step, '?' where the "
                    "coefficients carry no information, with a confidence 0-9; the exact QF when the table is a "
                    "scaled IJG one, else the nearest IJG QF; then the chroma table and the chroma subsampling "
                    "(4:4:4, 4:2:2 or 4:2:0) where they can be read. For a JPEG file, its own tables are printed beside "
                    "(a file whose pixels show another table was re-saved from an older JPEG).")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--windows", type=positive_int_arg, metavar="PX",
                   help="also read the table of every PX x PX tile with a grid of its own (e.g. 128), "
                        "for regions pasted from another JPEG")
    p.add_argument("--json", action="store_true", help="one JSON object per image (JSON Lines)")
    p.set_defaults(func=run_tables)


def run_tables(args) -> int:
    from dataclasses import replace

    from ..chroma import estimate_chroma_table
    from ..io import as_analysis_array
    from ..tables import estimate_luma_table, estimate_tables_by_window, file_tables, format_table

    failed = 0
    for name in args.images:
        shown = display(name)
        try:
            rgb = as_analysis_array(Path(name))[0]
        except JpegTraceError as exc:
            failed += 1
            error(f"{shown}: {' '.join(exc.reason.split())}")
            continue
        table = estimate_luma_table(rgb)
        if table is not None:
            table = replace(table, chroma=estimate_chroma_table(rgb, grid_offset=table.grid_offset))
        declared = file_tables(name)
        windows = estimate_tables_by_window(rgb, window=args.windows) if args.windows else []
        if args.json:
            print(json.dumps({"file": shown, "pixels": None if table is None else table.as_dict(),
                              "file_tables": None if declared is None else [t.tolist() for t in declared],
                              "windows": [w.as_dict() for w in windows]}), flush=True)
            continue
        print(f"{shown}: {'no table (no JPEG grid in the pixels, or too few steps readable)' if table is None else table.describe()}")
        if table is not None:
            print(f"  luma table from the pixels (grid offset {table.grid_offset}, {table.blocks} blocks; "
                  "steps, then confidence 0-9):")
            print("\n".join("    " + line for line in format_table(table.steps, table.confidence).splitlines()))
            chroma = table.chroma
            if chroma is None:
                print("  chroma table and subsampling: not readable from the pixels")
            else:
                standard = f", IJG chroma table of QF {chroma.ijg_quality}" if chroma.ijg_quality else ", non-standard"
                print(f"  chroma table from the pixels ({chroma.subsampling}{standard}; {chroma.blocks} blocks, "
                      f"{int(chroma.known.sum())} steps read, {chroma.runner_up} under any other subsampling):")
                print("\n".join("    " + line for line in format_table(chroma.steps, chroma.confidence).splitlines()))
        if declared is not None:
            print("  luma table the JPEG file declares:")
            print("\n".join("    " + line for line in format_table(declared[0]).splitlines()))
            if len(declared) > 1:
                print("  chroma table the JPEG file declares:")
                print("\n".join("    " + line for line in format_table(declared[1]).splitlines()))
            if table is not None:
                known = table.steps > 0
                same = bool((declared[0][known] == table.steps[known]).all())
                if not same:
                    print("  the pixels show another table: the file was re-saved from an older JPEG")
                elif table.earlier_quality is not None:
                    print(f"  the pixels show the file's own table over an earlier one (IJG QF ≈ {table.earlier_quality}): "
                          "the file was re-saved from an older JPEG")
                else:
                    print("  the pixels show the file's own table")
        for w in windows:
            print(f"  window y={w.y} x={w.x} {w.height}x{w.width}: {w.table.describe()}, grid offset {w.table.grid_offset}")
    return 1 if failed else 0
