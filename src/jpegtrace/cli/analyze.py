"""``jpegtrace analyze``: one line (or a JSON record) per image, and its maps."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import JpegTraceError
from ..grid.check import GRID_SCORE_THRESHOLD
from .common import (
    add_grid_option,
    add_input_options,
    display,
    error,
    load_model,
    positive_int_arg,
    warn_if_bf16_is_slow,
)


def add_analyze(sub) -> None:
    p = sub.add_parser(
        "analyze", help="estimate JPEG quality and compression maps of images",
        description="Analyse each IMAGE and print one line per image: file, estimated QF (mean of the "
                    "quality map; 100 also means never compressed), mean compression flag, the score of the "
                    "DCT check for a JPEG block grid, and the verdict (compressed when the mean flag is above "
                    f"0.5 or the grid score above {GRID_SCORE_THRESHOLD:g}). Failures are reported per file; "
                    "the exit status is 1 if any file failed.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, TIFF, BMP, JPEG, WebP, GIF, ...)")
    p.add_argument("--json", action="store_true", help="print one JSON document with a record per image")
    p.add_argument("--maps", metavar="OUT_DIR", help="write colour-mapped quality and flag maps and an overlay per image")
    p.add_argument("--model", metavar="WEIGHTS", help="safetensors weights (default: the shipped model)")
    p.add_argument("--tile-size", type=positive_int_arg, default=512,
                   help="side of the region computed at once; bounds memory, never changes the maps (default 512)")
    add_input_options(p)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="arithmetic of the network: bf16 is about 1.9x faster on CPUs with AVX-512 BF16, many times "
                        "slower on CPUs without AVX-512 (a warning says so), and moves a pixel's QF by up "
                        "to about 1 (default fp32)")
    p.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch",
                   help="what runs the network: jpegtrace's streaming torch engine (default) or ONNX Runtime "
                        "(fp32; needs the onnx and onnxruntime packages)")
    add_grid_option(p)
    p.set_defaults(func=run_analyze)


def run_analyze(args) -> int:
    from ..analysis import analyze_array
    from ..io import native_stderr_captured, read_analysis_input
    from ..limits import time_limit

    model = load_model(args)
    if model is None:
        return 2
    warn_if_bf16_is_slow(args.precision, args.device)
    records, failed, stems = [], 0, {}
    for name in args.images:
        shown = display(name)
        rgb = result = read = None  # free the previous image and maps before reading the next
        try:
            with time_limit(args.time_limit, name):  # the file's whole work: reading, analysis, maps
                with native_stderr_captured():  # libtiff prints its complaints itself; keep stderr to our one line
                    read = read_analysis_input(Path(name), max_pixels=args.max_pixels,
                                               allow_damaged=args.allow_damaged)
                rgb = read.rgb
                result = analyze_array(rgb, model, tile_size=args.tile_size, device=args.device,
                                       precision=args.precision, backend=args.backend, grid_check=args.grid_check,
                                       grayscale=read.grayscale, notes=read.notes, valid=read.valid)
                maps = {}
                if args.maps:
                    from ..eval.reports import save_maps

                    stem = Path(name).stem
                    stems[stem] = stems.get(stem, 0) + 1
                    if stems[stem] > 1:  # a/x.png and b/x.tif: do not overwrite the first one's maps
                        stem = f"{stem}-{stems[stem]}"
                    maps = {k: display(v) for k, v in save_maps(result, rgb, args.maps, stem).items()}
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
        else:
            reason = None
        if reason is not None:
            failed += 1
            error(f"{shown}: {reason}")
            records.append({"file": shown, "ok": False, "error": reason})
            continue
        record = {"file": shown, "ok": True, "height": int(result.shape[0]), "width": int(result.shape[1]),
                  "verdict": result.verdict, "estimated_quality": _rounded(result.mean_quality, 2),
                  "mean_flag": _rounded(result.mean_flag, 4), "evidence_share": round(result.evidence_share, 4),
                  "compressed": result.compressed, "grayscale": result.grayscale, "notes": list(result.notes)}
        record["headline_quality"] = _rounded(result.headline_quality, 2)
        record["quality_source"] = result.quality_source
        record["table"] = None if result.table is None else result.table.as_dict()
        if result.grid is not None:  # the offset means something only where a grid was found
            record["grid"] = {"score": round(result.grid.score, 2), "found": result.grid.found,
                              "offset": list(result.grid.grid_offset) if result.grid.found else None}
        if maps:
            record["maps"] = maps
        records.append(record)
        if not args.json:
            extra = f"  ({'; '.join(result.notes)})" if result.notes else ""
            grid = "" if result.grid is None else f"\tgrid {result.grid.score:5.1f}"
            quality = "QF    -" if result.mean_quality is None else f"QF {result.mean_quality:5.1f}"
            flag = "flag    -" if result.mean_flag is None else f"flag {result.mean_flag:.2f}"
            # The table read from the pixels sits before the verdict, which stays the last field.
            table = "" if result.grid is None else "\t" + (result.table.describe() if result.table else "no table")
            print(f"{shown}\t{quality}\t{flag}\tevidence {result.evidence_share:4.0%}{grid}{table}\t{result.verdict}"
                  f"{extra}", flush=True)
    if args.json:
        print(json.dumps({"images": records, "failed": failed}, indent=2, ensure_ascii=False))
    return 1 if failed else 0


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
