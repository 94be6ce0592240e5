"""Hand-made image files for tests: formats Pillow cannot write, and headers that lie about their size."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes | None) -> bytes:
    """A PNG from raw scanlines (filter byte included).

    ``rows=None`` gives a header with only a scrap of pixel data, as in a decompression bomb
    whose header lies about its size.
    """
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = _png_chunk(b"IHDR", header)
    if rows is None:
        body += _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    else:
        body += _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def png16_rgb(array: np.ndarray) -> bytes:
    """16-bit RGB PNG (Pillow cannot write one) from a uint16 ``(H, W, 3)`` array."""
    height, width, _ = array.shape
    rows = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))
    return png_bytes(width, height, 16, 2, rows)


def tiff_bytes(array: np.ndarray, width: int | None = None, height: int | None = None) -> bytes:
    """Uncompressed little-endian TIFF of a uint8/uint16 ``(H, W)`` or ``(H, W, 3)`` array.

    ``width``/``height`` override the size written in the header (to make lying headers).
    """
    samples = 1 if array.ndim == 2 else array.shape[2]
    bits = array.dtype.itemsize * 8
    h, w = array.shape[:2]
    width, height = width or w, height or h
    data = array.astype("<u2" if bits == 16 else np.uint8).tobytes()
    entries = 10
    ifd_offset = 8
    extra_offset = ifd_offset + 2 + entries * 12 + 4
    bits_offset = extra_offset
    data_offset = bits_offset + 2 * samples
    tags = [
        (256, 4, 1, width), (257, 4, 1, height),
        (258, 3, samples, bits if samples == 1 else bits_offset),
        (259, 3, 1, 1), (262, 3, 1, 1 if samples == 1 else 2), (273, 4, 1, data_offset),
        (277, 3, 1, samples), (278, 4, 1, height), (279, 4, 1, len(data)), (284, 3, 1, 1),
    ]
    out = io.BytesIO()
    out.write(b"II*\x00" + struct.pack("<I", ifd_offset))
    out.write(struct.pack("<H", entries))
    for tag, kind, count, value in tags:
        packed = struct.pack("<HI", value, 0)[:4] if kind == 3 and count == 1 else struct.pack("<I", value)
        out.write(struct.pack("<HHI", tag, kind, count) + packed)
    out.write(struct.pack("<I", 0))
    out.write(struct.pack(f"<{samples}H", *([bits] * samples)))
    out.write(data)
    return out.getvalue()


def bmp_header(width: int, height: int) -> bytes:
    """A 24-bit BMP header claiming ``width`` x ``height`` pixels, followed by a few bytes."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 14 + 40) + info + b"\x00" * 16


def gif_header(width: int, height: int, frame: tuple[int, int] | None = None) -> bytes:
    """A GIF with a logical screen of ``width`` x ``height``; its one frame has size ``frame``."""
    fw, fh = frame or (width, height)
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"," + struct.pack("<HHHHB", 0, 0, fw, fh, 0) + b"\x02\x02\x44\x01\x00"
    return head + image + b";"


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small real JPEG (with an EXIF block before the frame header) whose SOF claims another size."""
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "jpegtrace"
    Image.new("RGB", (16, 16), (90, 120, 200)).save(buf, format="JPEG", exif=exif.tobytes())
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)
