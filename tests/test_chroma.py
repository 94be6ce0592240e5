"""The chroma table and subsampling read from the pixels (jpegtrace.chroma), with the truth read from each JPEG file."""

import io
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from jpegtrace.analysis import analyze_array
from jpegtrace.chroma import estimate_chroma_table, undo_fancy_upsampling
from jpegtrace.record import analysis_record
from jpegtrace.tables import estimate_luma_table


@pytest.fixture(scope="module")
def textured():
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((384, 384), Image.LANCZOS))


@pytest.fixture(scope="module")
def shipped_model():
    from jpegtrace.nn.weights import load_weights

    return load_weights()


def pillow_jpeg(rgb, quality, subsampling):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality, subsampling=subsampling)
    jpeg = Image.open(buffer)
    return np.asarray(jpeg.convert("RGB")), np.array(jpeg.quantization[1]).reshape(8, 8)


def check(decoded, truth, subsampling):
    luma = estimate_luma_table(decoded)
    assert luma is not None
    chroma = estimate_chroma_table(decoded, grid_offset=luma.grid_offset)
    assert chroma is not None and chroma.subsampling == subsampling
    known = chroma.steps > 0
    assert known.sum() >= 6
    np.testing.assert_array_equal(chroma.steps[known], truth[known])  # every step read is right
    return chroma


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2", "4:2:0"])
@pytest.mark.parametrize("quality,crop", [(50, (0, 0)), (75, (3, 5)), (90, (8, 1))])
def test_pillow_chroma_table_and_subsampling(textured, subsampling, quality, crop):
    decoded, truth = pillow_jpeg(textured, quality, subsampling)
    chroma = check(decoded[crop[0]:, crop[1]:], truth, subsampling)
    assert chroma.ijg_quality == quality or chroma.ijg_quality is None or np.array_equal(
        chroma.steps[chroma.known], truth[chroma.known])


@pytest.mark.skipif(shutil.which("cjpeg") is None, reason="cjpeg (libjpeg-turbo-progs) is not installed")
@pytest.mark.parametrize("sample,subsampling", [("1x1", "4:4:4"), ("2x2", "4:2:0")])
def test_cjpeg_chroma(textured, tmp_path, sample, subsampling):
    ppm = tmp_path / "in.ppm"
    Image.fromarray(textured).save(ppm)
    out = subprocess.run(["cjpeg", "-quality", "80", "-sample", sample, str(ppm)], capture_output=True, check=True).stdout
    jpeg = Image.open(io.BytesIO(out))
    check(np.asarray(jpeg.convert("RGB"))[2:, 6:], np.array(jpeg.quantization[1]).reshape(8, 8), subsampling)


def test_no_chroma_for_never_compressed_or_gray_images(textured):
    for offset in ((0, 0), (3, 4)):
        assert estimate_chroma_table(textured, grid_offset=offset) is None
    gray = np.repeat(textured[:, :, :1], 3, axis=2)
    assert estimate_chroma_table(pillow_jpeg(gray, 70, "4:2:0")[0], grid_offset=(0, 0)) is None


def test_undoing_the_triangle_filter_recovers_the_stored_samples():
    rng = np.random.default_rng(0)
    stored = rng.uniform(0, 255, size=(20, 7))
    up = np.empty((40, 7))
    neighbour_before = np.vstack([stored[:1], stored[:-1]])
    neighbour_after = np.vstack([stored[1:], stored[-1:]])
    up[0::2], up[1::2] = 0.75 * stored + 0.25 * neighbour_before, 0.75 * stored + 0.25 * neighbour_after
    np.testing.assert_allclose(undo_fancy_upsampling(up, 0, 0), stored, atol=1e-9)


def test_the_record_carries_the_chroma_table(textured, shipped_model):
    decoded, truth = pillow_jpeg(textured, 70, "4:2:0")
    record = analysis_record(analyze_array(decoded, shipped_model), file="x.png")
    assert record["table"]["subsampling"] == "4:2:0"
    steps = np.array(record["table"]["chroma"]["steps"])
    assert ((steps == truth) | (steps == 0)).all() and (steps > 0).sum() >= 6
