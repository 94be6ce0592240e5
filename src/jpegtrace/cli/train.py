"""``jpegtrace train``: train a model from a TOML config file, or resume a run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .common import error, positive_int_arg, warn_if_bf16_is_slow


def add_train(sub) -> None:
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
    p.add_argument("--stop-at", type=positive_int_arg, metavar="STEP",
                   help="stop at this step with a checkpoint, as if interrupted (the schedule still ends at steps)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in RUN_DIR from its checkpoint, with its saved settings")
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    import torch

    from ..train.config import TrainConfig, load_config
    from ..train.loop import train

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
        error(f"train: {exc}")
        return 2
    warn_if_bf16_is_slow(config.precision, config.device)
    try:
        path = train(config, resume=args.resume, stop_at=args.stop_at)
    except KeyboardInterrupt:
        return 130
    except FileNotFoundError as exc:
        error(str(exc))
        return 2
    print(f"weights written to {path}")
    return 0
