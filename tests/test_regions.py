"""Local evidence: regions of the flag and quality maps, and the "partly compressed" verdict."""

import numpy as np
import pytest

from jpegtrace.analysis import COMPRESSED, NEVER_COMPRESSED, PARTLY_COMPRESSED, summarize
from jpegtrace.regions import FLAG, QUALITY, cell_means, find_regions, outside_regions


def _raw(flag, quality):
    """Raw network maps (normalised quality: 0 = QF 100) of the given flag and QF maps."""
    return np.stack([1.0 - quality / 100.0, flag]).astype(np.float32)


def test_a_flagged_rectangle_is_one_region_with_its_box_and_qf():
    flag = np.full((240, 320), 0.05, np.float32)
    quality = np.full((240, 320), 99.0, np.float32)
    flag[50:150, 70:190] = 0.95
    quality[50:150, 70:190] = 75.0
    regions = find_regions(quality, flag)
    assert [r.kind for r in regions] == [FLAG]
    top, left, bottom, right = regions[0].box
    assert abs(top - 50) <= 8 and abs(left - 70) <= 8 and abs(bottom - 150) <= 8 and abs(right - 190) <= 8
    assert regions[0].quality_inside == pytest.approx(75.0, abs=1)
    assert regions[0].quality_around == pytest.approx(99.0, abs=1)
    assert regions[0].area_share == pytest.approx(100 * 120 / (240 * 320), rel=0.15)
    assert regions[0].score > 0.8 and regions[0].confirmed
    result = summarize(_raw(flag, quality))
    assert result.verdict == PARTLY_COMPRESSED and result.compressed
    assert result.headline_quality == pytest.approx(75.0, abs=1) and result.quality_source == "region"
    assert result.outside_flag == pytest.approx(0.05, abs=0.01)


def test_speckles_and_a_weak_blotch_make_no_partly_compressed_verdict():
    rng = np.random.default_rng(0)
    flag = (rng.random((240, 320)) < 0.05).astype(np.float32)  # isolated flagged pixels
    quality = np.full((240, 320), 98.0, np.float32)
    assert find_regions(quality, flag) == []
    assert summarize(_raw(flag, quality)).verdict == NEVER_COMPRESSED
    blotch = np.full((240, 320), 0.1, np.float32)
    blotch[100:150, 100:160] = 0.7  # a region, but not a clear one (score 0.6)
    result = summarize(_raw(blotch, quality))
    assert len(result.flag_regions) == 1 and not result.flag_regions[0].confirmed
    assert result.verdict == NEVER_COMPRESSED


def test_an_image_flagged_all_over_is_compressed_with_one_region():
    flag = np.full((160, 200), 0.9, np.float32)
    quality = np.full((160, 200), 80.0, np.float32)
    result = summarize(_raw(flag, quality))
    assert result.verdict == COMPRESSED and len(result.flag_regions) == 1
    assert result.flag_regions[0].area_share > 0.95 and result.outside_flag is None


def test_a_low_qf_area_inside_a_compressed_image_is_a_quality_region():
    flag = np.full((256, 320), 0.95, np.float32)
    quality = np.full((256, 320), 92.0, np.float32)
    quality[64:160, 96:224] = 40.0
    regions = find_regions(quality, flag)
    kinds = [r.kind for r in regions]
    assert kinds == [FLAG, QUALITY]
    region = regions[1]
    assert region.quality_inside == pytest.approx(40.0, abs=1) and region.quality_around == pytest.approx(92.0, abs=1)
    top, left, bottom, right = region.box
    assert abs(top - 64) <= 8 and abs(left - 96) <= 8 and abs(bottom - 160) <= 8 and abs(right - 224) <= 8
    assert summarize(_raw(flag, quality)).verdict == COMPRESSED
    # QF that only wanders a little makes none
    wander = 92.0 + 6.0 * np.sin(np.arange(320) / 20.0)[None, :].repeat(256, 0)
    assert [r.kind for r in find_regions(wander.astype(np.float32), flag)] == [FLAG]


def test_cells_without_evidence_take_no_part():
    flag = np.full((160, 160), 0.9, np.float32)
    quality = np.full((160, 160), 70.0, np.float32)
    evidence = np.zeros((160, 160), np.float32)
    evidence[:, :80] = 1.0
    regions = find_regions(quality, flag, evidence)
    assert len(regions) == 1 and regions[0].box[3] <= 88


def test_cell_means_weigh_by_the_evidence_and_cover_partial_cells():
    values = np.arange(20 * 19, dtype=np.float32).reshape(20, 19)
    weights = np.ones_like(values)
    weights[:8, :8] = 0.0
    mean, weight = cell_means(values, weights)
    assert mean.shape == (3, 3) and np.isnan(mean[0, 0]) and weight[0, 0] == 0.0
    assert mean[2, 2] == pytest.approx(values[16:, 16:].mean()) and weight[2, 2] == 1.0
    from jpegtrace import regions as module

    original = module._BAND_PIXELS
    try:
        module._BAND_PIXELS = 1
        banded = cell_means(values, weights)
    finally:
        module._BAND_PIXELS = original
    np.testing.assert_array_equal(np.nan_to_num(banded[0]), np.nan_to_num(mean))


def test_outside_regions_leaves_the_boxes_out():
    flag = np.full((128, 128), 0.2, np.float32)
    flag[:48, :48] = 1.0
    quality = np.full((128, 128), 90.0, np.float32)
    regions = find_regions(quality, flag)
    assert [r.box for r in regions] == [(0, 0, 48, 48)]
    outside_flag, share = outside_regions(regions, flag, None)
    assert outside_flag == pytest.approx(0.2) and share == pytest.approx(1 - 48 * 48 / 128 ** 2)
    assert outside_regions([], flag, None) == (None, 0.0)


def test_a_region_pasted_from_a_jpeg_reports_its_own_table_and_grid_offset():
    """A 160 x 160 square of a QF-50 JPEG on another grid, pasted into a never-compressed photo:
    ``analyze`` finds it as a flag region, and the region carries the table read in its own box,
    with its grid offset in the image's coordinates, in the API, the record and the viewer's label."""
    from PIL import Image
    from skimage import data

    from jpegtrace import analyze
    from jpegtrace.jpeg import jpeg_compress
    from jpegtrace.viewer import as_region

    clean = np.asarray(Image.fromarray(data.astronaut()).resize((320, 320), Image.LANCZOS))
    donor = jpeg_compress(np.asarray(Image.fromarray(data.coffee()).resize((320, 320), Image.LANCZOS)), 50,
                          grid_offset=(3, 6))
    collage = clean.copy()
    collage[80:240, 96:256] = donor[80:240, 96:256]
    result = analyze(collage)
    with_table = [r for r in result.regions if r.table is not None]
    assert with_table, [r.describe() for r in result.regions]
    region = with_table[0]
    assert region.table.ijg_quality == 50 and region.table.grid_offset == (3, 6)
    top, left, bottom, right = region.box
    assert top < 240 and bottom > 80 and left < 256 and right > 96
    assert region.as_dict()["table"]["ijg_quality"] == 50 and "its own QF 50 (table, IJG)" in region.describe()
    assert "QF 50 (table, IJG) at grid offset (3, 6)" in as_region(region.as_dict(), collage.shape[:2]).label
    from jpegtrace.record import analysis_record, text_line

    assert result.verdict == "partly compressed"
    line = text_line(analysis_record(result, file="collage.png"))
    assert "its own QF 50 (table, IJG) at grid offset (3, 6)" in line
    # the whole image's grid check finds no grid (a third of it is the JPEG): the headline is the region's
    # table's exact QF, where the network's map says about 49
    assert result.table is None and result.quality_source == "region table (IJG)" and result.headline_quality == 50
    assert "QF 50 (region's table, IJG)" in line
    # the never-compressed photo alone has no region with a table
    assert all(r.table is None for r in analyze(clean).regions)


def test_a_region_covering_the_whole_image_reuses_the_image_checks_with_the_same_result(monkeypatch):
    """confirm_regions takes the whole image's grid check and table for a whole-image box (common in a JPEG):
    the same region as running both again, without running them again."""
    from PIL import Image
    from skimage import data

    import jpegtrace.grid.check as check_module
    from jpegtrace.grid import find_jpeg_grid
    from jpegtrace.jpeg import jpeg_compress
    from jpegtrace.regions import Region, confirm_regions
    from jpegtrace.tables import estimate_luma_table

    image = jpeg_compress(np.asarray(Image.fromarray(data.astronaut()).resize((256, 256), Image.LANCZOS)), 85)
    grid = find_jpeg_grid(image)
    table = estimate_luma_table(image, grid_offset=grid.grid_offset)
    assert grid.found and table is not None and table.ijg_quality == 85
    whole = Region(FLAG, (0, 0, 256, 256), 1.0, 0.9, 85.0, None, None, 0.9)
    part = Region(FLAG, (40, 64, 200, 192), 0.3, 0.9, 85.0, 90.0, 0.5, 0.4)
    again = confirm_regions(image, [whole, part])
    calls = []
    real = check_module.find_jpeg_grid
    monkeypatch.setattr(check_module, "find_jpeg_grid", lambda box, **kw: calls.append(box.shape) or real(box, **kw))
    reused = confirm_regions(image, [whole, part], image_grid=grid, image_table=table)
    assert [r.as_dict() for r in reused] == [r.as_dict() for r in again]
    assert calls == [(160, 128, 3)]  # only the part's box is checked again
    assert reused[0].grid_found and reused[0].table.ijg_quality == 85
    # A grid found by its flat blocks is not the coefficient check's result: the whole box is checked again.
    from dataclasses import replace

    calls.clear()
    flat = confirm_regions(image, [whole], image_grid=replace(grid, method="flat blocks"), image_table=table)
    assert calls == [(256, 256, 3)] and flat[0].as_dict() == again[0].as_dict()


def test_same_quantisation_needs_the_same_grid_and_steps_and_no_earlier_jpeg():
    from dataclasses import replace

    from jpegtrace.jpeg import ijg_table
    from jpegtrace.regions import same_quantisation
    from jpegtrace.tables import TableEstimate

    def read(quality, known, offset=(0, 0), earlier=None):
        steps = np.where(known, ijg_table(quality), 0).astype(int)
        return TableEstimate(steps, known.astype(float), offset, 100, quality, quality, earlier_quality=earlier)

    low = np.zeros((8, 8), bool)
    low[:3, :3] = True
    image = read(80, np.add.outer(np.arange(8), np.arange(8)) < 6)
    assert same_quantisation(read(80, low), image)
    assert not same_quantisation(read(40, low), image)  # other steps
    assert not same_quantisation(read(80, low, offset=(3, 5)), image)  # its own grid
    assert not same_quantisation(read(80, low, earlier=40), image)  # an earlier JPEG of its own
    few = np.zeros((8, 8), bool)
    few[0, :2] = True
    assert not same_quantisation(read(80, few), image)  # two common steps say too little
    assert not same_quantisation(None, image) and not same_quantisation(read(80, low), None)
    assert not same_quantisation(replace(read(80, low), steps=read(80, low).steps + low), image)

    from jpegtrace.regions import Region, quality_regions_supported

    def quality_region(inside, around, table):
        return Region(QUALITY, (0, 0, 64, 64), 0.1, 0.95, inside, around, 0.95, 0.3, table=table)

    flag = Region(FLAG, (0, 0, 128, 128), 1.0, 0.95, 80.0, None, None, 0.9, table=read(80, low))
    higher, lower = quality_region(95.0, 80.0, read(80, low)), quality_region(45.0, 80.0, read(80, low))
    own = quality_region(95.0, 80.0, read(95, low, offset=(2, 6)))
    # Higher than around under the image's last table: an earlier, finer JPEG would not have survived it.
    # Lower: an earlier, coarser JPEG may have (a region pasted from one, then saved again).
    assert quality_regions_supported([flag, higher, lower, own], image) == (flag, lower, own)
    assert quality_regions_supported([flag, higher], None) == (flag, higher)  # no table to compare with


@pytest.mark.slow
def test_a_quality_region_reading_the_images_own_table_is_dropped_and_one_with_its_own_is_kept(monkeypatch):
    """A single QF-70 JPEG of scikit-image's chelsea: the network's quality map reads an area off the rest, a
    quality region without the check, none with it (its box reads the image's table). (Coffee at QF 80 showed
    this until the quality calibration was refitted on evidence-weighted means.) A QF-40 square on its own grid
    pasted into a QF-92 JPEG's pixels of coffee stays a quality region, with its own table in the one-line
    output."""
    from skimage import data

    import jpegtrace.analysis as analysis
    from jpegtrace import analyze
    from jpegtrace.jpeg import jpeg_compress
    from jpegtrace.record import analysis_record, text_line

    single = jpeg_compress(data.chelsea(), 70)
    result = analyze(single)
    assert result.table.ijg_quality == 70 and [r.kind for r in result.regions] == [FLAG]
    with monkeypatch.context() as patched:  # the same analysis without the table's word
        patched.setattr(analysis, "quality_regions_supported", lambda regions, table: tuple(regions))
        unchecked = [r for r in analyze(single).regions if r.kind == QUALITY]
    assert unchecked and all(r.table is not None and r.table.ijg_quality == 70 for r in unchecked)

    photo = data.coffee()
    collage = np.array(jpeg_compress(photo, 92))
    collage[80:272, 80:272] = jpeg_compress(photo, 40, grid_offset=(3, 5))[80:272, 80:272]
    result = analyze(collage)
    quality = [r for r in result.regions if r.kind == QUALITY]
    assert len(quality) == 1 and quality[0].table.ijg_quality == 40 and quality[0].table.grid_offset == (3, 5)
    assert quality[0].quality_inside < 50 and quality[0].quality_around > 85
    line = text_line(analysis_record(result, file="collage.png"))
    assert "around; its own QF 40 (table, IJG) at grid offset (3, 5))" in line
