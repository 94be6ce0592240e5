"""x"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ..jpeg import SUBSAMPLING_CODES, camera_like_tables, ijg_equivalent_quality, jpeg_compress, to_grayscale
from .camera import AFTER_JPEG_MAX_QUALITY, after_jpeg, camera_look, vivid_look
from .synthetic import TEXTURELESS_KINDS, TRAINING_FONTS, rescaled, synthetic_image


@dataclass(frozen=True)
class SynthesisConfig:
    """How training patches and their labels are made.

    Parameters
    ----------
    patch_size : int
        Side of the square patches (paper: 60).
    uncompressed_fraction : float
        Share of patches left uncompressed, labelled (0, 0) (paper: 0.1).
    min_quality, max_quality : int
        The QF of a compressed patch is drawn uniformly from this closed range (paper: 5..100).
        Its labels are ``((100 - QF) / 100, 1)``.
    subsamplings : tuple of str
        Chroma subsamplings drawn uniformly for colour patches (paper: 4:2:0 only).
    grid_shift : bool
        Compress a larger region and crop the patch at a random offset, so the 8x8 (and 16x16
        chroma) grid falls anywhere in the patch, as in cropped JPEGs (paper: off).
    grayscale_fraction : float
        Share of patches turned grayscale before compression and stored as one-channel JPEGs
        (paper: 0).
    augment : bool
        Apply one of the 8 flips and rotations to the source region before compression.
    splice_fraction : float
        Share of patches that are collages: a JPEG-compressed patch pasted through a random
        mask (:func:`patch_mask`) into a never-compressed patch of another place, labelled pixel
        by pixel. They teach the network to localise a pasted region rather than to answer for
        a whole patch (paper: 0).
    high_quality_fraction : float
        Share of compressed patches whose QF is drawn from ``high_quality_min..max_quality``
        instead of the whole range, for more practice where QFs lie close together and the
        traces are faint (paper: 0).
    high_quality_min : int
        Lowest QF of those patches.
    high_quality_subsampling : str, optional
        Chroma subsampling of those patches when in colour (default: drawn from
        ``subsamplings`` as for the others). Near-lossless 4:2:0 and 4:2:2 JPEGs betray
        themselves by their blurred chroma; 4:4:4 ones only by their faint luma traces, so
        ``'4:4:4'`` spends the practice where the evidence is hardest to see.
    synthetic_fraction : float
        Share of patches cut from never-compressed content that is not a photo
        (:func:`jpegtrace.synthetic.synthetic_image`: flat colours, ramps, noise, text, UI, plots,
        pixel art, tiles) or from a nearest-neighbour or bilinear rescale of a training photo
        (paper: 0). See :func:`make_synthetic_patch`.
    synthetic_compressed_fraction : float
        Share of those that are then JPEG-compressed like any other patch (never the textureless
        kinds, whose JPEG is the same image), so that "not a photo" never means "clean".
    camera_look_fraction : float
        Share of photo regions passed through :func:`jpegtrace.camera.camera_look` (demosaicing,
        blur, sharpening, noise, tone curve, saturation) before compression, compressed or not
        (paper: 0).
    vivid_fraction : float
        Share of photo regions given :func:`jpegtrace.train.camera.vivid_look` (chroma and contrast
        raised until channels clip over whole areas) after the camera look, compressed or not
        (paper: 0).
    camera_table_fraction : float
        Share of compressed patches made with :func:`jpegtrace.jpeg.camera_like_tables` instead of
        the IJG tables; their label is the IJG-equivalent QF of the luma table (paper: 0).
    double_compression_fraction : float
        Share of compressed patches compressed twice: first at a random QF on a random grid
        offset, then as drawn. They are labelled by the last compression, the one whose grid and
        table the pixels show and the one a deblocker must undo (paper: 0).
    after_jpeg_fraction : float
        Share of compressed patches at QF :data:`~jpegtrace.train.camera.AFTER_JPEG_MAX_QUALITY` or
        below lightly processed after decoding (:func:`jpegtrace.train.camera.after_jpeg`: a gamma,
        mild noise or both), labelled by their JPEG: its blocks survive such processing, its integer
        lattice does not (paper: 0).
    """

    patch_size: int = 60
    uncompressed_fraction: float = 0.1
    min_quality: int = 5
    max_quality: int = 100
    subsamplings: tuple[str, ...] = ("4:2:0", "4:2:2", "4:4:4")
    grid_shift: bool = True
    grayscale_fraction: float = 0.1
    augment: bool = True
    splice_fraction: float = 0.0
    high_quality_fraction: float = 0.0
    high_quality_min: int = 90
    high_quality_subsampling: str | None = None
    synthetic_fraction: float = 0.0
    synthetic_compressed_fraction: float = 0.4
    camera_look_fraction: float = 0.0
    vivid_fraction: float = 0.0
    camera_table_fraction: float = 0.0
    double_compression_fraction: float = 0.0
    after_jpeg_fraction: float = 0.0

    @property
    def high_quality_floor(self) -> int:
        """Lowest QF of the high-QF patches, kept inside ``min_quality..max_quality``."""
        return min(max(self.min_quality, self.high_quality_min), self.max_quality)

    @classmethod
    def paper(cls, patch_size: int = 60) -> "SynthesisConfig":
        """The recipe of the paper: 4:2:0 colour JPEGs with the grid at the patch origin."""
        return cls(patch_size=patch_size, subsamplings=("4:2:0",), grid_shift=False, grayscale_fraction=0.0)

    def __post_init__(self):
        unknown = set(self.subsamplings) - set(SUBSAMPLING_CODES)
        if unknown or not self.subsamplings:
            raise ValueError(f"subsamplings must be a non-empty subset of {sorted(SUBSAMPLING_CODES)}")
        if self.high_quality_subsampling not in (None, *SUBSAMPLING_CODES):
            raise ValueError(f"high_quality_subsampling must be one of {sorted(SUBSAMPLING_CODES)}")
        if not 1 <= self.min_quality <= self.max_quality <= 100:
            raise ValueError("need 1 <= min_quality <= max_quality <= 100")
        if self.patch_size < 1:
            raise ValueError("patch_size must be positive")
        if not 1 <= self.high_quality_min <= 100:
            raise ValueError("high_quality_min must lie in 1..100")
        for name in ("uncompressed_fraction", "grayscale_fraction", "splice_fraction", "high_quality_fraction",
                     "synthetic_fraction", "synthetic_compressed_fraction", "camera_look_fraction",
                     "vivid_fraction", "camera_table_fraction", "double_compression_fraction", "after_jpeg_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")


def quality_label(quality: int | None) -> tuple[float, float]:
    """Normalised (quality, flag) labels of a patch; ``None`` means never compressed."""
    if quality is None:
        return 0.0, 0.0
    return (100 - quality) / 100.0, 1.0


def make_patch(image: np.ndarray, rng: np.random.Generator, config: SynthesisConfig,
               compress: bool | None = None, grayscale: bool | None = None
               ) -> tuple[np.ndarray, int | None]:
    """Cut one training patch from ``image`` and maybe compress it.

    Parameters
    ----------
    image : ndarray of uint8, (H, W, 3)
    rng : numpy.random.Generator
    config : SynthesisConfig
    compress, grayscale : bool, optional
        Force the patch to be (or not be) compressed or grayscale; by default both are drawn
        with the odds of ``config``.

    Returns
    -------
    patch : ndarray of uint8, (P, P, 3)
        Grayscale patches have three equal channels.
    quality : int or None
        The QF the patch was compressed at, None when it was left uncompressed.
    """
    size = config.patch_size
    margin = 15 if config.grid_shift else 0  # 16 phases cover the 16x16 MCU of 4:2:0
    region_size = size + margin
    h, w = image.shape[:2]
    if h < region_size or w < region_size:
        image = np.pad(image, ((0, max(0, region_size - h)), (0, max(0, region_size - w)), (0, 0)),
                       mode="symmetric")
        h, w = image.shape[:2]
    y = int(rng.integers(0, h - region_size + 1))
    x = int(rng.integers(0, w - region_size + 1))
    region = image[y:y + region_size, x:x + region_size]
    if config.augment:
        k = int(rng.integers(0, 8))
        region = np.rot90(region, k % 4)
        if k >= 4:
            region = region[:, ::-1]
        region = np.ascontiguousarray(region)
    # Every new stage draws only when it is on, so that older recipes replay the same stream.
    if config.camera_look_fraction and rng.random() < config.camera_look_fraction:
        region = camera_look(region, rng)
    if config.vivid_fraction and rng.random() < config.vivid_fraction:
        region = vivid_look(region, rng)
    gray = rng.random() < config.grayscale_fraction if grayscale is None else grayscale
    if gray:
        region = to_grayscale(region)
    if compress is None:
        compress = rng.random() >= config.uncompressed_fraction
    high = compress and _in_high_quality_share(config, rng)
    lowest = config.high_quality_floor if high else config.min_quality
    quality = int(rng.integers(lowest, config.max_quality + 1)) if compress else None
    # Drawn even when overridden below, so that every later draw, and so every label, stays the same.
    subsampling = config.subsamplings[int(rng.integers(0, len(config.subsamplings)))]
    if high and config.high_quality_subsampling:
        subsampling = config.high_quality_subsampling
    dy, dx = (int(v) for v in rng.integers(0, margin + 1, size=2))
    if quality is not None:
        region, quality = _compress(region, quality, subsampling, rng, config)
    patch = region[dy:dy + size, dx:dx + size]
    if gray:
        patch = np.repeat(patch[:, :, None], 3, axis=2)
    return patch, quality


def _compress(region: np.ndarray, quality: int, subsampling: str, rng: np.random.Generator,
              config: SynthesisConfig) -> tuple[np.ndarray, int]:
    """JPEG-compress ``region`` as drawn; returns the pixels and the QF label of the last compression."""
    if config.double_compression_fraction and rng.random() < config.double_compression_fraction:
        first = int(rng.integers(config.min_quality, config.max_quality + 1))
        offset = tuple(int(v) for v in rng.integers(0, 8, size=2))
        region = jpeg_compress(region, first, subsampling, offset)
    tables = None
    if config.camera_table_fraction and rng.random() < config.camera_table_fraction:
        tables = camera_like_tables(quality, rng)
        quality = ijg_equivalent_quality(tables[0])
    region = jpeg_compress(region, quality, subsampling, qtables=tables)
    if (config.after_jpeg_fraction and quality <= AFTER_JPEG_MAX_QUALITY
            and rng.random() < config.after_jpeg_fraction):
        region = after_jpeg(region, rng)
    return region, quality


def make_synthetic_patch(image: np.ndarray, rng: np.random.Generator, config: SynthesisConfig
                         ) -> tuple[np.ndarray, int | None]:
    """A patch of never-compressed non-photo content, maybe then compressed; as :func:`make_patch` returns.

    A third are rescales of a region of the photo ``image`` (nearest-neighbour or bilinear, up or
    down); the rest are :func:`jpegtrace.synthetic.synthetic_image` in the training fonts, a
    third of those mixed with a clean patch of ``image`` through :func:`patch_mask`. A share
    ``config.synthetic_compressed_fraction`` of those with texture is compressed at a QF drawn as
    for photo patches.
    """
    size = config.patch_size
    margin = 15 if config.grid_shift else 0
    region_size = size + margin
    textureless = False
    if rng.random() < 1 / 3:
        h, w = image.shape[:2]
        side = min(h, w, region_size)
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        region = rescaled(image[y:y + side, x:x + side], rng)
        if min(region.shape[:2]) < region_size:
            region = np.pad(region, ((0, max(0, region_size - region.shape[0])),
                                     (0, max(0, region_size - region.shape[1])), (0, 0)), mode="symmetric")
        region = region[:region_size, :region_size]
    else:
        region, kind = synthetic_image(rng, region_size, region_size, fonts=TRAINING_FONTS)
        textureless = kind in TEXTURELESS_KINDS
        if rng.random() < 1 / 3:
            photo, _ = make_patch(image, rng, dataclasses.replace(config, patch_size=region_size, grid_shift=False),
                                  compress=False, grayscale=False)
            region = np.where(patch_mask(region_size, rng)[:, :, None], region, photo)
    quality = None
    if not textureless and rng.random() < config.synthetic_compressed_fraction:
        high = _in_high_quality_share(config, rng)
        lowest = config.high_quality_floor if high else config.min_quality
        quality = int(rng.integers(lowest, config.max_quality + 1))
        subsampling = config.subsamplings[int(rng.integers(0, len(config.subsamplings)))]
        region, quality = _compress(np.ascontiguousarray(region), quality, subsampling, rng, config)
    dy, dx = (int(v) for v in rng.integers(0, margin + 1, size=2))
    return np.ascontiguousarray(region[dy:dy + size, dx:dx + size]), quality


def _in_high_quality_share(config: SynthesisConfig, rng: np.random.Generator) -> bool:
    # Drawn only when the high-QF share is on, so that older recipes replay the same stream.
    return bool(config.high_quality_fraction) and rng.random() < config.high_quality_fraction


def patch_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random boolean ``(size, size)`` mask: a half-plane at a random angle, or an ellipse.

    Its area is drawn between about a fifth and four fifths of the patch, so both sides of the
    boundary carry evidence.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    cy, cx = rng.uniform(0.3, 0.7, size=2) * size
    if rng.random() < 0.5:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        return (yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle) > 0
    ry, rx = rng.uniform(0.25, 0.5, size=2) * size
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1.0


def make_spliced_patch(background: np.ndarray, donor: np.ndarray, rng: np.random.Generator,
                       config: SynthesisConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """A training collage: a compressed patch of ``donor`` pasted into a clean patch of ``background``.

    Both patches are cut as by :func:`make_patch` (the same grayscale draw for both); the
    compressed one shows through :func:`patch_mask`.

    Returns
    -------
    patch : ndarray of uint8, (P, P, 3)
    mask : ndarray of bool, (P, P)
        True where the compressed patch shows.
    quality : int
        QF of the pasted patch.
    """
    gray = rng.random() < config.grayscale_fraction
    clean, _ = make_patch(background, rng, config, compress=False, grayscale=gray)
    pasted, quality = make_patch(donor, rng, config, compress=True, grayscale=gray)
    mask = patch_mask(config.patch_size, rng)
    return np.where(mask[:, :, None], pasted, clean), mask, quality


class TrainingBatches(torch.utils.data.Dataset):
    """Map-style dataset whose item ``i`` is training batch ``i``, made from ``(seed, i)`` alone.

    Parameters
    ----------
    images : list of ndarray
        Never-compressed uint8 RGB images.
    batch_size : int
        Patches per batch.
    config : SynthesisConfig
        How patches are made.
    seed : int
        Seed of the whole stream.
    length : int
        Number of batches (the dataset is otherwise unbounded).

    Returns per item a uint8 tensor ``(B, 3, P, P)`` of patches and a float tensor
    ``(B, 2, P, P)`` of their label maps (quality, flag), constant but for spliced patches.
    """

    def __init__(self, images: list[np.ndarray], batch_size: int, config: SynthesisConfig,
                 seed: int = 0, length: int = 2**31 - 1):
        if not images:
            raise ValueError("no training images")
        self.images = images
        self.batch_size = batch_size
        self.config = config
        self.seed = seed
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, int(index)))
        size = self.config.patch_size
        patches, labels = [], np.empty((self.batch_size, 2, size, size), dtype=np.float32)
        for i in range(self.batch_size):
            image = self.images[int(rng.integers(0, len(self.images)))]
            # Drawn only when splicing is on, so that older recipes replay the same stream.
            if self.config.splice_fraction and rng.random() < self.config.splice_fraction:
                donor = self.images[int(rng.integers(0, len(self.images)))]
                patch, mask, quality = make_spliced_patch(image, donor, rng, self.config)
            elif self.config.synthetic_fraction and rng.random() < self.config.synthetic_fraction:
                patch, quality = make_synthetic_patch(image, rng, self.config)
                mask = True
            else:
                patch, quality = make_patch(image, rng, self.config)
                mask = True  # the labels hold over the whole patch
            labels[i] = np.array(quality_label(quality), dtype=np.float32)[:, None, None] * mask
            patches.append(patch)
        batch = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).contiguous()
        return batch, torch.from_numpy(labels)
