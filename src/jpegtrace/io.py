"""Reading images for analysis (any format Pillow reads, reduced to 8-bit RGB, with clear errors), listing them, and writing result files atomically.

The EXIF orientation is deliberately not applied: the JPEG block grid lives in the stored
orientation, and rotating the pixels would move it.

Every failure to read a file raises :class:`~jpegtrace.errors.ImageReadError` with the path and a
one-line reason; no other exception escapes :func:`read_image` for any file content. A JPEG that
decodes from missing or corrupt data (:mod:`jpegtrace.jpegfile`) is refused too, unless
``allow_damaged`` is set: then :func:`read_analysis_input` says which pixels were decoded.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import jpegfile
from .errors import ImageReadError, TimeLimitError

#: Images with more pixels than this are refused before decoding (decompression-bomb guard).
#: It also bounds memory: ``jpegtrace analyze --maps`` peaks at about 23 bytes a pixel (the image 3, the
#: two float32 maps 8, the evidence map 4, the decoded-pixel mask of a damaged JPEG 1, the overlay and
#: Pillow's copy of it 7) over a fixed 235 MiB (Python, torch, the model) and about 50 MiB of the
#: network's buffers, so 64 million pixels stay near 1.7 GiB, under the 2 GiB bound that 100 million
#: (2.4 GiB) would exceed (``benchmarks/bench_memory.py`` measures it; raise the limit for larger images).
DEFAULT_MAX_PIXELS = 64_000_000

#: Pixels converted at once when turning a decoded image into an array (bounds temporary memory).
_STRIP_PIXELS = 1 << 22

#: The EXIF tag holding the orientation.
_EXIF_ORIENTATION = 0x0112

#: Serialises the rare reads that must raise Pillow's global decompression-bomb limit.
_PILLOW_LIMIT_LOCK = threading.Lock()


class _NeedsLargerPillowLimit(Exception):
    """Pillow's own bomb limit refused an image that our (larger) limit allows."""


@dataclass(frozen=True)
class InputInfo:
    """What an input is, as its bytes say (:func:`describe_file`, :attr:`AnalysisInput.info`).

    Attributes
    ----------
    format : str
        Pillow's name of the format ("JPEG", "MPO", "PNG", "WEBP", "TIFF", ...), "AVIF" or "HEIF"
        for those recognised from their bytes, "array" or "PIL image" for what was not a file, or
        "unknown".
    lossy : bool or None
        Whether the format's own compression lost information: True for JPEG and lossy WebP (and
        JPEG-compressed TIFF), False for PNG, lossless WebP and the other lossless formats, None
        when the bytes do not say (AVIF, HEIF, JPEG 2000, arrays).
    file_quality : float or None
        For a JPEG, the IJG QF nearest to the luma quantisation table it declares
        (:func:`jpegtrace.jpeg.ijg_equivalent_quality`); None otherwise.
    damaged : bool
        The JPEG's data is missing or corrupt (see :mod:`jpegtrace.jpegfile`). From
        :func:`describe_file`, only what its structure shows (a cut file, bad markers); from
        :func:`read_analysis_input`, also what decoding shows.
    """

    format: str
    lossy: bool | None
    file_quality: float | None
    damaged: bool = False

    def as_dict(self) -> dict:
        """The record's ``input`` (:func:`jpegtrace.record.analysis_record`)."""
        return {"format": self.format, "lossy": self.lossy,
                "file_quality": None if self.file_quality is None else round(float(self.file_quality), 2),
                "damaged": self.damaged}


@dataclass(frozen=True)
class AnalysisInput:
    """An image ready for the network (:func:`read_analysis_input`).

    Attributes
    ----------
    rgb : ndarray of uint8, (H, W, 3)
        As :func:`as_analysis_array` gives it.
    grayscale : bool
    notes : tuple of str
    valid : ndarray of bool, (H, W), or None
        Where the pixels were decoded from the file's data; False where a damaged JPEG (read with
        ``allow_damaged``) was filled in by the decoder. None when every pixel was decoded.
    info : InputInfo or None
        What the input is (format "array" or "PIL image" for those).
    """

    rgb: np.ndarray
    grayscale: bool
    notes: tuple[str, ...]
    valid: np.ndarray | None = None
    info: InputInfo | None = None


@dataclass(frozen=True)
class _FileRead:
    array: np.ndarray
    notes: tuple[str, ...]
    valid: np.ndarray | None
    info: InputInfo


def read_image(path: str | bytes | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, *,
               allow_damaged: bool = False) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read the first frame of an image file as an array ready for :func:`as_analysis_array`.

    Parameters
    ----------
    path : str, bytes or path-like
        Bytes paths allow file names that are not valid UTF-8.
    max_pixels : int
        Refuse, before decoding, images with more pixels than this (decompression-bomb guard).
        It replaces Pillow's own limit (``PIL.Image.MAX_IMAGE_PIXELS``) for this read, in both
        directions.
    allow_damaged : bool
        Read a JPEG that decodes from missing or corrupt data instead of refusing it; a note says
        what is damaged (:func:`read_analysis_input` also says where).

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
        For a missing, unreadable, empty, truncated, oversized or non-image file, a damaged JPEG
        (without ``allow_damaged``) and a HEIF or AVIF file Pillow cannot open; ``.path`` is the
        file and ``.reason`` one line saying why.

    Notes
    -----
    The notes also say what the file is where that matters to the maps: a JPEG file's own QF
    (``JPEG file, QF 90 by its own tables``), beside which the maps' estimate can be read, and that
    a lossy WebP or an AVIF file was compressed otherwise than by JPEG, which the maps do not see.
    """
    read = _read_file(path, max_pixels, allow_damaged)
    return read.array, read.notes


def _read_file(path, max_pixels, allow_damaged: bool) -> _FileRead:
    path = Path(os.fsdecode(path)) if isinstance(path, bytes) else Path(path)
    max_pixels = _check_max_pixels(max_pixels)
    with _open_file(path) as fp:
        return _read_open(fp, path, max_pixels, allow_damaged)


def read_image_data(data: bytes, name: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, *,
                    allow_damaged: bool = False) -> tuple[np.ndarray, tuple[str, ...]]:
    """:func:`read_image` of a file's bytes already in memory (e.g. read from object storage).

    ``name`` is the file the bytes come from, for the error's ``.path``. The checks and reasons are
    :func:`read_image`'s; an empty ``data`` is an "empty file".
    """
    path = Path(os.fsdecode(name))
    max_pixels = _check_max_pixels(max_pixels)
    if not data:
        raise ImageReadError(path, "empty file")
    read = _read_open(io.BytesIO(data), path, max_pixels, allow_damaged)
    return read.array, read.notes


def _read_open(fp, path: Path, max_pixels: int, allow_damaged: bool) -> _FileRead:
    """The reading of an open file (or bytes) ``fp`` named ``path``: decode, damage check, notes."""
    kind, lossy = _file_kind(fp)
    source, data, structure = fp, None, None
    if kind == "JPEG":
        data, structure = _jpeg_structure(fp, path)
        if structure is not None:
            # The image's bytes alone (no copy of a sound file's); Pillow refuses a JPEG cut short,
            # libjpeg one with a bad marker: ended where the data stops, both decode what there
            # is, and the damage check says what is missing.
            data = jpegfile.repaired(data, structure)
            if structure.truncated or structure.cut:
                source = io.BytesIO(data)
    try:
        array, notes, im_format, im_lossy = _decode(source, path, max_pixels, kind)
        big = False
    except _NeedsLargerPillowLimit:
        # Bigger than Pillow's default limit but within ours: decode again with Pillow's limit
        # set to ours. Pillow only has a module-wide setting, so hold a lock and restore it.
        with _pillow_limit(max_pixels):
            source.seek(0)
            try:
                array, notes, im_format, im_lossy = _decode(source, path, max_pixels, kind)
            except _NeedsLargerPillowLimit:  # cannot happen with the limits equal; be safe
                raise ImageReadError(path, _too_large(None, max_pixels)) from None
        big = True
    if array.size == 0:
        raise ImageReadError(path, "image has no pixels")
    notes = list(notes)
    valid, damaged, quality = None, False, None
    if structure is not None:
        del source
        with _pillow_limit(max_pixels) if big else contextlib.nullcontext():
            valid, damaged = _check_jpeg(data, structure, path, array.shape[:2], allow_damaged, notes)
    del data
    if kind == "JPEG":
        fp.seek(0)
        quality = _jpeg_file_quality(fp, notes)  # the open file: bytes from memory have no path to reopen
    elif lossy and kind == "WEBP":
        notes.append("lossy WebP: its compression is not JPEG's; the maps say nothing about it")
    elif kind in ("AVIF", "HEIF"):
        notes.append(f"{kind} file: its compression (if lossy) is not JPEG's; the maps say nothing about it")
    info = InputInfo(format=im_format or kind or "unknown", lossy=lossy if lossy is not None else im_lossy,
                     file_quality=quality, damaged=damaged)
    return _FileRead(array, tuple(notes), valid, info)


def describe_file(path: str | bytes | os.PathLike) -> InputInfo:
    """What an image file is, from its headers: format, whether lossy, a JPEG's own QF, whether damaged.

    Cheap: no pixel is decoded. Pillow reads the header; of a JPEG, the marker structure is
    scanned (:func:`jpegtrace.jpegfile.parse_jpeg`, a regular-expression pass over its bytes).

    Parameters
    ----------
    path : str, bytes or path-like

    Returns
    -------
    InputInfo
        ``damaged`` says only what the structure shows: a file cut short (or only missing its end
        marker, which decoding would tell apart), an unexpected marker, restart markers out of
        order. A JPEG whose data runs out before the image its header claims, or whose corrupt
        data the decoder reads to the end, shows it only when decoded (:func:`read_analysis_input`
        then sets ``damaged``).

    Raises
    ------
    ImageReadError
        When the file cannot be opened, or is no image Pillow or this function recognises.
    """
    path = Path(os.fsdecode(path)) if isinstance(path, bytes) else Path(path)
    with _open_file(path) as fp:
        kind, lossy = _file_kind(fp)
        if kind == "JPEG":
            data, structure = _jpeg_structure(fp, path)
            # A file that ends early is counted damaged: only decoding tells whether just its end marker is missing.
            damaged = structure is not None and bool(structure.problems or structure.truncated)
            del data
            fp.seek(0)
        if kind in ("AVIF", "HEIF"):
            fmt = kind
        else:
            fmt, im_lossy = _pillow_format(fp, path)
            lossy = lossy if lossy is not None else im_lossy
    if kind != "JPEG":
        return InputInfo(format=fmt, lossy=lossy, file_quality=None, damaged=False)
    return InputInfo(format=fmt, lossy=True, file_quality=_jpeg_file_quality(path), damaged=damaged)


def _pillow_format(fp, path: Path) -> tuple[str, bool | None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(fp) as im:
                return im.format or "unknown", _format_lossy(im)
        except Image.UnidentifiedImageError:
            raise ImageReadError(path, "not an image file (unrecognised or corrupt format)") from None
        except TimeLimitError:  # the file's time ran out here: that is its failure
            raise
        except Exception as exc:  # noqa: BLE001 -- any failure of a parser on bad bytes
            raise ImageReadError(path, f"cannot decode image: {_one_line(exc)}") from None


#: Formats whose compression never loses information.
_LOSSLESS_FORMATS = frozenset({"PNG", "BMP", "DIB", "GIF", "PPM", "PCX", "TGA", "ICO", "SGI", "QOI", "TIFF", "XBM"})


def _format_lossy(im: Image.Image) -> bool | None:
    if im.format in ("JPEG", "MPO"):
        return True
    if im.format == "TIFF":
        return "jpeg" in str(im.info.get("compression", "")).lower()  # tiff_jpeg / jpeg: lossy
    return False if im.format in _LOSSLESS_FORMATS else None


#: ISO base media file brands of AVIF and of the other HEIF images (HEIC and the generic HEIF brands).
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"mif2", b"heif"})


def _file_kind(fp) -> tuple[str | None, bool | None]:
    """``(kind, lossy)`` from the first bytes: JPEG, WEBP (lossy or not), AVIF, HEIF, or None for the
    rest (left to Pillow). ``fp`` is left at its start."""
    try:
        head = fp.read(64)
        if jpegfile.is_jpeg(head):
            return "JPEG", True
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return "WEBP", _webp_lossy(fp)
        if head[4:8] == b"ftyp":
            size = int.from_bytes(head[:4], "big")
            fp.seek(0)
            box = fp.read(min(max(size, 16), 4096))
            brands = {box[8:12]} | {box[i:i + 4] for i in range(16, len(box) - 3, 4)}
            if brands & _AVIF_BRANDS:
                return "AVIF", None
            if brands & _HEIF_BRANDS:
                return "HEIF", None
        return None, None
    except OSError:  # an unreadable file: Pillow will say so
        return None, None
    finally:
        with contextlib.suppress(OSError):
            fp.seek(0)


def _webp_lossy(fp) -> bool | None:
    """Whether a WebP's (first frame's) image is lossy: a 'VP8 ' chunk (lossy) or 'VP8L' (lossless),
    at the top level or, in an extended file ('VP8X'), inside its first animation frame."""
    at = 12
    for _ in range(64):  # chunks before the image: VP8X, ICCP, ANIM, ALPH, EXIF... a few at most
        fp.seek(at)
        header = fp.read(8)
        if len(header) < 8:
            return None
        fourcc, size = header[:4], int.from_bytes(header[4:], "little")
        if fourcc == b"VP8 ":
            return True
        if fourcc == b"VP8L":
            return False
        # An animation frame's chunks follow its 16-byte header; other chunks are skipped (padded to even).
        at += 8 + 16 if fourcc == b"ANMF" else 8 + size + (size & 1)
    return None


def _jpeg_structure(fp, path: Path):
    """The file's bytes and :func:`jpegtrace.jpegfile.parse_jpeg` of them (None: no frame, left to Pillow)."""
    try:
        data = fp.read()
    except MemoryError:
        raise ImageReadError(path, "not enough memory to read the file") from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot read: {_os_reason(exc)}") from None
    finally:
        with contextlib.suppress(OSError):
            fp.seek(0)
    try:
        return data, jpegfile.parse_jpeg(data)
    except TimeLimitError:  # the file's time ran out while parsing: that is the failure, not the bytes
        raise
    except Exception as exc:  # noqa: BLE001 -- bytes no parser foresaw: say so, never a traceback
        raise ImageReadError(path, f"cannot read the JPEG structure: {_one_line(exc)}") from None


def _check_jpeg(data: bytes, structure, path: Path, shape: tuple[int, int], allow_damaged: bool,
                notes: list[str]) -> tuple[np.ndarray | None, bool]:
    """``(valid, damaged)`` of a decoded JPEG (``data``: :func:`jpegtrace.jpegfile.repaired` bytes): refuse
    it when damaged, unless ``allow_damaged``, when a note says what is damaged and ``valid`` where it
    was decoded (None: everywhere, or not known)."""
    try:
        damage = jpegfile.find_damage(data, structure)
    except MemoryError:
        raise ImageReadError(path, "not enough memory to check the JPEG data") from None
    except TimeLimitError:  # the file's time ran out here: that is its failure
        raise
    except Exception as exc:  # noqa: BLE001 -- unforeseen bytes: refuse rather than pass them unchecked
        raise ImageReadError(path, f"cannot check the JPEG data: {_one_line(exc)}") from None
    if damage is None:
        if structure.truncated:
            notes.append("JPEG file ends without its end marker (its image data is complete)")
        return None, False
    what = "; ".join(damage.reasons)
    if not damage.undecoded.any():
        if not allow_damaged:
            raise ImageReadError(path, f"damaged JPEG: {what} (allow_damaged / --allow-damaged analyses it anyway)")
        notes.append(f"damaged JPEG ({what}): where cannot be located, the whole image analysed")
        return None, True
    height, width = shape
    mh, mw = structure.mcu_size
    valid = ~damage.undecoded[np.arange(height) // mh][:, np.arange(width) // mw]
    rows = np.flatnonzero(~valid.all(axis=1))
    share = f"{1.0 - float(valid.mean()):.0%} of the image"
    rest = "" if damage.placed else "; the rest of the damage cannot be located"
    if not allow_damaged:
        raise ImageReadError(path, f"damaged JPEG: {what}; rows {rows[0]}-{rows[-1]} ({share}) not decoded{rest} "
                                   "(allow_damaged / --allow-damaged analyses the rest)")
    notes.append(f"damaged JPEG ({what}): rows {rows[0]}-{rows[-1]} not decoded, left out ({share}){rest}")
    return valid, True


def _jpeg_file_quality(path, notes: list[str] | None = None) -> float | None:
    """The IJG QF nearest to the JPEG file's own luma table (:func:`jpegtrace.tables.file_tables`),
    with the note ``JPEG file, QF N by its own tables`` added to ``notes``."""
    from .jpeg import ijg_equivalent_quality
    from .tables import file_tables, match_ijg

    tables = file_tables(path)
    if not tables:
        return None
    luma = tables[0]
    quality = ijg_equivalent_quality(luma)
    if notes is not None:
        standard = match_ijg(luma)[0] is not None
        notes.insert(0, f"JPEG file, QF {quality} by its own tables" if standard
                     else f"JPEG file, QF ≈ {quality} by its own tables (non-standard)")
    return float(quality)


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
        from .limits import alarm_deferred

        with alarm_deferred():  # a time limit expiring half-way must not leave stderr redirected
            restored = True
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
        tmp.seek(0)
        text = tmp.read().decode("utf-8", "replace")
        lines.extend(line.strip() for line in text.splitlines() if line.strip())

    try:
        with tempfile.TemporaryFile() as tmp:
            try:  # redirected inside the try, so that whatever interrupts the block finds it restored
                os.dup2(tmp.fileno(), 2)
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


def _decode(fp, path: Path, max_pixels: int, kind: str | None = None
            ) -> tuple[np.ndarray, tuple[str, ...], str | None, bool | None]:
    """``(array, notes, format, lossy)`` of the first frame of the image in ``fp``."""
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning, palette and EXIF warnings
        try:
            im = Image.open(fp)
        except Image.DecompressionBombError as exc:
            raise _bomb(exc, path, max_pixels) from None
        except Image.UnidentifiedImageError:
            if kind in ("AVIF", "HEIF"):
                raise ImageReadError(path, f"HEIF/AVIF images are not supported ({kind} file that this "
                                           "Pillow cannot open; convert it to PNG first)") from None
            raise ImageReadError(path, "not an image file (unrecognised or corrupt format)") from None
        except TimeLimitError:  # the file's time ran out here: that is its failure
            raise
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
                lossy = _format_lossy(im)
                array = _pil_to_array(im, notes, deep)
            except ImageReadError:
                raise
            except Image.DecompressionBombError as exc:
                raise _bomb(exc, path, max_pixels) from None
            except MemoryError:
                raise ImageReadError(path, "not enough memory to decode the image") from None
            except TimeLimitError:  # the file's time ran out here: that is its failure
                raise
            except Exception as exc:  # noqa: BLE001 -- truncated data, corrupt chunks, decoder errors
                raise ImageReadError(path, f"cannot decode image: {_one_line(exc)}") from None
            return array, tuple(notes), im.format, lossy


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
    except TimeLimitError:  # not a fault of the file's extras: the file's time ran out
        raise
    except Exception:  # noqa: BLE001 -- a damaged later frame; the first may still be fine
        frames = None
    if frames == 1:
        return
    im.seek(0)
    notes.append(f"first of {frames} frames analysed" if frames else "first frame analysed (file has others)")


def _orientation_note(im: Image.Image, notes: list[str]) -> None:
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except TimeLimitError:  # not a fault of the file's extras: the file's time ran out
        raise
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
        notes.append("floating-point image scaled to 8 bits")
        # Two passes of strips (the finite range, then the scaling): float64 copies of the whole
        # image would cost 8 bytes a pixel each, more than the analysis itself.
        width, height = im.size
        rows = max(1, _STRIP_PIXELS // max(1, width))
        lo, hi = np.inf, -np.inf
        for y0 in range(0, height, rows):
            part = np.asarray(im.crop((0, y0, width, min(height, y0 + rows))), dtype=np.float64)
            finite = part[np.isfinite(part)]
            if finite.size:
                lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
        if lo > hi:  # no finite value at all
            lo = hi = 0.0
        scale = 255.0 / (hi - lo) if hi > lo else 0.0

        def scaled(strip):
            data = np.nan_to_num(np.asarray(strip, dtype=np.float64), nan=lo, posinf=hi, neginf=lo)
            return np.round((np.clip(data, lo, hi) - lo) * scale).astype(np.uint8)

        return _strips(im, np.uint8, None, scaled)
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
    except TimeLimitError:  # not a fault of the file's extras: the file's time ran out
        raise
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


def as_analysis_array(image, max_pixels: int = DEFAULT_MAX_PIXELS, *, allow_damaged: bool = False
                      ) -> tuple[np.ndarray, bool, tuple[str, ...]]:
    """Bring a path, PIL image or array to the uint8 ``(H, W, 3)`` RGB the network takes.

    Parameters
    ----------
    image : path, bytes path, PIL.Image.Image or ndarray
    max_pixels : int
        Pixel limit for files (see :func:`read_image`).
    allow_damaged : bool
        Read a damaged JPEG instead of refusing it (see :func:`read_image`); which of its pixels
        were decoded only :func:`read_analysis_input` says.

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
        For an unreadable or damaged file, a PIL image that fails to decode, or an array of unusable
        shape, type or values (NaN or infinite).
    """
    read = read_analysis_input(image, max_pixels=max_pixels, allow_damaged=allow_damaged)
    return read.rgb, read.grayscale, read.notes


def read_analysis_input(image, *, max_pixels: int = DEFAULT_MAX_PIXELS, allow_damaged: bool = False
                        ) -> AnalysisInput:
    """:func:`as_analysis_array`, with which pixels were decoded and what the input is.

    Parameters
    ----------
    image : path, bytes path, PIL.Image.Image or ndarray
    max_pixels : int
        Pixel limit for files (see :func:`read_image`).
    allow_damaged : bool
        Read a JPEG that decodes from missing or corrupt data instead of refusing it:
        :attr:`AnalysisInput.valid` is then False where the decoder filled the image in, and a
        note says which rows (:func:`jpegtrace.analyze` leaves them out of the evidence).

    Returns
    -------
    AnalysisInput

    Raises
    ------
    ImageReadError
        As :func:`as_analysis_array`.
    """
    notes: list[str] = []
    valid = info = None
    if isinstance(image, (str, bytes, os.PathLike)):
        read = _read_file(image, max_pixels, allow_damaged)
        array, valid, info = read.array, read.valid, read.info
        notes.extend(read.notes)
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
        except TimeLimitError:  # the file's time ran out here: that is its failure
            raise
        except Exception as exc:  # noqa: BLE001 -- a lazily opened PIL image may be truncated
            raise ImageReadError(name, f"cannot decode image: {_one_line(exc)}") from None
        info = InputInfo(format=image.format or "PIL image", lossy=_format_lossy(image), file_quality=None)
    elif isinstance(image, np.ndarray):
        array = image
        info = InputInfo(format="array", lossy=None, file_quality=None)
    else:
        raise ImageReadError(None, f"cannot analyse an object of type {type(image).__name__}")
    rgb, grayscale = _normalise_array(array, notes)
    return AnalysisInput(rgb=rgb, grayscale=grayscale, notes=tuple(notes), valid=valid, info=info)


def read_analysis_data(data: bytes, name: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                       allow_damaged: bool = False) -> AnalysisInput:
    """:func:`read_analysis_input` of a file's bytes already in memory (e.g. read from object storage);
    ``name`` is the file they come from, for errors. An empty ``data`` is an "empty file"."""
    path = Path(os.fsdecode(name))
    max_pixels = _check_max_pixels(max_pixels)
    if not data:
        raise ImageReadError(path, "empty file")
    read = _read_open(io.BytesIO(data), path, max_pixels, allow_damaged)
    notes = list(read.notes)
    rgb, grayscale = _normalise_array(read.array, notes)
    return AnalysisInput(rgb=rgb, grayscale=grayscale, notes=tuple(notes), valid=read.valid, info=read.info)


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
        if np.issubdtype(array.dtype, np.floating) and not _all_finite(array):
            raise ImageReadError(None, "array has NaN or infinite values")
        if np.issubdtype(array.dtype, np.floating) and array.size and np.nanmax(array) <= 1.0:
            notes.append("float image in [0, 1] scaled to 8 bits")
            array = np.round(np.clip(np.nan_to_num(array), 0, 1) * 255).astype(np.uint8)
        else:
            raise ImageReadError(None, f"unsupported array dtype {array.dtype} (use uint8, uint16 or float in [0, 1])")
    if array.ndim == 2:
        return np.broadcast_to(array[:, :, None], (*array.shape, 3)), True
    return np.ascontiguousarray(array), _channels_equal(array)


def _all_finite(array: np.ndarray) -> bool:
    """Whether no value is NaN or infinite (checked a strip at a time: no image-sized mask)."""
    rows = max(1, _STRIP_PIXELS // max(1, array[0].size))
    return all(np.isfinite(array[y0:y0 + rows]).all() for y0 in range(0, array.shape[0], rows))


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
