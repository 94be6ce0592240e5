"""The grid of coarse JPEGs, found by their flat blocks and confirmed by an IJG table (jpegtrace.grid.coarse)."""

import numpy as np
import pytest

from jpegtrace.analysis import check_pixels
from jpegtrace.grid.check import find_jpeg_grid
from jpegtrace.grid.coarse import find_coarse_grid, flat_block_shares
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.tables import estimate_luma_table, estimate_step


@pytest.fixture(scope="module")
def photo512():
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((400, 400), Image.LANCZOS))


@pytest.mark.parametrize("quality", [5, 10])
@pytest.mark.parametrize("crop", [(0, 0), (3, 5)])
def test_coarse_jpegs_have_their_grid_found_by_flat_blocks(photo512, quality, crop):
    image = jpeg_compress(photo512, quality, "4:2:0")[crop[0]:, crop[1]:]
    offset = find_coarse_grid(image)
    shares = flat_block_shares(image)
    assert offset is not None
    grid = check_pixels(image).grid
    assert grid.found and grid.grid_offset == offset
    # The offset convention is the coefficient check's: the same as find_jpeg_grid gives at QF 50.
    assert offset == find_jpeg_grid(jpeg_compress(photo512, 50, "4:2:0")[crop[0]:, crop[1]:]).grid_offset
    assert shares.max() > np.median(shares) + 0.05
    # The table read there gives the exact QF, through the analysis and the table reader alike.
    table = estimate_luma_table(image)
    assert table is not None and table.ijg_quality == quality and table.grid_offset == offset


def test_a_small_step_needs_more_than_one_multiple():
    rng = np.random.default_rng(0)
    lone = rng.choice([-3.0, 3.0], size=60) + rng.normal(0, 0.3, 60)  # all at +-3: an artifact, not a lattice
    assert estimate_step(lone) == (0, 0.0)
    spread = 3.0 * rng.integers(-6, 7, size=400) + rng.normal(0, 0.3, 400)
    assert estimate_step(spread)[0] == 3


def test_no_coarse_grid_in_never_compressed_or_upscaled_images(photo512):
    rng = np.random.default_rng(0)
    flat_art = np.kron(rng.integers(0, 6, size=(40, 40)) * 40, np.ones((8, 8))).astype(np.uint8)
    for image in (photo512, np.repeat(np.repeat(photo512[:100, :100], 8, 0), 8, 1),
                  np.repeat(np.repeat(photo512[:200, :200], 2, 0), 2, 1), np.stack([flat_art] * 3, -1),
                  np.full((200, 200, 3), 128, np.uint8)):
        grid = check_pixels(np.ascontiguousarray(image)).grid
        assert not grid.found, grid


def test_a_cameras_coarse_table_in_a_smooth_shape_confirms_the_grid(photo512):
    from jpegtrace.analysis import analyze_array, load_model
    from jpegtrace.jpeg import ijg_equivalent_quality, ijg_table

    u, v = np.meshgrid(np.arange(8), np.arange(8))
    luma = np.clip(np.round(110 + 120 * ((u + v) / 14.0) ** 1.4), 1, 255).astype(int)  # a power law, QF ~6
    truth = ijg_equivalent_quality(luma)
    image = jpeg_compress(photo512, 50, "4:2:0", qtables=(luma, np.minimum(255, luma * 2)))
    assert not find_jpeg_grid(image).found  # the coefficient check sees nothing: DC-only blocks
    table = estimate_luma_table(image)
    assert table is not None and table.ijg_quality is None and table.shape.family == "power law"
    assert np.array_equal(table.steps[table.known], luma[table.known])
    assert abs(table.equivalent_quality - truth) <= 1
    analysis = analyze_array(image, load_model())
    assert analysis.grid.found and analysis.grid.method == "flat blocks"
    assert analysis.quality_source == "table (non-standard)" and abs(analysis.headline_quality - truth) <= 1
    # the same steps from an IJG-shaped table off by much more than a camera's jitter are no table
    rough = np.where(table.known, np.round(ijg_table(6) * np.exp(np.random.default_rng(1).normal(0, 0.5, (8, 8)))), 0)
    from jpegtrace.tables import smooth_coarse_table
    assert not smooth_coarse_table(rough.astype(int))
