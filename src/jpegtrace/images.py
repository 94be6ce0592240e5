"""Reading images for analysis: any format Pillow reads, reduced to 8-bit RGB, with clear errors.

The EXIF orientation is deliberately not applied: the JPEG block grid lives in the stored
orientation, and rotating the pixels would move it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ImageReadError

#: Images with more pixels than this are refused before decoding (decompression-bomb guard).
DEFAULT_MAX_PIXELS = 400_000_000


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read an image file as an array ready for :func:`as_analysis_array`.

    Parameters
    ----------
    path : str or path-like
    max_pixels : int
        Refuse, before decoding, images whose header claims more pixels than this.

    Returns
    -------
    array : ndarray
        ``(H, W)`` or ``(H, W, 3)``, uint8 or uint16.
    notes : tuple of str
        What was done on the way (first frame of many, alpha dropped, 16 bits reduced...).

    Raises
    ------
    ImageReadError
        For a missing, unreadable, truncated, oversized or non-image file.
    """
    path = Path(os.fsdecode(path)) if isinstance(path, bytes) else Path(path)
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if path.is_dir():
        raise ImageReadError(path, "is a directory, not an image")
    if not os.access(path, os.R_OK):
        raise ImageReadError(path, "permission denied")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise ImageReadError(path, f"image of {width}x{height} pixels exceeds the limit of "
                                               f"{max_pixels} pixels (possible decompression bomb)")
                frames = getattr(im, "n_frames", 1)
                if frames > 1:
                    notes.append(f"first of {frames} frames analysed")
                array = _pil_to_array(im, notes)
    except ImageReadError:
        raise
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"refused as a possible decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, IndexError, KeyError, TypeError,
            AttributeError, ZeroDivisionError, RuntimeError, OverflowError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "cannot identify image file" in reason:
            reason = "not an image file Pillow can read"
        raise ImageReadError(path, f"cannot decode image: {reason}") from None
    if array.size == 0:
        raise ImageReadError(path, "image has no pixels")
    return array, tuple(notes)


def _pil_to_array(im: Image.Image, notes: list[str]) -> np.ndarray:
    """Decode the current frame of ``im`` to uint8/uint16 gray or RGB, dropping alpha."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        data = np.asarray(im)
        if mode == "I":
            data = np.clip(data, 0, 65535)
            notes.append("32-bit integer image clipped to 16 bits")
        return data.astype(np.uint16)
    if mode == "F":
        data = np.asarray(im, dtype=np.float64)
        notes.append("floating-point image scaled to 8 bits")
        lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        return np.round((np.nan_to_num(data, nan=lo) - lo) * scale).astype(np.uint8)
    if mode in ("L", "1"):
        return np.asarray(im.convert("L"))
    if mode in ("LA", "La"):
        notes.append("alpha channel dropped")
        return np.asarray(im.convert("L"))
    if mode == "P":
        has_alpha = "transparency" in im.info or im.palette is not None and im.palette.mode == "RGBA"
        if has_alpha:
            notes.append("alpha channel dropped")
        im = im.convert("RGBA" if has_alpha else "RGB")
        mode = im.mode
    if mode in ("RGBA", "RGBa", "PA"):
        if mode != "PA":
            notes.append("alpha channel dropped")
        return np.asarray(im.convert("RGB"))
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    return np.asarray(im.convert("RGB"))


def as_analysis_array(image) -> tuple[np.ndarray, bool, tuple[str, ...]]:
    """Bring a path, PIL image or array to the uint8 ``(H, W, 3)`` RGB the network takes.

    Returns
    -------
    rgb : ndarray of uint8, (H, W, 3)
    grayscale : bool
        True when the input had one channel (or three equal ones).
    notes : tuple of str
    """
    notes: list[str] = []
    if isinstance(image, (str, bytes, os.PathLike)):
        array, file_notes = read_image(image)
        notes.extend(file_notes)
    elif isinstance(image, Image.Image):
        array = _pil_to_array(image, notes)
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise ImageReadError(None, f"cannot analyse an object of type {type(image).__name__}")
    return (*_normalise_array(array, notes), tuple(notes))


def _normalise_array(array: np.ndarray, notes: list[str]) -> tuple[np.ndarray, bool]:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] == 4:
        notes.append("alpha channel dropped")
        array = array[:, :, :3]
    if array.ndim == 3 and array.shape[2] == 2:
        notes.append("alpha channel dropped")
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ImageReadError(None, f"expected an (H, W) or (H, W, 3) image array, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageReadError(None, "image has no pixels")
    if array.dtype == np.uint16:
        notes.append("16-bit data reduced to 8 bits")
        array = ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and np.nanmax(array) <= 1.0:
            notes.append("float image in [0, 1] scaled to 8 bits")
            array = np.round(np.clip(np.nan_to_num(array), 0, 1) * 255).astype(np.uint8)
        else:
            raise ImageReadError(None, f"unsupported array dtype {array.dtype} (use uint8, uint16 or float in [0, 1])")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2), True
    grayscale = bool((array[:, :, 0] == array[:, :, 1]).all() and (array[:, :, 1] == array[:, :, 2]).all())
    return np.ascontiguousarray(array), grayscale
