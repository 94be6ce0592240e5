"""x"""

from __future__ import annotations

import csv
import dataclasses
import math
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils import parametrize
from tqdm import tqdm

from ..eval.collage import collage_benchmark
from ..eval.quality import evaluate_model, summarize_evaluation
from ..io import list_images, load_rgb
from ..nn.qfnet import QFNet
from ..nn.weights import load_weights, plain_state_dict, save_weights
from .config import TrainConfig
from .data import SynthesisConfig, TrainingBatches
from .highpass import emphasize_highpass_

#: Validation during training: the uncompressed images, 4:2:0 JPEGs at these QFs...
VAL_QUALITIES = (None, 10, 30, 50, 70, 90)


#: ...and one near-lossless 4:4:4 JPEG, the hardest case to tell from the original...
VAL_HARD_QUALITY = 98


#: ...and the first pairs of the collage benchmark the model card reports (QF 80, 256-pixel crops).
VAL_COLLAGE_PAIRS = 24


VAL_COLLAGE_CROP = 256


def mean_labels(synthesis: SynthesisConfig) -> tuple[float, float]:
    """Expected (quality, flag) label of a training pixel under ``synthesis``."""
    # A spliced patch is compressed over half its area on average (see patch_mask).
    splice = synthesis.splice_fraction
    compressed = (1.0 - splice) * (1.0 - synthesis.uncompressed_fraction) + splice * 0.5
    share = synthesis.high_quality_fraction
    mean_quality = ((1 - share) * (synthesis.min_quality + synthesis.max_quality) / 2
                    + share * (synthesis.high_quality_floor + synthesis.max_quality) / 2)
    return compressed * (100 - mean_quality) / 100, compressed


def build_model(config: TrainConfig) -> QFNet:
    """A freshly initialised network for ``config``.

    The last layer starts near zero with biases at the mean labels, so training begins at the
    trivial loss instead of spending its first steps shrinking large random outputs (which
    kills many ReLUs on the way).
    """
    model = QFNet(config.net())
    if config.output_init:
        last = model.layers[-1]
        with torch.no_grad():
            last.weight.mul_(0.01)
            last.bias.copy_(torch.tensor(mean_labels(config.synthesis())))
    if config.init_weights:
        _load_initial_weights(model, config.init_weights)
    model = emphasize_highpass_(model, config.highpass_gain, config.lowpass_gain, config.grid_feature_gain)
    if config.init_weights and parametrize.is_parametrized(model.layers[0], "weight"):
        # The trained kernel is the parametrized one: store the raw parameters that give it.
        first = model.layers[0].parametrizations.weight
        with torch.no_grad():
            first.original.copy_(first[0].raw_weight(first.original))
    return model


def _load_initial_weights(model: QFNet, path: str) -> None:
    """Copy the weights of ``path`` into ``model``; kernels of extra inputs ``path`` lacks start at zero."""
    source = load_weights(path)
    if (source.config.width, source.config.dilations) != (model.config.width, model.config.dilations):
        raise ValueError(f"{path}: a network of another shape cannot start this run")
    have, want = source.config.extra_inputs, model.config.extra_inputs
    if want[:len(have)] != have:
        raise ValueError(f"{path}: its extra inputs ({', '.join(have) or 'none'}) must be the first of this "
                         f"run's ({', '.join(want) or 'none'}) to start from it")
    state = plain_state_dict(source)
    first = state["layers.0.weight"]
    if first.shape[1] < model.config.in_channels:
        state["layers.0.weight"] = torch.cat(
            [first, first.new_zeros((first.shape[0], model.config.in_channels - first.shape[1], 3, 3))], dim=1)
    model.load_state_dict(state)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``lr * min_lr_ratio`` at ``config.steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


def map_losses(prediction: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared error of each output map against its label map.

    ``prediction`` is ``(B, 2, H, W)``; ``labels`` is ``(B, 2, H, W)``, or ``(B, 2)`` for
    constant label maps.
    """
    if labels.ndim == 2:
        labels = labels[:, :, None, None]
    squared = (prediction.float() - labels) ** 2
    per_map = squared.mean(dim=(0, 2, 3))
    return per_map[0], per_map[1]


def _save_checkpoint(path: Path, model, optimizer, step: int, config: TrainConfig, best: float | None):
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "config": asdict(config), "best_val_mae": best, "torch_rng": torch.get_rng_state()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _append_csv(path: Path, row: dict):
    """Append ``row``; a column the file lacks (a resumed run that now logs more) is added, empty above."""
    rows, fields = [], list(row)
    if path.exists():
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields = list(reader.fieldnames or [])
            missing = [k for k in row if k not in fields]
            if missing:
                rows = list(reader)
        if not missing:
            with open(path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=fields, extrasaction="ignore").writerow(row)
            return
        fields += missing
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows + [row])
    tmp.replace(path)


def _load_images(config: TrainConfig, subset: str | None) -> dict[str, np.ndarray]:
    paths = list_images(config.data, config.split, subset if config.split else None)
    return {p.name: load_rgb(p) for p in paths}


def validate(model: QFNet, images: dict[str, np.ndarray], device: str = "cpu",
             collage_files: list[Path] | None = None) -> dict:
    """QF MAE and flag accuracy on 4:2:0 JPEGs and originals, plus the near-lossless 4:4:4 case.

    Verdicts are the network's alone (mean flag above 0.5): the JPEG grid check does not learn.

    With ``collage_files`` (the val images' paths), also the mean IoU of the first
    :data:`VAL_COLLAGE_PAIRS` pairs of the collage benchmark.
    """
    model.eval()
    summary = summarize_evaluation(evaluate_model(model, images, VAL_QUALITIES, device=device,
                                                       grid_check=False))
    hard = summarize_evaluation(evaluate_model(model, images, (VAL_HARD_QUALITY,), subsampling="4:4:4",
                                               device=device, grid_check=False))
    scores = {"val_qf_mae": summary["qf_mae"], "val_detection_accuracy": summary["detection_accuracy"],
              "val_clean_judged_uncompressed": summary["clean_judged_uncompressed"],
              "val_444_q98_judged_compressed": 1.0 - hard["per_quality"][0]["judged_uncompressed"]}
    if collage_files:
        records, _ = collage_benchmark(model, collage_files, pairs=VAL_COLLAGE_PAIRS, crop=VAL_COLLAGE_CROP,
                                       device=device)
        scores["val_collage_iou"] = float(np.mean([r.iou for r in records]))
    model.train()
    return scores


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the weights of a run's ``checkpoint.pt`` as a plain safetensors file, e.g. to compare steps.

    The file records the step and the run's resolved config, as the weights ``train`` writes do.
    """
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    config = TrainConfig.from_checkpoint(state)
    model = build_model(dataclasses.replace(config, init_weights=None))
    model.load_state_dict(state["model"])
    return save_weights(model, out, {"step": str(state["step"]), "train_config": config.to_toml()})


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True, stop_at: int | None = None) -> Path:
    """Train (or resume training) a :class:`QFNet`; returns the path of the exported weights.

    Writes into ``config.out``: ``checkpoint.pt`` (every ``checkpoint_every`` steps, on Ctrl-C
    and at the end), ``log.csv`` (loss per logged step), ``val.csv`` (validation scores),
    ``best.safetensors`` (weights with the lowest validation QF MAE so far),
    ``step-N.safetensors`` (the weights at each validation, e.g. to average the last few) and
    ``model.safetensors`` (final weights).

    ``stop_at`` ends the run early at that step, with a checkpoint, as if interrupted: a
    later ``resume=True`` continues exactly (used to split long runs into bounded chunks).
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / "checkpoint.pt"
    (out / "config.toml").write_text(config.to_toml())  # the resolved config, as this run uses it
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)

    resuming = resume and checkpoint_path.exists()
    # A resumed run's weights come from its checkpoint, not from the weights it started from.
    model = build_model(dataclasses.replace(config, init_weights=None) if resuming else config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    start_step, best = 0, None
    if resuming:
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_step, best = int(state["step"]), state["best_val_mae"]
        torch.set_rng_state(state["torch_rng"])
        print(f"resuming {out} at step {start_step}", file=sys.stderr)
    elif resume:
        print(f"no checkpoint in {out}; starting afresh", file=sys.stderr)

    train_images = list(_load_images(config, "train").values())
    val_files = list_images(config.data, config.split, "val") if config.split and config.val_every else []
    val_images = {p.name: load_rgb(p) for p in val_files}
    batches = TrainingBatches(train_images, config.batch_size, config.synthesis(), seed=config.seed)
    end_step = min(config.steps, stop_at or config.steps)
    loader = torch.utils.data.DataLoader(
        batches, batch_size=None, sampler=range(start_step, end_step), num_workers=config.workers,
        prefetch_factor=4 if config.workers else None, pin_memory=device.type == "cuda")

    stop = {"requested": False}
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")
    step = start_step
    tick = time.perf_counter()
    waited, fetch_start = 0.0, tick  # seconds spent waiting for the data loader, per log interval
    # A bar only on a terminal: in a pipe or a log file its redraws are noise (log.csv has the numbers).
    bar = tqdm(total=config.steps, initial=start_step, disable=not progress or not sys.stderr.isatty(),
               dynamic_ncols=True, mininterval=1.0)
    model.to(memory_format=torch.channels_last)  # NHWC: oneDNN's convolutions train about 10% faster
    model.train()
    try:
        for patches, labels in loader:
            waited += time.perf_counter() - fetch_start
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, config)
            patches = patches.to(device, non_blocking=True).to(torch.float32, memory_format=torch.channels_last)
            patches = patches.div_(255.0)
            labels = labels.to(device)
            with autocast:
                prediction = model(patches)
            quality_loss, flag_loss = map_losses(prediction, labels)
            loss = quality_loss + config.flag_weight * flag_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}", q=f"{quality_loss.item():.4f}", f=f"{flag_loss.item():.4f}",
                            refresh=False)
            if step % config.log_every == 0 or step == config.steps:
                now = time.perf_counter()
                _append_csv(out / "log.csv", {"step": step, "lr": f"{learning_rate(step - 1, config):.3e}",
                                              "loss": f"{loss.item():.5f}", "quality_loss": f"{quality_loss.item():.5f}",
                                              "flag_loss": f"{flag_loss.item():.5f}", "seconds": f"{now - tick:.2f}",
                                              "time": f"{time.time():.0f}", "data_wait": f"{waited:.3f}"})
                tick, waited = now, 0.0
            if val_images and (step % config.val_every == 0 or step == config.steps):
                scores = validate(model, val_images, device=str(device), collage_files=val_files)
                if best is None or scores["val_qf_mae"] < best:
                    best = scores["val_qf_mae"]
                    save_weights(model, out / "best.safetensors", {"step": str(step), "val_qf_mae": f"{best:.4f}",
                                                                   "train_config": config.to_toml()})
                save_weights(model, out / f"step-{step}.safetensors", {"step": str(step), "train_config": config.to_toml()})
                _append_csv(out / "val.csv", {"step": step, **{k: f"{v:.4f}" for k, v in scores.items()}})
                bar.write(f"step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
            if step % config.checkpoint_every == 0 or stop["requested"]:
                _save_checkpoint(checkpoint_path, model, optimizer, step, config, best)
            if stop["requested"]:
                break
            fetch_start = time.perf_counter()
    except KeyboardInterrupt:
        _save_checkpoint(checkpoint_path, model, optimizer, step, config, best)
        bar.close()
        print(f"\ninterrupted at step {step}; checkpoint saved, continue with --resume", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    bar.close()
    _save_checkpoint(checkpoint_path, model, optimizer, step, config, best)
    return save_weights(model, out / "model.safetensors", {"step": str(step), "train_config": config.to_toml()})
