"""Camera-like processing without JPEG: what a camera's pipeline does to pixels before any compression.

Demosaicing of a Bayer mosaic, denoising and blur, sharpening, sensor noise, tone curves and
saturation with clipping (:func:`camera_look`), a strongly saturated "vivid" look (:func:`vivid_look`),
and, after JPEG, light processing that keeps the blocks (:func:`after_jpeg`). A network trained only on
photos downscaled 4x or more (crisp, texture-rich, rarely clipped) takes these looks for compression;
training patches that pass through them, compressed or not, teach it that they are not.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..grid.dct import _JFIF_LUMA


def bayer_demosaic(image: np.ndarray) -> np.ndarray:
    """Sample ``image`` (float RGB) on an RGGB Bayer mosaic and interpolate it back bilinearly.

    Notes
    -----
    The bilinear demosaic is the classic one: each missing colour is the mean of its nearest
    samples of that colour (kernels ``[1 2 1; 2 4 2; 1 2 1] / 4`` for red and blue,
    ``[0 1 0; 1 4 1; 0 1 0] / 4`` for green), which leaves the zipper and colour-fringe
    pattern of cheap camera pipelines on edges.
    """
    h, w = image.shape[:2]
    masks = np.zeros((3, h, w), dtype=bool)
    masks[0, 0::2, 0::2] = True
    masks[1, 0::2, 1::2] = masks[1, 1::2, 0::2] = True
    masks[2, 1::2, 1::2] = True
    rb = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], float) / 4
    g = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], float) / 4
    out = np.empty_like(image)
    for c, kernel in enumerate((rb, g, rb)):
        out[..., c] = ndimage.convolve(image[..., c] * masks[c], kernel, mode="mirror")
    return out


def _tone_curve(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        return x ** rng.uniform(0.6, 1.5)  # gamma
    strength = rng.uniform(0.2, 1.0)  # an S-curve, as cameras' "vivid" looks
    return x + strength * (x - x ** 2) * (x - 0.5) * 2


def camera_look(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pass a uint8 RGB region through a random camera-like pipeline (each stage on or off at random).

    Parameters
    ----------
    image : ndarray of uint8, (H, W, 3)
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of uint8, (H, W, 3)
        Demosaiced, denoised or blurred, sharpened, noisy, tone-mapped and saturated, then
        rounded and clipped to 8 bits (saturated colours clip, as in camera JPEGs' sources).
    """
    x = image.astype(np.float64) / 255.0
    if rng.random() < 0.5:
        x = bayer_demosaic(x)
    if rng.random() < 0.5:  # denoising or optical blur
        x = ndimage.gaussian_filter(x, sigma=(rng.uniform(0.3, 1.2),) * 2 + (0,))
    if rng.random() < 0.5:  # unsharp masking, as every camera does
        blurred = ndimage.gaussian_filter(x, sigma=(rng.uniform(0.6, 2.0),) * 2 + (0,))
        x = x + rng.uniform(0.3, 1.5) * (x - blurred)
    if rng.random() < 0.5:  # sensor noise: shot noise grows with the signal, read noise does not
        shot, read = rng.uniform(0, 0.02), rng.uniform(0, 0.01)
        x = x + rng.normal(size=x.shape) * np.sqrt(shot ** 2 * np.clip(x, 0, 1) + read ** 2)
    if rng.random() < 0.5:
        x = _tone_curve(np.clip(x, 0, 1), rng)
    if rng.random() < 0.5:  # saturation, often pushed past the gamut
        gray = x.mean(axis=2, keepdims=True)
        x = gray + rng.uniform(1.0, 2.2) * (x - gray)
    if rng.random() < 0.2:  # exposure pushed up: large clipped areas
        x = x * rng.uniform(1.2, 2.0)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def vivid_look(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Give a uint8 RGB region the look of a strongly saturated photo: chroma and contrast raised past the gamut.

    Parameters
    ----------
    image : ndarray of uint8, (H, W, 3)
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of uint8, (H, W, 3)
        Chroma (the distance of each pixel from its luma) scaled by 1.3-2.5, then contrast by
        1.0-1.4 about the region's mean luma, rounded and clipped to 8 bits: a channel or more sits
        at 0 or 255 over much of the region.

    Notes
    -----
    :func:`camera_look` saturates a fifth of its regions by up to 2.2 and rarely clips large areas.
    Camera photos with a "vivid" look, and edited ones, clip one or two channels over whole
    regions; a clipped channel is flat, carries no JPEG trace, and next to clean detail the network
    guessed "compressed" there in blotches (issue 20). Regions with this look, compressed or not,
    teach it what such pixels are.
    """
    x = image.astype(np.float32)
    luma = (x @ _JFIF_LUMA.astype(np.float32))[..., None]
    x = luma + rng.uniform(1.3, 2.5) * (x - luma)
    mean = luma.mean()
    x = mean + rng.uniform(1.0, 1.4) * (x - mean)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


#: Highest QF whose JPEG :func:`after_jpeg` processes in training: above it, noise of a grey level or
#: two hides the blocks as well as the lattice, and the label would ask for what the pixels no longer show.
AFTER_JPEG_MAX_QUALITY = 85


def after_jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light processing of a decoded JPEG: a gamma, mild noise, or both, as an editor or a re-save in
    another format applies them.

    Parameters
    ----------
    image : ndarray of uint8, (H, W, 3)
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of uint8, (H, W, 3)
        With a gamma of 0.8-1.25 (a third of the time), Gaussian noise of 0.5-1.5 grey levels (a
        third) or both (a third), rounded and clipped to 8 bits.

    Notes
    -----
    Either breaks the integer lattice of the DCT coefficients, which the grid check and the table
    reader rely on; the block edges and ringing stay, and those are what the network is to see.
    """
    x = image.astype(np.float64)
    kind = int(rng.integers(0, 3))  # 0: gamma, 1: noise, 2: both
    if kind != 1:
        x = 255.0 * (x / 255.0) ** rng.uniform(0.8, 1.25)
    if kind != 0:
        x = x + rng.normal(0.0, rng.uniform(0.5, 1.5), size=x.shape)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)
