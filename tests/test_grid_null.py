"""Periodic and piecewise-constant content cannot fool the grid check; near-lossless JPEGs are still found."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from jpegtrace.grid import find_jpeg_grid
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.train.synthetic import HELD_OUT_FONTS, font_path, synthetic_image


def _monospace_text(size=12, pitch=16, side=384, background=(255, 255, 255), ink=(0, 0, 0)):
    """Code in a 12-px monospace font on a 16-px line pitch: lines on the JPEG grid's period."""
    from PIL import ImageFont

    image = Image.new("RGB", (side, side), background)
    draw, font = ImageDraw.Draw(image), ImageFont.truetype(str(font_path("DejaVuSansMono.ttf")), size)
    for y in range(0, side, pitch):
        draw.text((0, y), "def analyze(image, model=None): return [x * 2 for x in range(10)]", fill=ink, font=font)
    return np.asarray(image)


@pytest.mark.parametrize("kind", ["pixel_art", "tiles", "checker", "text", "ui", "plot"])
def test_generated_graphics_show_no_grid(kind):
    rng = np.random.default_rng(2026)  # not a training seed; held-out fonts
    scores = [find_jpeg_grid(synthetic_image(rng, 256, 256, kind=kind, fonts=HELD_OUT_FONTS)[0]).score
              for _ in range(6)]
    assert max(scores) < 8.0, scores


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_nearest_neighbour_upscales_show_no_grid(photo, factor):
    upscaled = np.repeat(np.repeat(photo[:96, :96], factor, axis=0), factor, axis=1)
    assert not find_jpeg_grid(upscaled).found


def test_text_on_a_16_pixel_pitch_shows_no_grid():
    assert not find_jpeg_grid(_monospace_text()).found


@pytest.mark.parametrize("quality,subsampling", [(97, "4:4:4"), (100, "4:4:4"), (98, "4:2:0")])
def test_near_lossless_jpegs_are_still_found(photo, quality, subsampling):
    assert find_jpeg_grid(jpeg_compress(photo, quality, subsampling)).found


def test_a_jpeg_of_text_is_found():
    # Off-white paper: blocks with pixels clipped at 255 carry no grid (the check leaves them out).
    assert find_jpeg_grid(jpeg_compress(_monospace_text(background=(236, 232, 224), ink=(40, 40, 60)), 90)).found
