"""The ``jpegtrace`` command: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import JpegTraceError
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
                    "quality map; 100 also means never compressed), mean compression flag, and the verdict "
                    "(compressed when the mean flag is above 0.5). Failures are reported per file; the "
                    "exit status is 1 if any file failed.")
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
    p.set_defaults(func=_run_analyze)


def _run_analyze(args) -> int:
    from .images import as_analysis_array, native_stderr_captured
    from .inference import load_model, predict_maps, summarize

    try:
        model = load_model(args.model, device=args.device)
    except JpegTraceError as exc:
        _error(_error_of(exc))
        return 2
    records, failed, stems = [], 0, {}
    for name in args.images:
        shown = _display(name)
        rgb = result = None  # free the previous image and maps before reading the next
        try:
            with native_stderr_captured():  # libtiff prints its complaints itself; keep stderr to our one line
                rgb, grayscale, notes = as_analysis_array(Path(name), max_pixels=args.max_pixels)
            result = summarize(predict_maps(model, rgb, tile_size=args.tile_size, device=args.device),
                               grayscale=grayscale, notes=notes, inplace=True)
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
        if maps:
            record["maps"] = maps
        records.append(record)
        if not args.json:
            extra = f"  ({'; '.join(result.notes)})" if result.notes else ""
            print(f"{shown}\tQF {result.mean_quality:5.1f}\tflag {result.mean_flag:.2f}\t{verdict}{extra}", flush=True)
    if args.json:
        print(json.dumps({"images": records, "failed": failed}, indent=2, ensure_ascii=False))
    return 1 if failed else 0


def _add_train(sub) -> None:
    from .train import TrainConfig

    d = TrainConfig(data="", out="")
    p = sub.add_parser(
        "train", help="train a model on a folder of never-compressed images",
        description="Train the network on patches made online from never-compressed images (PNG, TIFF, BMP). "
                    "Writes checkpoint.pt, log.csv, val.csv, best.safetensors and model.safetensors into "
                    "OUT. Ctrl-C (or SIGTERM) saves a checkpoint; --resume continues exactly where it stopped.")
    p.add_argument("--data", required=True, metavar="DIR", help="folder of never-compressed images")
    p.add_argument("--split", metavar="CSV", help="CSV with columns file,split: train on 'train', validate on 'val'")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder for checkpoints, logs and weights")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps in all (default {d.steps})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"patches per step (default {d.batch_size})")
    p.add_argument("--patch-size", type=int, default=d.patch_size, help=f"patch side (default {d.patch_size}; paper 60)")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak Adam learning rate (default {d.lr})")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help=f"linear warm-up steps (default {d.warmup_steps})")
    p.add_argument("--flag-weight", type=float, default=d.flag_weight, help="weight of the flag map's loss (default 1)")
    p.add_argument("--recipe", choices=["jpegtrace", "paper"], default=d.recipe,
                   help="'paper': aligned 4:2:0 colour JPEGs only; 'jpegtrace' (default) adds 4:4:4, 4:2:2, "
                        "shifted grids and grayscale")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=d.precision,
                   help="bf16 autocast is about 2x faster on CPUs with AVX-512 BF16 (default fp32)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the data stream and initialisation")
    p.add_argument("--workers", type=int, default=d.workers, help=f"data worker processes (default {d.workers})")
    p.add_argument("--val-every", type=int, default=d.val_every, help=f"validate every N steps (default {d.val_every})")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="checkpoint every N steps")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default=d.device, help="torch device (default cpu)")
    p.set_defaults(func=_run_train)


#: Options that may differ on --resume without changing the data or the optimisation.
RESUME_OVERRIDES = ("steps", "val_every", "checkpoint_every", "workers", "threads", "device", "precision")


def _run_train(args) -> int:
    import dataclasses

    import torch

    from .train import TrainConfig, train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    checkpoint = Path(args.out) / "checkpoint.pt"
    if args.resume and checkpoint.exists():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)["config"]
        saved["dilations"] = tuple(saved["dilations"])
        config = dataclasses.replace(TrainConfig(**saved), **{k: getattr(config, k) for k in RESUME_OVERRIDES})
    try:
        path = train(config, resume=args.resume)
    except KeyboardInterrupt:
        return 130
    except FileNotFoundError as exc:
        _error(str(exc))
        return 2
    print(f"weights written to {path}")
    return 0


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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
