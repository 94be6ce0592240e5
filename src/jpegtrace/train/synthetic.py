"""Never-compressed images that are not photographs, made by code: the negatives a photo corpus lacks.

Flat colours, 8-bit ramps and gradients, noise, text, user-interface mock-ups, plots, pixel art,
tiled patterns and nearest-neighbour or bilinear rescales. Each image is a pure function of a
``numpy.random.Generator`` and the fonts it may use, so a training stream built on them stays a
function of its seed, and a test set drawn with other seeds and fonts stays apart from training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Fonts of the training stream: DejaVu faces that matplotlib ships (no system font is needed).
TRAINING_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf")
#: Fonts kept out of training, for fresh negatives (other faces and families).
HELD_OUT_FONTS = ("DejaVuSerif-Italic.ttf", "DejaVuSansMono-BoldOblique.ttf", "STIXGeneral.ttf", "cmtt10.ttf",
                  "cmr10.ttf")

#: The kinds :func:`synthetic_image` draws from, by name.
KINDS = ("flat", "ramp", "gradient", "noise", "text", "ui", "plot", "pixel_art", "tiles", "checker")
#: Kinds whose pixels carry (almost) no texture: a JPEG of them is (almost) the same image, so
#: they are used as never-compressed examples only.
TEXTURELESS_KINDS = ("flat", "ramp", "gradient")


def font_path(name: str) -> Path:
    """Path of a font that matplotlib ships (``mpl-data/fonts/ttf``)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name


@lru_cache(maxsize=64)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(name)), size)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, size=3))


def _flat(rng, h, w, fonts):
    value = rng.choice([0, 255, int(rng.integers(0, 256))], size=1)[0] if rng.random() < 0.3 else None
    colour = (value,) * 3 if value is not None else _colour(rng)
    return np.broadcast_to(np.array(colour, dtype=np.uint8), (h, w, 3)).copy()


def _ramp(rng, h, w, fonts):
    """An 8-bit linear ramp (each level a band), along a random axis, gray or between two colours."""
    t = np.linspace(0.0, 1.0, w if rng.random() < 0.5 else h)
    t = t[None, :] if t.size == w else t[:, None]
    t = np.broadcast_to(t, (h, w))
    a, b = np.array(_colour(rng), float), np.array(_colour(rng), float)
    if rng.random() < 0.5:
        a[:], b[:] = rng.integers(0, 64), rng.integers(192, 256)
    return np.round(a + (b - a) * t[..., None]).astype(np.uint8)


def _gradient(rng, h, w, fonts):
    """A smooth gradient: linear at any angle or radial, possibly dithered by a tiny noise."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(angle) + yy * np.sin(angle)
    else:
        cy, cx = rng.uniform(0, 1, size=2)
        t = np.hypot(yy - cy, xx - cx)
    t = (t - t.min()) / max(np.ptp(t), 1e-9)
    a, b = np.array(_colour(rng), float), np.array(_colour(rng), float)
    image = a + (b - a) * t[..., None]
    if rng.random() < 0.3:
        image += rng.uniform(-0.5, 0.5, size=image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _noise(rng, h, w, fonts):
    """White or smoothed noise, gray or colour, of random strength around a random level."""
    level = rng.uniform(30, 225)
    sigma = rng.uniform(2, 60)
    noise = rng.normal(0.0, sigma, size=(h, w, 3 if rng.random() < 0.5 else 1))
    if rng.random() < 0.4:
        k = int(rng.integers(2, 6))
        small = rng.normal(0.0, sigma, size=(h // k + 1, w // k + 1, noise.shape[2]))
        noise = np.asarray(Image.fromarray(np.clip(small + 128, 0, 255).astype(np.uint8).squeeze())
                           .resize((w, h), Image.BILINEAR), float).reshape(h, w, -1) - 128
    return np.clip(np.round(level + noise), 0, 255).astype(np.uint8).repeat(3 // noise.shape[2], axis=2)


def _text(rng, h, w, fonts):
    """Lines of text in one font on a plain background, on a line pitch that may be 8 or 16 pixels."""
    background, ink = _colour(rng), _colour(rng)
    if rng.random() < 0.6:
        background, ink = (255, 255, 255), (0, 0, 0)
    image = Image.new("RGB", (w, h), background)
    draw = ImageDraw.Draw(image)
    size = int(rng.integers(8, 28))
    pitch = int(rng.choice([8, 16, 24])) if rng.random() < 0.4 else size + int(rng.integers(2, 8))
    pitch = max(pitch, size // 2 + 4)
    font = _font(fonts[int(rng.integers(0, len(fonts)))], size)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-=+()[]{}<>/#"))
    y = int(rng.integers(-size // 2, 4))
    while y < h:
        line = "".join(rng.choice(letters, size=max(4, w // max(3, size // 2))))
        draw.text((int(rng.integers(0, 8)), y), line, fill=ink, font=font)
        y += pitch
    return np.asarray(image)


def _ui(rng, h, w, fonts):
    """A window-like mock-up: a title bar, panels, buttons with labels, check boxes and rules."""
    image = Image.new("RGB", (w, h), _colour(rng) if rng.random() < 0.3 else (240, 240, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, w, int(rng.integers(12, 28))], fill=_colour(rng))
    font = _font(fonts[int(rng.integers(0, len(fonts)))], int(rng.integers(9, 16)))
    for _ in range(int(rng.integers(3, 12))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, max(11, w // 2))), y0 + int(rng.integers(8, max(9, h // 4)))
        draw.rectangle([x0, y0, x1, y1], fill=_colour(rng), outline=_colour(rng) if rng.random() < 0.5 else None,
                       width=int(rng.integers(1, 3)))
        if rng.random() < 0.7:
            draw.text((x0 + 3, y0 + 2), "OK Cancel File Edit View"[int(rng.integers(0, 18)):], fill=_colour(rng),
                      font=font)
    return np.asarray(image)


def _plot(rng, h, w, fonts):
    """A matplotlib line, scatter or bar chart with axes, ticks and labels, rendered at the image size."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 64
    figure = Figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(figure)  # its own canvas: no pyplot state, no global backend switch
    axes = figure.add_subplot()
    x = np.linspace(0, rng.uniform(1, 10), 50)
    kind = int(rng.integers(0, 3))
    for _ in range(int(rng.integers(1, 4))):
        y = np.cumsum(rng.normal(size=x.size))
        if kind == 0:
            axes.plot(x, y, linewidth=rng.uniform(0.5, 2.5))
        elif kind == 1:
            axes.scatter(x, y, s=rng.uniform(2, 20))
        else:
            axes.bar(x[::5], y[::5], width=0.3)
    axes.set_title("run %d" % int(rng.integers(0, 100)), fontsize=int(rng.integers(6, 12)))
    axes.grid(rng.random() < 0.5)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[:h, :w, :3])


def _pixel_art(rng, h, w, fonts):
    """A small palette image scaled up by an integer factor with nearest-neighbour (blocks of 2..16 px)."""
    factor = int(rng.choice([2, 3, 4, 8, 16]))
    palette = rng.integers(0, 256, size=(int(rng.integers(2, 16)), 3))
    small = palette[rng.integers(0, len(palette), size=(h // factor + 1, w // factor + 1))]
    return np.repeat(np.repeat(small, factor, axis=0), factor, axis=1)[:h, :w].astype(np.uint8)


def _tiles(rng, h, w, fonts):
    """A random motif repeated on a period of 4..32 pixels (8 and 16 among them)."""
    period = int(rng.choice([4, 6, 8, 12, 16, 32]))
    motif = rng.integers(0, 256, size=(period, period, 3))
    if rng.random() < 0.5:  # a smoother motif
        motif = np.asarray(Image.fromarray(motif.astype(np.uint8)).resize((period, period), Image.BILINEAR))
    tiled = np.tile(motif, (h // period + 1, w // period + 1, 1))
    return tiled[:h, :w].astype(np.uint8)


def _checker(rng, h, w, fonts):
    """A checkerboard or stripes of two colours on a period of 2..32 pixels."""
    period = int(rng.choice([2, 4, 8, 16, 32]))
    yy, xx = np.mgrid[0:h, 0:w] // period
    pattern = (yy + xx) % 2 if rng.random() < 0.5 else (xx if rng.random() < 0.5 else yy) % 2
    colours = np.array([_colour(rng), _colour(rng)], dtype=np.uint8)
    return colours[pattern]


_MAKERS: dict[str, Callable] = {"flat": _flat, "ramp": _ramp, "gradient": _gradient, "noise": _noise,
                                "text": _text, "ui": _ui, "plot": _plot, "pixel_art": _pixel_art,
                                "tiles": _tiles, "checker": _checker}


def synthetic_image(rng: np.random.Generator, height: int, width: int, *, kind: str | None = None,
                    fonts: Sequence[str] = TRAINING_FONTS) -> tuple[np.ndarray, str]:
    """A never-compressed image that is not a photograph.

    Parameters
    ----------
    rng : numpy.random.Generator
        Every random choice comes from it.
    height, width : int
        Size of the image.
    kind : str, optional
        One of :data:`KINDS`; drawn uniformly by default.
    fonts : sequence of str
        File names of the fonts text may use (see :func:`font_path`).

    Returns
    -------
    image : ndarray of uint8, (height, width, 3)
    kind : str
        The kind that was drawn.
    """
    if kind is None:
        kind = KINDS[int(rng.integers(0, len(KINDS)))]
    if kind not in _MAKERS:
        raise ValueError(f"unknown kind {kind!r} (one of {', '.join(KINDS)})")
    image = _MAKERS[kind](rng, height, width, fonts)
    return np.ascontiguousarray(image, dtype=np.uint8), kind


def rescaled(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` up- or downscaled by a random factor, nearest-neighbour or bilinear.

    Integer nearest-neighbour upscales (2x, 4x, 8x) repeat pixels on an 8-pixel-compatible period,
    which a naive JPEG grid check takes for a block grid.
    """
    h, w = image.shape[:2]
    if rng.random() < 0.6:
        factor = float(rng.choice([2, 3, 4, 8])) if rng.random() < 0.7 else rng.uniform(1.2, 3.0)
    else:
        factor = rng.uniform(0.4, 0.9)
    method = Image.NEAREST if rng.random() < 0.6 else Image.BILINEAR
    size = (max(8, int(round(w * factor))), max(8, int(round(h * factor))))
    return np.asarray(Image.fromarray(image).resize(size, method))
