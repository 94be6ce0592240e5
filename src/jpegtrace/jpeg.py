"""JPEG synthesis through Pillow's libjpeg: compress an array and decode it back."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

#: Pillow's ``subsampling`` codes by their usual names.
SUBSAMPLING_CODES = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def jpeg_compress(
    image: np.ndarray,
    quality: int,
    subsampling: str = "4:2:0",
    grid_offset: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Compress ``image`` as a JPEG and decode it back to pixels.

    Parameters
    ----------
    image : ndarray of uint8
        ``(H, W, 3)`` RGB or ``(H, W)`` grayscale. Grayscale is stored as a one-channel JPEG.
    quality : int
        libjpeg quality factor, 1 (worst) to 100 (best).
    subsampling : {'4:2:0', '4:2:2', '4:4:4'}
        Chroma subsampling; ignored for grayscale.
    grid_offset : (int, int)
        ``(dy, dx)``: where pixel (0, 0) of ``image`` falls inside its JPEG block, as when a
        JPEG is cropped. The image is padded by reflection above and to the left, compressed
        and cropped back, so the block grid starts ``dy`` rows and ``dx`` columns early.

    Returns
    -------
    ndarray of uint8
        The decoded image, same shape as ``image``.
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected a uint8 (H, W) or (H, W, 3) array, got {image.dtype} {image.shape}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    if subsampling not in SUBSAMPLING_CODES:
        raise ValueError(f"subsampling must be one of {sorted(SUBSAMPLING_CODES)}, got {subsampling!r}")
    dy, dx = (int(v) for v in grid_offset)
    if dy < 0 or dx < 0:
        raise ValueError(f"grid_offset must be non-negative, got {grid_offset}")
    padded = image
    if dy or dx:
        pad = ((dy, 0), (dx, 0)) + (((0, 0),) if image.ndim == 3 else ())
        padded = np.pad(image, pad, mode="symmetric")
    decoded = _roundtrip(padded, int(quality), subsampling)
    return decoded[dy:, dx:]


def _roundtrip(image: np.ndarray, quality: int, subsampling: str) -> np.ndarray:
    buffer = io.BytesIO()
    pil = Image.fromarray(image)
    options = {"quality": quality}
    if image.ndim == 3:
        options["subsampling"] = SUBSAMPLING_CODES[subsampling]
    pil.save(buffer, format="JPEG", **options)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("L" if image.ndim == 2 else "RGB"))
