import numpy as np
import torch

from jpegtrace.data import SynthesisConfig, TrainingBatches, list_images, load_rgb, make_patch, quality_label


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
    assert x1.shape == (6, 3, 48, 48) and x1.dtype == torch.uint8 and y1.shape == (6, 2)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    other_seed = TrainingBatches([photo, small], batch_size=6, config=SynthesisConfig(patch_size=48), seed=8)
    assert not torch.equal(other_seed[3][0], x1)


def test_paper_recipe_is_aligned_colour_420():
    config = SynthesisConfig.paper()
    assert config.patch_size == 60 and config.subsamplings == ("4:2:0",)
    assert not config.grid_shift and config.grayscale_fraction == 0.0 and config.uncompressed_fraction == 0.1
