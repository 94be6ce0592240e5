import numpy as np
import pytest
import torch

from jpegtrace.io import list_images
from jpegtrace.train.data import (
    SynthesisConfig,
    TrainingBatches,
    make_patch,
    make_spliced_patch,
    patch_mask,
    quality_label,
)


def test_labels():
    assert quality_label(None) == (0.0, 0.0)
    assert quality_label(100) == (0.0, 1.0)
    assert quality_label(5) == (0.95, 1.0)
    assert quality_label(30) == (0.7, 1.0)


def test_split_csv_selects_images(image_folder):
    folder, split = image_folder
    assert [p.name for p in list_images(folder)] == ["astronaut.png", "chelsea.png", "coffee.png"]
    assert [p.name for p in list_images(folder, split, "train")] == ["astronaut.png", "chelsea.png"]
    assert [p.name for p in list_images(folder, split, "val")] == ["coffee.png"]


def test_label_distribution_follows_the_recipe(photo):
    rng = np.random.default_rng(0)
    config = SynthesisConfig(patch_size=24)
    qualities = [make_patch(photo, rng, config)[1] for _ in range(2000)]
    uncompressed = sum(q is None for q in qualities) / len(qualities)
    assert 0.07 < uncompressed < 0.13
    compressed = np.array([q for q in qualities if q is not None])
    assert compressed.min() >= 5 and compressed.max() <= 100
    assert 45 < compressed.mean() < 60  # uniform on 5..100 has mean 52.5


def test_uncompressed_patches_are_crops_of_the_source(photo):
    rng = np.random.default_rng(1)
    config = SynthesisConfig(patch_size=20, uncompressed_fraction=1.0, augment=False, grayscale_fraction=0.0)
    patch, quality = make_patch(photo, rng, config)
    assert quality is None and patch.shape == (20, 20, 3)
    windows = np.lib.stride_tricks.sliding_window_view(photo, (20, 20, 3))[:, :, 0]
    assert (windows == patch).all(axis=(2, 3, 4)).any()


def test_compressed_patches_differ_from_every_crop(photo):
    rng = np.random.default_rng(2)
    config = SynthesisConfig(patch_size=20, uncompressed_fraction=0.0, min_quality=10, max_quality=10,
                             augment=False, grayscale_fraction=0.0)
    patch, quality = make_patch(photo, rng, config)
    assert quality == 10
    windows = np.lib.stride_tricks.sliding_window_view(photo, (20, 20, 3))[:, :, 0]
    assert not (windows == patch).all(axis=(2, 3, 4)).any()


def test_grayscale_patches_have_equal_channels(photo):
    rng = np.random.default_rng(3)
    config = SynthesisConfig(patch_size=16, grayscale_fraction=1.0)
    patch, _ = make_patch(photo, rng, config)
    assert (patch[:, :, 0] == patch[:, :, 1]).all() and (patch[:, :, 1] == patch[:, :, 2]).all()


def test_batches_are_a_function_of_seed_and_index(photo):
    small = np.ascontiguousarray(photo[:50, :50])  # smaller than patch + margin: padded
    batches = TrainingBatches([photo, small], batch_size=6, config=SynthesisConfig(patch_size=48), seed=7)
    x1, y1 = batches[3]
    x2, y2 = batches[3]
    x3, _ = batches[4]
    assert x1.shape == (6, 3, 48, 48) and x1.dtype == torch.uint8 and y1.shape == (6, 2, 48, 48)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    other_seed = TrainingBatches([photo, small], batch_size=6, config=SynthesisConfig(patch_size=48), seed=8)
    assert not torch.equal(other_seed[3][0], x1)


def test_paper_recipe_is_aligned_colour_420():
    config = SynthesisConfig.paper()
    assert config.patch_size == 60 and config.subsamplings == ("4:2:0",)
    assert not config.grid_shift and config.grayscale_fraction == 0.0 and config.uncompressed_fraction == 0.1


def test_patch_masks_split_the_patch():
    rng = np.random.default_rng(5)
    areas = [patch_mask(48, rng).mean() for _ in range(300)]
    assert 0.05 < min(areas) and max(areas) < 0.95
    assert 0.4 < np.mean(areas) < 0.6  # mean_labels counts a spliced patch as half compressed


def test_spliced_patch_is_clean_outside_the_mask(photo):
    rng = np.random.default_rng(6)
    config = SynthesisConfig(patch_size=24, augment=False, grayscale_fraction=0.0, min_quality=10, max_quality=10)
    patch, mask, quality = make_spliced_patch(photo, photo, rng, config)
    assert quality == 10 and patch.shape == (24, 24, 3) and mask.any() and (~mask).any()
    # Outside the mask the pixels are those of some crop of the source; inside they are not.
    windows = np.lib.stride_tricks.sliding_window_view(photo, (24, 24, 3))[:, :, 0]
    outside = (windows == patch).all(axis=4)[..., ~mask].all(axis=-1)
    assert outside.any()
    y, x = np.argwhere(outside)[0]
    assert not (windows[y, x][mask] == patch[mask]).all()


def test_spliced_batches_label_each_pixel(photo):
    config = SynthesisConfig(patch_size=32, splice_fraction=1.0, uncompressed_fraction=0.0)
    patches, labels = TrainingBatches([photo], batch_size=8, config=config, seed=1)[0]
    flags, qualities = labels[:, 1], labels[:, 0]
    for flag, quality in zip(flags, qualities):
        assert set(flag.unique().tolist()) == {0.0, 1.0}  # both sides present
        assert (quality[flag == 0] == 0).all()
        assert len(quality[flag == 1].unique()) == 1 and quality[flag == 1][0] <= 0.95


def test_splicing_off_replays_the_unspliced_stream(photo):
    plain = TrainingBatches([photo], batch_size=4, config=SynthesisConfig(patch_size=32), seed=2)[5]
    zero = TrainingBatches([photo], batch_size=4, config=SynthesisConfig(patch_size=32, splice_fraction=0.0), seed=2)[5]
    assert torch.equal(plain[0], zero[0]) and torch.equal(plain[1], zero[1])
    assert (plain[1] == plain[1][:, :, :1, :1]).all()  # constant maps


def test_high_quality_share_draws_qf_90_and_up(photo):
    def qualities(config, n=300):
        rng = np.random.default_rng(3)
        return np.array([make_patch(photo, rng, config, compress=True)[1] for _ in range(n)])

    base = dict(patch_size=16, grid_shift=False, augment=False)
    every = qualities(SynthesisConfig(**base, high_quality_fraction=1.0))
    assert every.min() >= 90 and every.max() <= 100 and len(set(every)) == 11
    half = qualities(SynthesisConfig(**base, high_quality_fraction=0.5))
    expected = 0.5 + 0.5 * 11 / 96  # the other half still covers 5..100
    assert abs((half >= 90).mean() - expected) < 0.08 and half.min() < 50
    narrow = qualities(SynthesisConfig(**base, min_quality=95, high_quality_fraction=1.0), n=50)
    assert narrow.min() >= 95  # never below the configured range


def test_high_quality_subsampling_applies_to_the_high_qf_share_only(photo, monkeypatch):
    import jpegtrace.train.data

    encoded = []  # (QF, subsampling) of every JPEG made
    real = jpegtrace.train.data.jpeg_compress
    def recording(image, quality, subsampling, *args, **kwargs):  # grid offset, qtables passed on
        encoded.append((quality, subsampling))
        return real(image, quality, subsampling, *args, **kwargs)

    monkeypatch.setattr(jpegtrace.train.data, "jpeg_compress", recording)
    config = SynthesisConfig(patch_size=16, grayscale_fraction=0.0, high_quality_fraction=0.5,
                             high_quality_subsampling="4:4:4")
    rng = np.random.default_rng(4)
    for _ in range(400):
        make_patch(photo, rng, config, compress=True)
    low = {s for q, s in encoded if q < 90}  # these can only come from the whole range
    assert low == {"4:2:0", "4:2:2", "4:4:4"}
    high = [s for q, s in encoded if q >= 90]
    # ~0.5 + 0.5 * 11/96 of patches are QF 90+, nearly all from the share, so nearly all 4:4:4
    assert len(high) > 200 and np.mean([s == "4:4:4" for s in high]) > 0.9
    with pytest.raises(ValueError, match="high_quality_subsampling"):
        SynthesisConfig(high_quality_subsampling="4:1:1")


def test_high_quality_subsampling_unset_replays_the_stream_of_older_runs(photo):
    older = TrainingBatches([photo], batch_size=6, seed=2,
                            config=SynthesisConfig(patch_size=32, high_quality_fraction=0.5))[3]
    unset = TrainingBatches([photo], batch_size=6, seed=2,
                            config=SynthesisConfig(patch_size=32, high_quality_fraction=0.5,
                                                   high_quality_subsampling=None))[3]
    tilted = TrainingBatches([photo], batch_size=6, seed=2,
                             config=SynthesisConfig(patch_size=32, high_quality_fraction=0.5,
                                                    high_quality_subsampling="4:4:4"))[3]
    assert torch.equal(older[0], unset[0]) and torch.equal(older[1], unset[1])
    assert torch.equal(older[1], tilted[1])  # same QFs and labels; only the chroma of some patches differs


def test_high_quality_share_off_replays_the_plain_stream(photo):
    plain = TrainingBatches([photo], batch_size=4, config=SynthesisConfig(patch_size=32), seed=2)[5]
    zero = TrainingBatches([photo], batch_size=4, seed=2,
                           config=SynthesisConfig(patch_size=32, high_quality_fraction=0.0))[5]
    assert torch.equal(plain[0], zero[0]) and torch.equal(plain[1], zero[1])


@pytest.mark.parametrize("field", ["uncompressed_fraction", "grayscale_fraction", "splice_fraction",
                                   "high_quality_fraction"])
def test_fractions_outside_0_1_are_refused(field):
    with pytest.raises(ValueError, match=field):
        SynthesisConfig(**{field: 1.5})
