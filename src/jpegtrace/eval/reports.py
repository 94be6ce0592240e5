"""Pictures of results: colour-mapped quality, flag and evidence maps, their colour bars, and overlays."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..analysis import Analysis
from ..grid.check import GRID_SCORE_THRESHOLD
from ..io import save_figure

QUALITY_CMAP = "viridis"
FLAG_CMAP = "magma"
#: Black where a pixel carries no evidence, white where it carries all.
EVIDENCE_CMAP = "gray"


def _subplots(*grid, figsize, **options):
    """A figure of its own (no pyplot state, no global backend) and its axes, as ``plt.subplots`` gives them.

    matplotlib is imported here, by the functions that draw, and nowhere at import time.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(*grid, **options)


def _colormap(name: str):
    from matplotlib import colormaps

    return colormaps[name]


def _map_figure(values: np.ndarray, title: str, label: str, vmin: float, vmax: float, cmap: str):
    # The figure is a few hundred pixels wide: draw block means of a huge map, not the map itself
    # (matplotlib needs about 75 bytes per drawn pixel).
    values = _preview(values)
    height, width = values.shape
    scale = 6.0 / max(height, width)
    fig, ax = _subplots(figsize=(max(2.5, width * scale) + 1.2, max(2.0, height * scale) + 0.6))
    shown = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title)
    ax.set_axis_off()
    fig.colorbar(shown, ax=ax, label=label, shrink=0.9)
    return fig


#: What each map's colour bar says, and its range: (colour map, label, vmin, vmax).
QUALITY_SCALE = (QUALITY_CMAP, "quality factor (100 = lossless or never compressed)", 0.0, 100.0)
FLAG_SCALE = (FLAG_CMAP, "compression flag (1 = ever JPEG-compressed)", 0.0, 1.0)
EVIDENCE_SCALE = (EVIDENCE_CMAP, "evidence (0 = no JPEG trace can show here)", 0.0, 1.0)


def quality_map_figure(analysis: Analysis, title: str = "estimated JPEG quality"):
    """Figure of the quality map in QF units (0..100) with a colour bar (block means of a large map)."""
    shown = "no QF: no evidence" if analysis.median_quality is None else f"QF {analysis.median_quality:.1f}"
    cmap, label, vmin, vmax = QUALITY_SCALE
    return _map_figure(analysis.quality_map, f"{title} ({shown})", label, vmin, vmax, cmap)


def flag_map_figure(analysis: Analysis, title: str = "JPEG compression flag"):
    """Figure of the compression-flag map (0..1) with a colour bar (block means of a large map)."""
    mean = "-" if analysis.mean_flag is None else f"{analysis.mean_flag:.2f}"
    cmap, label, vmin, vmax = FLAG_SCALE
    return _map_figure(analysis.flag_map, f"{title} (mean {mean}: {analysis.verdict})", label, vmin, vmax, cmap)


def colour_table(name: str) -> np.ndarray:
    """The colours of matplotlib's colour map ``name``, uint8 ``(N, 3)`` (N = 256 for the maps used here)."""
    cmap = _colormap(name)
    return np.round(cmap(np.arange(cmap.N))[:, :3] * 255).astype(np.uint8)


def colour_index(values: np.ndarray, vmin: float, vmax: float, n: int = 256) -> np.ndarray:
    """Index into an ``n``-colour table of each value, as matplotlib bins them (uint8 for n <= 256).

    The range ``[vmin, vmax]`` is cut into ``n`` equal bins, ``vmax`` itself falling in the last,
    so that a map drawn here has the colours ``imshow`` gives it.
    """
    scaled = (np.asarray(values, dtype=np.float32) - np.float32(vmin)) * np.float32(n / (vmax - vmin))
    return np.clip(np.nan_to_num(scaled), 0, n - 1).astype(np.uint8 if n <= 256 else np.uint16)


def colour_mapped(values: np.ndarray, cmap: str, vmin: float, vmax: float) -> np.ndarray:
    """``values`` in the colours of ``cmap`` over ``[vmin, vmax]``: uint8 ``(H, W, 3)`` at full resolution.

    A table lookup a strip of rows at a time, so a 12 MP map needs little memory beyond the result
    (matplotlib's own mapping makes 32 bytes of float64 RGBA per pixel).
    """
    table = colour_table(cmap)
    out = np.empty(values.shape + (3,), dtype=np.uint8)
    rows = max(1, (1 << 20) // max(1, values.shape[1]))
    for y0 in range(0, values.shape[0], rows):
        out[y0:y0 + rows] = table[colour_index(values[y0:y0 + rows], vmin, vmax, len(table))]
    return out


def overlay(rgb: np.ndarray, flag_map: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """The image in gray with the flag map laid over it in colour; uint8 ``(H, W, 3)``.

    Computed a strip of rows at a time, so a large image needs little memory beyond the result.
    """
    out = np.empty(rgb.shape[:2] + (3,), dtype=np.uint8)
    cmap = _colormap(FLAG_CMAP)
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


def _preview(values: np.ndarray, max_side: int | None = None) -> np.ndarray:
    """``values`` reduced by block means to at most ``max_side`` pixels a side (unchanged if smaller);
    :data:`PREVIEW_SIDE` (read at call time) by default."""
    if max_side is None:
        max_side = PREVIEW_SIDE
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


def legend_figure(analysis: Analysis | None = None, *, evidence: bool = True):
    """The colour bars of the maps :func:`save_maps` writes, one under the other, titled with the
    image's summary when ``analysis`` is given (its QF, mean flag, evidence share and verdict)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    scales = [QUALITY_SCALE, FLAG_SCALE] + ([EVIDENCE_SCALE] if evidence else [])
    fig, axes = _subplots(len(scales), 1, figsize=(6.0, 0.85 * len(scales) + (0.45 if analysis else 0.15)))
    axes = np.atleast_1d(axes)
    for ax, (cmap, label, vmin, vmax) in zip(axes, scales):
        fig.colorbar(ScalarMappable(Normalize(vmin, vmax), cmap), cax=ax, orientation="horizontal", label=label)
    if analysis is not None:
        fig.suptitle(_summary_line(analysis), fontsize=9)
    fig.subplots_adjust(left=0.04, right=0.96, top=0.86 if analysis else 0.97, bottom=0.2, hspace=2.2)
    return fig


def _summary_line(analysis: Analysis) -> str:
    quality = analysis.headline_quality
    qf = "no QF" if quality is None else f"QF {quality:.1f} ({analysis.quality_source})"
    flag = "-" if analysis.mean_flag is None else f"{analysis.mean_flag:.2f}"
    return f"{analysis.verdict}: {qf}, mean flag {flag}, evidence {analysis.evidence_share:.0%}"


def save_maps(analysis: Analysis, rgb: np.ndarray, out_dir: str | os.PathLike, stem: str) -> dict[str, Path]:
    """Write the colour-mapped maps of an image at its full resolution, an overlay and their legend.

    Files in ``out_dir``: ``STEM_quality.png`` (the quality map in :data:`QUALITY_CMAP`, QF 0..100),
    ``STEM_flag.png`` (the flag map in :data:`FLAG_CMAP`, 0..1), ``STEM_evidence.png`` (the evidence
    map in :data:`EVIDENCE_CMAP`, 0..1; only when the analysis has one), ``STEM_overlay.png`` (the
    image in gray, the flag map laid over it) and ``STEM_legend.png`` (the colour bars, titled with
    the image's verdict, QF, mean flag and evidence share).

    Returns
    -------
    dict of str to Path
        ``quality``, ``flag``, ``evidence`` (when written), ``overlay`` and ``legend``.

    Notes
    -----
    The maps are pixels, one per image pixel, so they lie exactly over the image (a 12 MP photo
    gives 12 MP maps); the legend is a separate small figure, since a colour bar drawn into a map
    would cover part of it. Colours are matplotlib's bins of each colour map (256 colours), so a
    map's colours are those ``imshow`` gives it. Each file is written under a temporary name and
    renamed, so it is never half-written. :func:`save_raw_maps` writes the float maps themselves.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    maps = [("quality", analysis.quality_map, QUALITY_SCALE), ("flag", analysis.flag_map, FLAG_SCALE)]
    if analysis.evidence_map is not None:
        maps.append(("evidence", analysis.evidence_map, EVIDENCE_SCALE))
    written = {}
    for kind, values, (cmap, _, vmin, vmax) in maps:
        written[kind] = _write_image(colour_mapped(values, cmap, vmin, vmax), out_dir / f"{stem}_{kind}.png")
    written["overlay"] = _write_image(overlay(rgb, analysis.flag_map), out_dir / f"{stem}_overlay.png")
    fig = legend_figure(analysis, evidence=analysis.evidence_map is not None)
    written["legend"] = save_figure(fig, out_dir / f"{stem}_legend.png", dpi=100)
    return written


def save_raw_maps(analysis: Analysis, out_dir: str | os.PathLike, stem: str) -> Path:
    """Write the float maps of an analysis into ``out_dir/STEM_maps.npz``; returns its path.

    Arrays: ``quality_map`` (float32, QF 0..100), ``flag_map`` (float32, 0..1) and, when the
    analysis has one, ``evidence_map`` (float32, 0..1), each ``(H, W)``.

    Notes
    -----
    ``np.savez_compressed``, written under a temporary name and renamed. Read it back with
    ``np.load(path)``: the arrays equal the analysis's bit for bit (the PNGs of :func:`save_maps`
    hold 256 colours per map, the viewer page QF to 0.5 and the flag to 1/255).
    """
    from ..io import atomic_path

    arrays = {"quality_map": analysis.quality_map, "flag_map": analysis.flag_map}
    if analysis.evidence_map is not None:
        arrays["evidence_map"] = analysis.evidence_map
    path = Path(out_dir) / f"{stem}_maps.npz"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: savez would add ".npz" to the temporary's name
            np.savez_compressed(f, **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})
    return path


# --------------------------------------------------------------------------------------------
# Result files of the experiments (see jpegtrace.eval)
# --------------------------------------------------------------------------------------------

def _write_image(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Atomically write a uint8 array as PNG."""
    from PIL import Image

    from ..io import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return Path(path)


def _failure_rows(failures) -> list[dict]:
    return [{"file": f.file, "reason": f.reason} for f in failures]


def _json_value(value):
    """Rounded floats, NaN as None: values that are valid JSON."""
    if isinstance(value, float):
        return round(value, 4) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


# --- Fig. 2 and Table 1 ----------------------------------------------------------------------

def evaluation_figure(summary: dict, title: str = "JPEG quality estimation (paper Fig. 2)"):
    """Estimated against true QF: mean and standard deviation over the images, and the identity line."""
    rows = [r for r in summary["per_quality"] if r["quality"] is not None]
    fig, ax = _subplots(figsize=(5.2, 5.0))
    ax.plot([0, 100], [0, 100], color="0.6", linestyle="--", linewidth=1, label="identity (perfect estimate)")
    if rows:
        ax.errorbar([r["quality"] for r in rows], [r["mean_estimate"] for r in rows],
                    yerr=[r["std_estimate"] for r in rows], fmt="o-", color="tab:blue", capsize=3,
                    markersize=4, label="estimated QF (mean ± std over images)")
    clean = [r for r in summary["per_quality"] if r["quality"] is None]
    if clean:
        ax.axhline(clean[0]["mean_estimate"], color="tab:orange", linewidth=1, linestyle=":",
                   label=f"never compressed: mean estimate {clean[0]['mean_estimate']:.1f}")
    ax.set_xlim(0, 102)
    ax.set_ylim(0, 102)
    ax.set_aspect("equal")
    ax.set_xlabel("true JPEG quality factor")
    ax.set_ylabel("estimated quality factor (weighted median of the quality map)")
    mae = summary.get("qf_mae")
    subtitle = f"{summary.get('n_images', '?')} images" + (f", QF MAE {mae:.2f} (QF ≤ 95)" if mae is not None else "")
    ax.set_title(f"{title}\n{subtitle}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table1_figure(summary: dict, title: str = "Share judged uncompressed (paper Table 1)"):
    """Bar chart of the share of images judged uncompressed at QF 97-100 and without JPEG."""
    rows = summary["table1"]
    fig, ax = _subplots(figsize=(5.2, 3.4))
    labels = [r["label"] for r in rows]
    shares = [r["judged_uncompressed"] for r in rows]
    colours = ["tab:green" if r["quality"] is None else "tab:red" for r in rows]
    bars = ax.bar(range(len(rows)), shares, color=colours)
    for bar, share in zip(bars, shares):
        ax.annotate(f"{100 * share:.0f}%", (bar.get_x() + bar.get_width() / 2, share), ha="center",
                    va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(rows)), labels)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share judged uncompressed")
    ax.set_title(f"{title}\n(ideal: 0% for every QF, 100% without JPEG)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def write_evaluation_report(out_dir: str | os.PathLike, records, summary: dict, failures=(),
                            settings: dict | None = None) -> dict[str, Path]:
    """Write the results of :func:`jpegtrace.eval.evaluate_files` into ``out_dir``.

    Files: ``records.csv`` (one row per image and QF), ``per_quality.csv`` (Fig. 2's numbers),
    ``table1.csv``, ``failures.csv`` (unreadable files and why), ``summary.json`` (the summary,
    the settings and the failures), ``fig2_quality.png`` and ``table1.png``. Other files in
    ``out_dir`` are left alone.
    """
    from ..io import write_csv, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        "records": write_csv(out / "records.csv", [r.as_row() for r in records],
                             ["image", "quality", "estimated_quality", "mean_flag", "network_mean_flag", "grid_score", "grid_found",
                              "evidence_share", "verdict", "abs_error", "headline_quality", "quality_source"]),
        "per_quality": write_csv(out / "per_quality.csv", [_json_value(r) for r in summary["per_quality"]],
                                 ["quality", "n", "mean_estimate", "std_estimate", "mae", "mean_flag",
                                  "judged_uncompressed", "flag_judged_uncompressed", "network_judged_uncompressed",
                                  "no_evidence", "mean_headline", "headline_mae", "table_share"]),
        "table1": write_csv(out / "table1.csv", [_json_value(r) for r in summary["table1"]],
                            ["label", "quality", "n", "judged_uncompressed", "flag_judged_uncompressed",
                             "network_judged_uncompressed"]),
        "failures": write_csv(out / "failures.csv", _failure_rows(failures), ["file", "reason"]),
        "summary": write_json(out / "summary.json", {"settings": settings or {}, **_json_value(summary),
                                                     "failures": _failure_rows(failures)}),
    }
    for key, make, name in (("figure", evaluation_figure, "fig2_quality.png"), ("table1_figure", table1_figure, "table1.png")):
        fig = make(summary)
        written[key] = save_figure(fig, out / name, dpi=120)
    return written


# --- Fig. 3: collages ---------------------------------------------------------------------------

def collage_figure(result, title: str | None = None):
    """The four panels of the paper's Fig. 3: fake image, true mask, quality map and flag map."""
    analysis = result.analysis
    height, width = result.mask.shape
    panel = 3.2 * min(1.6, max(0.6, width / height))
    fig, axes = _subplots(1, 4, figsize=(4 * panel + 1.0, 3.6))
    axes[0].imshow(result.fake, interpolation="nearest")
    axes[0].set_title("fake image")
    axes[1].imshow(result.mask, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[1].set_title(f"pasted region (JPEG QF {result.quality})")
    q = axes[2].imshow(analysis.quality_map, cmap=QUALITY_CMAP, vmin=0, vmax=100, interpolation="nearest")
    inside = f"{result.quality_inside:.1f}" if np.isfinite(result.quality_inside) else "-"
    axes[2].set_title(f"quality map (mean inside {inside})")
    fig.colorbar(q, ax=axes[2], shrink=0.8, label="QF")
    f = axes[3].imshow(analysis.flag_map, cmap=FLAG_CMAP, vmin=0, vmax=1, interpolation="nearest")
    axes[3].set_title("compression-flag map")
    fig.colorbar(f, ax=axes[3], shrink=0.8, label="flag")
    for ax in axes:
        ax.set_axis_off()
    s = result.scores
    auc = f"{s.auc:.3f}" if np.isfinite(s.auc) else "n/a"
    fig.suptitle(title or f"flag > {s.threshold:g}: IoU {s.iou:.3f}, F1 {s.f1:.3f}; pixel AUC {auc}", fontsize=11)
    return fig


def write_collage_report(out_dir: str | os.PathLike, result, settings: dict | None = None) -> dict[str, Path]:
    """Write the fake image of a :class:`~jpegtrace.eval.CollageResult` and its scores.

    Files: ``fake.png``, ``mask.png``, ``fake_quality.png``, ``fake_flag.png``, ``fake_evidence.png``,
    ``fake_overlay.png``, ``fake_legend.png`` (full-resolution colour-mapped maps and their colour bars,
    as :func:`save_maps` makes them), ``collage.png`` (the four panels of
    Fig. 3), ``maps.npz`` (float32 ``quality_map`` and ``flag_map``, boolean ``mask``),
    ``scores.json`` and ``scores.csv``.
    """
    from ..io import atomic_path, write_csv, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"fake": _write_image(result.fake, out / "fake.png"),
               "mask": _write_image(result.mask.astype(np.uint8) * 255, out / "mask.png")}
    written.update(save_maps(result.analysis, result.fake, out, "fake"))
    fig = collage_figure(result)
    written["figure"] = save_figure(fig, out / "collage.png", dpi=120)
    with atomic_path(out / "maps.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, quality_map=result.analysis.quality_map, flag_map=result.analysis.flag_map,
                                mask=result.mask)
    written["maps"] = out / "maps.npz"
    scores = result.as_dict()
    written["scores_csv"] = write_csv(out / "scores.csv", [scores])
    written["scores"] = write_json(out / "scores.json", {"settings": settings or {}, **scores})
    return written


def benchmark_figure(records, title: str = "Localisation of pasted JPEG regions"):
    """Box plots of IoU, F1 and pixel AUC over the pairs of a collage benchmark, per QF."""
    qualities = sorted({r.quality for r in records})
    thresholds = sorted({r.threshold for r in records})
    above = f"flag > {thresholds[0]:g}" if len(thresholds) == 1 else "flag > each pair's threshold"
    fig, axes = _subplots(1, 3, figsize=(10, 3.6), sharey=True)
    for ax, key, label in zip(axes, ("iou", "f1", "auc"), (f"IoU ({above})", f"F1 ({above})", "pixel AUC")):
        groups = []
        for q in qualities:
            values = np.array([getattr(r, key) for r in records if r.quality == q], dtype=np.float64)
            groups.append(values[np.isfinite(values)])
        if groups and any(g.size for g in groups):
            ax.boxplot(groups, showmeans=True)
            ax.set_xticks(range(1, len(qualities) + 1), [f"QF {q}" for q in qualities])
        ax.set_title(label)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylabel("score per fake image (triangle: mean)")
    fig.suptitle(f"{title} ({len(records)} fake images)", fontsize=11)
    return fig


def write_collage_benchmark_report(out_dir: str | os.PathLike, records, summary: dict, failures=(),
                                   settings: dict | None = None) -> dict[str, Path]:
    """Write the results of :func:`jpegtrace.eval.collage_benchmark` into ``out_dir``.

    Files: ``pairs.csv`` (one row per fake image), ``failures.csv``, ``summary.json`` (settings,
    mean scores overall, per QF and per mask shape, and the failures) and ``scores.png``.
    """
    from dataclasses import fields

    from ..io import write_csv, write_json
    from .collage import CollageBenchmarkRecord

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    columns = [f.name for f in fields(CollageBenchmarkRecord)]
    written = {
        "pairs": write_csv(out / "pairs.csv", [r.as_row() for r in records], columns),
        "failures": write_csv(out / "failures.csv", _failure_rows(failures), ["file", "reason"]),
        "summary": write_json(out / "summary.json", {"settings": settings or {}, **_json_value(summary),
                                                     "failures": _failure_rows(failures)}),
    }
    fig = benchmark_figure(records)
    written["figure"] = save_figure(fig, out / "scores.png", dpi=120)
    return written


# --- Figs. 4-9: data-set audits ----------------------------------------------------------------

def qf_histogram_figure(summary: dict, title: str = "Estimated JPEG quality of the images judged compressed"):
    """Histogram of the estimated QF over the images judged compressed, with the counts in the title."""
    hist = summary["histogram"]
    edges = np.asarray(hist["edges"])
    fig, ax = _subplots(figsize=(6.0, 3.6))
    ax.bar(edges[:-1], hist["counts"], width=np.diff(edges), align="edge", color="tab:blue", edgecolor="white")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, max(1, max(hist["counts"], default=0)) * 1.1)
    ax.set_xlabel("estimated quality factor (headline QF)")
    ax.set_ylabel("images")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"{title}\n{summary['n_compressed']} compressed, {summary['n_uncompressed']} never compressed"
                 f" of {summary['n_analysed']} images" + (f"; {summary['n_failed']} unreadable" if summary["n_failed"] else ""),
                 fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def _resize_to(size: int, height: int, width: int) -> tuple[int, int]:
    scale = size / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


def thumbnail(rgb: np.ndarray, size: int = 160) -> np.ndarray:
    """The image scaled so that its longer side is ``size`` pixels (uint8 RGB)."""
    from PIL import Image

    target = _resize_to(size, *rgb.shape[:2])
    resample = Image.Resampling.BOX if target[0] < rgb.shape[1] else Image.Resampling.NEAREST
    return np.asarray(Image.fromarray(rgb).resize(target, resample))


def flag_thumbnail(flag_map: np.ndarray, size: int = 160) -> np.ndarray:
    """The flag map scaled like :func:`thumbnail` and colour-mapped as in :func:`flag_map_figure`."""
    return _map_thumbnail(flag_map, size, FLAG_SCALE)


def quality_thumbnail(quality_map: np.ndarray, size: int = 160) -> np.ndarray:
    """The quality map scaled like :func:`thumbnail` and colour-mapped as in :func:`quality_map_figure`."""
    return _map_thumbnail(quality_map, size, QUALITY_SCALE)


def _map_thumbnail(values: np.ndarray, size: int, scale: tuple) -> np.ndarray:
    from PIL import Image

    cmap, _, vmin, vmax = scale
    target = _resize_to(size, *values.shape)
    resample = Image.Resampling.BOX if target[0] < values.shape[1] else Image.Resampling.NEAREST
    small = np.asarray(Image.fromarray(values.astype(np.float32), mode="F").resize(target, resample))
    colour = _colormap(cmap)(np.clip((small - vmin) / (vmax - vmin), 0, 1))[:, :, :3]
    return np.round(colour * 255).astype(np.uint8)


def save_thumbnails(out_dir: str | os.PathLike, index: int, rgb: np.ndarray, flag_map: np.ndarray,
                    size: int = 160, *, quality_map: np.ndarray | None = None) -> tuple[str, ...]:
    """Write ``thumbnails/NNNNN.png`` and ``thumbnails/NNNNN_flag.png`` under ``out_dir``, and
    ``thumbnails/NNNNN_quality.png`` when ``quality_map`` is given.

    Returns their paths relative to ``out_dir`` (as the HTML page links them): ``(image, flag)``, or
    ``(image, flag, quality)`` with ``quality_map``.
    """
    folder = Path(out_dir) / "thumbnails"
    folder.mkdir(parents=True, exist_ok=True)
    image_name, flag_name = f"{index:05d}.png", f"{index:05d}_flag.png"
    _write_image(thumbnail(rgb, size), folder / image_name)
    _write_image(flag_thumbnail(flag_map, size), folder / flag_name)
    if quality_map is None:
        return f"thumbnails/{image_name}", f"thumbnails/{flag_name}"
    quality_name = f"{index:05d}_quality.png"
    _write_image(quality_thumbnail(quality_map, size), folder / quality_name)
    return f"thumbnails/{image_name}", f"thumbnails/{flag_name}", f"thumbnails/{quality_name}"


# The page fits a 1280-pixel window: thumbnails shrink with it, and file names and notes wrap
# (anywhere, for names without spaces) instead of widening the table.
_HTML_STYLE = """
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
p { max-width: 75em; }
img.histogram { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 0.9em; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: middle; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.file, td.notes, td.reason { overflow-wrap: anywhere; }
td.file { min-width: 8em; }
td.notes { min-width: 15em; font-size: 0.92em; }
td.thumb { width: 1%; }
img.thumb { display: block; max-width: min(160px, 10vw); max-height: 160px; height: auto; image-rendering: auto; }
.compressed { color: #b00020; font-weight: 600; }
.never-compressed { color: #0a7a2f; font-weight: 600; }
.no-evidence { color: #666; font-style: italic; }
.partly-compressed { color: #b05a00; font-weight: 600; }
.gray { background: #eee; border-radius: 3px; padding: 1px 4px; font-size: 0.85em; }
.failed td { color: #8a4b00; }
"""


def _href(path: str) -> str:
    """A relative path as an attribute value: percent-encoded (spaces, ``#``, ``?``) and HTML-escaped."""
    from html import escape
    from urllib.parse import quote

    return escape(quote(path.replace(os.sep, "/"), safe="/-_.~"), quote=True)


def assessment_html(records, failures, summary: dict, thumbnails: dict[str, tuple[str, ...]] | None = None,
                    histogram: str | None = "qf_histogram.png", title: str = "JPEG compression audit",
                    source: str | None = None, *, pages: dict[str, str] | None = None,
                    skipped: Sequence[dict] = (), bias: dict | None = None) -> str:
    """The HTML page of an audit: counts, histogram, one table row per image with its thumbnail,
    flag map and quality map, and the files that could not be read with their reasons.

    ``thumbnails`` maps a record's file name to the relative paths of its thumbnail, flag map and,
    optionally, quality map (see :func:`save_thumbnails`). ``pages`` maps a record's file name to
    the relative path of its own page (:func:`jpegtrace.viewer.write_viewer`); the file name and
    the thumbnails of its row then link to it.

    Notes
    -----
    The page fits a window 1280 pixels wide without scrolling sideways: the thumbnails shrink to a
    tenth of the window's width, and long file names and notes wrap.
    """
    from html import escape

    thumbnails = thumbnails or {}
    pages = pages or {}
    with_quality = any(len(t) > 2 and t[2] for t in thumbnails.values())
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{escape(title)}</title><style>{_HTML_STYLE}</style></head><body>",
             f"<h1>{escape(title)}</h1>"]
    if source:
        parts.append(f"<p>Folder: <code>{escape(source)}</code></p>")
    mean_q = summary.get("mean_quality_compressed")
    parts.append(
        f"<p><b>{summary['n_compressed']}</b> images judged JPEG-compressed (mean flag above 0.5, or a "
        f"JPEG block grid found in the DCT coefficients: grid score above {GRID_SCORE_THRESHOLD:g}), "
        f"<b>{summary.get('n_partly_compressed', 0)}</b> of them only in part (regions of flagged blocks in "
        f"an otherwise never-compressed image), "
        f"<b>{summary['n_uncompressed']}</b> never compressed, <b>{summary['n_no_evidence']}</b> without evidence, "
        f"of {summary['n_analysed']} analysed"
        f" ({summary['n_grayscale']} grayscale); {summary['n_failed']} "
        f"{'file' if summary['n_failed'] == 1 else 'files'} could not be read."
        + (f" Mean headline QF of the compressed ones: {mean_q:.1f}." if mean_q is not None else "")
        + (f" {len(skipped)} {'file was' if len(skipped) == 1 else 'files were'} skipped (see assessment.json)."
           if skipped else "") + "</p>")
    if histogram:
        parts.append(f'<p><img class="histogram" src="{escape(histogram)}" alt="histogram of estimated QF"></p>')
    if bias is not None:
        from .bias import bias_html

        parts.append(bias_html(bias))
    parts.append("<p>QF: the headline QF, from the quantisation table read from the pixels where it could be "
                 "read, the largest flagged region's for a partly compressed image, else the mean of the "
                 "quality map (100 also means never compressed). "
                 "Flag map: 1 (bright) where the network finds JPEG traces"
                 + ("; quality map: QF in viridis, dark = low QF, yellow = QF 100" if with_quality else "")
                 + ". Evidence: share of pixels whose texture can carry JPEG traces. Grid score: how far the "
                 "DCT coefficients of one 8×8 grid lie closer to integers than those of the other 63 "
                 "(about 0-4 for never-compressed photos; blank when the check was not run)."
                 + (" Each file name links to the image's own page: its maps as layers over it, the values "
                    "under the cursor." if pages else "") + "</p>")
    parts.append("<table><thead><tr><th>#</th><th>image</th><th>flag map</th>"
                 + ("<th>quality map</th>" if with_quality else "")
                 + "<th>file</th><th>size</th><th>QF</th><th>mean flag</th><th>evidence</th>"
                   "<th>grid score</th><th>verdict</th><th>notes</th></tr></thead><tbody>")
    for i, r in enumerate(records, 1):
        thumb, flag, *rest = thumbnails.get(r.file, ("", ""))
        quality = rest[0] if rest else ""
        page = pages.get(r.file)

        def linked(html: str, label: str) -> str:
            return f'<a href="{_href(page)}" title="{escape(label)}">{html}</a>' if page and html else html

        cells = [linked(f'<img class="thumb" src="{escape(src)}" alt="">' if src else "", f"open the page of {r.file}")
                 for src in ((thumb, flag, quality) if with_quality else (thumb, flag))]
        gray = ' <span class="gray">grayscale</span>' if r.grayscale else ""
        parts.append(
            f"<tr><td class=num>{i}</td>" + "".join(f"<td class=thumb>{c}</td>" for c in cells)
            + f"<td class=file>{linked(escape(r.file), f'open the page of {r.file}')}</td>"
            f"<td class=num>{r.width}×{r.height}</td><td class=num>{_number(r.quality, 1)}</td>"
            f"<td class=num>{_number(r.mean_flag, 3)}</td><td class=num>{100 * r.evidence_share:.0f} %</td>"
            f"<td class=num>{'' if r.grid_score is None else f'{r.grid_score:.1f}'}</td>"
            f"<td class={r.verdict.replace(' ', '-')}>{r.verdict}{gray}</td>"
            f"<td class=notes>{escape('; '.join(r.notes))}</td></tr>")
    parts.append("</tbody></table>")
    if failures:
        parts.append(f"<h2>Files that could not be read ({len(failures)})</h2><table class=failed>"
                     "<thead><tr><th>file</th><th>reason</th></tr></thead><tbody>")
        parts.extend(f"<tr class=failed><td class=file>{escape(f.file)}</td><td class=reason>{escape(f.reason)}</td></tr>"
                     for f in failures)
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_assessment_report(out_dir: str | os.PathLike, records, failures, summary: dict,
                            thumbnails: dict[str, tuple[str, ...]] | None = None,
                            settings: dict | None = None, *, pages: dict[str, str] | None = None,
                            skipped: Sequence[dict] = (), bias: dict | None = None) -> dict[str, Path]:
    """Write the results of :func:`jpegtrace.eval.assess_images` into ``out_dir``.

    Files: ``table.csv`` (one row per image, analysed or failed: the columns of
    :data:`jpegtrace.record.CSV_COLUMNS`), ``failures.csv`` (file, reason), ``assessment.json``
    (settings, counts, histogram, ``images``: the record of every image as ``analyze`` prints it,
    and ``skipped``: the files left out, each with its reason), ``qf_histogram.png`` and ``index.html``; the thumbnails are
    written beforehand by :func:`save_thumbnails`, the per-image pages that ``pages`` names (file
    name to path relative to ``out_dir``) by :func:`jpegtrace.viewer.write_viewer`. ``bias``
    (:func:`jpegtrace.eval.bias.class_bias`) adds its section to the page.
    """
    from ..io import write_csv, write_json, write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from ..record import CSV_COLUMNS, csv_row, failure_record

    # The same record as `jpegtrace analyze` prints, failures included (ok false).
    images = [r.record for r in records] + [failure_record(f.file, f.reason) for f in failures]
    written = {
        "table": write_csv(out / "table.csv", [csv_row(r) for r in images], CSV_COLUMNS),
        "failures": write_csv(out / "failures.csv", _failure_rows(failures), ["file", "reason"]),
        "summary": write_json(out / "assessment.json", {"settings": settings or {}, **summary, "images": images,
                                                        "skipped": list(skipped)}),
    }
    fig = qf_histogram_figure(summary)
    written["histogram"] = save_figure(fig, out / "qf_histogram.png", dpi=120)
    written["html"] = write_text(out / "index.html", assessment_html(
        records, failures, summary, thumbnails, source=(settings or {}).get("folder"), pages=pages,
        skipped=skipped, bias=bias))
    return written
