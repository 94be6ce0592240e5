"""The fast inference path (jpegtrace.nn.engine) equals the plain eager network within 1e-4 (CPU only)."""

import numpy as np
import pytest
import torch
from torch import nn

from jpegtrace import analyze
from jpegtrace.analysis import predict_maps
from jpegtrace.nn import engine
from jpegtrace.nn.engine import FastNet, eager_predict_maps, supports
from jpegtrace.nn.qfnet import NetConfig, QFNet

TOLERANCE = 1e-4


def _random_model(seed=0, config=None):
    torch.manual_seed(seed)
    model = QFNet(config).eval()
    with torch.no_grad():  # non-zero biases, so that zero padding versus cropping would show
        for layer in model.layers:
            if isinstance(layer, nn.Conv2d):
                layer.bias.normal_(0, 0.1)
    return model


@pytest.fixture(scope="module")
def model():
    return _random_model()


def _whole_pass(model, image):
    """One eager forward over the whole image: the definition of the right answer."""
    with torch.inference_mode():
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0
        return model(x)[0].numpy()


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (9, 40), (45, 31), (101, 77), (130, 67)])
def test_fast_maps_equal_the_eager_network_on_odd_sizes(model, shape):
    image = np.random.default_rng(sum(shape)).integers(0, 256, size=shape + (3,), dtype=np.uint8)
    whole = _whole_pass(model, image)
    for tile in (1, 33, 512):  # small tiles force several strips and bands of columns
        fast = predict_maps(model, image, tile_size=tile)
        assert fast.shape == (2, *shape) and fast.dtype == np.float32
        assert np.abs(fast - whole).max() <= TOLERANCE, tile
    np.testing.assert_allclose(eager_predict_maps(model, image, tile_size=40), whole, atol=TOLERANCE, rtol=0)


def test_strips_of_every_height_give_the_same_maps(model):
    image = np.random.default_rng(5).integers(0, 256, size=(37, 23, 3), dtype=np.uint8)
    whole = _whole_pass(model, image)
    net = FastNet(model)
    for rows in (1, 2, 3, 8, 9, 17, 36, 37, 100):
        strips = np.concatenate([maps for _, maps in net._stream(image, rows)], axis=1)
        assert np.abs(strips - whole).max() <= TOLERANCE, rows


def test_other_network_shapes_and_no_input_offset():
    model = _random_model(1, NetConfig(width=8, dilations=(1, 3, 2), input_offset=0.0))
    image = np.random.default_rng(1).integers(0, 256, size=(29, 51, 3), dtype=np.uint8)
    for tile in (5, 512):
        assert np.abs(predict_maps(model, image, tile_size=tile) - _whole_pass(model, image)).max() <= TOLERANCE


def test_batch_forward_equals_the_module(model, monkeypatch):
    patches = np.random.default_rng(2).integers(0, 256, size=(3, 21, 26, 3), dtype=np.uint8)
    x = torch.from_numpy(patches).permute(0, 3, 1, 2).float() / 255.0
    with torch.inference_mode():
        expected = model(x)
    net = FastNet(model)
    assert torch.allclose(net.forward_uint8(patches), expected, atol=TOLERANCE, rtol=0)
    for strip_pixels in (300, 100):  # one patch at a time, then each patch streamed in strips
        monkeypatch.setattr(engine, "CPU_STRIP_PIXELS", strip_pixels)
        assert torch.allclose(net.forward_uint8(patches), expected, atol=TOLERANCE, rtol=0)


def test_read_only_and_broadcast_inputs(model):
    gray = np.random.default_rng(3).integers(0, 256, size=(40, 30), dtype=np.uint8)
    view = np.broadcast_to(gray[:, :, None], (40, 30, 3))  # read-only, zero strides
    expected = _whole_pass(model, np.repeat(gray[:, :, None], 3, axis=2))
    assert np.abs(predict_maps(model, view, tile_size=8) - expected).max() <= TOLERANCE
    result = analyze(gray, model=model)
    assert result.grayscale and result.quality_map.shape == gray.shape


def test_parametrized_weights_are_evaluated(model):
    """Training may reparametrize a kernel; the fast path must see the effective weights."""
    from torch.nn.utils import parametrize

    class Double(nn.Module):
        def forward(self, weight):
            return 2 * weight

    other = _random_model(4)
    parametrize.register_parametrization(other.layers[0], "weight", Double())
    image = np.random.default_rng(4).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    assert np.abs(predict_maps(other, image) - _whole_pass(other, image)).max() <= TOLERANCE


def test_fast_net_is_a_snapshot_of_the_weights():
    model = _random_model(6)
    net = FastNet(model)
    image = np.random.default_rng(6).integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
    before = net.predict_maps(image)
    with torch.no_grad():
        model.layers[-1].bias.add_(1.0)
    np.testing.assert_array_equal(net.predict_maps(image), before)
    assert np.abs(predict_maps(model, image) - before - 1.0).max() <= TOLERANCE  # a new call sees the change


def test_unsupported_models_fall_back_to_the_eager_path():
    class Tanh(QFNet):
        def __init__(self):
            super().__init__(NetConfig(width=4, dilations=(1, 1)))
            self.layers[1] = nn.Tanh()

    model = Tanh().eval()
    assert not supports(model) and supports(QFNet(NetConfig(width=4, dilations=(1, 2))))
    image = np.random.default_rng(7).integers(0, 256, size=(10, 14, 3), dtype=np.uint8)
    assert np.abs(predict_maps(model, image, tile_size=4) - _whole_pass(model, image)).max() <= TOLERANCE
    with pytest.raises(ValueError):
        FastNet(model)


def test_bf16_option_runs_and_stays_close(model):
    """bf16 is an option, not the default; on random weights it stays within a few hundredths."""
    image = np.random.default_rng(8).integers(0, 256, size=(33, 47, 3), dtype=np.uint8)
    exact = predict_maps(model, image)
    approx = predict_maps(model, image, precision="bf16")
    assert approx.dtype == np.float32 and approx.shape == exact.shape
    assert 0 < np.abs(approx - exact).max() < 0.1
    with pytest.raises(ValueError):
        predict_maps(model, image, precision="int8")


def test_no_tf32_restores_the_cudnn_flag():
    from jpegtrace.nn.engine import no_tf32

    before = torch.backends.cudnn.allow_tf32
    with no_tf32():
        assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 == before


def test_grid_presence_network_streams_exactly():
    """The presence channel's context rows and the wider column halo make strips and bands exact as well."""
    from jpegtrace.jpeg import jpeg_compress

    model = _random_model(3, NetConfig(width=16, dilations=(1, 2, 1), grid_presence=True))
    with torch.no_grad():
        model.layers[0].weight[:, 3:] *= 30  # so that the grid input's share of the maps shows
    rng = np.random.default_rng(4)
    image = jpeg_compress(rng.integers(0, 256, size=(90, 150, 3), dtype=np.uint8), 99, "4:4:4", (5, 2))
    whole = _whole_pass(model, image)
    # The 30x kernels make maps of up to about 8, and the grid inputs of a band or a run of strips
    # differ from the whole image's by float rounding (1e-7): relative to the maps' size, then. A
    # missing context row would differ by far more.
    tolerance = TOLERANCE * max(1.0, float(np.abs(whole).max()))
    for tile in (1, 40, 512):
        assert np.abs(predict_maps(model, image, tile_size=tile) - whole).max() <= tolerance, tile
    net = FastNet(model)
    for rows in (1, 7, 30):
        strips = np.concatenate([maps for _, maps in net._stream(image, rows)], axis=1)
        assert np.abs(strips - whole).max() <= tolerance, rows


def _input_rows_per_call(net, image, rows, monkeypatch):
    """Rows of pixels each call of ``net._to_input`` gets while ``net`` streams ``image``."""
    calls = []
    to_input = net._to_input

    def counting(pixels, kept_rows=None):
        calls.append(pixels.shape[1])
        return to_input(pixels, kept_rows)

    monkeypatch.setattr(net, "_to_input", counting)
    strips = np.concatenate([maps for _, maps in net._stream(image, rows)], axis=1)
    assert strips.shape == (2, *image.shape[:2])
    return calls


def test_grid_inputs_are_computed_once_for_a_run_of_strips(monkeypatch):
    """Their context rows (53 for the presence) are not recomputed for every strip."""
    model = _random_model(3, NetConfig(width=8, dilations=(1, 2, 1), grid_presence=True))
    image = np.random.default_rng(5).integers(0, 256, size=(300, 40, 3), dtype=np.uint8)
    computed_rows = _input_rows_per_call(FastNet(model), image, 10, monkeypatch)
    before, after = model.config.input_context
    # 10-row strips, each with its own context, would compute 300 + 30 * 53 rows; runs of at
    # least 4 x 53 rows compute each context once per run.
    assert len(computed_rows) == 2 and sum(computed_rows) <= 300 + 2 * (before + after)
    plain = FastNet(_random_model(3, NetConfig(width=8, dilations=(1, 2, 1))))
    assert _input_rows_per_call(plain, image, 10, monkeypatch) == [10] * 30  # no grid inputs: strip by strip
