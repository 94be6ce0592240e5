import numpy as np
import pytest
import torch
from PIL import Image

from jpegtrace import ImageReadError, analyze
from jpegtrace.analysis import predict_maps, summarize, weighted_mean
from jpegtrace.nn.qfnet import QFNet


@pytest.fixture(scope="module")
def random_model():
    torch.manual_seed(0)
    return QFNet().eval()


def test_tiled_maps_equal_whole_image_maps(random_model):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(101, 77, 3), dtype=np.uint8)
    whole = predict_maps(random_model, image, tile_size=1000)
    for tile in (16, 33, 40):
        tiled = predict_maps(random_model, image, tile_size=tile)
        assert np.abs(tiled - whole).max() <= 1e-5


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (7, 13)])
def test_tiny_images_work(random_model, shape):
    image = np.full(shape, 128, dtype=np.uint8)
    result = analyze(image, model=random_model)
    assert result.quality_map.shape == shape[:2] and result.flag_map.shape == shape[:2]


def test_summary_clips_maps_and_converts_to_quality_factor():
    raw = np.stack([np.array([[-0.5, 0.0], [0.3, 1.7]]), np.array([[-1.0, 0.2], [0.9, 2.0]])]).astype(np.float32)
    result = summarize(raw)
    np.testing.assert_allclose(result.quality_map, [[100, 100], [70, 0]], atol=1e-4)
    np.testing.assert_allclose(result.flag_map, [[0, 0.2], [0.9, 1.0]], atol=1e-6)
    assert result.mean_quality == pytest.approx(67.5, abs=1e-4)
    assert result.median_quality == pytest.approx(70.0, abs=0.01)  # of 0, 70, 100, 100: half the weight by 70
    assert result.mean_flag == pytest.approx(0.525) and result.compressed


@pytest.mark.parametrize("weighted", [False, True])
def test_weighted_median_is_the_sorted_one_to_its_resolution(weighted):
    from jpegtrace.analysis import weighted_median

    rng = np.random.default_rng(3)
    values = (100 * rng.beta(2, 5, size=(700, 900))).astype(np.float32)  # several chunks, a skewed spread
    weights = rng.random(values.shape).astype(np.float32) if weighted else None
    order = np.argsort(values, axis=None)
    cumulative = np.cumsum(np.ones(values.size) if weights is None else weights.ravel()[order].astype(np.float64))
    exact = values.ravel()[order][np.searchsorted(cumulative, cumulative[-1] / 2)]
    assert abs(weighted_median(values, weights) - exact) <= 0.005 + 1e-6
    assert abs(weighted_median(values / 100, weights, high=1.0, resolution=1e-4) - exact / 100) <= 0.5e-4 + 1e-8
    assert abs(weighted_median(values, weights) - weighted_mean(values, weights)) > 1  # not the mean


def test_weighted_median_ignores_pixels_without_weight_and_is_none_without_any():
    from jpegtrace.analysis import weighted_median

    values = np.array([[10.0, 20.0, 30.0, 90.0]], dtype=np.float32)
    assert weighted_median(values, np.array([[0, 1, 1, 0]], dtype=np.float32)) == pytest.approx(20.0)
    assert weighted_median(values, np.array([[0, 1, 3, 0]], dtype=np.float32)) == pytest.approx(30.0)
    assert weighted_median(values, np.zeros((1, 4), dtype=np.float32)) is None


def test_summary_maps_the_clipped_quality_through_the_calibration_and_leaves_the_flag():
    from jpegtrace.nn.weights import QualityCalibration

    raw = np.stack([np.array([[-0.5, 0.1], [0.3, 1.7]]), np.array([[-1.0, 0.2], [0.9, 2.0]])]).astype(np.float32)
    calibration = QualityCalibration((0.0, 0.2, 1.0), (0.0, 0.1, 1.0))  # 0.1 -> 0.05, 0.3 -> 0.2125
    for inplace in (False, True):
        result = summarize(raw.copy(), inplace=inplace, quality_calibration=calibration)
        np.testing.assert_allclose(result.quality_map, [[100, 95], [78.75, 0]], atol=1e-4)
        np.testing.assert_allclose(result.flag_map, [[0, 0.2], [0.9, 1.0]], atol=1e-6)
        assert result.mean_quality == pytest.approx((100 + 95 + 78.75) / 4, abs=1e-4)
        assert result.median_quality == pytest.approx(78.75, abs=0.01)


def test_analyze_applies_the_models_quality_calibration(photo):
    from jpegtrace.nn.qfnet import NetConfig
    from jpegtrace.nn.weights import QualityCalibration

    torch.manual_seed(0)
    model = QFNet(NetConfig(width=8, dilations=(1, 2, 1))).eval()
    plain = analyze(photo, model=model, grid_check=False)
    model.quality_calibration = QualityCalibration((0.0, 1.0), (0.5, 1.0))  # QF q becomes q / 2
    calibrated = analyze(photo, model=model, grid_check=False)
    np.testing.assert_allclose(calibrated.quality_map, plain.quality_map / 2, atol=1e-3)
    np.testing.assert_array_equal(calibrated.flag_map, plain.flag_map)


def test_accepts_path_pil_and_arrays_alike(random_model, photo, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    from_array = analyze(photo, model=random_model)
    from_pil = analyze(Image.fromarray(photo), model=random_model)
    from_path = analyze(path, model=random_model)
    from_str = analyze(str(path), model=random_model)
    for other in (from_pil, from_path, from_str):
        np.testing.assert_array_equal(other.quality_map, from_array.quality_map)
    assert from_array.quality_map.dtype == np.float32 and not from_array.grayscale


def test_grayscale_and_rgba_inputs(random_model, photo):
    gray = photo.mean(axis=2).astype(np.uint8)
    g = analyze(gray, model=random_model)
    assert g.grayscale and g.shape == gray.shape
    rgba = np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])
    r = analyze(rgba, model=random_model)
    assert "alpha channel dropped" in r.notes
    np.testing.assert_array_equal(r.quality_map, analyze(photo, model=random_model).quality_map)


def test_bad_arrays_raise_the_documented_error(random_model):
    with pytest.raises(ImageReadError):
        analyze(np.zeros((4, 4, 5), np.uint8), model=random_model)
    with pytest.raises(ImageReadError):
        analyze(np.zeros((0, 4, 3), np.uint8), model=random_model)
    with pytest.raises(ImageReadError):
        analyze(object(), model=random_model)


def test_tiled_maps_equal_one_pass_of_the_network_several_tiles_each_way(random_model):
    """Odd sizes, 5 x 4 tiles, against a single forward pass over the whole image."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(157, 203, 3), dtype=np.uint8)
    with torch.inference_mode():
        whole = random_model(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0)[0].numpy()
    for tile in (41, 64):
        tiled = predict_maps(random_model, image, tile_size=tile)
        assert tiled.shape == (2, 157, 203) and tiled.dtype == np.float32
        assert np.abs(tiled - whole).max() <= 1e-5
        a, b = summarize(tiled.copy()), summarize(whole.copy(), inplace=True)
        assert np.abs(a.quality_map - b.quality_map).max() <= 1e-3  # QF units: 100x the normalised maps
        assert np.abs(a.flag_map - b.flag_map).max() <= 1e-5


def test_network_never_sees_more_than_a_tile_and_its_halo(random_model, monkeypatch):
    from jpegtrace.nn import engine

    # The plain tiled path: each forward pass gets one tile and its halo.
    seen = []
    hook = random_model.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    try:
        engine.eager_predict_maps(random_model, np.zeros((300, 190, 3), np.uint8), tile_size=64)
    finally:
        hook.remove()
    halo = random_model.receptive_field // 2
    assert len(seen) == 5 * 3
    assert max(max(s[2:]) for s in seen) <= 64 + 2 * halo

    # The default streaming path: each strip it feeds in holds at most tile_size ** 2 pixels.
    strips = []
    original = engine.FastNet._to_input
    monkeypatch.setattr(engine.FastNet, "_to_input",
                        lambda self, pixels, rows=None: strips.append(pixels.shape) or original(self, pixels, rows))
    analyze(np.zeros((300, 190, 3), np.uint8), model=random_model, tile_size=64, backend="torch")
    assert strips and sum(s[1] for s in strips) >= 300
    assert max(s[1] * s[2] for s in strips) <= 64 * 64


def _traced_peak(function, *args, **kwargs):
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = function(*args, **kwargs)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_analysis_allocates_no_image_sized_copies(random_model, monkeypatch):
    """numpy memory (traced) stays at the three float32 maps (quality, flag, evidence) plus small
    per-tile buffers; the grid check's working set does not grow with the image."""
    from jpegtrace.grid import check, dct

    image = np.random.default_rng(2).integers(0, 256, size=(480, 400), dtype=np.uint8)  # grayscale
    _, workspace = _traced_peak(check.find_jpeg_grid, image)
    _, larger_workspace = _traced_peak(check.find_jpeg_grid, np.tile(image, (3, 3)))
    assert larger_workspace < 1.25 * workspace  # chunks of blocks: bounded whatever the image size
    # Its default chunks (several MiB on a few threads) would hide an image-sized copy of this small
    # image: smaller chunks here, so that the bound below stays tight. The same for the block scores of
    # the network's input, which numpy computes where OpenVINO runs the network (4 MiB a thread).
    monkeypatch.setattr(check, "CHUNK_BLOCKS", 256)
    monkeypatch.setattr(dct, "SCORE_CHUNK_PIXELS", 1024)
    # The runtimes' tiles (about 0.6 MB at tile 96 with their halos) and the regions' work on the 8x8 cells
    # (under 100 bytes a cell) are not image-sized; an image of 0.77 MP keeps them well inside the bound.
    image = np.random.default_rng(3).integers(0, 256, size=(960, 800), dtype=np.uint8)
    maps_bytes = 3 * 4 * image.size
    analyze(image[:64, :64], model=random_model, tile_size=96)  # builds the model's runner, once per model
    result, peak = _traced_peak(analyze, image, model=random_model, tile_size=96)
    assert result.grayscale and result.quality_map.shape == result.evidence_map.shape == image.shape
    assert peak < maps_bytes + 3 * image.size, f"{peak} bytes traced for {maps_bytes} bytes of maps"


def test_summarize_in_place_reuses_the_raw_maps():
    raw = np.random.default_rng(3).normal(0.5, 0.6, size=(2, 9, 11)).astype(np.float32)
    copied = summarize(raw.copy())
    in_place = summarize(raw, inplace=True)
    np.testing.assert_array_equal(copied.quality_map, in_place.quality_map)
    np.testing.assert_array_equal(copied.flag_map, in_place.flag_map)
    assert np.shares_memory(in_place.quality_map, raw) and np.shares_memory(in_place.flag_map, raw)
    assert copied.mean_quality == in_place.mean_quality and copied.mean_flag == in_place.mean_flag


def test_tile_size_must_be_positive(random_model):
    with pytest.raises(ValueError):
        predict_maps(random_model, np.zeros((4, 4, 3), np.uint8), tile_size=0)


def test_analyze_array_is_analyze_of_an_array_read_already(random_model):
    from jpegtrace.analysis import analyze_array
    from jpegtrace.jpeg import jpeg_compress

    rng = np.random.default_rng(4)
    image = jpeg_compress(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8), 98, "4:4:4")
    whole = analyze(image, model=random_model)
    direct = analyze_array(image, random_model, grayscale=True, notes=["a note"])
    np.testing.assert_array_equal(direct.flag_map, whole.flag_map)
    assert direct.grid == whole.grid and direct.grid.found  # the grid check ran, and found the JPEG
    assert direct.grayscale and direct.notes == ("a note",)
    assert analyze_array(image, random_model, grid_check=False).grid is None
