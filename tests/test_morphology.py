"""jpegtrace.morphology against scipy.ndimage, whose functions it replaces on the analysis path."""

import numpy as np
import pytest
from scipy import ndimage

from jpegtrace.morphology import CROSS, SQUARE, closing, dilate, erode, fill_holes, label, nan_median_3x3, opening


def random_masks(count=300, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        shape = tuple(rng.integers(1, 24, 2))
        yield rng.random(shape) < rng.uniform(0.1, 0.9)


@pytest.mark.parametrize("structure", [CROSS, SQUARE], ids=["cross", "square"])
def test_morphology_equals_scipy(structure):
    for mask in random_masks():
        assert np.array_equal(erode(mask, structure), ndimage.binary_erosion(mask, structure))
        assert np.array_equal(dilate(mask, structure, iterations=3),
                              ndimage.binary_dilation(mask, structure, iterations=3))
        assert np.array_equal(opening(mask, structure), ndimage.binary_opening(mask, structure))
        assert np.array_equal(closing(mask, structure), ndimage.binary_closing(mask, structure))


@pytest.mark.parametrize("structure", [CROSS, SQUARE], ids=["cross", "square"])
def test_label_equals_scipy(structure):
    for mask in random_masks():
        labels, count = label(mask, structure)
        expected, expected_count = ndimage.label(mask, structure=structure)
        assert count == expected_count
        assert np.array_equal(labels, expected)  # the same numbering, not only the same partition


def test_label_joins_a_long_snake():
    # A one-cell-wide snake through the whole grid: one component however many rounds it takes.
    mask = np.zeros((41, 41), bool)
    mask[::2] = True
    mask[1::4, -1] = True
    mask[3::4, 0] = True
    labels, count = label(mask, CROSS)
    assert count == 1 and (labels[mask] == 1).all() and (labels[~mask] == 0).all()


def test_fill_holes_equals_scipy():
    for mask in random_masks():
        assert np.array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))
    ring = np.zeros((7, 7), bool)
    ring[1:6, 1:6] = True
    ring[2:5, 2:5] = False
    assert fill_holes(ring)[1:6, 1:6].all() and fill_holes(ring).sum() == 25


def test_nan_median_is_the_median_of_the_finite_neighbours():
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 100, (30, 40)).astype(np.float32)
    values[rng.random(values.shape) < 0.4] = np.nan
    values[10:15, 10:15] = np.nan  # windows with no finite value: NaN
    padded = np.pad(values, 1, mode="edge")
    windows = np.stack([padded[dy:dy + 30, dx:dx + 40] for dy in range(3) for dx in range(3)], axis=-1)
    with pytest.warns(RuntimeWarning, match="All-NaN"):
        expected = np.nanmedian(windows, axis=-1)
    assert np.isnan(expected[12, 12])
    np.testing.assert_allclose(nan_median_3x3(values), expected, rtol=1e-6, equal_nan=True)
    # Without NaN it is scipy's median filter (mode "nearest").
    finite = np.nan_to_num(values, nan=50.0)
    np.testing.assert_array_equal(nan_median_3x3(finite), ndimage.median_filter(finite, size=3, mode="nearest"))
