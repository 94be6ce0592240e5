"""The shipped model on natural photos it never saw (scikit-image's samples, not the training set)."""

import numpy as np
import pytest
from PIL import Image

from jpegtrace import analyze, load_model
from jpegtrace.cli import main
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.nn.weights import default_weights_path

#: End-to-end: seconds each (`make check` leaves them out).
pytestmark = pytest.mark.slow


def test_shipped_weights_are_small_and_load():
    assert default_weights_path().stat().st_size < 1_000_000
    model = load_model()
    # the paper's seven convolutions, given the grid presence as a fourth input (86 pixels with its context)
    assert model.config.dilations == (1, 2, 3, 4, 3, 2, 1) and model.config.width == 64
    assert model.config.extra_inputs == ("grid_presence",) and model.receptive_field == 86
    assert model.quality_calibration is not None
    other = load_model()  # a model of its own each call: changing one changes nothing elsewhere
    assert other is not model and all(a.equal(b) for a, b in zip(model.state_dict().values(),
                                                                  other.state_dict().values()))


def test_changing_a_loaded_model_leaves_analyze_and_other_loads_alone(photo):
    import torch

    before = analyze(photo)
    model = load_model()
    with torch.no_grad():
        model.layers[-1].bias.add_(0.5)
    model.quality_calibration = None
    assert load_model().quality_calibration is not None
    after = analyze(photo)  # the shipped model of analyze() is its own copy
    np.testing.assert_array_equal(after.quality_map, before.quality_map)
    np.testing.assert_array_equal(after.flag_map, before.flag_map)


def test_shipped_quality_calibration_moves_estimates_toward_the_truth(photos):
    from jpegtrace.analysis import analyze_array

    model = load_model()
    calibration, errors = model.quality_calibration, {True: [], False: []}
    try:
        for calibrated in (True, False):
            model.quality_calibration = calibration if calibrated else None
            for image in photos.values():
                for quality in (30, 40, 95):
                    estimate = analyze_array(jpeg_compress(image, quality), model, grid_check=False).median_quality
                    errors[calibrated].append(abs(estimate - quality))
    finally:
        model.quality_calibration = calibration
    assert np.mean(errors[True]) < np.mean(errors[False])


def test_tells_a_qf30_jpeg_from_the_uncompressed_photo(photo):
    clean = analyze(photo)
    compressed = analyze(jpeg_compress(photo, 30))
    assert not clean.compressed
    assert compressed.compressed
    assert abs(compressed.median_quality - 30) <= 10


def test_cli_on_a_qf30_jpeg_saved_as_png(tmp_path, photo, capsys):
    Image.fromarray(jpeg_compress(photo, 30)).save(tmp_path / "qf30.png")
    Image.fromarray(photo).save(tmp_path / "clean.png")
    assert main(["analyze", str(tmp_path / "qf30.png"), str(tmp_path / "clean.png")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    fake, clean = (line.split("\t") for line in lines)
    # file, verdict, QF, details: the QF is the table's, read from the pixels
    assert fake[1] == "compressed" and fake[2] == "QF 30 (table, IJG)"
    assert clean[1] == "never compressed"


@pytest.mark.parametrize("quality", [10, 50, 90])
def test_estimates_follow_the_true_quality(photos, quality):
    estimates = [analyze(jpeg_compress(image, quality)).median_quality for image in photos.values()]
    assert abs(np.mean(estimates) - quality) <= 12


@pytest.mark.parametrize("grayscale", [False, True])
def test_near_lossless_jpeg_is_called_compressed_thanks_to_the_grid_check(photo, grayscale):
    source = photo.mean(axis=2).round().astype(np.uint8) if grayscale else photo
    near_lossless = jpeg_compress(source, 99, "4:4:4")
    checked, alone = analyze(near_lossless), analyze(near_lossless, grid_check=False)
    assert checked.grid.found and checked.compressed
    assert alone.grid is None and alone.verdict == alone.flag_verdict
    # the quality map is the network's either way; the flag map is raised in clipped blocks only
    np.testing.assert_array_equal(checked.quality_map, alone.quality_map)
    alone_network = alone.mean_flag if alone.network_mean_flag is None else alone.network_mean_flag
    assert checked.network_mean_flag in (None, pytest.approx(alone_network))
    h, w = near_lossless.shape[:2]
    clipped = ((near_lossless == 0) | (near_lossless == 255)).reshape(h, w, -1).any(axis=2)
    clipped_blocks = clipped[:h // 8 * 8, :w // 8 * 8].reshape(h // 8, 8, w // 8, 8).sum(axis=(1, 3)) >= 8
    raised = (checked.flag_map > alone.flag_map)[:h // 8 * 8, :w // 8 * 8].reshape(h // 8, 8, w // 8, 8).any(axis=(1, 3))
    assert np.all(checked.flag_map >= alone.flag_map) and not (raised & ~clipped_blocks).any()
    clean = analyze(source)
    assert not clean.grid.found and not clean.compressed


def test_estimates_on_fixed_images_are_those_recorded_with_the_shipped_weights():
    """Pinned to docs/model/<run>/regression.json, made by scripts/record_regression.py with these weights."""
    import hashlib
    import importlib.util
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(default_weights_path().read_bytes()).hexdigest()
    recorded = [json.loads(p.read_text()) for p in sorted((root / "docs" / "model").glob("*/regression.json"))]
    (pinned,) = [r for r in recorded if r["weights_sha256"] == digest]  # the shipped weights have a record
    spec = importlib.util.spec_from_file_location("record_regression", root / "scripts" / "record_regression.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for name, image in script.fixed_images().items():
        result, expected = analyze(image), pinned["images"][name]
        assert result.verdict == expected["verdict"], name
        assert abs(result.median_quality - expected["median_quality"]) <= 0.5, name
        assert abs(result.mean_quality - expected["mean_quality"]) <= 0.5, name
        assert abs(result.mean_flag - expected["mean_flag"]) <= 0.02, name


def test_the_demo_fake_is_partly_compressed_with_the_discs_box(tmp_path):
    """`make demo`'s fake: a disc from a QF-80 JPEG pasted into a never-compressed photo."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, str(root / "scripts" / "demo.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    mask = np.asarray(Image.open(tmp_path / "mask.png")) > 0
    rows, cols = np.nonzero(mask)
    disc = (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
    fake, clean = analyze(tmp_path / "fake.png"), analyze(tmp_path / "clean.png")
    assert fake.verdict == "partly compressed" and clean.verdict == "never compressed"
    assert len(fake.flag_regions) == 1 and not clean.regions
    assert max(abs(a - b) for a, b in zip(fake.flag_regions[0].box, disc)) <= 10
    assert 60 <= fake.headline_quality <= 90 and fake.quality_source == "region"
