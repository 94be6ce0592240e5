import numpy as np
import pytest
import torch

from jpegtrace.errors import ModelError
from jpegtrace.nn.qfnet import NetConfig, QFNet, flops_per_pixel
from jpegtrace.nn.weights import load_weights, save_weights


@pytest.mark.parametrize("height,width", [(33, 33), (40, 57), (64, 64), (1, 1), (7, 13)])
def test_output_has_input_size_and_two_maps(height, width):
    out = QFNet()(torch.rand(2, 3, height, width))
    assert out.shape == (2, 2, height, width)


def test_paper_structure():
    model = QFNet()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.dilation[0] for c in convs] == [1, 2, 3, 4, 3, 2, 1]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert [c.out_channels for c in convs] == [64] * 6 + [2]
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 6
    assert isinstance(list(model.layers)[-1], torch.nn.Conv2d)  # no ReLU after the last layer


def test_receptive_field_is_33_pixels():
    model = QFNet().double()
    assert model.receptive_field == 33
    x = torch.rand(1, 3, 81, 81, dtype=torch.float64, requires_grad=True)
    model(x)[0, :, 40, 40].sum().backward()
    touched = np.argwhere(x.grad[0].abs().sum(0).numpy() > 0)
    (y0, x0), (y1, x1) = touched.min(0), touched.max(0)
    assert (y1 - y0 + 1, x1 - x0 + 1) == (33, 33)
    assert (y0, x0) == (40 - 16, 40 - 16)


def test_flops_per_pixel_matches_paper_network():
    assert flops_per_pixel() == 2 * 9 * (3 * 64 + 5 * 64 * 64 + 64 * 2)
    assert abs(flops_per_pixel() - 374e3) < 5e3


@pytest.mark.parametrize("removed", ["grid_feature", "wide_grid_presence"])
def test_weights_of_a_network_on_a_removed_input_are_refused_in_one_line(tmp_path, removed):
    from safetensors.torch import save_file

    tensors = {k: v.clone() for k, v in QFNet(NetConfig(width=8, dilations=(1, 2, 1))).state_dict().items()}
    net = '{"width": 8, "dilations": [1, 2, 1], "input_offset": 0.5, "grid_presence": false, "%s": %s}'
    save_file(tensors, str(tmp_path / "removed.safetensors"), metadata={"net_config": net % (removed, "true")})
    with pytest.raises(ModelError, match="no longer computes") as info:
        load_weights(tmp_path / "removed.safetensors")
    assert removed in str(info.value) and "\n" not in str(info.value)
    # files that name the input but leave it off (written before it was removed) still load
    save_file(tensors, str(tmp_path / "off.safetensors"), metadata={"net_config": net % (removed, "false")})
    assert load_weights(tmp_path / "off.safetensors").config == NetConfig(width=8, dilations=(1, 2, 1))


def test_width_and_dilations_are_parameters():
    model = QFNet(NetConfig(width=16, dilations=(1, 2, 1)))
    assert model.receptive_field == 9
    assert model(torch.rand(1, 3, 20, 20)).shape == (1, 2, 20, 20)


def test_weights_round_trip_through_safetensors(tmp_path):
    model = QFNet(NetConfig(width=8, dilations=(1, 2, 1), input_offset=0.25))
    path = save_weights(model, tmp_path / "w.safetensors")
    loaded = load_weights(path)
    assert loaded.config == model.config
    x = torch.rand(1, 3, 17, 19)
    assert torch.equal(model.eval()(x), loaded(x))


def test_bad_weights_files_give_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_weights(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelError, match="safetensors"):
        load_weights(garbage)
    good = save_weights(QFNet(), tmp_path / "good.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(ModelError):
        load_weights(truncated)


def test_foreign_or_mismatched_weights_name_the_tensor(tmp_path):
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in QFNet().state_dict().items()}
    del state["layers.12.bias"]
    save_file(state, str(tmp_path / "missing_key.safetensors"))
    with pytest.raises(ModelError, match="layers.12.bias"):
        load_weights(tmp_path / "missing_key.safetensors")
    state = {k: v.clone() for k, v in QFNet().state_dict().items()}
    state["layers.0.weight"] = torch.zeros(64, 3, 5, 5)
    save_file(state, str(tmp_path / "bad_shape.safetensors"))
    with pytest.raises(ModelError, match=r"layers.0.weight.*\(64, 3, 5, 5\)"):
        load_weights(tmp_path / "bad_shape.safetensors")
    save_file({"classifier.weight": torch.zeros(3)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ModelError, match="missing tensor"):
        load_weights(tmp_path / "foreign.safetensors")


def test_truncated_at_any_length_is_refused(tmp_path):
    data = save_weights(QFNet(NetConfig(width=4, dilations=(1, 1))), tmp_path / "small.safetensors").read_bytes()
    for cut in (0, 7, 8, 40, len(data) // 2, len(data) - 1):
        path = tmp_path / f"cut{cut}.safetensors"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelError) as info:
            load_weights(path)
        assert info.value.path == str(path)


def test_wrong_dtype_non_finite_and_directory_are_refused(tmp_path):
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in QFNet().state_dict().items()}
    state["layers.2.bias"] = torch.zeros(64, dtype=torch.int32)
    save_file(state, str(tmp_path / "int.safetensors"))
    with pytest.raises(ModelError, match=r"layers.2.bias.*dtype torch.int32"):
        load_weights(tmp_path / "int.safetensors")
    state["layers.2.bias"] = torch.full((64,), float("nan"))
    save_file(state, str(tmp_path / "nan.safetensors"))
    with pytest.raises(ModelError, match="layers.2.bias.*NaN"):
        load_weights(tmp_path / "nan.safetensors")
    with pytest.raises(ModelError, match="directory"):
        load_weights(tmp_path)


@pytest.mark.parametrize("net_config", [
    "not json", "[1, 2]", '{"width": 64}', '{"width": 1000000000, "dilations": [1], "input_offset": 0}',
    '{"width": 8, "dilations": [], "input_offset": 0}', '{"width": 8, "dilations": [0], "input_offset": 0}',
    '{"width": 8, "dilations": [1], "input_offset": "nan"}',
    '{"width": 8, "dilations": [1], "input_offset": 0, "grid_presence": "yes"}',
])
def test_bad_net_config_is_refused_without_building_a_network(tmp_path, net_config):
    from safetensors.torch import save_file

    save_file({k: v.clone() for k, v in QFNet().state_dict().items()}, str(tmp_path / "w.safetensors"),
              metadata={"net_config": net_config})
    with pytest.raises(ModelError, match="bad net_config"):
        load_weights(tmp_path / "w.safetensors")


def test_flag_threshold_travels_with_the_weights(tmp_path):
    from safetensors.torch import save_file

    model = QFNet(NetConfig(width=8, dilations=(1, 2, 1)), flag_threshold=0.65)
    assert load_weights(save_weights(model, tmp_path / "w.safetensors")).flag_threshold == 0.65
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    net = model.config.to_json()
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata={"net_config": net})
    assert load_weights(tmp_path / "old.safetensors").flag_threshold == 0.5  # files from before calibration
    for bad in ("1.0", "0", "nan", "high"):
        save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={"net_config": net, "flag_threshold": bad})
        with pytest.raises(ModelError, match="bad flag_threshold"):
            load_weights(tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        QFNet(flag_threshold=1.5)


def test_shape_mismatch_is_found_before_building_the_network(tmp_path):
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in QFNet(NetConfig(width=8)).state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"), metadata={"net_config": NetConfig(width=2048).to_json()})
    with pytest.raises(ModelError, match=r"tensor 'layers.0.weight' has shape \(8, 3, 3, 3\), expected \(2048, 3, 3, 3\)"):
        load_weights(tmp_path / "w.safetensors")


def test_pickled_weights_are_refused_and_never_unpickled(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save(QFNet().state_dict(), tmp_path / "model.pt")
    (tmp_path / "evil.safetensors").write_bytes(pickle.dumps(Payload(), protocol=2))
    for name in ("model.pt", "evil.safetensors"):
        with pytest.raises(ModelError, match="never unpickles"):
            load_weights(tmp_path / name)
    assert not marker.exists()


def test_grid_presence_network_sees_a_fourth_channel_and_reaches_further(tmp_path):
    from jpegtrace.grid.presence import PRESENCE_CONTEXT

    config = NetConfig(width=8, dilations=(1, 2, 1), grid_presence=True)
    model = QFNet(config)
    assert config.extra_inputs == ("grid_presence",) and model.layers[0].in_channels == 4
    assert config.input_context == PRESENCE_CONTEXT and NetConfig().input_context == (0, 0)
    assert model.receptive_field == 1 + 2 * 4 + sum(PRESENCE_CONTEXT)
    assert NetConfig(grid_presence=True).in_channels == 4
    loaded = load_weights(save_weights(model, tmp_path / "w.safetensors"))
    assert loaded.config == config
    x = torch.rand(1, 3, 40, 36)
    assert torch.equal(model.eval()(x), loaded(x))
    assert NetConfig.from_json('{"width": 8, "dilations": [1], "input_offset": 0.5}').grid_presence is False
    with pytest.raises(ValueError, match="grid_presence"):
        NetConfig.from_json('{"width": 8, "dilations": [1], "input_offset": 0, "grid_presence": 1}')


def test_quality_calibration_maps_piecewise_linearly_and_in_place():
    from jpegtrace.nn.weights import QualityCalibration

    calibration = QualityCalibration((0.0, 0.5, 1.0), (0.1, 0.2, 1.0))
    values = np.array([[0.0, 0.25, 0.5], [0.75, 1.0, 0.5]], dtype=np.float32)
    expected = np.array([[0.1, 0.15, 0.2], [0.6, 1.0, 0.2]], dtype=np.float32)
    np.testing.assert_allclose(calibration(values), expected, rtol=1e-6)
    same = calibration(values, out=values)
    assert same is values
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    for knots, mapped, reason in [((0.0, 1.0), (0.5,), "as many values"), ((0.0, 0.7), (0.0, 0.5), "from 0 to 1"),
                                  ((0.0, 0.5, 0.5, 1.0), (0, 0, 0, 1), "from 0 to 1"),
                                  ((0.0, 1.0), (0.6, 0.5), "non-decreasing"), ((0.0, 1.0), (0.0, 1.2), "within"),
                                  ((0.0, 1.0), (0.0, float("nan")), "finite")]:
        with pytest.raises(ValueError, match=reason):
            QualityCalibration(knots, mapped)


def test_quality_calibration_travels_with_the_weights(tmp_path):
    from safetensors.torch import save_file

    from jpegtrace.nn.weights import QualityCalibration

    calibration = QualityCalibration((0.0, 0.3, 1.0), (0.0, 0.25, 0.9))
    model = QFNet(NetConfig(width=8, dilations=(1, 2, 1)), quality_calibration=calibration)
    assert load_weights(save_weights(model, tmp_path / "w.safetensors")).quality_calibration == calibration
    # another file's metadata passed on as it is: what describes the network comes from the model
    plain = QFNet(model.config, flag_threshold=0.65)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "w.safetensors"), framework="pt") as f:
        passed_on = {**f.metadata(), "step": "7"}
    reloaded = load_weights(save_weights(plain, tmp_path / "passed.safetensors", passed_on))
    assert reloaded.quality_calibration is None and reloaded.flag_threshold == 0.65
    with safe_open(str(tmp_path / "passed.safetensors"), framework="pt") as f:
        assert f.metadata()["step"] == "7"
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    net = model.config.to_json()
    save_file(tensors, str(tmp_path / "old.safetensors"), metadata={"net_config": net})
    assert load_weights(tmp_path / "old.safetensors").quality_calibration is None  # files from before it
    for bad in ('{"knots": [0, 1], "values": [1, 0]}', '{"knots": [0, 1]}', "[1, 2]", "not json"):
        save_file(tensors, str(tmp_path / "bad.safetensors"),
                  metadata={"net_config": net, "quality_calibration": bad})
        with pytest.raises(ModelError, match="bad quality_calibration"):
            load_weights(tmp_path / "bad.safetensors")
