"""The DCT check for a JPEG block grid (jpegtrace.grid) and its place in the verdicts."""

import numpy as np
import pytest
from skimage import data

from jpegtrace.analysis import summarize
from jpegtrace.eval.quality import EvaluationRecord, evaluate_model, summarize_evaluation
from jpegtrace.grid.check import GRID_SCORE_THRESHOLD, find_jpeg_grid
from jpegtrace.grid.dct import luma
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.nn.qfnet import QFNet


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


def test_large_images_are_subsampled_and_chunked_with_the_same_answer(monkeypatch):
    from jpegtrace.grid import check

    monkeypatch.setattr(check, "CHUNK_BLOCKS", 256)  # a row of blocks wider than a chunk, on a small image
    image = jpeg_compress(textured(320, 8 * (256 + 5)), 98, "4:4:4", grid_offset=(6, 1))
    full = find_jpeg_grid(image, max_blocks=10 ** 6)
    sparse = find_jpeg_grid(image, max_blocks=2000)
    assert full.found and sparse.found and full.grid_offset == sparse.grid_offset == (6, 1)
    assert sparse.coefficients < full.coefficients / 2


def test_the_score_is_the_same_on_any_number_of_threads():
    images = [jpeg_compress(textured(200, 264), 99, "4:2:0", grid_offset=(3, 5)), textured(200, 264)]
    for image in images:
        one = find_jpeg_grid(image, workers=1)
        assert find_jpeg_grid(image, workers=3) == one == find_jpeg_grid(image, workers=8)
    assert find_jpeg_grid(images[0]).found and not find_jpeg_grid(images[1]).found
    with pytest.raises(ValueError, match="workers"):
        find_jpeg_grid(images[0], workers=0)


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
    assert plain.verdict == "never compressed"
    assert checked.compressed and checked.flag_verdict == "never compressed" and checked.grid.found


def test_evaluation_records_both_verdicts():
    images = {"made": textured(64, 64)}
    records = evaluate_model(QFNet(), images, [None, 100], subsampling="4:4:4")
    clean, jpeg = records
    assert clean.grid_score is not None and clean.grid_score <= GRID_SCORE_THRESHOLD
    assert jpeg.grid_score > GRID_SCORE_THRESHOLD and jpeg.verdict == "compressed" and jpeg.compressed
    summary = summarize_evaluation(records)
    row = summary["per_quality"][0]
    assert row["quality"] == 100 and row["judged_uncompressed"] == 0.0
    assert row["flag_judged_uncompressed"] == float(jpeg.flag_verdict != "compressed")
    unchecked = evaluate_model(QFNet(), images, [100], subsampling="4:4:4", grid_check=False)
    assert unchecked[0].grid_score is None and unchecked[0].verdict == unchecked[0].flag_verdict
    record = EvaluationRecord("x", None, 100.0, 0.1, verdict="compressed", flag_verdict="never compressed",
                              network_verdict="never compressed", grid_score=20.0)
    assert record.compressed and record.as_row()["grid_score"] == 20.0 and record.as_row()["verdict"] == "compressed"


# ------------------------------------------------------------------------------------------------
# Grid presence (an input channel of networks with NetConfig.grid_presence)
# ------------------------------------------------------------------------------------------------

def _presence(image):
    import torch

    from jpegtrace.grid.dct import luma_tensor
    from jpegtrace.grid.presence import grid_presence

    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()
    return grid_presence(luma_tensor(pixels))[0, 0].numpy()


@pytest.mark.parametrize("quality,subsampling,offset", [(100, "4:4:4", (0, 0)), (99, "4:4:4", (3, 5)),
                                                          (98, "4:2:0", (6, 1))])
def test_presence_covers_a_near_lossless_jpeg_and_not_its_source(quality, subsampling, offset):
    from jpegtrace.grid.presence import PRESENCE_CEILING

    clean = _presence(textured())
    jpeg = _presence(jpeg_compress(textured(), quality, subsampling, grid_offset=offset))
    inner = np.s_[30:-30, 30:-30]  # away from the border, where the lattice has fewer blocks
    assert np.mean(clean[inner] > 0.5) < 0.05 and abs(np.median(clean[inner])) < 0.3
    assert np.mean(jpeg[inner] > 1.0) > 0.95  # every pixel, not one phase in 64
    assert jpeg.max() <= PRESENCE_CEILING


def test_presence_of_a_strip_with_its_context_equals_the_whole_image():
    import torch

    from jpegtrace import grid

    presence = grid.grid_presence
    before, after = grid.PRESENCE_CONTEXT
    image = jpeg_compress(textured(200, 70), 97, "4:4:4", grid_offset=(2, 3))
    luma_rows = grid.luma_tensor(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float())
    whole = presence(luma_rows)
    for y0, y1 in [(0, 5), (5, 30), (50, 51), (90, 120), (170, 200)]:
        c0, c1 = max(0, y0 - before), min(200, y1 + after)
        strip = presence(luma_rows[:, :, c0:c1])[:, :, y0 - c0:y1 - c0]
        assert torch.allclose(strip, whole[:, :, y0:y1], atol=1e-5), (y0, y1)
    # with half the context the values differ: the rows the context adds are needed
    y0, y1, half = 90, 100, before // 2
    short = presence(luma_rows[:, :, y0 - half:y1 + after])[:, :, half:half + y1 - y0]
    assert not torch.allclose(short, whole[:, :, y0:y1], atol=1e-5)


def test_presence_and_block_scores_equal_their_frozen_definitions_exactly():
    """The shipped network was trained on these values: the faster forms must give them bit for bit."""
    import torch
    import torch.nn.functional as F

    from jpegtrace import grid
    from jpegtrace.grid.dct import MIN_ABS_COEFFICIENT, _ac_basis
    from jpegtrace.grid.presence import _window_max

    x = torch.randn(2, 1, 37, 53, generator=torch.Generator().manual_seed(0))
    expected = F.max_pool2d(x, 8, stride=1, padding=4)[:, :, :37, :53]
    assert torch.equal(_window_max(x, 8, before=4), expected)

    image = jpeg_compress(textured(64, 80), 95, "4:4:4")
    luma = grid.luma_tensor(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float())
    coefficients = F.conv2d(luma, _ac_basis())  # the definition: masked squares, counted with bools
    used = coefficients.abs() > MIN_ABS_COEFFICIENT
    squared = (coefficients - torch.round(coefficients)).square().masked_fill(~used, 0.0)
    counts = used.sum(dim=1, keepdim=True, dtype=torch.float32)
    z = (counts - 12 * squared.sum(dim=1, keepdim=True)) / torch.sqrt(counts.clamp(min=1.0) * 0.8)
    assert torch.equal(grid.block_scores(luma), F.pad(z, (3, 4, 3, 4)))


# ------------------------------------------------------------------------------------------------
# The grid's evidence for clipped blocks (grid.clipped_block_flag, joined to the flag map)
# ------------------------------------------------------------------------------------------------

def partly_clipped(height=240, width=320, seed=0):
    """:func:`textured` with salt highlights at 255 over about half of it, in shapes no 8x8 grid
    is aligned with: about 40 % of the blocks of its JPEGs hold 8 or more clipped pixels."""
    image = textured(height, width, seed)
    yy, xx = np.mgrid[0:height, 0:width]
    highlights = np.sin(xx / 11.0 + 1.3) * np.sin(yy / 7.0) > 0
    image[highlights & (np.random.default_rng(seed).random((height, width)) < 0.2)] = 255
    return image


def _blocks_of(grid_offset, shape, pixels):
    """Per block of the grid at ``grid_offset``: whether any of ``pixels`` (H, W) is set in it."""
    from jpegtrace.grid.clipped import grid_block_origin

    (oy, ox), (rows, cols) = grid_block_origin(grid_offset), shape
    return pixels[oy:oy + 8 * rows, ox:ox + 8 * cols].reshape(rows, 8, cols, 8).any(axis=(1, 3))


@pytest.mark.parametrize("quality", [97, 98, 100])
def test_clipped_blocks_of_a_near_lossless_jpeg_take_the_grid_around_them(quality):
    from jpegtrace.grid.clipped import CLIPPED_BLOCK_PIXELS, block_evidence, clipped_block_flag

    jpeg = jpeg_compress(partly_clipped(), quality, "4:4:4", grid_offset=(3, 5))
    grid = find_jpeg_grid(jpeg)
    assert grid.found and grid.grid_offset == (3, 5)
    flag = clipped_block_flag(jpeg, grid)
    clipped = block_evidence(jpeg, grid.grid_offset).clipped_pixels >= CLIPPED_BLOCK_PIXELS
    assert flag.shape == (29, 39) and 0.3 < clipped.mean() < 0.6
    assert flag[clipped].mean() > 0.75 and not flag[~clipped].any()  # unclipped blocks: the network's say
    unclipped = jpeg_compress(textured(), quality, "4:4:4")
    assert not clipped_block_flag(unclipped, find_jpeg_grid(unclipped)).any()


def test_clipped_block_flag_stays_zero_without_a_grid():
    from jpegtrace.grid.check import GridEvidence
    from jpegtrace.grid.clipped import QUADRANT_RAMP, block_evidence, clipped_block_flag

    source = partly_clipped()
    assert not find_jpeg_grid(source).found
    assert not clipped_block_flag(source, find_jpeg_grid(source)).any()
    # even at a grid made up for it, a never-compressed image stays below the ramp
    weakest = block_evidence(source, (3, 5)).weakest_quadrant
    assert weakest.max() < QUADRANT_RAMP[0] and abs(np.median(weakest) + 0.9) < 0.3
    assert not clipped_block_flag(source, GridEvidence(99.0, (3, 5), 1000)).any()
    assert clipped_block_flag(np.zeros((5, 5, 3), np.uint8), GridEvidence(99.0, (0, 0), 1000)).shape == (0, 0)


def test_a_jpeg_region_marks_no_clean_block_beside_it():
    from jpegtrace.grid.check import GridEvidence
    from jpegtrace.grid.clipped import clipped_block_flag

    source = partly_clipped()
    region = np.zeros(source.shape[:2], bool)
    region[80:160, 96:224] = True
    fake = np.where(region[..., None], jpeg_compress(source, 98, "4:4:4", grid_offset=(3, 5)), source)
    flag = clipped_block_flag(fake, GridEvidence(99.0, (3, 5), 1000))  # the region's grid, as if found
    touching = _blocks_of((3, 5), flag.shape, region)
    assert not flag[~touching].any()  # each clean block has a quadrant away from the region


def test_a_clean_region_pasted_into_a_jpeg_keeps_its_inner_blocks_unmarked():
    from jpegtrace.grid.clipped import (
        CLIPPED_BLOCK_PIXELS,
        LOCAL_BLOCKS,
        QUADRANT_RAMP,
        block_evidence,
        clipped_block_flag,
    )

    source = partly_clipped()
    jpeg = jpeg_compress(source, 98, "4:4:4", grid_offset=(3, 5))
    region = np.zeros(source.shape[:2], bool)
    region[85:149, 99:179] = True  # 8 x 10 whole blocks of the grid, smaller than a quadrant's reach
    fake = np.where(region[..., None], source, jpeg)
    grid = find_jpeg_grid(fake)
    assert grid.found and grid.grid_offset == (3, 5)
    flag, evidence = clipped_block_flag(fake, grid), block_evidence(fake, grid.grid_offset)
    inner = np.zeros(flag.shape, bool)
    r = LOCAL_BLOCKS // 2
    inner[10 + r:18 - r, 12 + r:22 - r] = True  # blocks whose neighbourhood lies in the clean region
    clipped = evidence.clipped_pixels >= CLIPPED_BLOCK_PIXELS
    # the JPEG reaches all four quadrants of the inner blocks, but their own neighbourhood is clean
    low, high = QUADRANT_RAMP
    by_quadrants = np.clip((evidence.weakest_quadrant - low) / (high - low), 0, 1) * clipped
    assert clipped[inner].mean() > 0.3 and by_quadrants[inner].mean() > 0.3
    assert flag[inner].mean() < by_quadrants[inner].mean() / 4
    assert flag[~_blocks_of((3, 5), flag.shape, region) & clipped].mean() > 0.75  # the JPEG's own


def test_clipped_block_flag_of_bands_equals_one_pass(monkeypatch):
    import jpegtrace.grid.clipped as clipped

    jpeg = jpeg_compress(partly_clipped(200, 96, seed=2), 98, "4:4:4", grid_offset=(6, 1))
    evidence = find_jpeg_grid(jpeg)
    one_pass = clipped.block_evidence(jpeg, evidence.grid_offset)
    monkeypatch.setattr(clipped, "_BAND_PIXELS", 8 * 96 * 3)  # three rows of blocks per band
    banded = clipped.block_evidence(jpeg, evidence.grid_offset)
    # float32 rounding only: some BLAS kernels (an AMD EPYC's) sum a band's products in another order
    np.testing.assert_allclose(banded.weakest_quadrant, one_pass.weakest_quadrant, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(banded.local_deficit, one_pass.local_deficit, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(banded.clipped_pixels, one_pass.clipped_pixels)


def test_analysis_raises_the_networks_flag_in_clipped_blocks_only():
    import torch

    from jpegtrace.analysis import analyze_array
    from jpegtrace.grid.clipped import CLIPPED_BLOCK_PIXELS, block_evidence

    torch.manual_seed(0)
    jpeg = jpeg_compress(partly_clipped(), 98, "4:4:4", grid_offset=(3, 5))
    model = QFNet()
    checked = analyze_array(jpeg, model)
    alone = analyze_array(jpeg, model, grid_check=False)
    assert checked.grid.found and alone.grid is None and alone.network_mean_flag is None
    np.testing.assert_array_equal(checked.quality_map, alone.quality_map)
    assert checked.network_mean_flag == pytest.approx(alone.mean_flag)
    assert checked.network_verdict == alone.flag_verdict
    assert np.all(checked.flag_map >= alone.flag_map) and checked.mean_flag > alone.mean_flag + 0.2
    raised = checked.flag_map > alone.flag_map
    clipped = block_evidence(jpeg, (3, 5)).clipped_pixels >= CLIPPED_BLOCK_PIXELS
    assert not _blocks_of((3, 5), clipped.shape, raised)[~clipped].any()
    assert not raised[:5].any() and not raised[:, :3].any()  # pixels outside whole blocks keep the network's


def test_collages_and_their_threshold_calibration_score_the_raised_flag_map(tmp_path, monkeypatch):
    import torch
    from PIL import Image

    from jpegtrace.eval.calibration import calibrate_flag_threshold
    from jpegtrace.eval.collage import run_collage
    from jpegtrace.eval.masks import rectangle_mask

    torch.manual_seed(0)
    model = QFNet()
    source = partly_clipped()
    mask = rectangle_mask(240, 320, size_fraction=(0.9, 0.9))  # the JPEG covers most of it: its grid is found
    checked = run_collage(model, source, source, 98, mask, subsampling="4:4:4")
    alone = run_collage(model, source, source, 98, mask, subsampling="4:4:4", grid_check=False)
    assert checked.analysis.grid.found and alone.analysis.grid is None
    assert checked.flag_inside > alone.flag_inside + 0.2 and checked.flag_outside == pytest.approx(alone.flag_outside)
    Image.fromarray(source).save(tmp_path / "a.png")
    Image.fromarray(np.ascontiguousarray(source[:, ::-1])).save(tmp_path / "b.png")
    import jpegtrace.eval.calibration as calibration

    seen = []

    def recording(*args, grid_check=True, **kwargs):
        seen.append(grid_check)
        return analyze_array(*args, grid_check=grid_check, **kwargs)

    analyze_array = calibration.analyze_array
    monkeypatch.setattr(calibration, "analyze_array", recording)
    for grid_check in (True, False):
        calibrate_flag_threshold(model, [tmp_path / "a.png", tmp_path / "b.png"], pairs=2, thresholds=(0.5,),
                                 grid_check=grid_check)
    assert seen == [True, True, False, False]


def test_the_grid_score_and_the_tables_are_the_same_whatever_the_blas_thread_count():
    """OpenBLAS sums float32 products in another order on two threads; the checks must not show it."""
    import json
    import os
    import subprocess
    import sys

    script = """
import json
from skimage import data
from jpegtrace.grid import find_jpeg_grid
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.tables import estimate_luma_table
from jpegtrace.chroma import estimate_chroma_table
photo = data.astronaut()
jpeg = jpeg_compress(photo, 80, "4:2:0")
grid = find_jpeg_grid(jpeg)
table = estimate_luma_table(jpeg)
chroma = estimate_chroma_table(jpeg, grid_offset=grid.grid_offset)
print(json.dumps([repr(find_jpeg_grid(photo).score), repr(grid.score), table.steps.tolist(),
                  repr(table.confidence.tolist()), repr(chroma.confidence.tolist())]))
"""
    outputs = []
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        outputs.append(json.loads(run.stdout))
    assert outputs[0] == outputs[1]


def test_the_numpy_luma_of_the_grid_presence_is_torchs_for_every_colour():
    """All 2^24 colours: jpegtrace.grid.dct.luma_as_torch equals luma_tensor (the grid presence's luma, what the
    shipped network was trained on) exactly, on any CPU (torch.einsum's order was not: an AMD EPYC rounded other
    colours than the Intel CPUs); the grid check's own luma (a BLAS product, whose order depends on the CPU:
    353 colours on an Intel Xeon, 1,043 on an AMD EPYC) differs only at exact ties, 0.299 R + 0.587 G + 0.114 B
    = k + 1/2, by one grey level."""
    import torch

    from jpegtrace.grid.dct import luma, luma_as_torch, luma_tensor

    code = np.arange(1 << 24, dtype=np.uint32)
    colours = np.stack([(code >> 16) & 255, (code >> 8) & 255, code & 255], axis=-1).astype(np.uint8)
    colours = colours.reshape(4096, 4096, 3)
    exact = luma_tensor(torch.from_numpy(colours).permute(2, 0, 1)[None].float())[0, 0].numpy()
    assert np.array_equal(luma_as_torch(colours), exact)
    differs = luma(colours)[0] != exact
    ties = (colours.astype(np.int64) @ np.array([299, 587, 114])) % 1000 == 500  # exact integer arithmetic
    assert differs.any() and not (differs & ~ties).any()
    assert np.abs(luma(colours)[0][differs] - exact[differs]).max() == 1
