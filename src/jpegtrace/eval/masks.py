"""Masks of pasted regions: disc, rectangle, random blob, or read from a file."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..errors import ImageReadError

#: Mask shapes of the collage experiments.
MASK_SHAPES = ("disc", "rectangle", "blob")


def disc_mask(height: int, width: int, *, radius_fraction: float = 0.3,
              center: tuple[float, float] | None = None) -> np.ndarray:
    """Boolean ``(H, W)`` mask of a disc, by default centred with radius 30% of the shorter side."""
    cy, cx = center if center is not None else ((height - 1) / 2, (width - 1) / 2)
    yy, xx = np.mgrid[:height, :width]
    radius = radius_fraction * min(height, width)
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2


def rectangle_mask(height: int, width: int, *, size_fraction: tuple[float, float] = (0.5, 0.5),
                   center: tuple[float, float] | None = None) -> np.ndarray:
    """Boolean ``(H, W)`` mask of an axis-aligned rectangle, by default centred, half as high and wide.

    ``size_fraction`` is ``(height, width)`` of the rectangle as fractions of the image's; the
    rectangle is clipped to the image and has at least one pixel.
    """
    cy, cx = center if center is not None else ((height - 1) / 2, (width - 1) / 2)
    rh = max(1, int(round(size_fraction[0] * height)))
    rw = max(1, int(round(size_fraction[1] * width)))
    y0 = int(round(cy - (rh - 1) / 2))
    x0 = int(round(cx - (rw - 1) / 2))
    y0, x0 = min(max(y0, 0), max(height - rh, 0)), min(max(x0, 0), max(width - rw, 0))
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y0 + rh, x0:x0 + rw] = True
    return mask


def blob_mask(height: int, width: int, rng: np.random.Generator, *, area_fraction: float = 0.25,
              control_points: int = 5) -> np.ndarray:
    """Boolean ``(H, W)`` mask of a random smooth blob covering about ``area_fraction`` of the image.

    Smooth noise (a ``control_points`` square grid of Gaussian values, bicubically upsampled)
    minus a radial fall-off around a random centre is thresholded at the quantile that gives
    the wanted area. The same generator state gives the same blob.
    """
    if not 0 < area_fraction < 1:
        raise ValueError("area_fraction must be in (0, 1)")
    noise = rng.standard_normal((control_points, control_points)).astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7, size=2)
    smooth = np.asarray(Image.fromarray(noise, mode="F").resize((width, height), Image.BICUBIC), dtype=np.float64)
    yy = (np.arange(height)[:, None] + 0.5) / height - cy
    xx = (np.arange(width)[None, :] + 0.5) / width - cx
    score = smooth - 8.0 * (yy ** 2 + xx ** 2)
    threshold = np.quantile(score, 1.0 - area_fraction)
    mask = score >= threshold
    if not mask.any():
        mask.flat[int(np.argmax(score))] = True
    return mask


def make_mask(shape: str, height: int, width: int, *, rng: np.random.Generator | None = None) -> np.ndarray:
    """The standard mask of a shape: a centred disc (radius 30% of the shorter side), a centred
    rectangle half as high and wide, or a random blob of a quarter of the image from ``rng``.
    """
    if shape == "disc":
        return disc_mask(height, width)
    if shape == "rectangle":
        return rectangle_mask(height, width)
    if shape == "blob":
        return blob_mask(height, width, rng if rng is not None else np.random.default_rng(0))
    raise ValueError(f"mask shape must be one of {', '.join(MASK_SHAPES)}, got {shape!r}")


def random_mask(height: int, width: int, rng: np.random.Generator, *,
                shapes: Sequence[str] = MASK_SHAPES) -> tuple[np.ndarray, str]:
    """A random mask of a random shape drawn from ``shapes``, lying wholly inside the image.

    Discs have a radius of 15-35% of the shorter side, rectangles sides of 25-60% of the
    image's, blobs an area of 10-35%.

    Returns
    -------
    mask : ndarray of bool, (H, W)
    shape : str
    """
    unknown = set(shapes) - set(MASK_SHAPES)
    if unknown or not shapes:
        raise ValueError(f"shapes must be a non-empty subset of {', '.join(MASK_SHAPES)}")
    shape = shapes[int(rng.integers(0, len(shapes)))]
    if shape == "disc":
        fraction = rng.uniform(0.15, 0.35)
        radius = fraction * min(height, width)
        cy = rng.uniform(min(radius, (height - 1) / 2), max(height - 1 - radius, (height - 1) / 2))
        cx = rng.uniform(min(radius, (width - 1) / 2), max(width - 1 - radius, (width - 1) / 2))
        mask = disc_mask(height, width, radius_fraction=fraction, center=(cy, cx))
    elif shape == "rectangle":
        fh, fw = rng.uniform(0.25, 0.6, size=2)
        rh, rw = fh * height, fw * width
        cy = rng.uniform((rh - 1) / 2, height - 1 - (rh - 1) / 2)
        cx = rng.uniform((rw - 1) / 2, width - 1 - (rw - 1) / 2)
        mask = rectangle_mask(height, width, size_fraction=(fh, fw), center=(cy, cx))
    else:
        mask = blob_mask(height, width, rng, area_fraction=rng.uniform(0.1, 0.35))
    if not mask.any():  # a degenerate tiny image
        mask[height // 2, width // 2] = True
    return mask, shape


def read_mask(path: str | os.PathLike, *, height: int | None = None, width: int | None = None) -> np.ndarray:
    """A mask image file as booleans: pixels brighter than half scale are True.

    Raises
    ------
    ImageReadError
        When the file cannot be read, or its size is not ``(height, width)`` when those are given.
    """
    from ..io import read_image

    array, _ = read_image(path)
    if array.ndim == 3:
        array = array.max(axis=2)
    mask = array > (32767 if array.dtype == np.uint16 else 127)
    if height is not None and width is not None and mask.shape != (height, width):
        raise ImageReadError(path, f"mask is {mask.shape[1]}x{mask.shape[0]} pixels, "
                                   f"the background {width}x{height}")
    return mask
