import csv

import numpy as np
import pytest

from jpegtrace.model import load_weights
from jpegtrace.train import TrainConfig, learning_rate, train


def _config(image_folder, out, **overrides):
    folder, split = image_folder
    base = dict(data=str(folder), split=str(split), out=str(out), steps=6, batch_size=4, patch_size=24,
                width=8, dilations=(1, 2, 1), workers=0, val_every=0, checkpoint_every=3, log_every=1,
                threads=1, seed=3)
    base.update(overrides)
    return TrainConfig(**base)


def _losses(out):
    with open(out / "log.csv") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}


def test_learning_rate_warms_up_then_decays():
    config = TrainConfig(data="", out="", steps=1000, warmup_steps=100, lr=1e-3, min_lr_ratio=0.1)
    assert learning_rate(0, config) == pytest.approx(1e-5)
    assert learning_rate(99, config) == pytest.approx(1e-3)
    assert learning_rate(550, config) == pytest.approx(0.55e-3, rel=0.01)
    assert learning_rate(1000, config) == pytest.approx(1e-4)


def test_a_few_dozen_steps_lower_the_loss(image_folder, tmp_path):
    out = tmp_path / "run"
    config = _config(image_folder, out, steps=60, warmup_steps=5, lr=3e-3, batch_size=8)
    weights = train(config, progress=False)
    losses = _losses(out)
    first, last = np.mean([losses[s] for s in range(1, 6)]), np.mean([losses[s] for s in range(51, 61)])
    assert last < 0.5 * first
    assert load_weights(weights).config.width == 8


def test_resume_gives_the_same_next_losses_as_an_uninterrupted_run(image_folder, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(_config(image_folder, straight), progress=False)
    train(_config(image_folder, split), progress=False, stop_at=3)
    assert max(_losses(split)) == 3
    train(_config(image_folder, split), resume=True, progress=False)
    a, b = _losses(straight), _losses(split)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5, 6]
    for step in (4, 5, 6):
        assert a[step] == pytest.approx(b[step], abs=1e-6)


def test_validation_writes_scores_and_best_weights(image_folder, tmp_path):
    out = tmp_path / "run"
    train(_config(image_folder, out, steps=4, val_every=2), progress=False)
    with open(out / "val.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(0 <= float(r["val_detection_accuracy"]) <= 1 and float(r["val_qf_mae"]) >= 0 for r in rows)
    assert (out / "best.safetensors").exists() and (out / "checkpoint.pt").exists()
