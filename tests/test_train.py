import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from jpegtrace.nn.weights import load_weights
from jpegtrace.train.config import TrainConfig
from jpegtrace.train.loop import learning_rate, train

#: End-to-end: seconds each (`make check` leaves them out).
pytestmark = pytest.mark.slow


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
    # From the plain He initialisation the outputs start far from the labels; the loop must fix that.
    out = tmp_path / "run"
    config = _config(image_folder, out, steps=60, warmup_steps=5, lr=3e-3, batch_size=8, output_init=False)
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
    assert all(0 <= float(r["val_collage_iou"]) <= 1 for r in rows)
    assert (out / "best.safetensors").exists() and (out / "checkpoint.pt").exists()
    snapshots = {p.name: load_weights(p) for p in out.glob("step-*.safetensors")}
    assert sorted(snapshots) == ["step-2.safetensors", "step-4.safetensors"]
    final = load_weights(out / "model.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(snapshots["step-4.safetensors"].state_dict().values(),
                                                 final.state_dict().values()))


def test_a_log_that_gains_a_column_keeps_its_rows(tmp_path):
    from jpegtrace.train.loop import _append_csv

    log = tmp_path / "val.csv"
    _append_csv(log, {"step": 1, "mae": "3.0"})
    _append_csv(log, {"step": 2, "mae": "2.5"})
    _append_csv(log, {"step": 3, "mae": "2.0", "iou": "0.5"})
    _append_csv(log, {"step": 4, "mae": "1.5", "iou": "0.6"})
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["mae"], r["iou"]) for r in rows] == [("1", "3.0", ""), ("2", "2.5", ""), ("3", "2.0", "0.5"),
                                                              ("4", "1.5", "0.6")]


def test_output_initialisation_starts_at_the_mean_labels(image_folder, tmp_path):
    from jpegtrace.train.loop import build_model, mean_labels

    config = _config(image_folder, tmp_path)
    model = build_model(config)
    out = model(torch.rand(2, 3, 20, 20))  # white noise: the worst case for the amplified detail
    expected = torch.tensor(mean_labels(config.synthesis()))
    assert (out.mean(dim=(0, 2, 3)) - expected).abs().max() < 0.05
    assert (out - expected[None, :, None, None]).abs().max() < 0.2
    assert mean_labels(config.synthesis()) == pytest.approx((0.9 * 0.475, 0.9))
    spliced = dataclasses.replace(config, splice_fraction=0.5).synthesis()
    assert mean_labels(spliced) == pytest.approx((0.7 * 0.475, 0.7))  # half the patches half compressed
    high = dataclasses.replace(config, high_quality_fraction=0.5).synthesis()
    assert mean_labels(high) == pytest.approx((0.9 * (0.5 * 0.475 + 0.5 * 0.05), 0.9))  # QF 90..100: label 0.05


def test_exported_weights_fold_the_training_parametrization(image_folder, tmp_path):
    from jpegtrace.nn.weights import save_weights
    from jpegtrace.train.loop import build_model

    model = build_model(_config(image_folder, tmp_path, highpass_gain=10.0, lowpass_gain=0.1)).eval()
    assert any("parametrizations" in k for k in model.state_dict())
    plain = load_weights(save_weights(model, tmp_path / "w.safetensors"))
    x = torch.rand(1, 3, 31, 29)
    assert torch.allclose(model(x), plain(x), atol=1e-6)
    kernels = plain.layers[0].weight
    detail = kernels - kernels.mean(dim=(2, 3), keepdim=True)
    assert detail.abs().mean() > 10 * kernels.mean(dim=(2, 3)).abs().mean()  # the detail part dominates


def test_an_exported_checkpoint_equals_the_final_weights(image_folder, tmp_path):
    from safetensors.torch import load_file

    from jpegtrace.train.loop import export_checkpoint

    out = tmp_path / "run"
    final = train(_config(image_folder, out, steps=3, val_every=0), progress=False)
    exported = export_checkpoint(out / "checkpoint.pt", tmp_path / "step3.safetensors")
    a, b = load_file(final), load_file(exported)
    assert a.keys() == b.keys()
    # The first layer's kernels are folded from the training parametrization: equal up to rounding.
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-5) for k in a)
    assert load_weights(exported).config == load_weights(final).config


def test_a_run_adding_the_grid_presence_starts_from_trained_weights_computing_the_same_maps(image_folder, tmp_path):
    from jpegtrace.nn.weights import save_weights
    from jpegtrace.train.loop import build_model

    source = train(_config(image_folder, tmp_path / "plain", steps=2), progress=False)
    config = _config(image_folder, tmp_path / "grid", steps=3, grid_presence=True, init_weights=str(source))
    model = build_model(config).eval()
    assert model.layers[0].weight.shape[1] == 4 and not model.layers[0].weight[:, 3].any()
    x = torch.rand(1, 3, 40, 36)
    assert torch.allclose(model(x), load_weights(source)(x), atol=1e-5)

    weights = train(config, progress=False)
    assert load_weights(weights).config.grid_presence
    assert load_weights(weights).layers[0].weight[:, 3].abs().sum() > 0  # the new kernels learn
    # A resumed run takes its weights from the checkpoint, even once the first weights are gone.
    Path(source).unlink()
    train(dataclasses.replace(config, steps=4), resume=True, progress=False)
    assert max(_losses(tmp_path / "grid")) == 4
    kept = str(save_weights(load_weights(weights), tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="another shape"):
        build_model(_config(image_folder, tmp_path, width=4, grid_presence=True, init_weights=kept))
    # Channels keep their places: weights with the presence cannot start a network without it.
    with pytest.raises(ValueError, match="must be the first"):
        build_model(_config(image_folder, tmp_path, init_weights=kept))


def test_the_grid_input_gain_speeds_up_only_the_presence_kernels(image_folder, tmp_path):
    from jpegtrace.train.loop import build_model

    source = train(_config(image_folder, tmp_path / "source", steps=2, grid_presence=True), progress=False)
    start = load_weights(source).layers[0].weight
    changes = {}
    for gain in (1.0, 10.0):
        config = _config(image_folder, tmp_path / f"gain{gain}", steps=1, grid_presence=True,
                         grid_feature_gain=gain, init_weights=str(source))
        x = torch.rand(1, 3, 40, 36)
        assert torch.allclose(build_model(config).eval()(x), load_weights(source)(x), atol=1e-5)
        first = load_weights(train(config, progress=False)).layers[0].weight
        changes[gain] = ((first - start)[:, 3].abs().mean(), (first - start)[:, :3].abs().mean())
    # One Adam step moves each raw weight by about the learning rate, whatever its gradient.
    assert 8 < changes[10.0][0] / changes[1.0][0] < 12
    assert torch.allclose(changes[10.0][1], changes[1.0][1], rtol=0.05)
