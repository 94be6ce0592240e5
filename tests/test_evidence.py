"""The evidence map and the "no evidence" verdict: flat, smooth and saturated pixels carry no JPEG evidence."""

import numpy as np
import pytest

from jpegtrace.analysis import COMPRESSED, NEVER_COMPRESSED, NO_EVIDENCE, judge, summarize, weighted_mean
from jpegtrace.evidence import MIN_EVIDENCE_SHARE, evidence_map
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
