"""IJG quantisation tables, their scaling, the IJG-equivalent QF and camera-like tables."""

import io

import numpy as np
import pytest
from PIL import Image

from jpegtrace.jpeg import camera_like_tables, ijg_base_tables, ijg_equivalent_quality, ijg_table, jpeg_compress


def _file_tables(quality):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
        buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as im:
        return [np.array(im.quantization[i]).reshape(8, 8) for i in (0, 1)]


def test_the_base_tables_are_annex_k():
    luma, chroma = ijg_base_tables()
    assert luma[0].tolist() == [16, 11, 10, 16, 24, 40, 51, 61]
    assert chroma[0].tolist() == [17, 18, 24, 47, 99, 99, 99, 99]


@pytest.mark.parametrize("quality", [1, 5, 25, 50, 75, 90, 97, 100])
def test_ijg_scaling_matches_the_tables_libjpeg_writes(quality):
    luma, chroma = _file_tables(quality)
    assert np.array_equal(ijg_table(quality), luma)
    assert np.array_equal(ijg_table(quality, chroma=True), chroma)
    assert ijg_equivalent_quality(luma) == quality


def test_the_equivalent_quality_of_a_jittered_table_is_near_its_source():
    rng = np.random.default_rng(0)
    for quality in (30, 60, 85):
        jittered = np.round(ijg_table(quality) * np.exp(rng.normal(0, 0.05, (8, 8))))
        assert abs(ijg_equivalent_quality(jittered) - quality) <= 3


def test_camera_like_tables_compress_through_libjpeg_and_are_seeded():
    image = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    luma, chroma = camera_like_tables(80, np.random.default_rng(4))
    again = camera_like_tables(80, np.random.default_rng(4))
    assert np.array_equal(luma, again[0]) and luma.shape == (8, 8) and 1 <= luma.min() and luma.max() <= 255
    decoded = jpeg_compress(image, 1, "4:4:4", qtables=[luma, chroma])
    assert decoded.shape == image.shape and not np.array_equal(decoded, image)
    standard = jpeg_compress(image, 75, qtables=[ijg_table(75), ijg_table(75, chroma=True)])
    assert np.array_equal(standard, jpeg_compress(image, 75))  # IJG tables given = the quality setting
