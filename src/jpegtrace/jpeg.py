"""JPEG synthesis through Pillow's libjpeg: compress an array and decode it back."""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image

#: Pillow's ``subsampling`` codes by their usual names.
SUBSAMPLING_CODES = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def jpeg_compress(
    image: np.ndarray,
    quality: int,
    subsampling: str = "4:2:0",
    grid_offset: tuple[int, int] = (0, 0),
    *,
    qtables: Sequence[np.ndarray] | None = None,
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
    qtables : sequence of ndarray, optional
        Quantisation tables (8x8, natural order; luma first, then chroma) to use instead of
        the IJG tables scaled to ``quality``, which is then ignored (as a camera's own tables).

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
    decoded = _roundtrip(padded, int(quality), subsampling, qtables)
    return decoded[dy:, dx:]


def _roundtrip(image: np.ndarray, quality: int, subsampling: str, qtables=None) -> np.ndarray:
    buffer = io.BytesIO()
    pil = Image.fromarray(image)
    options = {"quality": quality}
    if qtables is not None:
        tables = [np.clip(np.asarray(t), 1, 255).astype(int).ravel().tolist() for t in qtables]
        options = {"qtables": tables[:1] if image.ndim == 2 else tables}
    if image.ndim == 3:
        options["subsampling"] = SUBSAMPLING_CODES[subsampling]
    pil.save(buffer, format="JPEG", **options)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("L" if image.ndim == 2 else "RGB"))


@lru_cache(maxsize=1)
def ijg_base_tables() -> tuple[np.ndarray, np.ndarray]:
    """The luma and chroma tables of the JPEG standard's Annex K, as libjpeg scales them (8x8, natural order).

    Notes
    -----
    Read back from a QF-50 JPEG that Pillow's libjpeg writes, where the IJG scaling is 100 %, so
    the tables are the ones this libjpeg uses rather than a copy typed in here.
    """
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG", quality=50)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        tables = decoded.quantization
    return tuple(np.array(tables[i], dtype=np.int64).reshape(8, 8) for i in (0, 1))


def ijg_table(quality: float, *, chroma: bool = False) -> np.ndarray:
    """The IJG quantisation table of ``quality`` (1..100), as libjpeg's ``jpeg_quality_scaling`` makes it.

    Notes
    -----
    libjpeg scales the Annex K table by ``5000 / Q`` percent below QF 50 and ``200 - 2 Q``
    above, rounds, and keeps every step in 1..255 (baseline JPEG). ``5000 / Q`` is an integer
    division there (QF 30 scales by 166 %, not 166.7 %: steps 66 and 101, not 67 and 102), and so
    here for whole QFs; a fractional QF scales continuously.
    """
    base = ijg_base_tables()[1 if chroma else 0]
    quality = min(max(float(quality), 1.0), 100.0)
    if quality < 50:
        scale = float(5000 // int(quality)) if quality.is_integer() else 5000.0 / quality
    else:
        scale = 200.0 - 2.0 * quality
    return np.clip(np.floor((base * scale + 50.0) / 100.0), 1, 255).astype(np.int64)


def ijg_equivalent_quality(luma_table: np.ndarray) -> int:
    """The IJG QF whose luma table is nearest to ``luma_table``: how every label and score names a table's QF.

    Notes
    -----
    "Nearest" is the least mean squared log ratio of the 64 steps, so that a table twice as
    coarse at low frequencies weighs as much as one twice as coarse at high ones; for a scaled
    IJG table it returns that table's own QF (ties, where several QFs round to the same table,
    go to the lowest).
    """
    table = np.log(np.clip(np.asarray(luma_table, dtype=np.float64).reshape(64), 1, None))
    return int(np.argmin(((log_ijg_luma_tables() - table) ** 2).mean(axis=1))) + 1


@lru_cache(maxsize=2)
def ijg_tables(*, chroma: bool = False) -> np.ndarray:
    """``(100, 8, 8)``: the IJG luma (or ``chroma``) tables of QF 1..100, ``[q - 1]`` for QF ``q``
    (:func:`ijg_table`), made once for the table matchers that compare against all of them. Read-only."""
    tables = np.stack([ijg_table(q, chroma=chroma) for q in range(1, 101)])
    tables.setflags(write=False)
    return tables


@lru_cache(maxsize=1)
def log_ijg_luma_tables() -> np.ndarray:
    """``(100, 64)``: the logs of the IJG luma tables of QF 1..100, row ``q - 1`` for QF ``q`` (natural
    order), for the nearest IJG table to a table or to some of its steps. Read-only."""
    logs = np.log(ijg_tables().reshape(100, 64).astype(np.float64))
    logs.setflags(write=False)
    return logs


def camera_like_tables(quality: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random luma and chroma tables of the kinds cameras, phones and editors use, around ``quality``.

    Half are IJG tables with a per-frequency jitter of about 15 % (as many cameras scale the
    standard tables their own way); the rest follow a smooth family, a step growing as a power of
    the frequency index, with its own slope (as phones' and editors' tables do). Label the result
    with :func:`ijg_equivalent_quality` of the luma table, never with ``quality``.
    """
    if rng.random() < 0.5:
        luma, chroma = ijg_table(quality), ijg_table(quality, chroma=True)
        luma = luma * np.exp(rng.normal(0.0, 0.15, size=(8, 8)))
        chroma = chroma * np.exp(rng.normal(0.0, 0.15, size=(8, 8)))
    else:
        u, v = np.meshgrid(np.arange(8), np.arange(8))
        radius = (u + v) / 14.0
        reference = ijg_table(quality)
        dc = max(1.0, reference[0, 0] * rng.uniform(0.6, 1.2))
        top = max(dc, reference.max() * rng.uniform(0.5, 1.3))
        luma = dc + (top - dc) * radius ** rng.uniform(0.8, 2.5)
        chroma = luma * rng.uniform(1.0, 2.0)
    return (np.clip(np.round(luma), 1, 255).astype(np.int64), np.clip(np.round(chroma), 1, 255).astype(np.int64))


def to_grayscale(rgb: np.ndarray) -> np.ndarray:
    """Luma of a uint8 RGB array, computed as libjpeg and Pillow do (ITU-R 601)."""
    return np.asarray(Image.fromarray(rgb).convert("L"))
