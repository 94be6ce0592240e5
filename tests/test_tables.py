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


@pytest.mark.parametrize("quality", [1, 3, 5, 7, 15, 25, 30, 35, 45, 49, 50, 75, 90, 97, 100])
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


# ------------------------------------------------------------------------------------------------
# Reading the table back from the pixels (jpegtrace.tables)
# ------------------------------------------------------------------------------------------------

from jpegtrace.tables import estimate_luma_table, estimate_tables_by_window, format_table  # noqa: E402

#: The 15 lowest-frequency positions (by u + v, then row), where every table has its most readable steps.
LOWEST_15 = np.argsort(np.add.outer(np.arange(8), np.arange(8)).ravel(), kind="stable")[:15]


@pytest.fixture(scope="module")
def large_photo():
    from skimage import data

    from jpegtrace.io import downscale

    return downscale(data.astronaut(), 2)  # 256 x 256, never compressed


@pytest.mark.parametrize("quality", [30, 50, 75, 90])
@pytest.mark.parametrize("subsampling,offset", [("4:2:0", (0, 0)), ("4:4:4", (3, 5))])
def test_an_ijg_table_is_read_exactly_aligned_or_cropped(large_photo, quality, subsampling, offset):
    estimate = estimate_luma_table(jpeg_compress(large_photo, quality, subsampling, offset))
    assert estimate is not None and estimate.grid_offset == offset
    known = estimate.known
    assert known.sum() >= 8 and np.array_equal(estimate.steps[known], ijg_table(quality)[known])  # none wrong
    assert estimate.ijg_quality == quality and estimate.describe() == f"QF {quality} (table, IJG)"


def test_a_non_standard_table_is_read_where_readable_and_never_wrong(large_photo):
    rng = np.random.default_rng(8)
    for quality in (60, 85):
        luma, chroma = camera_like_tables(quality, rng)
        estimate = estimate_luma_table(jpeg_compress(large_photo, 1, "4:2:0", qtables=[luma, chroma]))
        assert estimate is not None
        read, true = estimate.steps.ravel()[LOWEST_15], luma.ravel()[LOWEST_15]
        assert np.all((read == 0) | (read == true)) and (read > 0).sum() >= 10
        assert abs(estimate.equivalent_quality - ijg_equivalent_quality(luma)) <= 3


def _quantised_coefficients(table, rng, blocks=2000):
    """Coefficients (blocks, 64) as a decoder leaves them: Laplacian values quantised by ``table`` plus
    the rounding noise."""
    values = rng.laplace(0, 12, (blocks, 64))
    flat = table.ravel().astype(float)
    return np.round(values / flat) * flat + rng.normal(0, 0.3, (blocks, 64))


def test_the_whole_table_reads_steps_too_sparse_for_one_frequency_and_drops_artefacts():
    from jpegtrace.tables import MIN_SUPPORT, PRIOR_MIN_SUPPORT, _read_with_table, estimate_step

    rng = np.random.default_rng(4)
    table = ijg_table(45)
    coefficients = _quantised_coefficients(table, rng)
    sparse, artefact = 3, 5  # (0, 3): step 24, coefficients at +-24 in 14 blocks; (0, 5): step 40
    coefficients[:, sparse] = rng.normal(0, 0.3, len(coefficients))
    coefficients[:PRIOR_MIN_SUPPORT + 2, sparse] = table.ravel()[sparse] + rng.normal(0, 0.3, PRIOR_MIN_SUPPORT + 2)
    # what a decoder leaves at a frequency quantised to zero: values just above the zero bin
    coefficients[:, artefact] = rng.normal(0, 0.3, len(coefficients))
    coefficients[:200, artefact] = 2.6 * rng.choice([-1, 1], 200)
    coefficients[200:230, artefact] = 5.7
    steps = np.array([estimate_step(coefficients[:, k])[0] for k in range(64)])
    assert steps[sparse] == 0 and PRIOR_MIN_SUPPORT + 2 < MIN_SUPPORT  # too few for one frequency alone
    assert steps[artefact] == 3  # the artefact passes for a lattice of 3 on its own
    revised, confidence = _read_with_table(coefficients, steps, np.ones(64))
    assert revised.ravel()[sparse] == table.ravel()[sparse]
    assert revised.ravel()[artefact] == 0 and confidence.ravel()[artefact] == 0
    known = revised > 0
    assert np.array_equal(revised[known], table[known])


def test_the_whole_table_takes_no_sparse_step_far_from_its_shape():
    from jpegtrace.tables import PRIOR_MIN_SUPPORT, _read_with_table, estimate_step

    rng = np.random.default_rng(5)
    table = ijg_table(45)
    coefficients = _quantised_coefficients(table, rng)
    sparse = 3  # 14 coefficients all at 72: three times the table's shape there (24), so no step is taken
    coefficients[:, sparse] = rng.normal(0, 0.3, len(coefficients))
    coefficients[:PRIOR_MIN_SUPPORT + 2, sparse] = 72 + rng.normal(0, 0.3, PRIOR_MIN_SUPPORT + 2)
    steps = np.array([estimate_step(coefficients[:, k])[0] for k in range(64)])
    revised, _ = _read_with_table(coefficients, steps, np.ones(64))
    assert revised.ravel()[sparse] == 0


def test_clipped_pixels_are_recovered_from_the_known_steps(large_photo):
    """A bright photo's JPEG clips many blocks at 255. With the steps of all frequencies but one known,
    the recovery puts that one's coefficients back on its own step's multiples, which the raw
    coefficients of the clipped blocks miss."""
    from jpegtrace.grid.dct import block_dct
    from jpegtrace.tables import _grid_blocks, recovered_clipped_coefficients

    bright = np.clip(large_photo.astype(np.float64) * 1.6 + 30, 0, 255).astype(np.uint8)
    jpeg = jpeg_compress(bright, 50, "4:4:4")
    table, free = ijg_table(50), 9  # (1, 1): left unknown to the recovery
    steps = table.copy()
    steps.ravel()[free] = 0
    recovered = recovered_clipped_coefficients(jpeg, (0, 0), steps)
    raw = block_dct(_grid_blocks(jpeg, (0, 0), max_blocks=4096, partly_clipped=True)[0])
    q = table.ravel()[free]

    def on_lattice(coefficients):
        away = coefficients[np.abs(coefficients) > 2.5]
        return float(np.mean(np.abs(away - q * np.round(away / q)) < 1)), away.size

    (after, support), (before, _) = on_lattice(recovered[:, free]), on_lattice(raw[:, free])
    assert len(recovered) == len(raw) >= 50 and support >= 20
    assert after >= 0.85 and before <= 0.5, (after, before)  # measured 0.94 and 0.28


def test_a_pile_up_above_the_zero_bin_is_no_step_of_3():
    """Step 1 (QF 95 and up): the coefficients beyond 2.5 pile up just above it and pass for a first
    multiple of 3, and the few larger ones (4.6-5.3) for second multiples, though they are not on its
    lattice (the estimator before 2026-12-03 read 3 here). A true step of 3 is still read."""
    from jpegtrace.tables import estimate_step

    rng = np.random.default_rng(2)
    zeros = rng.normal(0, 0.5, 2000)
    signs = rng.choice([-1, 1], 2190)
    pile_up = np.concatenate([rng.uniform(2.5, 3.4, 150), rng.uniform(4.6, 5.3, 40), zeros]) * signs
    assert estimate_step(pile_up) == (0, 0.0)
    on_three = np.concatenate([3 + rng.normal(0, 0.3, 150), 6 + rng.normal(0, 0.3, 40), zeros]) * signs
    assert estimate_step(on_three)[0] == 3


def test_coefficients_in_a_steps_zero_bin_refute_it():
    """Coefficients of 3.5-10 cannot come from a step of 35 (they would have been quantised to zero),
    though to its periodicity test they look near 0."""
    from jpegtrace.tables import estimate_step

    rng = np.random.default_rng(3)
    small = rng.uniform(3.5, 10, 60)
    large = 35 * rng.integers(1, 3, 30) + rng.normal(0, 0.3, 30)
    assert estimate_step(np.concatenate([small, large]))[0] != 35
    assert estimate_step(np.concatenate([small, large]), zero_bin_reach=None)[0] == 35  # without the test
    assert estimate_step(np.concatenate([rng.normal(0, 0.8, 60), large]))[0] == 35


def test_never_compressed_images_have_no_table(large_photo):
    from jpegtrace.train.synthetic import HELD_OUT_FONTS, KINDS, synthetic_image

    assert estimate_luma_table(large_photo) is None
    assert estimate_luma_table(large_photo, grid_offset=(0, 0)) is None  # even read at a made-up grid
    rng = np.random.default_rng(31)
    for kind in KINDS:
        assert estimate_luma_table(synthetic_image(rng, 200, 240, kind=kind, fonts=HELD_OUT_FONTS)[0]) is None


def test_a_pasted_region_reports_its_own_table_and_offset(large_photo):
    from skimage import data

    background = jpeg_compress(large_photo, 92)
    other = np.asarray(Image.fromarray(data.coffee()).resize((256, 256), Image.LANCZOS))
    donor = jpeg_compress(other, 50, grid_offset=(5, 2))
    collage = background.copy()
    collage[128:, 128:] = donor[128:, 128:]  # the lower right quarter from another JPEG, another grid
    regions = {(r.y, r.x): r.table for r in estimate_tables_by_window(collage, window=128)}
    assert regions[(128, 128)].ijg_quality == 50 and regions[(128, 128)].grid_offset == (5, 2)
    assert regions[(0, 0)].ijg_quality == 92 and regions[(0, 0)].grid_offset == (0, 0)


def test_the_table_prints_as_jpegsnoop_does():
    steps = ijg_table(50).copy()
    steps[7, 7] = 0
    text = format_table(steps, np.ones((8, 8)))
    assert text.splitlines()[0].split()[:8] == ["16", "11", "10", "16", "24", "40", "51", "61"]
    assert text.splitlines()[7].split()[7] == "?" and len(text.splitlines()) == 8


def test_analyze_quotes_the_tables_qf_and_says_so(large_photo):
    from jpegtrace import analyze

    result = analyze(jpeg_compress(large_photo, 75))
    assert result.table is not None and result.quality_source == "table (IJG)" and result.headline_quality == 75
    clean = analyze(large_photo)
    assert clean.table is None and clean.quality_source == "network" and clean.headline_quality == clean.median_quality


def test_the_tables_command_reads_pixels_and_the_files_own_tables(tmp_path, large_photo):
    import json
    import subprocess
    import sys

    first = tmp_path / "first.jpg"
    Image.fromarray(large_photo).save(first, quality=70)
    png = tmp_path / "first.png"
    Image.open(first).save(png)
    resaved = tmp_path / "resaved.jpg"
    Image.open(first).save(resaved, quality=95)  # a JPEG re-saved from an older one
    run = subprocess.run([sys.executable, "-m", "jpegtrace.cli", "tables", str(png), str(first), "--json"],
                         capture_output=True, text=True, check=True)
    pixels, own = [json.loads(line) for line in run.stdout.splitlines()]
    assert pixels["pixels"]["ijg_quality"] == 70 and pixels["file_tables"] is None
    assert own["file_tables"][0] == ijg_table(70).tolist()
    text = subprocess.run([sys.executable, "-m", "jpegtrace.cli", "tables", str(resaved)], capture_output=True,
                          text=True, check=True).stdout
    assert "re-saved from an older JPEG" in text and "QF 95 (table, IJG)" in text  # the last table, and the earlier


@pytest.mark.parametrize("encoder", ["cjpeg", "cjpeg-float", "imagemagick"])
@pytest.mark.parametrize("quality,subsampling", [(50, "4:2:0"), (85, "4:4:4")])
def test_tables_of_other_encoders_are_read(large_photo, encoder, quality, subsampling):
    """Debian's cjpeg (libjpeg-turbo-progs; its float DCT too) and ImageMagick, as .ci/run installs them."""
    import importlib.util
    import shutil
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_tables", Path(__file__).parents[1] / "benchmarks" / "bench_tables.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    if (encoder.startswith("cjpeg") and not shutil.which("cjpeg")) or (encoder == "imagemagick"
                                                                      and not bench.imagemagick_convert()):
        pytest.skip(f"{encoder} is not installed")
    pixels, truth = bench.decode(bench.encode(large_photo, encoder, quality, subsampling))
    estimate = estimate_luma_table(pixels[3:, 5:])  # cropped: the grid no longer starts at the origin
    assert estimate is not None and estimate.grid_offset == (3, 5)
    assert np.array_equal(estimate.steps[estimate.known], truth[estimate.known])


@pytest.mark.parametrize("quality", [97, 98, 99])
def test_near_lossless_tables_give_a_range_or_the_right_qf_never_a_wrong_one(photos, quality):
    for photo in photos.values():
        table = estimate_luma_table(jpeg_compress(photo, quality, "4:2:0"))
        if table is None:
            continue
        if table.ijg_quality is not None:
            assert table.ijg_quality == quality or np.array_equal(ijg_table(table.ijg_quality), ijg_table(quality))
        else:
            assert table.ijg_range is not None and table.ijg_range[0] <= quality <= table.ijg_range[1]
            assert table.describe().startswith("QF ≥ ")


def test_the_ijg_shape_residual_tells_scaled_standard_tables_from_other_families():
    from jpegtrace.tables import ijg_shape_residual

    low = np.add.outer(np.arange(8), np.arange(8)) <= 4  # the low frequencies, as the pixels show them
    exact = np.where(low, ijg_table(70), 0)
    assert ijg_shape_residual(exact) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(3)
    jittered = np.where(low, np.round(ijg_table(70) * np.exp(rng.normal(0, 0.1, (8, 8)))), 0)
    assert ijg_shape_residual(jittered) < 0.2
    u, v = np.meshgrid(np.arange(8), np.arange(8))
    steep = np.round(5 + 115 * (u + v) / 14.0)  # steps growing linearly with the frequency: not IJG's shape
    assert ijg_shape_residual(np.where(low, steep, 0)) > 0.3
    assert ijg_shape_residual(np.zeros((8, 8), int)) is None


def test_unknown_steps_are_extrapolated_from_the_shape_of_the_known_ones():
    from jpegtrace.jpeg import ijg_equivalent_quality
    from jpegtrace.tables import completed_table, fit_table_shape

    low = np.add.outer(np.arange(8), np.arange(8)) <= 4  # the 15 low frequencies the pixels show
    shape = fit_table_shape(np.where(low, ijg_table(70), 0))
    assert shape.family == "IJG" and shape.residual == pytest.approx(0.0, abs=1e-9)
    assert np.array_equal(completed_table(np.where(low, ijg_table(70), 0)), ijg_table(70))
    u, v = np.meshgrid(np.arange(8), np.arange(8))
    smooth = np.round(6 + 140 * ((u + v) / 14.0) ** 1.6).astype(int)  # a phone's smooth table: no IJG shape
    shape = fit_table_shape(np.where(low, smooth, 0))
    assert shape.family == "power law" and shape.residual < 0.05
    completed = completed_table(np.where(low, smooth, 0))
    assert np.array_equal(completed[low], smooth[low])  # the known steps stay as read
    assert np.abs(np.log(completed / smooth)).max() < 0.1  # the 49 unknown ones within 10 %
    assert abs(ijg_equivalent_quality(completed) - ijg_equivalent_quality(smooth)) <= 1
    # the IJG-equivalent QF over the known steps alone would be far off: the high steps weigh as much
    assert abs(ijg_equivalent_quality(np.where(low, smooth, ijg_table(70))) - ijg_equivalent_quality(smooth)) > 5
    rough = np.where(low, np.random.default_rng(5).integers(2, 120, (8, 8)), 0)  # no smooth table's steps
    assert fit_table_shape(rough).residual > 0.3
    assert fit_table_shape(np.where(np.arange(64).reshape(8, 8) < 2, 9, 0)) is None


def test_a_partly_read_table_is_the_headline_only_in_a_smooth_tables_shape():
    from jpegtrace.analysis import MIN_SHAPED_STEPS, _table_quality_readable
    from jpegtrace.tables import TableEstimate, match_ijg

    def estimate(steps):
        return TableEstimate(steps, (steps > 0).astype(float), (0, 0), 1000, *match_ijg(steps))

    few = np.add.outer(np.arange(8), np.arange(8)) <= 2  # 6 steps: fewer than MIN_SHAPED_STEPS
    low = np.add.outer(np.arange(8), np.arange(8)) <= 4  # 15 steps
    assert few.sum() < MIN_SHAPED_STEPS <= low.sum()
    scaled = np.round(ijg_table(70) * 1.07).astype(int)  # a camera's own scaling of the standard table
    assert _table_quality_readable(estimate(np.where(low, scaled, 0)))
    assert not _table_quality_readable(estimate(np.where(few, scaled, 0)))
    u, v = np.meshgrid(np.arange(8), np.arange(8))
    linear = np.round(5 + 115 * (u + v) / 14.0).astype(int)  # steps growing linearly: a power law's
    assert _table_quality_readable(estimate(np.where(low, linear, 0)))
    rough = np.random.default_rng(5).integers(2, 120, (8, 8))
    assert not _table_quality_readable(estimate(np.where(low, rough, 0)))
    assert _table_quality_readable(estimate(rough))  # all 64 read: its own equivalent QF, whatever its shape
