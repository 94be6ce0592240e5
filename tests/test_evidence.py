"""The evidence map and the "no evidence" verdict: flat, smooth and saturated pixels carry no JPEG evidence."""

import numpy as np
import pytest

from jpegtrace.analysis import (COMPRESSED, NEVER_COMPRESSED, NO_EVIDENCE, analyze_array, judge, summarize,
                                weighted_mean)
from jpegtrace.evidence import MIN_EVIDENCE_SHARE, block_structure, evidence_map, set_blocks
from jpegtrace.jpeg import jpeg_compress


def _ramp(height=96, width=256):
    return np.repeat(np.tile(np.arange(width, dtype=np.uint8), (height, 1))[:, :, None], 3, axis=2)


@pytest.mark.parametrize("make", [
    lambda: np.full((64, 64, 3), 128, np.uint8),                      # flat grey
    lambda: np.zeros((64, 64, 3), np.uint8),                          # black
    lambda: np.full((64, 64), 255, np.uint8),                         # white, grayscale
    _ramp,                                                            # 8-bit linear ramp
    lambda: jpeg_compress(_ramp(), 45),                               # a ramp's JPEG is a ramp
    lambda: jpeg_compress(np.full((64, 64, 3), 77, np.uint8), 20),    # a flat colour's JPEG is flat
])
def test_flat_smooth_and_saturated_images_carry_no_evidence(make):
    assert evidence_map(make()).mean() < 0.01  # (a QF-45 ramp keeps a trace of ringing in a few blocks)


def test_texture_carries_evidence_and_the_map_is_local(photo):
    image = photo.copy()
    image[:, : image.shape[1] // 2] = 128  # left half flat
    evidence = evidence_map(image)
    assert evidence.shape == image.shape[:2] and evidence.dtype == np.float32
    assert evidence[:, : image.shape[1] // 2 - 16].max() == 0.0
    assert evidence[:, image.shape[1] // 2 + 16:].mean() > 0.8


def test_judge_says_no_evidence_only_without_a_grid():
    assert judge(0.9, evidence_share=0.0) == NO_EVIDENCE
    assert judge(None) == NO_EVIDENCE
    assert judge(0.9, evidence_share=MIN_EVIDENCE_SHARE) == COMPRESSED
    assert judge(0.2) == NEVER_COMPRESSED
    assert judge(0.2, grid_found=True, evidence_share=0.0) == COMPRESSED  # a grid is evidence itself


def test_the_summary_weighs_the_maps_by_the_evidence():
    raw = np.zeros((2, 8, 8), np.float32)
    raw[1, :, :4] = 1.0   # flag 1 on the left half ...
    raw[0, :, :4] = 0.5   # ... at QF 50 there
    evidence = np.zeros((8, 8), np.float32)
    evidence[:, 4:] = 1.0  # ... but only the right half carries evidence
    result = summarize(raw, evidence=evidence)
    assert result.mean_flag == 0.0 and result.mean_quality == 100.0 and result.verdict == NEVER_COMPRESSED
    assert result.evidence_share == 0.5
    nothing = summarize(raw, evidence=np.zeros((8, 8), np.float32))
    assert nothing.verdict == NO_EVIDENCE and nothing.mean_quality is None and nothing.mean_flag is None
    assert weighted_mean(np.arange(4.0), None) == 1.5


def test_a_flat_image_is_no_evidence_without_a_qf():
    from jpegtrace import analyze

    for image in (np.full((96, 96, 3), 200, np.uint8), _ramp()):
        result = analyze(image)
        assert result.verdict == NO_EVIDENCE and result.mean_quality is None and result.evidence_share == 0.0


def _pixel_art(seed=0, cells=(40, 48), scale=5):
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(4, 3), dtype=np.uint8)
    art = palette[rng.integers(0, 4, size=cells)]
    return np.repeat(np.repeat(art, scale, axis=0), scale, axis=1)


@pytest.mark.parametrize("period", [4, 8, 12, 16, 32])
def test_tiles_stripes_and_checkerboards_are_repeated_blocks(period):
    rng = np.random.default_rng(period)
    motif = rng.integers(0, 256, size=(period, period, 3), dtype=np.uint8)
    tiles = np.tile(motif, (200 // period + 1, 232 // period + 1, 1))[:200, :232]
    width = max(1, period // 2)  # stripes and squares of this width repeat on ``period``
    stripes = np.repeat(np.repeat((np.arange(232) // width % 2).astype(np.uint8)[None, :] * 200, 200, 0)[:, :, None],
                        3, axis=2)
    yy, xx = np.mgrid[0:200, 0:232] // width
    checker = np.repeat(((yy + xx) % 2 * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    for image in (tiles, stripes, checker):
        repeated, piecewise = block_structure(image)
        assert repeated.shape == (25, 29) and repeated.all()
        assert not piecewise.any()


def test_photos_and_their_jpegs_are_neither_repeated_nor_piecewise_constant(photo):
    for image in (photo, jpeg_compress(photo, 30), jpeg_compress(photo, 80, "4:4:4"), jpeg_compress(photo, 98)):
        repeated, piecewise = block_structure(image)
        rows, cols = repeated.shape
        blocks = image[:8 * rows, :8 * cols].reshape(rows, 8, cols, 8, 3)
        flat = (blocks == blocks[:, :1, :, :1]).all(axis=(1, 3, 4))
        assert not (repeated & ~flat).any()  # only the photo's flat (dark, saturated) blocks repeat
        assert piecewise.mean() < 0.02


def test_pixel_art_is_piecewise_constant_and_its_jpeg_is_not():
    art = _pixel_art()
    assert block_structure(art)[1].mean() > 0.5
    for quality in (50, 80, 95):
        assert block_structure(jpeg_compress(art, quality, "4:4:4"))[1].mean() < 0.05  # 2.8 % at QF 95


def test_block_structure_is_the_same_whatever_the_bands():
    from jpegtrace import evidence

    motif = np.random.default_rng(2).integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
    art = np.concatenate([_pixel_art(1, (60, 50), 3), np.tile(motif, (15, 13, 1))[:, :150]])
    whole = block_structure(art)
    original = evidence._BAND_PIXELS
    try:
        evidence._BAND_PIXELS = 1  # bands of 64 rows
        banded = block_structure(art)
    finally:
        evidence._BAND_PIXELS = original
    np.testing.assert_array_equal(whole[1], banded[1])
    assert banded[0][-20:].all() and whole[0][-20:].all()


def test_set_blocks_covers_the_remainder():
    values = np.ones((19, 21), np.float32)
    blocks = np.zeros((2, 2), bool)
    blocks[1, 1] = True
    set_blocks(values, blocks, 0.0)
    assert values[8:, 8:].max() == 0.0 and values[:8].min() == 1.0 and values[:, :8].min() == 1.0


def test_analysis_takes_repeats_out_of_the_evidence_and_sets_pixel_art_to_no_flag():
    import torch

    from jpegtrace.nn.qfnet import QFNet

    torch.manual_seed(0)
    random_model = QFNet().eval()
    yy, xx = np.mgrid[0:160, 0:200] // 4
    checker = np.repeat(((yy + xx) % 2 * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    result = analyze_array(checker, random_model)
    assert result.evidence_share == 0.0 and result.verdict == NO_EVIDENCE and not result.grid.found

    art = _pixel_art()
    result = analyze_array(art, random_model)
    _, piecewise = block_structure(art)
    blocks = result.flag_map[:8 * piecewise.shape[0], :8 * piecewise.shape[1]].reshape(
        piecewise.shape[0], 8, piecewise.shape[1], 8).max(axis=(1, 3))
    assert not result.grid.found and blocks[piecewise].max() == 0.0
    assert result.network_mean_flag is not None  # the network's own mean flag is kept


@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (5, 3), (300, 7), (61, 1025), (400, 96)])
def test_the_evidence_filters_are_scipys(shape, monkeypatch):
    """The evidence map's numpy filters give scipy.ndimage's values (mirrored edges) within float32
    rounding, in bands of rows (small bands here, so that several meet) or at once."""
    from scipy import ndimage

    from jpegtrace import evidence

    image = (np.random.default_rng(sum(shape)).random(shape) * 255).astype(np.float32)
    for band_pixels in (64, evidence._FILTER_BAND_PIXELS):
        monkeypatch.setattr(evidence, "_FILTER_BAND_PIXELS", band_pixels)
        np.testing.assert_allclose(evidence.gaussian_blur(image, 1.5),
                                   ndimage.gaussian_filter(image, 1.5, mode="reflect"), atol=1e-4)
        np.testing.assert_allclose(evidence.box_mean(image, 16), ndimage.uniform_filter(image, 16, mode="reflect"),
                                   atol=1e-4)
        np.testing.assert_allclose(evidence.box_mean(image, 5), ndimage.uniform_filter(image, 5, mode="reflect"),
                                   atol=1e-4)
    with pytest.raises(ValueError, match="cannot be its input"):
        evidence.box_mean(image, 16, out=image)


def _normalised_convolution(values, evidence, sigma):
    """The definition of fill_without_evidence at full resolution, with scipy."""
    from scipy import ndimage

    field = (ndimage.gaussian_filter(values * evidence, sigma, mode="reflect")
             / np.maximum(ndimage.gaussian_filter(evidence, sigma, mode="reflect"), 1e-9))
    return evidence * values + (1 - evidence) * field


@pytest.mark.parametrize("shape", [(1, 1), (3, 50), (97, 130), (256, 200)])
def test_fill_without_evidence_is_a_normalised_convolution(shape, monkeypatch):
    """Values where the pixels have evidence stay theirs; elsewhere they take the evidence-weighted
    Gaussian mean around them, computed on 4x4 cells (within 0.03 of the full-resolution definition for
    a smooth field), the same in any bands of rows."""
    from jpegtrace import evidence as module
    from jpegtrace.evidence import fill_without_evidence

    rng = np.random.default_rng(sum(shape))
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    values = (0.5 + 0.4 * np.sin(yy / 40.0) * np.cos(xx / 50.0)).astype(np.float32)  # smooth at the cells' scale
    evidence = (rng.random(shape) < 0.5).astype(np.float32) * rng.random(shape).astype(np.float32)
    expected = _normalised_convolution(values.astype(np.float64), evidence.astype(np.float64), module.FILL_SIGMA)
    results = []
    for band_pixels in (64, module._FILTER_BAND_PIXELS):
        monkeypatch.setattr(module, "_FILTER_BAND_PIXELS", band_pixels)
        out = values.copy()
        assert fill_without_evidence(out, evidence) is out and out.dtype == np.float32
        results.append(out)
        np.testing.assert_allclose(out, expected, atol=0.03)
    np.testing.assert_allclose(results[0], results[1], atol=1e-6)
    full = values.copy()
    np.testing.assert_array_equal(fill_without_evidence(full, np.ones(shape, np.float32)), values)  # all evidence


def test_fill_without_evidence_removes_blotches_and_keeps_what_is_out_of_reach():
    from jpegtrace.evidence import fill_without_evidence

    flag = np.zeros((200, 400), np.float32)
    evidence = np.ones_like(flag)
    flag[80:120, 80:120] = 1.0       # a blotch where the pixels carry nothing, inside clean texture
    evidence[80:120, 80:120] = 0.0
    evidence[:, 250:] = 0.0          # a flat area far wider than the reach, flagged
    flag[:, 250:] = 1.0
    fill_without_evidence(flag, evidence)
    assert flag[80:120, 80:120].max() < 0.05  # the clean texture around decides
    assert flag[:, 320:].min() == 1.0          # nothing with evidence within reach: unchanged
    assert flag[:, :240].max() < 0.05


def test_the_analysis_fills_flags_without_evidence_before_the_grid_and_block_rules(photo):
    """finish_analysis: a flat half's flags come from the textured half near it, stay the network's
    far from it, and the summary sees the filled map."""
    from jpegtrace.analysis import check_pixels, finish_analysis
    from jpegtrace.nn.qfnet import FLAG_CHANNEL

    image = np.ascontiguousarray(np.tile(photo[:96, :96], (1, 4, 1)))
    image[:, 160:] = (200, 40, 40)  # flat from column 160 on
    checks = check_pixels(image)
    raw = np.zeros((2, *image.shape[:2]), np.float32)
    raw[0] = 0.2
    raw[FLAG_CHANNEL, :, 160:] = 1.0   # the network "flags" the flat part
    result = finish_analysis(image, raw, checks)
    assert not result.grid.found
    assert result.flag_map[:, 168:176].max() < 0.5   # near the texture: its flags (0)
    assert result.flag_map[:, 300:].min() == 1.0     # out of reach: unchanged
    assert result.flag_map[:, :150].max() == 0.0
