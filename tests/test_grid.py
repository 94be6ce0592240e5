"""The DCT check for a JPEG block grid (jpegtrace.grid) and its place in the verdicts."""

import numpy as np
import pytest
from skimage import data

from jpegtrace.experiments import EvaluationRecord, evaluate_model, summarize_evaluation
from jpegtrace.grid import CHUNK_BLOCKS, GRID_SCORE_THRESHOLD, find_jpeg_grid, luma
from jpegtrace.inference import summarize
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.model import QFNet


def textured(height=160, width=200, seed=0):
    """A never-compressed image made here: smooth shapes plus sensor-like noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 120 + 60 * np.sin(xx / 13.0) * np.cos(yy / 9.0) + 30 * np.sin((xx + 2 * yy) / 31.0)
    rgb = base[:, :, None] + np.array([10.0, 0.0, -15.0]) + rng.normal(0, 4, (height, width, 3))
    return np.clip(np.rint(rgb), 1, 254).astype(np.uint8)


@pytest.mark.parametrize("name", ["camera", "astronaut", "coffee"])
def test_never_compressed_photos_score_low(name):
    evidence = find_jpeg_grid(getattr(data, name)())
    assert not evidence.found and evidence.score < GRID_SCORE_THRESHOLD / 2
    assert evidence.coefficients > 10_000


def test_made_image_scores_low_in_colour_and_grayscale():
    image = textured()
    assert not find_jpeg_grid(image).found
    assert not find_jpeg_grid(image[:, :, 1]).found


@pytest.mark.parametrize("quality,subsampling", [(100, "4:4:4"), (99, "4:4:4"), (97, "4:2:0"), (90, "4:2:0")])
def test_near_lossless_jpegs_are_found_at_their_grid(quality, subsampling):
    evidence = find_jpeg_grid(jpeg_compress(textured(), quality, subsampling))
    assert evidence.found and evidence.grid_offset == (0, 0)
    assert evidence.score > 2 * GRID_SCORE_THRESHOLD


def test_grayscale_qf_100_jpeg_is_found():
    gray = textured()[:, :, 0]
    jpeg = jpeg_compress(gray, 100)
    assert np.mean(jpeg != gray) < 0.2  # about one pixel in ten moves, by one grey level
    assert find_jpeg_grid(jpeg).found
    assert find_jpeg_grid(np.repeat(jpeg[:, :, None], 3, axis=2)).found  # as analyze() sees it


def test_cropped_jpeg_grid_offset_is_reported_as_jpeg_compress_names_it():
    evidence = find_jpeg_grid(jpeg_compress(textured(), 98, "4:2:0", grid_offset=(3, 5)))
    assert evidence.found and evidence.grid_offset == (3, 5)


def test_images_known_to_come_from_jpegs_are_found():
    # scikit-image's cat and rocket were JPEG photos before they were stored as PNG.
    assert find_jpeg_grid(data.chelsea()).found
    assert find_jpeg_grid(data.rocket()).found


def test_large_images_are_subsampled_and_chunked_with_the_same_answer():
    image = jpeg_compress(textured(320, 8 * (CHUNK_BLOCKS + 5)), 98, "4:4:4", grid_offset=(6, 1))
    full = find_jpeg_grid(image, max_blocks=10 ** 6)
    sparse = find_jpeg_grid(image, max_blocks=2000)
    assert full.found and sparse.found and full.grid_offset == sparse.grid_offset == (6, 1)
    assert sparse.coefficients < full.coefficients / 2


def test_flat_tiny_and_clipped_images_give_no_evidence():
    for image in (np.full((64, 64, 3), 77, np.uint8), np.zeros((5, 7), np.uint8),
                  np.where(textured() > 128, 255, 0).astype(np.uint8)):
        evidence = find_jpeg_grid(image)
        assert evidence.score == 0.0 and not evidence.found


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="uint8"):
        find_jpeg_grid(textured().astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        find_jpeg_grid(np.zeros((16, 16, 4), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        find_jpeg_grid(np.zeros((4, 4, 4), np.uint8))  # smaller than a block: refused all the same
    with pytest.raises(ValueError, match="max_blocks"):
        find_jpeg_grid(textured(), max_blocks=0)


def test_luma_is_the_decoders_rounded_luma():
    image = textured(16, 16)
    y, clipped = luma(image)
    expected = np.rint(0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2])
    np.testing.assert_array_equal(y, expected)
    assert not clipped.any()


def test_a_found_grid_makes_the_verdict_compressed_whatever_the_flag():
    image = jpeg_compress(textured(), 100, "4:4:4")
    raw = np.zeros((2,) + image.shape[:2], np.float32)  # the network says: QF 100, not compressed
    plain = summarize(raw)
    checked = summarize(raw, grid=find_jpeg_grid(image))
    assert not plain.compressed and plain.grid is None
    assert checked.compressed and not checked.flag_judged_compressed and checked.grid.found


def test_evaluation_records_both_verdicts():
    images = {"made": textured(64, 64)}
    records = evaluate_model(QFNet(), images, [None, 100], subsampling="4:4:4")
    clean, jpeg = records
    assert clean.grid_score is not None and not clean.grid_found
    assert jpeg.grid_found and jpeg.judged_compressed
    summary = summarize_evaluation(records)
    row = summary["per_quality"][0]
    assert row["quality"] == 100 and row["judged_uncompressed"] == 0.0
    assert row["flag_judged_uncompressed"] == float(not jpeg.flag_judged_compressed)
    unchecked = evaluate_model(QFNet(), images, [100], subsampling="4:4:4", grid_check=False)
    assert unchecked[0].grid_score is None and unchecked[0].judged_compressed == unchecked[0].flag_judged_compressed
    assert EvaluationRecord("x", None, 100.0, 0.1, grid_score=20.0, grid_found=True).as_row()["grid_score"] == 20.0
