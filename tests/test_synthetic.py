"""Never-compressed non-photo content, the camera look, and the training patches made from them."""

import dataclasses

import numpy as np
import pytest

from jpegtrace.train.camera import after_jpeg, bayer_demosaic, camera_look, vivid_look
from jpegtrace.train.data import SynthesisConfig, TrainingBatches, make_patch, make_synthetic_patch
from jpegtrace.train.synthetic import HELD_OUT_FONTS, KINDS, TRAINING_FONTS, font_path, rescaled, synthetic_image


def test_fonts_ship_with_matplotlib_and_held_out_ones_differ():
    assert all(font_path(name).is_file() for name in TRAINING_FONTS + HELD_OUT_FONTS)
    assert not set(TRAINING_FONTS) & set(HELD_OUT_FONTS)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_an_rgb_image_of_the_size_asked_and_a_function_of_the_seed(kind):
    first, drawn = synthetic_image(np.random.default_rng(3), 50, 70, kind=kind)
    again, _ = synthetic_image(np.random.default_rng(3), 50, 70, kind=kind)
    assert drawn == kind and first.shape == (50, 70, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)


def test_kinds_look_like_what_they_are_named():
    rng = np.random.default_rng(0)
    flat, _ = synthetic_image(rng, 32, 32, kind="flat")
    assert len(np.unique(flat.reshape(-1, 3), axis=0)) == 1
    ramp, _ = synthetic_image(rng, 32, 256, kind="ramp")
    steps = np.abs(np.diff(ramp.astype(int), axis=1)).max() + np.abs(np.diff(ramp.astype(int), axis=0)).max()
    assert steps <= 2  # 8-bit levels, one band at a time along one axis
    text, _ = synthetic_image(rng, 64, 128, kind="text")
    assert len(np.unique(text.reshape(-1, 3), axis=0)) > 2  # antialiased glyphs on a background
    art, _ = synthetic_image(rng, 64, 64, kind="pixel_art")
    assert len(np.unique(art.reshape(-1, 3), axis=0)) <= 16
    with pytest.raises(ValueError, match="unknown kind"):
        synthetic_image(rng, 8, 8, kind="photo")


def test_nearest_neighbour_upscales_repeat_pixels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    sizes = {rescaled(image, np.random.default_rng(seed)).shape[:2] for seed in range(20)}
    assert any(h > 20 for h, _ in sizes) and any(h < 20 for h, _ in sizes)  # up and down


def test_bayer_demosaic_keeps_flat_colours_and_smears_edges():
    flat = np.full((16, 16, 3), 0.4)
    assert np.allclose(bayer_demosaic(flat)[2:-2, 2:-2], 0.4)
    edge = np.zeros((16, 16, 3))
    edge[:, 8:, 0] = 1.0  # a red edge
    assert bayer_demosaic(edge)[:, 7, 0].mean() > 0.0  # interpolated across it


def test_camera_look_stays_8_bit_and_changes_the_pixels(photo):
    rng = np.random.default_rng(1)
    looks = [camera_look(photo, rng) for _ in range(6)]
    assert all(look.shape == photo.shape and look.dtype == np.uint8 for look in looks)
    assert sum(not np.array_equal(look, photo) for look in looks) >= 5


def test_vivid_look_raises_chroma_and_clips_channels(photo):
    """Each vivid region is further from grey than its source, has more channels at 0 or 255, and keeps
    grey pixels grey (chroma is scaled about each pixel's own luma)."""
    def chroma(x):
        x = x.astype(float)
        return np.abs(x - x.mean(axis=2, keepdims=True)).mean()

    def clipped(x):
        return ((x == 0) | (x == 255)).any(axis=2).mean()

    looks = [vivid_look(photo, np.random.default_rng(seed)) for seed in range(5)]
    assert all(look.shape == photo.shape and look.dtype == np.uint8 for look in looks)
    assert all(chroma(look) > 1.2 * chroma(photo) for look in looks)
    assert all(clipped(look) > clipped(photo) for look in looks)
    grey = np.repeat(photo[:, :, :1], 3, axis=2)
    vivid_grey = vivid_look(grey, np.random.default_rng(0))
    assert np.array_equal(vivid_grey[:, :, 0], vivid_grey[:, :, 1])
    assert np.array_equal(vivid_grey[:, :, 1], vivid_grey[:, :, 2])


def test_after_jpeg_keeps_the_blocks_and_breaks_the_lattice(photo):
    """The processed JPEG stays near the decoded one (a gamma or noise of a grey level or so), and the
    grid check, which reads the lattice, no longer finds most of them; the patches keep their JPEG's label."""
    from jpegtrace.grid.check import find_jpeg_grid
    from jpegtrace.jpeg import jpeg_compress

    jpeg = jpeg_compress(photo, 50)
    processed = [after_jpeg(jpeg, np.random.default_rng(seed)) for seed in range(6)]
    assert all(p.dtype == np.uint8 and p.shape == jpeg.shape for p in processed)
    assert all(0 < np.abs(p.astype(int) - jpeg).mean() < 12 for p in processed)
    assert find_jpeg_grid(jpeg).found
    assert sum(find_jpeg_grid(p).found for p in processed) <= 3
    config = SynthesisConfig(patch_size=32, uncompressed_fraction=0.0, after_jpeg_fraction=1.0)
    labels = [make_patch(photo, np.random.default_rng(seed), config)[1] for seed in range(10)]
    assert all(isinstance(q, int) and 5 <= q <= 100 for q in labels)


def test_synthetic_patches_are_clean_or_labelled_by_their_compression(photo):
    config = SynthesisConfig(patch_size=32, synthetic_fraction=1.0, synthetic_compressed_fraction=0.5)
    qualities = [make_synthetic_patch(photo, np.random.default_rng(seed), config) for seed in range(40)]
    assert all(patch.shape == (32, 32, 3) for patch, _ in qualities)
    labels = [q for _, q in qualities]
    assert None in labels and any(isinstance(q, int) and 1 <= q <= 100 for q in labels)


def test_new_stages_leave_old_recipes_stream_unchanged(photos):
    images = list(photos.values())
    base = SynthesisConfig(patch_size=24, splice_fraction=0.3)
    old = TrainingBatches(images, 4, base, seed=5)[7]
    same = TrainingBatches(images, 4, dataclasses.replace(base, synthetic_compressed_fraction=0.9), seed=5)[7]
    assert all(np.array_equal(a, b) for a, b in zip(old, same))  # a stage that is off draws nothing
    new = TrainingBatches(images, 4, dataclasses.replace(base, synthetic_fraction=0.5, camera_look_fraction=0.5,
                                                         vivid_fraction=0.5, camera_table_fraction=0.5, after_jpeg_fraction=0.5,
                                                         double_compression_fraction=0.5), seed=5)
    first, again = new[7], new[7]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))  # still a function of (seed, index)
    assert not np.array_equal(first[0], old[0])
