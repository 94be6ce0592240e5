"""The ``jpegtrace`` command: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
from pathlib import Path

from .errors import JpegTraceError
from .grid import GRID_SCORE_THRESHOLD
from .images import DEFAULT_MAX_PIXELS

PROG = "jpegtrace"


def _display(path) -> str:
    """A file name printable on any terminal, even when it is not valid UTF-8 (bad bytes as ``\\xff``)."""
    text = os.fsdecode(path)
    if not _has_surrogates(text):
        return text
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _warn_if_bf16_is_slow(precision: str | None, device: str | None) -> None:
    from .engine import bf16_is_fast

    if precision == "bf16" and not bf16_is_fast(device or "cpu"):
        print(f"{PROG}: warning: this CPU has no native bf16 arithmetic (AVX-512); --precision bf16 runs "
              "emulated, many times slower than fp32", file=sys.stderr)


def _error_of(exc: JpegTraceError) -> str:
    """``FILE: reason`` (or the reason alone) on one line, printable whatever the file name."""
    reason = " ".join(exc.reason.split())
    return f"{_display(exc.path)}: {reason}" if exc.path is not None else reason


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_analyze(sub) -> None:
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
    p.add_argument("--tile-size", type=_positive_int, default=512,
                   help="side of the region computed at once; bounds memory, never changes the maps (default 512)")
    p.add_argument("--max-pixels", type=_positive_int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help="refuse images whose header claims more pixels, before decoding them "
                        f"(decompression-bomb guard; default {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="arithmetic of the network: bf16 is about 1.9x faster on CPUs with AVX-512 BF16, many times "
                        "slower on CPUs without AVX-512 (a warning says so), and moves a pixel's QF by up "
                        "to about 1 (default fp32)")
    _add_grid_option(p)
    p.set_defaults(func=_run_analyze)


def _run_analyze(args) -> int:
    from .images import as_analysis_array, native_stderr_captured
    from .inference import analyze_array

    model = _load_model(args)
    if model is None:
        return 2
    _warn_if_bf16_is_slow(args.precision, args.device)
    records, failed, stems = [], 0, {}
    for name in args.images:
        shown = _display(name)
        rgb = result = None  # free the previous image and maps before reading the next
        try:
            with native_stderr_captured():  # libtiff prints its complaints itself; keep stderr to our one line
                rgb, grayscale, notes = as_analysis_array(Path(name), max_pixels=args.max_pixels)
            result = analyze_array(rgb, model, tile_size=args.tile_size, device=args.device,
                                   precision=args.precision, grid_check=args.grid_check,
                                   grayscale=grayscale, notes=notes)
            maps = {}
            if args.maps:
                from .reports import save_maps

                stem = Path(name).stem
                stems[stem] = stems.get(stem, 0) + 1
                if stems[stem] > 1:  # a/x.png and b/x.tif: do not overwrite the first one's maps
                    stem = f"{stem}-{stems[stem]}"
                maps = {k: _display(v) for k, v in save_maps(result, rgb, args.maps, stem).items()}
        except JpegTraceError as exc:
            reason = " ".join(exc.reason.split())
        except OSError as exc:
            reason = f"cannot write results: {exc.strerror or exc}"
            if exc.filename is not None:
                reason += f" ({_display(exc.filename)})"
        except MemoryError:
            reason = "not enough memory (try a smaller --tile-size)"
        except Exception as exc:  # noqa: BLE001 -- one bad file must not lose the others' results
            reason = f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}"
        else:
            reason = None
        if reason is not None:
            failed += 1
            _error(f"{shown}: {reason}")
            records.append({"file": shown, "ok": False, "error": reason})
            continue
        verdict = "compressed" if result.compressed else "uncompressed"
        record = {"file": shown, "ok": True, "height": int(result.shape[0]), "width": int(result.shape[1]),
                  "estimated_quality": round(result.mean_quality, 2), "mean_flag": round(result.mean_flag, 4),
                  "compressed": result.compressed, "grayscale": result.grayscale, "notes": list(result.notes)}
        if result.grid is not None:
            record["grid"] = {"score": round(result.grid.score, 2), "found": result.grid.found,
                              "offset": list(result.grid.grid_offset)}
        if maps:
            record["maps"] = maps
        records.append(record)
        if not args.json:
            extra = f"  ({'; '.join(result.notes)})" if result.notes else ""
            grid = "" if result.grid is None else f"\tgrid {result.grid.score:5.1f}"
            print(f"{shown}\tQF {result.mean_quality:5.1f}\tflag {result.mean_flag:.2f}{grid}\t{verdict}{extra}",
                  flush=True)
    if args.json:
        print(json.dumps({"images": records, "failed": failed}, indent=2, ensure_ascii=False))
    return 1 if failed else 0


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train a model on a folder of never-compressed images",
        description="Train the network on patches made online from never-compressed images (PNG, TIFF, BMP), "
                    "with the settings of a TOML config file (configs/train/*.toml; every field of "
                    "jpegtrace.train.TrainConfig) and --set overrides. Writes config.toml (the resolved settings), "
                    "checkpoint.pt, log.csv, val.csv, best.safetensors, step-N.safetensors (the weights at each "
                    "validation) and model.safetensors into OUT. Ctrl-C (or SIGTERM) saves a checkpoint; --resume "
                    "continues exactly where it stopped, with the run's saved settings and any --set on top.")
    p.add_argument("--config", metavar="TOML", help="training settings (e.g. configs/train/qfnet-v11.toml)")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set steps=4000 --set threads=2 (repeatable; values as in TOML)")
    p.add_argument("--data", metavar="DIR", help="folder of never-compressed images (overrides the config's data)")
    p.add_argument("--split", metavar="CSV",
                   help="CSV with columns file,split: train on 'train', validate on 'val' (overrides the config's)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder for checkpoints, logs and weights")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in RUN_DIR from its checkpoint, with its saved settings")
    p.set_defaults(func=_run_train)


def _run_train(args) -> int:
    import torch

    from .train import TrainConfig, load_config, train

    checkpoint = Path(args.out) / "checkpoint.pt"
    # The folders are those of this command: a run folder may have been copied or moved since.
    folders = {k: v for k, v in (("data", args.data), ("split", args.split), ("out", args.out)) if v is not None}
    settings = [*args.settings, *(f"{k}={json.dumps(v)}" for k, v in folders.items())]
    try:
        if args.resume and checkpoint.exists():
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            config = load_config(args.config, settings, base=dataclasses.asdict(TrainConfig.from_checkpoint(state)))
        elif args.config is None:
            raise ValueError("give --config FILE (see configs/train/) or --resume an existing run")
        else:
            config = load_config(args.config, settings)
        if not config.data:
            raise ValueError("no data folder: give --data or set data in the config")
        config.synthesis()
    except (ValueError, TypeError, OSError) as exc:
        _error(f"train: {exc}")
        return 2
    _warn_if_bf16_is_slow(config.precision, config.device)
    try:
        path = train(config, resume=args.resume)
    except KeyboardInterrupt:
        return 130
    except FileNotFoundError as exc:
        _error(str(exc))
        return 2
    print(f"weights written to {path}")
    return 0


# --------------------------------------------------------------------------------------------
# The paper's experiments: evaluate, collage, collage-benchmark, assess
# --------------------------------------------------------------------------------------------

def _qualities(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated JPEG quality factors, e.g. ``10,50,90``."""
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("no quality factor given")
    bad = [v for v in values if not 1 <= v <= 100]
    if bad:
        raise argparse.ArgumentTypeError(f"quality factors must be in 1..100, got {bad[0]}")
    return tuple(dict.fromkeys(values))


def _quality(text: str) -> int:
    """argparse type: one JPEG quality factor, 1..100."""
    return _qualities(text)[0] if "," not in text else _fail_quality(text)


def _fail_quality(text: str):
    raise argparse.ArgumentTypeError(f"expected one quality factor in 1..100, got {text!r}")


def _offset(text: str) -> tuple[int, int]:
    """argparse type: ``DY,DX``, two non-negative integers."""
    try:
        dy, dx = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DY,DX (two integers), got {text!r}") from None
    if dy < 0 or dx < 0:
        raise argparse.ArgumentTypeError("grid offsets must be non-negative")
    return dy, dx


def _shapes(text: str) -> tuple[str, ...]:
    from .experiments import MASK_SHAPES

    values = tuple(dict.fromkeys(v for v in text.replace(" ", "").split(",") if v))
    bad = [v for v in values if v not in MASK_SHAPES]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"mask shapes must be among {','.join(MASK_SHAPES)}, got {text!r}")
    return values


def _flag_threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    from .model import check_flag_threshold  # imported here: torch stays out of --help

    try:
        return check_flag_threshold(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_grid_option(p) -> None:
    p.add_argument("--no-grid-check", dest="grid_check", action="store_false",
                   help="keep the network's flag map and judge by its mean alone (the paper's rule), without "
                        "the DCT check for a JPEG block grid that also catches QF 97-100 JPEGs and raises the "
                        "flag of their clipped blocks")


def _add_model_options(p, required: bool = False, model_help: str = "safetensors weights (default: the shipped model)") -> None:
    p.add_argument("--model", metavar="WEIGHTS", required=required, help=model_help)
    p.add_argument("--tile-size", type=_positive, default=512, help="side of the region computed at once (default 512)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")


def _add_quiet(p) -> None:
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (it is shown only when standard error is a terminal anyway)")


def _add_data_options(p, subset: str = "val") -> None:
    p.add_argument("--data", required=True, metavar="DIR",
                   help="folder of never-compressed images; its PNG, TIFF, BMP, PPM and PGM files are used")
    p.add_argument("--split", metavar="CSV", help="CSV with columns file,split: use only the files of --subset")
    p.add_argument("--subset", default=subset, help=f"which split of --split to use (default {subset})")


def _load_model(args):
    """The model of ``--model``, or None after printing why it cannot be loaded."""
    from .inference import load_model

    try:
        return load_model(args.model, device=args.device)
    except JpegTraceError as exc:
        _error(_error_of(exc))
        return None


def _progress(args, desc: str, unit: str):
    """A callable that wraps an iterable in a tqdm bar on standard error (off with --quiet or no TTY)."""
    from tqdm import tqdm

    disable = bool(getattr(args, "quiet", False)) or not sys.stderr.isatty()
    return lambda items: tqdm(items, desc=desc, unit=unit, disable=disable, file=sys.stderr, dynamic_ncols=True)


def _data_files(args) -> dict[str, Path] | None:
    """The never-compressed images of ``--data`` (and ``--split``/``--subset``) by display name."""
    from .data import LOSSLESS_SUFFIXES, list_images

    if args.split and not Path(args.split).is_file():
        _error(f"{_display(args.split)}: no such split file")
        return None
    try:
        paths = list_images(args.data, args.split, args.subset if args.split else None, suffixes=LOSSLESS_SUFFIXES)
    except FileNotFoundError:
        _error(f"{_display(args.data)}: not a directory")
        return None
    except (KeyError, OSError, csv.Error) as exc:
        _error(f"{_display(args.split)}: cannot read the split file ({exc})")
        return None
    if not paths:
        where = f" in split {args.subset!r}" if args.split else ""
        _error(f"{_display(args.data)}: no never-compressed images (PNG, TIFF, BMP, PPM, PGM){where}")
        return None
    return {_display(p.relative_to(args.data)): p for p in paths}


def _start_data_run(args) -> tuple[dict[str, Path], object] | None:
    """Files of ``--data``, the model and a writable ``--out``; None after printing what is wrong."""
    files = _data_files(args)
    if files is None:
        return None
    model = _load_model(args)
    if model is None or not _prepare_out(args):
        return None
    return files, model


def _data_settings(args, **extra) -> dict:
    """:func:`_settings` of a run over ``--data`` (with its split and subset)."""
    return _settings(args, data=_display(args.data), split=_display(args.split) if args.split else None,
                     subset=args.subset if args.split else None, **extra)


def _settings(args, **extra) -> dict:
    from . import __version__

    return {"jpegtrace": __version__, "model": _display(args.model) if args.model else "shipped", **extra}


def _prepare_out(args) -> bool:
    """Create ``--out`` before a long run; False after printing why it cannot be."""
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _error(f"{_display(args.out)}: cannot create the output folder ({exc.strerror or exc})")
        return False
    if not os.access(args.out, os.W_OK):
        _error(f"{_display(args.out)}: output folder is not writable")
        return False
    return True


def _write_error(exc: OSError) -> int:
    _error(f"cannot write results: {exc.strerror or exc}" + (f" ({_display(exc.filename)})" if exc.filename else ""))
    return 2


def _report_failures(failures) -> None:
    for f in failures:
        _error(f"{f.file}: {f.reason}")


def _add_evaluate(sub) -> None:
    from .experiments import DEFAULT_QUALITIES

    p = sub.add_parser(
        "evaluate", help="QF estimation and detection accuracy on never-compressed images (Fig. 2, Table 1)",
        description="Compress every never-compressed image of DIR at each QF, analyse it, and report per QF "
                    "the mean and standard deviation of the estimated QF (mean of the quality map) and its "
                    "mean absolute error (the paper's Fig. 2), and the share of images judged uncompressed "
                    "(mean flag at most 0.5 and no JPEG grid found; 'flag alone': the paper's rule, mean flag "
                    "at most 0.5) at QF 97, 98, 99, 100 and without JPEG (its Table 1), plus "
                    "the QF MAE over the QFs up to 95 and the detection accuracy. Writes into OUT_DIR: "
                    "records.csv, per_quality.csv, table1.csv, failures.csv, summary.json, fig2_quality.png "
                    "and table1.png. The same images and settings give the same numbers. Unreadable files "
                    "are reported and skipped; the exit status is then 1.")
    _add_data_options(p)
    p.add_argument("--qualities", type=_qualities, default=DEFAULT_QUALITIES, metavar="Q1,Q2,...",
                   help="QFs to compress at (default: " + ",".join(map(str, DEFAULT_QUALITIES)) + "); "
                        "the images are also analysed as they are")
    p.add_argument("--subsampling", choices=["4:2:0", "4:2:2", "4:4:4"], default="4:2:0",
                   help="chroma subsampling of the test JPEGs (default 4:2:0)")
    p.add_argument("--grid-shift", type=_offset, nargs="?", const=(3, 5), default=(0, 0), metavar="DY,DX",
                   help="start the JPEG grid DY rows and DX columns before the image, as in a cropped JPEG "
                        "(without a value: 3,5; default: aligned grid)")
    p.add_argument("--grayscale", action="store_true", help="turn the images grayscale first (one-channel JPEGs)")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="folder for the results (created; other files kept)")
    _add_model_options(p)
    _add_grid_option(p)
    _add_quiet(p)
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    from .experiments import evaluate_files, summarize_evaluation
    from .reports import write_evaluation_report

    started = _start_data_run(args)
    if started is None:
        return 2
    files, model = started
    records, failures = evaluate_files(
        model, files, args.qualities, subsampling=args.subsampling, grid_offset=args.grid_shift,
        grayscale=args.grayscale, device=args.device, tile_size=args.tile_size,
        progress=_progress(args, "evaluate", " test image"), grid_check=args.grid_check)
    _report_failures(failures)
    if not records:
        _error("no image could be read")
        return 1
    summary = summarize_evaluation(records)
    settings = _data_settings(args, qualities=list(args.qualities), subsampling=args.subsampling,
                              grid_offset=list(args.grid_shift), grayscale=args.grayscale,
                              grid_check=args.grid_check)
    try:
        written = write_evaluation_report(args.out, records, summary, failures, settings)
    except OSError as exc:
        return _write_error(exc)
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
    print(f"results written to {_display(args.out)} ({', '.join(p.name for p in written.values())})")
    return 1 if failures else 0


def _add_collage(sub) -> None:
    from .experiments import MASK_SHAPES

    p = sub.add_parser(
        "collage", help="paste a JPEG-compressed region into a clean image and score its localisation (Fig. 3)",
        description="Build the fake image of the paper's Fig. 3: the donor, JPEG-compressed at --quality, shows "
                    "through the mask; the never-compressed background everywhere else. The donor is cropped "
                    "(or mirrored) to the background's size. Analyse the fake image and score its flag map "
                    "against the mask: IoU and F1 of flag > threshold (the model's calibrated one unless --threshold "
                    "is given), and the pixel ROC AUC of the flag map. "
                    "Writes into OUT_DIR: fake.png, mask.png, fake_quality.png, fake_flag.png, fake_overlay.png, "
                    "collage.png (all four panels), maps.npz and scores.json / scores.csv.")
    p.add_argument("--background", required=True, metavar="CLEAN_IMG", help="never-compressed image (PNG, TIFF, BMP...)")
    p.add_argument("--donor", required=True, metavar="IMG", help="image the pasted region comes from")
    p.add_argument("--quality", type=_quality, default=80, metavar="QF",
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
    p.add_argument("--threshold", type=_flag_threshold, metavar="T",
                   help="flag above which a pixel counts as compressed in the mask (default: the model's, "
                        "calibrated on training collages; 0.5 for models without one)")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="folder for the results (created; other files kept)")
    _add_grid_option(p)
    _add_model_options(p)
    p.set_defaults(func=_run_collage)


def _run_collage(args) -> int:
    import numpy as np

    from .experiments import make_mask, read_mask, run_collage
    from .images import as_analysis_array
    from .reports import write_collage_report

    try:
        background, _, _ = as_analysis_array(Path(args.background))
        donor, _, _ = as_analysis_array(Path(args.donor))
        height, width = background.shape[:2]
        if args.mask:
            mask = read_mask(Path(args.mask), height, width)
        else:
            mask = make_mask(args.shape, height, width, np.random.default_rng(args.seed))
    except JpegTraceError as exc:
        _error(f"{_display(exc.path)}: {exc.reason}" if exc.path else exc.reason)
        return 2
    model = _load_model(args)
    if model is None or not _prepare_out(args):
        return 2
    result = run_collage(model, background, donor, args.quality, mask, subsampling=args.subsampling,
                         threshold=args.threshold, tile_size=args.tile_size, device=args.device,
                         grid_check=args.grid_check)
    settings = _settings(args, background=_display(args.background), donor=_display(args.donor),
                         mask=_display(args.mask) if args.mask else args.shape,
                         seed=args.seed if not args.mask and args.shape == "blob" else None,
                         subsampling=args.subsampling, threshold=result.scores.threshold,
                         grid_check=args.grid_check)
    try:
        write_collage_report(args.out, result, settings)
    except OSError as exc:
        return _write_error(exc)
    s = result.scores.as_dict()
    auc = "n/a" if s["auc"] is None else f"{s['auc']:.3f}"
    print(f"IoU {s['iou']:.3f}\tF1 {s['f1']:.3f} (flag > {s['threshold']:g})\tAUC {auc}\t"
          f"mean flag inside {result.flag_inside:.2f}, outside {result.flag_outside:.2f}")
    print(f"results written to {_display(args.out)}")
    return 0


def _add_collage_benchmark(sub) -> None:
    from .experiments import MASK_SHAPES

    p = sub.add_parser(
        "collage-benchmark", help="mean localisation scores over many random collages (the forensic benchmark)",
        description="Make --pairs fake images from random background/donor pairs of DIR, each with a random "
                    "mask (disc, rectangle or blob) and a QF drawn from --qualities, as the collage command "
                    "does, and report the mean IoU, F1 (flag > threshold) and pixel AUC over them, overall, per QF "
                    "and per mask shape. Pair i depends only on --seed and i, so a run is reproducible. "
                    "Writes into OUT_DIR: pairs.csv, failures.csv, summary.json and scores.png. Unreadable files "
                    "are reported and their pairs skipped; the exit status is then 1.")
    _add_data_options(p)
    p.add_argument("--pairs", type=_positive, default=100, help="number of fake images (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pairs, masks, crops and QFs (default 0)")
    p.add_argument("--qualities", type=_qualities, default=(80,), metavar="Q1,Q2,...",
                   help="QFs of the pasted regions, one drawn per pair (default 80)")
    p.add_argument("--shapes", type=_shapes, default=MASK_SHAPES, metavar="S1,S2,...",
                   help="mask shapes to draw from (default " + ",".join(MASK_SHAPES) + ")")
    p.add_argument("--crop", type=_positive, metavar="N",
                   help="use a random N x N window of each background (default: the whole image)")
    p.add_argument("--subsampling", choices=["4:2:0", "4:2:2", "4:4:4"], default="4:2:0",
                   help="chroma subsampling of the donor JPEGs (default 4:2:0)")
    p.add_argument("--threshold", type=_flag_threshold, metavar="T",
                   help="flag above which a pixel counts as compressed in the mask (default: the model's, "
                        "calibrated on training collages; 0.5 for models without one)")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="folder for the results (created; other files kept)")
    _add_grid_option(p)
    _add_model_options(p)
    _add_quiet(p)
    p.set_defaults(func=_run_collage_benchmark)


def _run_collage_benchmark(args) -> int:
    from .experiments import collage_benchmark, summarize_collage_benchmark
    from .reports import write_collage_benchmark_report

    started = _start_data_run(args)
    if started is None:
        return 2
    files, model = started
    records, failures = collage_benchmark(
        model, files, pairs=args.pairs, seed=args.seed, qualities=args.qualities, shapes=args.shapes,
        crop=args.crop, subsampling=args.subsampling, threshold=args.threshold, tile_size=args.tile_size,
        device=args.device, progress=_progress(args, "collage-benchmark", " pair"), grid_check=args.grid_check)
    _report_failures(failures)
    summary = summarize_collage_benchmark(records)
    settings = _data_settings(args, pairs=args.pairs, seed=args.seed, qualities=list(args.qualities),
                              shapes=list(args.shapes), crop=args.crop, subsampling=args.subsampling,
                              threshold=model.flag_threshold if args.threshold is None else args.threshold,
                              grid_check=args.grid_check)
    try:
        write_collage_benchmark_report(args.out, records, summary, failures, settings)
    except OSError as exc:
        return _write_error(exc)
    if not records:
        _error("no pair could be made")
        return 1

    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    print(f"{summary['n']} fake images: mean IoU {fmt(summary['mean_iou'])}, mean F1 {fmt(summary['mean_f1'])} "
          f"(flag > {settings['threshold']:g}), "
          f"mean AUC {fmt(summary['mean_auc'])}")
    print(f"results written to {_display(args.out)}")
    return 1 if failures else 0


def _add_calibrate(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="fit a trained model's quality calibration and flag threshold on training images",
        description="Fit, on never-compressed training images of DIR, the two calibrations saved with a "
                    "model's weights, and write the weights with them to OUT. The quality calibration is a "
                    "monotone map of the quality map that puts the mean estimated QF of JPEGs of these "
                    "images on their true QF (each image compressed at --per-image QFs from 5 to 95, as 4:2:0, "
                    "4:4:4, grayscale or with a shifted grid, and also kept as it is). The flag threshold is "
                    "the one with the best mean IoU on --pairs collages of these images (a QF-80 region pasted "
                    "into a 256-pixel crop; it makes the masks of collage and collage-benchmark). Whole-image "
                    "verdicts keep the mean flag above 0.5. Use images the model will not be measured on.")
    _add_data_options(p, subset="train")
    p.add_argument("--out", required=True, metavar="OUT", help="weights file to write (a .safetensors file)")
    p.add_argument("--per-image", type=_positive, default=6,
                   help="QFs per image for the quality calibration, at most the 11 of 5..95 (default 6)")
    p.add_argument("--pairs", type=_positive, default=100, help="collages for the flag threshold (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the QFs, kinds of JPEG and collages (default 0)")
    _add_model_options(p, required=True, model_help="safetensors weights to calibrate")
    _add_quiet(p)
    p.set_defaults(func=_run_calibrate)


def _run_calibrate(args) -> int:
    from safetensors import safe_open

    from .experiments import CALIBRATION_QUALITIES, calibrate_flag_threshold, fit_quality_calibration
    from .images import as_analysis_array
    from .inference import to_device
    from .model import load_weights, save_weights

    files = _data_files(args)
    if files is None:
        return 2
    # A model of its own, not the cached one of load_model: its calibrations are about to change.
    # A bad file or device raises JpegTraceError, which main() reports in one line (status 2).
    model = to_device(load_weights(args.model), args.device)
    images, failures = {}, []
    for name, path in files.items():
        try:
            images[name] = as_analysis_array(path)[0]
        except JpegTraceError as exc:
            failures.append(exc)
            _error(_error_of(exc))
    if not images:
        _error("no image could be read")
        return 1
    per_image = min(args.per_image, len(CALIBRATION_QUALITIES))
    calibration = fit_quality_calibration(model, images, per_image=per_image, seed=args.seed,
                                          tile_size=args.tile_size, device=args.device,
                                          progress=_progress(args, "quality calibration", " image"))
    threshold = calibrate_flag_threshold(model, list(files.values()), pairs=args.pairs, seed=args.seed,
                                         tile_size=args.tile_size, device=args.device,
                                         progress=_progress(args, "flag threshold", " collage"))
    model.quality_calibration, model.flag_threshold = calibration, threshold.best
    with safe_open(str(args.model), framework="pt") as f:  # keep what the file says of itself (its step, ...)
        kept = f.metadata() or {}
    try:
        save_weights(model, args.out, {**kept, "calibrated_on": _display(args.data),
                                       "calibration_seed": str(args.seed)})
    except OSError as exc:
        return _write_error(exc)
    print("quality calibration (QF in -> QF out): " + ", ".join(
        f"{100 * (1 - k):g} -> {100 * (1 - v):.1f}" for k, v in zip(calibration.knots, calibration.values)))
    print(f"flag threshold of localisation masks: {threshold.best:g} (mean IoU {max(threshold.mean_iou):.3f} "
          f"on {threshold.pairs} collages)")
    print(f"calibrated weights written to {_display(args.out)}")
    return 1 if failures else 0


def _add_assess(sub) -> None:
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
    p.add_argument("--thumbnail-size", type=_positive, default=160, metavar="PX",
                   help="longer side of the thumbnails in the HTML page (default 160)")
    _add_model_options(p)
    _add_grid_option(p)
    _add_quiet(p)
    p.set_defaults(func=_run_assess)


def _run_assess(args) -> int:
    from .data import list_images
    from .experiments import assess_images, summarize_assessment
    from .reports import save_thumbnails, write_assessment_report

    try:
        paths = list_images(args.folder, recursive=args.recursive, exclude=args.out)
    except FileNotFoundError:
        _error(f"{_display(args.folder)}: not a directory")
        return 2
    if not paths:
        _error(f"{_display(args.folder)}: no image files")
        return 2
    model = _load_model(args)
    if model is None or not _prepare_out(args):
        return 2
    files = {_display(p.relative_to(args.folder)): p for p in paths}
    thumbnails: dict[str, tuple[str, str]] = {}

    def on_result(name, rgb, analysis):
        thumbnails[name] = save_thumbnails(args.out, len(thumbnails) + 1, rgb, analysis.flag_map,
                                           args.thumbnail_size)

    try:
        records, failures = assess_images(model, files, tile_size=args.tile_size, device=args.device,
                                          progress=_progress(args, "assess", " image"), on_result=on_result,
                                          grid_check=args.grid_check)
        _report_failures(failures)
        summary = summarize_assessment(records, failures)
        settings = _settings(args, folder=_display(args.folder), recursive=args.recursive,
                             grid_check=args.grid_check)
        written = write_assessment_report(args.out, records, failures, summary, thumbnails, settings)
    except OSError as exc:
        return _write_error(exc)
    print(f"{summary['n_compressed']} compressed, {summary['n_uncompressed']} uncompressed "
          f"({summary['n_grayscale']} grayscale), {summary['n_failed']} unreadable")
    print(f"results written to {_display(args.out)}; open {_display(written['html'])}")
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Find JPEG compression in images from their pixels alone: a per-pixel map of the JPEG "
                    "quality factor and of whether each region was ever JPEG-compressed, even in PNG, BMP "
                    "or TIFF files.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_analyze(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_collage(sub)
    _add_collage_benchmark(sub)
    _add_assess(sub)
    _add_calibrate(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except JpegTraceError as exc:
        _error(_error_of(exc))
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
