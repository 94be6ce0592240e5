"""Reading every format a user meets, and refusing bad input with one documented exception."""

import io
import os
import warnings

import numpy as np
import pytest
from imagefiles import bmp_header, gif_header, jpeg_with_size, png16_rgb, png_bytes, tiff_bytes
from PIL import Image, ImageFile, features

from jpegtrace import ImageReadError, JpegTraceError, analyze
from jpegtrace import io as images_module
from jpegtrace import read_image
from jpegtrace.io import DEFAULT_MAX_PIXELS, as_analysis_array


@pytest.fixture(scope="module")
def rgb():
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, size=(23, 31, 3), dtype=np.uint8)


def _save(path, image, **kwargs):
    image.save(path, **kwargs)
    return path


# --------------------------------------------------------------------------- formats

def test_png_rgb_and_bmp_read_exactly(tmp_path, rgb):
    for name in ("a.png", "a.bmp", "a.tif"):
        array, notes = read_image(_save(tmp_path / name, Image.fromarray(rgb)))
        np.testing.assert_array_equal(array, rgb)
        assert array.dtype == np.uint8 and notes == ()


def test_grayscale_png_is_grayscale(tmp_path, rgb):
    gray = rgb[:, :, 0]
    path = _save(tmp_path / "g.png", Image.fromarray(gray))
    array, notes = read_image(path)
    np.testing.assert_array_equal(array, gray)
    analysed, grayscale, _ = as_analysis_array(path)
    assert grayscale and analysed.shape == (23, 31, 3)
    assert all(np.array_equal(analysed[:, :, c], gray) for c in range(3))


def test_one_bit_png(tmp_path):
    bits = np.arange(20 * 9).reshape(20, 9) % 3 == 0
    array, _ = read_image(_save(tmp_path / "b.png", Image.fromarray(bits)))
    np.testing.assert_array_equal(array, np.where(bits, 255, 0))


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_16_bit_grayscale_is_rounded_to_8_bits(tmp_path, suffix):
    values = np.array([[0, 1, 128, 129, 257, 32767], [32896, 65279, 65280, 65534, 65535, 1000]], np.uint16)
    path = _save(tmp_path / f"g16.{suffix}", Image.fromarray(values))  # mode I;16
    array, _ = read_image(path)
    assert array.dtype == np.uint16
    np.testing.assert_array_equal(array, values)
    analysed, grayscale, notes = as_analysis_array(path)
    assert grayscale and analysed.dtype == np.uint8
    np.testing.assert_array_equal(analysed[:, :, 0], np.round(values / 257.0).astype(np.uint8))
    assert "16-bit data reduced to 8 bits" in notes


@pytest.mark.parametrize("maker,suffix", [(png16_rgb, "png"), (tiff_bytes, "tif")])
def test_16_bit_colour_is_reduced_to_8_bits_with_a_note(tmp_path, maker, suffix):
    values = np.random.default_rng(1).integers(0, 65536, size=(9, 11, 3), dtype=np.uint16)
    path = tmp_path / f"rgb16.{suffix}"
    path.write_bytes(maker(values))
    array, notes = read_image(path)
    assert array.shape == (9, 11, 3) and array.dtype == np.uint8
    assert np.abs(array.astype(int) - values / 257.0).max() <= 1.0  # Pillow keeps the high byte
    assert "16-bit data reduced to 8 bits" in notes


def test_palette_png_with_transparency(tmp_path):
    palette = Image.new("P", (8, 6))
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    palette.putdata([i % 3 for i in range(48)])
    path = _save(tmp_path / "p.png", palette, transparency=1)
    array, notes = read_image(path)
    assert array.shape == (6, 8, 3) and array.dtype == np.uint8
    assert tuple(array[0, 0]) == (255, 0, 0) and tuple(array[0, 1]) == (0, 255, 0)
    assert "alpha channel dropped" in notes


def test_rgba_and_la_drop_alpha(tmp_path, rgb):
    alpha = np.linspace(0, 255, rgb.shape[0] * rgb.shape[1]).reshape(rgb.shape[:2]).astype(np.uint8)
    array, notes = read_image(_save(tmp_path / "rgba.png", Image.fromarray(np.dstack([rgb, alpha]))))
    np.testing.assert_array_equal(array, rgb)
    assert "alpha channel dropped" in notes
    la = Image.merge("LA", [Image.fromarray(rgb[:, :, 1]), Image.fromarray(alpha)])
    array, notes = read_image(_save(tmp_path / "la.png", la))
    np.testing.assert_array_equal(array, rgb[:, :, 1])
    assert "alpha channel dropped" in notes


def test_multipage_tiff_reads_the_first_page_with_a_note(tmp_path, rgb):
    pages = [Image.fromarray(rgb), Image.fromarray(255 - rgb), Image.fromarray(rgb[::-1].copy())]
    path = _save(tmp_path / "pages.tif", pages[0], save_all=True, append_images=pages[1:])
    array, notes = read_image(path)
    np.testing.assert_array_equal(array, rgb)
    assert "first of 3 frames analysed" in notes


def test_animated_gif_reads_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (12, 10), colour) for colour in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    path = _save(tmp_path / "anim.gif", frames[0], save_all=True, append_images=frames[1:], duration=50)
    array, notes = read_image(path)
    assert array.shape == (10, 12, 3)
    assert array[..., 0].min() > 200 and array[..., 1:].max() < 50
    assert "first of 3 frames analysed" in notes


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"subsampling": 0, "quality": 95}])
def test_jpeg_baseline_and_progressive(tmp_path, rgb, options):
    path = _save(tmp_path / "a.jpg", Image.fromarray(rgb), **options)
    array, notes = read_image(path)
    np.testing.assert_array_equal(array, np.asarray(Image.open(path).convert("RGB")))
    assert array.shape == rgb.shape
    assert notes == (f"JPEG file, QF {options.get('quality', 75)} by its own tables",)  # the file's own QF


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path, rgb):
    path = _save(tmp_path / "cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), quality=95)
    array, notes = read_image(path)
    assert array.shape == rgb.shape and array.dtype == np.uint8
    assert "CMYK converted to RGB" in notes
    assert np.abs(array.astype(int) - rgb).mean() < 20


def test_grayscale_jpeg(tmp_path, rgb):
    array, _ = read_image(_save(tmp_path / "g.jpg", Image.fromarray(rgb[:, :, 0])))
    assert array.shape == rgb.shape[:2]


def test_exif_orientation_is_not_applied(tmp_path, rgb):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = _save(tmp_path / "rotated.jpg", Image.fromarray(rgb), exif=exif.tobytes())
    array, notes = read_image(path)
    assert array.shape == rgb.shape  # stored orientation: 23 rows, 31 columns
    assert any("EXIF orientation 6 not applied" in n for n in notes)


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_webp_lossless_and_with_alpha(tmp_path, rgb):
    array, notes = read_image(_save(tmp_path / "a.webp", Image.fromarray(rgb), lossless=True))
    np.testing.assert_array_equal(array, rgb)
    rgba = Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)]))
    array, notes = read_image(_save(tmp_path / "b.webp", rgba, lossless=True, exact=True))
    np.testing.assert_array_equal(array, rgb)
    assert "alpha channel dropped" in notes


def test_bytes_and_non_utf8_paths(tmp_path, rgb):
    raw = os.fsencode(tmp_path) + b"/caf\xe9-\xff.png"  # Latin-1 bytes, not valid UTF-8
    with open(raw, "wb") as f:
        Image.fromarray(rgb).save(f, format="PNG")
    np.testing.assert_array_equal(read_image(raw)[0], rgb)
    np.testing.assert_array_equal(read_image(os.fsdecode(raw))[0], rgb)


# --------------------------------------------------------------------------- bad input

def _reason(path, **kwargs):
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kwargs)
    err = info.value
    assert isinstance(err, JpegTraceError)
    assert err.path == os.fsdecode(path)
    assert "\n" not in err.reason and err.reason
    assert str(err) == f"{err.path}: {err.reason}"
    return err.reason


def test_missing_file_directory_and_empty_file(tmp_path):
    assert _reason(tmp_path / "missing.png") == "no such file"
    assert "directory" in _reason(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    assert _reason(tmp_path / "empty.png") == "empty file"


def test_text_file_named_png(tmp_path):
    (tmp_path / "notes.png").write_text("this is not a picture\n" * 10)
    assert "not an image file" in _reason(tmp_path / "notes.png")


def test_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    assert _reason(tmp_path / "pipe.png") == "not a regular file"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9])
def test_truncated_png_and_jpeg(tmp_path, rgb, fmt, keep):
    buf = io.BytesIO()
    noisy = np.random.default_rng(2).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(buf, format=fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[:int(len(data) * keep)])
    reason = _reason(path)
    if fmt == "JPEG" and "cannot decode image" not in reason:  # cut inside the image data, not its headers
        assert reason.startswith("damaged JPEG: the file is truncated; rows ")
    else:
        assert "cannot decode image" in reason


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files without permission")
def test_unreadable_file(tmp_path, rgb):
    path = _save(tmp_path / "secret.png", Image.fromarray(rgb))
    path.chmod(0)
    try:
        assert _reason(path) == "permission denied"
    finally:
        path.chmod(0o644)


def test_permission_error_on_open_is_reported(tmp_path, rgb, monkeypatch):
    path = _save(tmp_path / "secret.png", Image.fromarray(rgb))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(images_module, "open", refuse, raising=False)
    assert _reason(path) == "permission denied"


BOMBS = {
    "png": lambda: png_bytes(100_000, 100_000, 8, 2, None),
    "bmp": lambda: bmp_header(100_000, 100_000),
    "gif": lambda: gif_header(65_535, 65_535),
    "gif-frame": lambda: gif_header(16, 16, frame=(60_000, 60_000)),  # size known only at the frame
    "jpeg": lambda: jpeg_with_size(65_535, 65_535),  # frame header after an EXIF block
    "tiff": lambda: tiff_bytes(np.zeros((4, 4), np.uint8), width=100_000, height=100_000),
}


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_decompression_bomb_headers_are_refused_before_decoding(tmp_path, kind, monkeypatch):
    def decode(*args, **kwargs):
        raise AssertionError("pixel data must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)
    path = tmp_path / f"bomb.{kind}"
    path.write_bytes(BOMBS[kind]())
    reason = _reason(path)
    assert "exceeds the limit of 64,000,000 pixels" in reason and "decompression bomb" in reason
    assert DEFAULT_MAX_PIXELS == 64_000_000


def test_pixel_limit_is_configurable_and_checked_before_decoding(tmp_path, rgb, monkeypatch):
    path = _save(tmp_path / "a.png", Image.fromarray(rgb))  # 31 x 23 = 713 pixels
    assert read_image(path, max_pixels=713)[0].shape == rgb.shape
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: (_ for _ in ()).throw(AssertionError))
    assert _reason(path, max_pixels=712).startswith("image of 31x23 = 713 pixels exceeds the limit of 712")
    with pytest.raises(ValueError):
        read_image(path, max_pixels=0)


def test_late_frame_size_is_checked(tmp_path):
    path = tmp_path / "frame.gif"
    path.write_bytes(gif_header(10, 10, frame=(200, 200)))  # the screen says 100 pixels, the frame 40000
    assert "200x200" in _reason(path, max_pixels=1000)


def test_pillow_global_limit_neither_overrides_nor_is_changed(tmp_path, rgb, monkeypatch):
    path = _save(tmp_path / "a.png", Image.fromarray(rgb))  # 713 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow alone would refuse above 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not escape either
        np.testing.assert_array_equal(read_image(path)[0], rgb)
        assert "exceeds the limit of 500" in _reason(path, max_pixels=500)
    assert Image.MAX_IMAGE_PIXELS == 100
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow would allow up to 2000 pixels
    assert "exceeds the limit of 700" in _reason(path, max_pixels=700)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_analyze_raises_the_documented_error_with_path_and_reason(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    with pytest.raises(ImageReadError) as info:
        analyze(tmp_path / "bad.jpg", model=object())  # never reaches the model
    assert info.value.path == str(tmp_path / "bad.jpg") and info.value.reason
    with pytest.raises(ImageReadError, match="exceeds the limit of 10 pixels"):
        analyze(_save(tmp_path / "a.png", Image.new("RGB", (4, 4))), model=object(), max_pixels=10)


def test_lazily_opened_truncated_pil_image_raises_the_documented_error(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[:4000])
    with Image.open(tmp_path / "cut.png") as im, pytest.raises(ImageReadError, match="cannot decode"):
        as_analysis_array(im)


def test_header_claiming_more_rows_than_its_data_holds_is_refused(tmp_path):
    """Found by fuzzing: a tiny TIFF claiming 10 x 16776960 pixels with one strip of 12 rows."""
    data = bytearray(tiff_bytes(np.full((12, 10, 3), 77, np.uint8)))
    at = data.index(bytes([1, 1, 4, 0, 1, 0, 0, 0])) + 8  # value of the ImageLength (257) entry
    data[at:at + 4] = (16776960).to_bytes(4, "little")
    path = tmp_path / "tall.tif"
    path.write_bytes(bytes(data))
    assert "covers only 120 of its 167,769,600 pixels" in _reason(path, max_pixels=400_000_000)
