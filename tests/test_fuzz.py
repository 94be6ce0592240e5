"""Fuzzing the image loader: whatever the bytes, only ImageReadError may escape.

A few hundred examples run here; fuzz/fuzz_loader.py runs many more (see README).
"""

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imagefiles import png16_rgb
from PIL import Image, features

from jpegtrace import ImageReadError, read_image
from jpegtrace.io import as_analysis_array

#: End-to-end: seconds each (`make check` leaves them out).
pytestmark = pytest.mark.slow

#: Small, so that a mutated header claiming a large size is refused instead of decoded.
MAX_PIXELS = 1 << 16



def fuzz(examples: int):
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    gray = Image.fromarray(rng.integers(0, 256, (9, 8), dtype=np.uint8))
    seeds = {}

    def add(name, image, fmt, **kwargs):
        buf = io.BytesIO()
        image.save(buf, format=fmt, **kwargs)
        seeds[name] = buf.getvalue()

    add("png", rgb, "PNG")
    add("png-gray16", Image.fromarray(rng.integers(0, 65536, (7, 6), dtype=np.uint16)), "PNG")
    add("png-palette", rgb.convert("P"), "PNG", transparency=3)
    add("jpeg", rgb, "JPEG", quality=80)
    add("jpeg-progressive", rgb, "JPEG", progressive=True)
    add("jpeg-cmyk", rgb.convert("CMYK"), "JPEG")
    add("gif", rgb.convert("P"), "GIF", save_all=True, append_images=[gray.convert("P")])
    add("bmp", rgb, "BMP")
    add("tiff", rgb, "TIFF")
    add("tiff-deflate", gray, "TIFF", compression="tiff_adobe_deflate")
    if features.check("webp"):
        add("webp", rgb, "WEBP", quality=70)
    seeds["png-rgb16"] = png16_rgb(rng.integers(0, 65536, (5, 4, 3), dtype=np.uint16))
    return seeds


SEEDS = _seeds()


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC so that corruption reaches the decoder instead of the CRC check."""
    out, pos = bytearray(data[:8]), 8
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        end = pos + 8 + length
        if end + 4 > len(data):
            out += data[pos:]
            break
        body = data[pos + 4:end]
        out += data[pos:end] + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        pos = end + 4
    else:
        out += data[pos:]
    return bytes(out)


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "input.img"


def check_loader(path, data: bytes) -> None:
    """Read ``data`` from ``path``: a sane array or ImageReadError, nothing else."""
    path.write_bytes(data)
    try:
        array, notes = read_image(path, max_pixels=MAX_PIXELS)
    except ImageReadError as exc:
        assert exc.path == str(path)
        assert exc.reason and "\n" not in exc.reason
        return
    assert array.dtype in (np.uint8, np.uint16)
    assert array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)
    assert 0 < array.shape[0] * array.shape[1] <= MAX_PIXELS
    assert all(isinstance(n, str) for n in notes)
    rgb, _, _ = as_analysis_array(array)
    assert rgb.dtype == np.uint8 and rgb.shape == array.shape[:2] + (3,)


@fuzz(150)
@given(data=st.binary(max_size=2048))
def test_random_bytes(target, data):
    check_loader(target, data)


MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBP"]


@fuzz(100)
@given(magic=st.sampled_from(MAGIC), body=st.binary(max_size=1024))
def test_random_bytes_behind_a_real_signature(target, magic, body):
    check_loader(target, magic + body)


@fuzz(200)
@given(name=st.sampled_from(sorted(SEEDS)),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
       cut=st.none() | st.floats(0, 1),
       insert=st.none() | st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=64)),
       fix_crc=st.booleans())
def test_corrupted_valid_files(target, name, edits, cut, insert, fix_crc):
    data = bytearray(SEEDS[name])
    for where, value in edits:
        data[int(where * len(data))] = value
    if insert is not None:
        at = int(insert[0] * len(data))
        data[at:at] = insert[1]
    if cut is not None:
        del data[int(cut * len(data)):]
    data = bytes(data)
    if fix_crc and name.startswith("png"):
        data = fix_png_crcs(data)
    check_loader(target, data)


def test_seeds_are_valid_images(target):
    for name, data in SEEDS.items():
        target.write_bytes(data)
        array, _ = read_image(target)
        assert array.size > 0, name
