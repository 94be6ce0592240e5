"""Reading images for analysis (any format Pillow reads, reduced to 8-bit RGB, with clear errors), listing them, and writing result files atomically.

The EXIF orientation is deliberately not applied: the JPEG block grid lives in the stored
orientation, and rotating the pixels would move it.

Every failure to read a file raises :class:`~jpegtrace.errors.ImageReadError` with the path and a
one-line reason; no other exception escapes :func:`read_image` for any file content.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import re
import stat
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ImageReadError

#: Images with more pixels than this are refused before decoding (decompression-bomb guard).
DEFAULT_MAX_PIXELS = 400_000_000

#: Pixels converted at once when turning a decoded image into an array (bounds temporary memory).
_STRIP_PIXELS = 1 << 22

#: The EXIF tag holding the orientation.
_EXIF_ORIENTATION = 0x0112

#: Serialises the rare reads that must raise Pillow's global decompression-bomb limit.
_PILLOW_LIMIT_LOCK = threading.Lock()


class _NeedsLargerPillowLimit(Exception):
    """Pillow's own bomb limit refused an image that our (larger) limit allows."""


def read_image(path: str | bytes | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS
               ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read the first frame of an image file as an array ready for :func:`as_analysis_array`.

    Parameters
    ----------
    path : str, bytes or path-like
        Bytes paths allow file names that are not valid UTF-8.
    max_pixels : int
        Refuse, before decoding, images with more pixels than this (decompression-bomb guard).
        It replaces Pillow's own limit (``PIL.Image.MAX_IMAGE_PIXELS``) for this read, in both
        directions.

    Returns
    -------
    array : ndarray
        ``(H, W)`` or ``(H, W, 3)``, uint8 or (16-bit grayscale) uint16. Alpha is dropped, palettes
        and other colour spaces (CMYK, YCbCr, ...) are converted to RGB, the EXIF orientation is
        not applied.
    notes : tuple of str
        What was done on the way (first of many frames, alpha dropped, 16 bits reduced...).

    Raises
    ------
    ImageReadError
        For a missing, unreadable, empty, truncated, oversized or non-image file; ``.path`` is
        the file and ``.reason`` one line saying why.
    """
    path = Path(os.fsdecode(path)) if isinstance(path, bytes) else Path(path)
    max_pixels = _check_max_pixels(max_pixels)
    with _open_file(path) as fp:
        return _read_open(fp, path, max_pixels)


def read_image_data(data: bytes, name: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS
                    ) -> tuple[np.ndarray, tuple[str, ...]]:
    """:func:`read_image` of a file's bytes already in memory (e.g. read from object storage).

    ``name`` is the file the bytes come from, for the error's ``.path``. The checks and reasons are
    :func:`read_image`'s; an empty ``data`` is an "empty file".
    """
    path = Path(os.fsdecode(name))
    max_pixels = _check_max_pixels(max_pixels)
    if not data:
        raise ImageReadError(path, "empty file")
    return _read_open(io.BytesIO(data), path, max_pixels)


def _read_open(fp, path: Path, max_pixels: int) -> tuple[np.ndarray, tuple[str, ...]]:
    try:
        array, notes = _decode(fp, path, max_pixels)
    except _NeedsLargerPillowLimit:
        # Bigger than Pillow's default limit but within ours: decode again with Pillow's limit
        # set to ours. Pillow only has a module-wide setting, so hold a lock and restore it.
        with _pillow_limit(max_pixels):
            fp.seek(0)
            try:
                array, notes = _decode(fp, path, max_pixels)
            except _NeedsLargerPillowLimit:  # cannot happen with the limits equal; be safe
                raise ImageReadError(path, _too_large(None, max_pixels)) from None
    if array.size == 0:
        raise ImageReadError(path, "image has no pixels")
    return array, notes


def _check_max_pixels(max_pixels) -> int:
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    return int(max_pixels)


def _open_file(path: Path):
    """Open ``path`` for reading, turning every way it can fail into an :class:`ImageReadError`."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except PermissionError:  # a folder on the way that we may not enter
        raise ImageReadError(path, "permission denied") from None
    except (OSError, ValueError) as exc:  # a name too long, a loop of links, a NUL byte...
        raise ImageReadError(path, f"cannot open: {_os_reason(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageReadError(path, "is a directory, not an image")
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
        raise ImageReadError(path, "not a regular file")
    try:
        fp = open(path, "rb")
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot open: {_os_reason(exc)}") from None
    try:
        empty = os.fstat(fp.fileno()).st_size == 0
    except OSError:
        empty = False
    if empty:
        fp.close()
        raise ImageReadError(path, "empty file")
    return fp


def _os_reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.strerror or errno.errorcode.get(exc.errno, str(exc.errno))
    return _one_line(exc)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    if re.fullmatch(r"decoder error -?\d+", text):  # Pillow's code for "the codec gave up"
        text = f"corrupt image data ({text})"
    return text


@contextlib.contextmanager
def native_stderr_captured():
    """Collect what C libraries print on file descriptor 2 (libtiff does) instead of showing it.

    Yields a list that holds the captured lines once the block ends. When an
    :class:`ImageReadError` leaves the block, the last captured line is added to its reason
    (libtiff's words are more telling than Pillow's "decoder error -2"). Meant for
    command-line use: the redirection is process-wide, so other threads' stderr is captured
    too meanwhile.
    """
    lines: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to capture
        yield lines
        return
    restored = False

    def restore(tmp) -> None:
        nonlocal restored
        if restored:
            return
        restored = True
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        tmp.seek(0)
        text = tmp.read().decode("utf-8", "replace")
        lines.extend(line.strip() for line in text.splitlines() if line.strip())

    try:
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield lines
            except ImageReadError as exc:
                restore(tmp)
                if lines:
                    exc.reason = f"{exc.reason} [{' '.join(lines[-1].split())}]"
                raise
            finally:
                restore(tmp)
    finally:
        os.close(saved)


def _too_large(size: tuple[int, int] | None, max_pixels: int, pixels: int | None = None) -> str:
    if size is not None:
        pixels = size[0] * size[1]
        what = f"{size[0]}x{size[1]} = {pixels:,} pixels"
    else:
        what = f"{pixels:,} pixels" if pixels is not None else "too many pixels"
    return (f"image of {what} exceeds the limit of {max_pixels:,} pixels "
            "(possible decompression bomb; raise max_pixels / --max-pixels to allow it)")


def _pillow_error_limit() -> float | None:
    """Pixels above which Pillow itself raises DecompressionBombError (None: no limit)."""
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * limit


@contextlib.contextmanager
def _pillow_limit(max_pixels: int):
    """Make Pillow's own bomb checks (in ``open`` and, for some formats, while decoding) refuse
    exactly above ``max_pixels``: Pillow raises above twice ``MAX_IMAGE_PIXELS``."""
    with _PILLOW_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels / 2
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _bomb(exc: Exception, path: Path, max_pixels: int) -> Exception:
    """Translate Pillow's DecompressionBombError: refuse, or ask for a retry with our limit."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = int(found.group(1)) if found else None
    pillow_limit = _pillow_error_limit()
    if pillow_limit is not None and max_pixels > pillow_limit and (pixels is None or pixels <= max_pixels):
        return _NeedsLargerPillowLimit()
    return ImageReadError(path, _too_large(None, max_pixels, pixels))


def _decode(fp, path: Path, max_pixels: int) -> tuple[np.ndarray, tuple[str, ...]]:
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning, palette and EXIF warnings
        try:
            im = Image.open(fp)
        except Image.DecompressionBombError as exc:
            raise _bomb(exc, path, max_pixels) from None
        except Image.UnidentifiedImageError:
            raise ImageReadError(path, "not an image file (unrecognised or corrupt format)") from None
        except Exception as exc:  # noqa: BLE001 -- any failure of a parser on bad bytes
            raise ImageReadError(path, f"cannot decode image: {_one_line(exc)}") from None
        with im:
            width, height = im.size
            if width * height > max_pixels:  # the header's size, before any pixel is decoded
                raise ImageReadError(path, _too_large((width, height), max_pixels))
            try:
                _first_frame(im, notes)
                _check_coverage(im, path)
                deep = _has_16_bit_samples(im)  # before load(), which clears im.tile
                im.load()
                if im.size[0] * im.size[1] > max_pixels:  # formats that learn their size late (ICO)
                    raise ImageReadError(path, _too_large(im.size, max_pixels))
                _orientation_note(im, notes)
                array = _pil_to_array(im, notes, deep)
            except ImageReadError:
                raise
            except Image.DecompressionBombError as exc:
                raise _bomb(exc, path, max_pixels) from None
            except MemoryError:
                raise ImageReadError(path, "not enough memory to decode the image") from None
            except Exception as exc:  # noqa: BLE001 -- truncated data, corrupt chunks, decoder errors
                raise ImageReadError(path, f"cannot decode image: {_one_line(exc)}") from None
    return array, tuple(notes)


#: Formats whose pixel data must cover the whole image; Pillow would leave the rest black.
_FULL_COVERAGE_FORMATS = frozenset({"PNG", "JPEG", "MPO", "BMP", "DIB", "TIFF", "PPM", "TGA", "JPEG2000"})


def _check_coverage(im: Image.Image, path: Path) -> None:
    """Refuse a file whose data blocks cover only part of the size its header claims.

    A 600-byte TIFF can claim 10 x 16 million pixels and hold one strip of 12 rows; Pillow
    decodes that strip and silently leaves the rest of the image black.
    """
    if im.format not in _FULL_COVERAGE_FORMATS or not getattr(im, "tile", None):
        return
    width, height = im.size
    covered = 0
    for tile in im.tile:
        x0, y0, x1, y1 = tile[1]
        covered += max(0, min(x1, width) - max(x0, 0)) * max(0, min(y1, height) - max(y0, 0))
    if covered < width * height:
        raise ImageReadError(path, f"image data covers only {covered:,} of its {width * height:,} pixels "
                                   "(truncated or corrupt file)")


def _first_frame(im: Image.Image, notes: list[str]) -> None:
    """Note when a file holds several frames or pages; the first one is analysed."""
    try:
        frames = getattr(im, "n_frames", 1)
    except Exception:  # noqa: BLE001 -- a damaged later frame; the first may still be fine
        frames = None
    if frames == 1:
        return
    im.seek(0)
    notes.append(f"first of {frames} frames analysed" if frames else "first frame analysed (file has others)")


def _orientation_note(im: Image.Image, notes: list[str]) -> None:
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 -- broken EXIF does not stop the analysis
        return
    if orientation not in (None, 1):
        notes.append(f"EXIF orientation {orientation} not applied (analysed as stored)")


def _pil_to_array(im: Image.Image, notes: list[str], deep: bool = False) -> np.ndarray:
    """Decode the current frame of ``im`` to uint8/uint16 gray or uint8 RGB, dropping alpha.

    ``deep`` says that the file stored more than 8 bits per sample in a mode Pillow decodes to 8.

    The pixels are converted a strip of rows at a time, so beyond Pillow's own copy of the
    image only the result is held in memory.
    """
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return _strips(im, np.uint16, None, lambda s: np.asarray(s).astype(np.uint16, copy=False))
    if mode == "I":
        lo, hi = im.getextrema()
        if lo < 0 or hi > 65535:
            notes.append("32-bit integer image clipped to 16 bits")
        return _strips(im, np.uint16, None, lambda s: np.clip(np.asarray(s), 0, 65535).astype(np.uint16))
    if mode == "F":
        data = np.asarray(im, dtype=np.float64)
        notes.append("floating-point image scaled to 8 bits")
        finite = data[np.isfinite(data)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        data = np.nan_to_num(data, nan=lo, posinf=hi, neginf=lo)
        return np.round((np.clip(data, lo, hi) - lo) * scale).astype(np.uint8)
    if deep:  # Pillow decodes 16-bit colour to 8 bits (keeping the high byte)
        notes.append("16-bit data reduced to 8 bits")
    if mode in ("L", "1"):
        return _strips(im, np.uint8, None, lambda s: np.asarray(s.convert("L")))
    if mode in ("LA", "La", "PA", "RGBA", "RGBa") or (
            mode == "P" and ("transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA"))):
        notes.append("alpha channel dropped")
    if mode in ("LA", "La"):
        return _strips(im, np.uint8, None, lambda s: np.asarray(s.convert("L")))
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    if mode == "RGB":
        return _strips(im, np.uint8, 3, np.asarray)
    return _strips(im, np.uint8, 3, lambda s: np.asarray(s.convert("RGB")))


def _has_16_bit_samples(im: Image.Image) -> bool:
    """Whether a not yet loaded image stores 16-bit samples (its decoder's raw mode says so)."""
    if im.mode.startswith("I;16"):
        return False  # kept at 16 bits, reduced later with rounding
    try:
        for tile in getattr(im, "tile", None) or ():
            args = tile[3] if len(tile) > 3 else None
            rawmode = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args else "")
            if isinstance(rawmode, str) and ";16" in rawmode:
                return True
    except Exception:  # noqa: BLE001 -- only a note depends on it
        return False
    return False


def _strips(im: Image.Image, dtype, channels: int | None, convert) -> np.ndarray:
    """``convert`` applied to horizontal strips of ``im``, gathered into one new array."""
    width, height = im.size
    shape = (height, width) if channels is None else (height, width, channels)
    out = np.empty(shape, dtype=dtype)
    rows = max(1, _STRIP_PIXELS // max(1, width))
    for y0 in range(0, height, rows):
        y1 = min(height, y0 + rows)
        strip = im if (y0 == 0 and y1 == height) else im.crop((0, y0, width, y1))
        out[y0:y1] = convert(strip)
    return out


def as_analysis_array(image, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, bool, tuple[str, ...]]:
    """Bring a path, PIL image or array to the uint8 ``(H, W, 3)`` RGB the network takes.

    Parameters
    ----------
    image : path, bytes path, PIL.Image.Image or ndarray
    max_pixels : int
        Pixel limit for files (see :func:`read_image`).

    Returns
    -------
    rgb : ndarray of uint8, (H, W, 3)
        For a grayscale input this is a read-only view repeating the one channel three times,
        so it costs no extra memory.
    grayscale : bool
        True when the input had one channel (or three equal ones).
    notes : tuple of str

    Raises
    ------
    ImageReadError
        For an unreadable file, a PIL image that fails to decode, or an array of unusable shape
        or type.
    """
    notes: list[str] = []
    if isinstance(image, (str, bytes, os.PathLike)):
        array, file_notes = read_image(image, max_pixels=max_pixels)
        notes.extend(file_notes)
    elif isinstance(image, Image.Image):
        name = getattr(image, "filename", None) or None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                deep = _has_16_bit_samples(image)
                image.load()
                array = _pil_to_array(image, notes, deep)
        except MemoryError:
            raise ImageReadError(name, "not enough memory to decode the image") from None
        except Exception as exc:  # noqa: BLE001 -- a lazily opened PIL image may be truncated
            raise ImageReadError(name, f"cannot decode image: {_one_line(exc)}") from None
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
        array = _reduce_16_bits(array)
    elif array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and np.nanmax(array) <= 1.0:
            notes.append("float image in [0, 1] scaled to 8 bits")
            array = np.round(np.clip(np.nan_to_num(array), 0, 1) * 255).astype(np.uint8)
        else:
            raise ImageReadError(None, f"unsupported array dtype {array.dtype} (use uint8, uint16 or float in [0, 1])")
    if array.ndim == 2:
        return np.broadcast_to(array[:, :, None], (*array.shape, 3)), True
    return np.ascontiguousarray(array), _channels_equal(array)


def _reduce_16_bits(array: np.ndarray) -> np.ndarray:
    """Round 16-bit samples to 8 bits (``v * 255 / 65535``), a strip at a time."""
    out = np.empty(array.shape, dtype=np.uint8)
    rows = max(1, _STRIP_PIXELS // max(1, array[0].size))
    for y0 in range(0, array.shape[0], rows):
        part = array[y0:y0 + rows].astype(np.uint32)
        part += 128
        part //= 257
        out[y0:y0 + rows] = part
    return out


def _channels_equal(rgb: np.ndarray) -> bool:
    """True when the three channels are equal everywhere (checked a strip at a time)."""
    rows = max(1, _STRIP_PIXELS // max(1, rgb.shape[1]))
    for y0 in range(0, rgb.shape[0], rows):
        part = rgb[y0:y0 + rows]
        if not ((part[:, :, 0] == part[:, :, 1]).all() and (part[:, :, 1] == part[:, :, 2]).all()):
            return False
    return True


# ------------------------------------------------------------------------------------------------
# Listing images, and writing result files so that an interrupted run never leaves a half-written one
# ------------------------------------------------------------------------------------------------

IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".webp", ".gif", ".jpg", ".jpeg"}


#: Lossless formats, the only ones a never-compressed training image can come in.
LOSSLESS_SUFFIXES = {".png", ".tif", ".tiff", ".bmp", ".ppm", ".pgm"}


def list_images(folder: str | Path, split_csv: str | Path | None = None, subset: str | None = None, *,
                suffixes: set[str] = IMAGE_SUFFIXES, recursive: bool = False,
                exclude: str | Path | None = None) -> list[Path]:
    """Image files of ``folder`` in sorted order, optionally those a split CSV assigns to ``subset``.

    The split CSV has columns ``file`` and ``split`` (as ``shared/data/clean/split.csv``); with
    ``recursive``, its ``file`` column holds paths relative to ``folder`` with ``/`` separators.

    Parameters
    ----------
    folder : str or Path
    split_csv : str or Path, optional
    subset : str, optional
        Keep the files the split CSV puts in this subset (e.g. ``val``).
    suffixes : set of str
        Lower-case file suffixes that count as images.
    recursive : bool
        Also list the files of sub-folders (sorted by their path relative to ``folder``).
    exclude : str or Path, optional
        A folder whose files are left out (e.g. an output folder inside ``folder``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a directory")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    files = [p for p in candidates if p.suffix.lower() in suffixes and p.is_file()]
    if exclude is not None:
        excluded = Path(exclude).resolve()
        files = [p for p in files if excluded not in p.resolve().parents]
    files.sort(key=lambda p: p.relative_to(folder).as_posix())
    if split_csv is not None and subset is not None:
        with open(split_csv, newline="") as f:
            chosen = {row["file"] for row in csv.DictReader(f) if row["split"] == subset}
        files = [p for p in files if p.relative_to(folder).as_posix() in chosen]
    return files


def load_rgb(path: str | Path) -> np.ndarray:
    """Read a training image as uint8 RGB (training images are trusted, unlike analysed ones)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Shrink a uint8 image ``factor`` times with a Lanczos filter.

    This is how never-compressed images are made from photos that may once have been JPEGs
    (as the paper did, and as ``shared/data/clean`` was made): averaging blocks of pixels wipes
    out the 8x8 block structure and quantisation noise of earlier compression.
    """
    pil = Image.fromarray(image)
    return np.asarray(pil.resize((pil.width // factor, pil.height // factor), Image.LANCZOS))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The rename is atomic on POSIX, so readers see either the old file or the complete new
    one. On error (or Ctrl-C) the temporary file is removed and ``path`` is left untouched;
    other files in the folder are never touched. Only a killed process can leave a hidden
    ``.STEM.*.tmpSUFFIX`` file behind, never a broken ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:100]}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        _fsync(tmp_path)  # the data is on disk before the name points at it
        tmp_path.replace(path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, data) -> Path:
    """Atomically write ``data`` as indented JSON."""
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_csv(path: str | os.PathLike, rows: Sequence[dict], fieldnames: Sequence[str] | None = None) -> Path:
    """Atomically write a list of dicts as CSV (columns: ``fieldnames`` or the first row's keys)."""
    fieldnames = list(fieldnames or (rows[0].keys() if rows else []))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def save_figure(figure, path: str | os.PathLike, **kwargs) -> Path:
    """Atomically save a matplotlib figure as PNG."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", **kwargs)
    return Path(path)
