"""The shipped model on natural photos it never saw (scikit-image's samples, not the training set)."""

import numpy as np
import pytest
from PIL import Image

from jpegtrace import analyze, load_model
from jpegtrace.cli import main
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.model import default_weights_path


def test_shipped_weights_are_small_and_load():
    assert default_weights_path().stat().st_size < 1_000_000
    model = load_model()
    assert model.receptive_field == 33
    assert load_model() is model  # loaded once, then reused


def test_tells_a_qf30_jpeg_from_the_uncompressed_photo(photo):
    clean = analyze(photo)
    compressed = analyze(jpeg_compress(photo, 30))
    assert not clean.compressed
    assert compressed.compressed
    assert abs(compressed.mean_quality - 30) <= 10


def test_cli_on_a_qf30_jpeg_saved_as_png(tmp_path, photo, capsys):
    Image.fromarray(jpeg_compress(photo, 30)).save(tmp_path / "qf30.png")
    Image.fromarray(photo).save(tmp_path / "clean.png")
    assert main(["analyze", str(tmp_path / "qf30.png"), str(tmp_path / "clean.png")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    fake, clean = (line.split("\t") for line in lines)
    assert fake[-1].startswith("compressed") and 20 <= float(fake[1].split()[1]) <= 40
    assert clean[-1].startswith("uncompressed")


@pytest.mark.parametrize("quality", [10, 50, 90])
def test_estimates_follow_the_true_quality(photos, quality):
    estimates = [analyze(jpeg_compress(image, quality)).mean_quality for image in photos.values()]
    assert abs(np.mean(estimates) - quality) <= 12
