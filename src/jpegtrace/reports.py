"""Pictures of results: colour-mapped quality and flag maps with colour bars, and overlays."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .inference import Analysis  # noqa: E402
from .outputs import save_figure  # noqa: E402

QUALITY_CMAP = "viridis"
FLAG_CMAP = "magma"


def _map_figure(values: np.ndarray, title: str, label: str, vmin: float, vmax: float, cmap: str):
    height, width = values.shape
    scale = 6.0 / max(height, width)
    fig, ax = plt.subplots(figsize=(max(2.5, width * scale) + 1.2, max(2.0, height * scale) + 0.6),
                           layout="constrained")
    shown = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title)
    ax.set_axis_off()
    fig.colorbar(shown, ax=ax, label=label, shrink=0.9)
    return fig


def quality_map_figure(analysis: Analysis, title: str = "estimated JPEG quality"):
    """Figure of the quality map in QF units (0..100) with a colour bar."""
    return _map_figure(analysis.quality_map, f"{title} (mean QF {analysis.mean_quality:.1f})",
                       "quality factor (100 = lossless or never compressed)", 0, 100, QUALITY_CMAP)


def flag_map_figure(analysis: Analysis, title: str = "JPEG compression flag"):
    """Figure of the compression-flag map (0..1) with a colour bar."""
    verdict = "compressed" if analysis.compressed else "uncompressed"
    return _map_figure(analysis.flag_map, f"{title} (mean {analysis.mean_flag:.2f}: {verdict})",
                       "compression flag (1 = ever JPEG-compressed)", 0, 1, FLAG_CMAP)


def overlay(rgb: np.ndarray, flag_map: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """The image in gray with the flag map laid over it in colour; uint8 ``(H, W, 3)``.

    Computed a strip of rows at a time, so a large image needs little memory beyond the result.
    """
    out = np.empty(rgb.shape[:2] + (3,), dtype=np.uint8)
    cmap = plt.get_cmap(FLAG_CMAP)
    rows = max(1, (1 << 20) // max(1, rgb.shape[1]))
    for y0 in range(0, rgb.shape[0], rows):
        part = slice(y0, y0 + rows)
        gray = rgb[part].astype(np.float32).mean(axis=2, keepdims=True) / 255.0
        flag = np.clip(flag_map[part], 0, 1)
        colour = cmap(flag)[:, :, :3].astype(np.float32)
        alpha = strength * flag[:, :, None]
        mixed = (1 - alpha) * gray + alpha * colour
        out[part] = np.round(np.clip(mixed, 0, 1) * 255)
    return out


#: Longest side of a map drawn in a figure (which is 600 pixels wide); larger maps are shown as block means.
PREVIEW_SIDE = 1024


def _preview(values: np.ndarray, max_side: int = PREVIEW_SIDE) -> np.ndarray:
    """``values`` reduced by block means to at most ``max_side`` pixels a side (unchanged if smaller)."""
    height, width = values.shape
    k = -(-max(height, width) // max_side)
    if k <= 1:
        return values
    cols = np.arange(0, width, k)
    col_counts = np.diff(np.append(cols, width)).astype(np.float32)
    out = np.empty((-(-height // k), len(cols)), dtype=np.float32)
    for i, y0 in enumerate(range(0, height, k)):
        block = values[y0:y0 + k]
        out[i] = np.add.reduceat(block.sum(axis=0, dtype=np.float32), cols) / (col_counts * len(block))
    return out


def save_maps(analysis: Analysis, rgb: np.ndarray, out_dir: str | os.PathLike, stem: str) -> dict[str, Path]:
    """Write ``STEM_quality.png``, ``STEM_flag.png`` and ``STEM_overlay.png`` into ``out_dir``.

    Each file is written under a temporary name and renamed, so it is never half-written.
    """
    from PIL import Image

    from .outputs import atomic_path

    import dataclasses

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    # The figures are a few hundred pixels wide: draw block means of a huge map, not the map itself
    # (matplotlib needs about 75 bytes per drawn pixel). The titles keep the full-resolution means.
    shown = dataclasses.replace(analysis, quality_map=_preview(analysis.quality_map),
                                flag_map=_preview(analysis.flag_map))
    for kind, make in (("quality", quality_map_figure), ("flag", flag_map_figure)):
        fig = make(shown)
        written[kind] = save_figure(fig, out_dir / f"{stem}_{kind}.png", dpi=100)
        plt.close(fig)
    path = out_dir / f"{stem}_overlay.png"
    with atomic_path(path) as tmp:
        Image.fromarray(overlay(rgb, analysis.flag_map)).save(tmp, format="PNG")
    written["overlay"] = path
    return written
