import numpy as np
import pytest

from jpegtrace.jpeg import jpeg_compress


def _blockiness(image: np.ndarray, phase: int) -> float:
    """Mean absolute jump across columns ``phase + 8k`` minus that across other columns."""
    gray = image.astype(np.float64).mean(axis=2) if image.ndim == 3 else image.astype(np.float64)
    jumps = np.abs(np.diff(gray, axis=1)).mean(axis=0)  # jump between column j and j+1
    at = np.arange(jumps.size) % 8 == (phase - 1) % 8
    return jumps[at].mean() - jumps[~at].mean()


def test_low_quality_changes_the_image(photo):
    decoded = jpeg_compress(photo, 10)
    assert decoded.shape == photo.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - photo).mean() > 3


def test_higher_quality_is_closer_to_the_source(photo):
    errors = [np.abs(jpeg_compress(photo, q).astype(int) - photo).mean() for q in (10, 50, 95)]
    assert errors[0] > errors[1] > errors[2] > 0


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2", "4:2:0"])
def test_subsampling_options_work_and_differ(photo, subsampling):
    decoded = jpeg_compress(photo, 90, subsampling)
    assert decoded.shape == photo.shape
    assert not np.array_equal(decoded, jpeg_compress(photo, 90, "4:4:4" if subsampling != "4:4:4" else "4:2:0"))


def test_grayscale_stays_grayscale(photo):
    gray = photo.mean(axis=2).astype(np.uint8)
    decoded = jpeg_compress(gray, 20)
    assert decoded.shape == gray.shape


def test_grid_shift_moves_block_boundaries(photo):
    aligned = jpeg_compress(photo, 10)
    shifted = jpeg_compress(photo, 10, grid_offset=(0, 3))
    # Blocks start at columns 0, 8, ...: the jump between columns 7 and 8 is the block edge.
    assert _blockiness(aligned, 0) > 2 * abs(_blockiness(aligned, 5))
    # With the grid started 3 columns early, edges fall between columns 4|5, 12|13, ...
    assert _blockiness(shifted, 5) > 2 * abs(_blockiness(shifted, 0))


def test_bad_arguments_are_refused(photo):
    with pytest.raises(ValueError):
        jpeg_compress(photo, 0)
    with pytest.raises(ValueError):
        jpeg_compress(photo, 50, "4:1:1")
    with pytest.raises(ValueError):
        jpeg_compress(photo.astype(np.float32), 50)
