"""One self-contained HTML page per image: the image, its maps and regions as layers, the values under the cursor.

The page works offline from a file, with no server: the image and the maps are embedded as base64
PNGs, the script and the style are inline, and its Content-Security-Policy forbids fetching anything.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import escape
from importlib import resources
from pathlib import Path

import numpy as np

from .analysis import Analysis
from .tables import describe_table

#: Step of the QF values the page reads back: QF is stored as ``round(2 * QF)`` in one byte.
QF_STEP = 0.5
#: Step of the flag and evidence values the page reads back: each is stored as ``round(255 * value)``.
FLAG_STEP = 1 / 255
#: Region kinds the page draws in their own style; any other kind is drawn as "flag".
REGION_KINDS = ("flag", "quality")

_TEMPLATE = "templates/viewer.html"
_PLACEHOLDER = re.compile(r"@@([A-Z]+)@@")


@dataclass(frozen=True)
class Region:
    """One region to outline on the page, as the region dicts give it.

    Attributes
    ----------
    box : (float, float, float, float)
        ``(top, left, bottom, right)`` in pixels, bottom and right exclusive (a numpy slice
        ``[top:bottom, left:right]``), clipped to the image.
    kind : str
        "flag" (found in the flag map) or "quality" (a QF differing from its surroundings).
    quality_inside, quality_around : float or None
        Mean QF inside the box and around it.
    area_share : float
        Share of the image the region covers, 0..1.
    score : float
        How strongly the region stands out (its finder's score).
    table : str or None
        The region's own quantisation table, described (``QF 50 (table, IJG) at grid offset (3, 5)``),
        where one was read in its box.
    """

    box: tuple[float, float, float, float]
    kind: str
    quality_inside: float | None
    quality_around: float | None
    area_share: float
    score: float
    table: str | None = None

    @property
    def label(self) -> str:
        """The text drawn beside the box, e.g. ``flag · QF 40 in, 90 around · 3.1 % · score 0.87``."""
        parts = [self.kind]
        if self.quality_inside is not None or self.quality_around is not None:
            parts.append(f"QF {_number(self.quality_inside, 0)} in, {_number(self.quality_around, 0)} around")
        parts.append(f"{100 * self.area_share:.1f} %")
        parts.append(f"score {self.score:.2f}")
        if self.table is not None:
            parts.append(self.table)
        return " · ".join(parts)


def as_region(item, shape: tuple[int, int]) -> Region:
    """A :class:`Region` of a region dict (or a dataclass or object with ``as_dict()`` of the same fields).

    Raises
    ------
    ValueError
        When the box is not four finite numbers with top < bottom and left < right inside the image.
    """
    if not isinstance(item, Mapping) and hasattr(item, "as_dict"):
        item = item.as_dict()
    elif dataclasses.is_dataclass(item) and not isinstance(item, type):
        item = dataclasses.asdict(item)
    try:
        top, left, bottom, right = (float(v) for v in item["box"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"a region needs a box [top, left, bottom, right], got {item!r}") from None
    height, width = shape
    top, bottom = max(0.0, top), min(float(height), bottom)
    left, right = max(0.0, left), min(float(width), right)
    if not all(map(math.isfinite, (top, left, bottom, right))) or not (top < bottom and left < right):
        raise ValueError(f"region box {list(item['box'])} is empty or outside the {height}x{width} image")
    kind = str(item.get("kind", "flag"))
    table = item.get("table")
    if isinstance(table, Mapping):
        table = describe_table(table, offset=True)
    return Region(box=(top, left, bottom, right), kind=kind,
                  quality_inside=_finite(item.get("quality_inside")), quality_around=_finite(item.get("quality_around")),
                  area_share=_finite(item.get("area_share")) or 0.0, score=_finite(item.get("score")) or 0.0,
                  table=None if table is None else str(table))


def map_channels(analysis: Analysis) -> np.ndarray:
    """The maps as the page reads them: uint8 ``(H, W, 3)``, one map per channel.

    Channel 0 is ``round(2 * QF)`` (0..200, :data:`QF_STEP`), channel 1 ``round(255 * flag)`` and
    channel 2 ``round(255 * evidence)`` (:data:`FLAG_STEP`; 255 everywhere when the analysis has no
    evidence map, every pixel then counting fully). Made a strip of rows at a time.
    """
    height, width = analysis.shape
    out = np.empty((height, width, 3), dtype=np.uint8)
    rows = max(1, (1 << 20) // max(1, width))
    maps = ((analysis.quality_map, 1 / QF_STEP, 200), (analysis.flag_map, 1 / FLAG_STEP, 255),
            (analysis.evidence_map, 1 / FLAG_STEP, 255))
    for y0 in range(0, height, rows):
        for channel, (values, scale, top) in enumerate(maps):
            if values is None:
                out[y0:y0 + rows, :, channel] = 255
                continue
            part = np.nan_to_num(values[y0:y0 + rows].astype(np.float32) * np.float32(scale))
            out[y0:y0 + rows, :, channel] = np.clip(np.rint(part), 0, top)
    return out


def write_viewer(path: str | os.PathLike, rgb: np.ndarray, analysis: Analysis, *,
                 regions: Iterable = (), title: str | None = None) -> Path:
    """Write one self-contained HTML page showing ``rgb`` with the maps of ``analysis``; returns its path.

    Parameters
    ----------
    path : str or Path
        The ``.html`` file to write (its folder is made).
    rgb : ndarray of uint8, (H, W, 3) or (H, W)
        The analysed image, as :func:`jpegtrace.io.as_analysis_array` gives it.
    analysis : Analysis
        Its analysis (same height and width).
    regions : iterable of dict, optional
        Regions to outline, each ``{"box": [top, left, bottom, right], "kind": "flag" | "quality",
        "quality_inside": float | None, "quality_around": float | None, "area_share": float,
        "score": float}`` (see :class:`Region`; bottom and right exclusive). None: the layer is empty.
    title : str, optional
        Heading and window title (e.g. the file name); "jpegtrace analysis" by default.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        When ``rgb`` does not match the maps' size, or a region's box is unusable.

    Notes
    -----
    The page shows the image with one map laid over it in colour (flag in magma, quality in viridis,
    evidence in gray, as :func:`jpegtrace.eval.reports.save_maps` draws them; radio buttons choose it),
    an opacity slider, the regions as outlined, labelled boxes (a checkbox), zoom to fit or to 100 %,
    200 % and 400 % (one image pixel per 1, 2, 4 CSS pixels; keys F, 1, 2, 4), a legend per colour
    map, and the whole-image summary: verdict, headline QF and where it comes from, mean QF and flag,
    evidence share, the grid check and its offset, the quantisation table read, notes, regions.

    Under the cursor it reads the maps at that pixel. They are embedded at full resolution in one
    RGB PNG (:func:`map_channels`), so the values shown are the analysis's own, quantised: QF to
    :data:`QF_STEP` (0.5), flag and evidence to :data:`FLAG_STEP` (1/255). The script reads the PNG
    back through a canvas with colour management off, which returns its bytes exactly; the overlay
    is coloured from the same bytes with the colour maps' 256-colour tables.

    The image itself is embedded as a lossless PNG, so the page shows the pixels that were analysed
    (a JPEG copy would add the very traces under study). The file is 4/3 of the two PNGs (base64),
    about 3-4 bytes a pixel: photos of ``shared/data/clean`` take 1.6-1.8 bytes a pixel as PNG and
    their maps 0.55-1.0 (the network's maps vary from pixel to pixel), so a 12 MP photo gives a
    page of about 35-45 MB. Writing one takes about 8 s on one core; headless Chromium opens it in
    about 2 s and holds some 250 MB for it (the decoded image, the maps' bytes and the overlay).
    Browsers cap a canvas at about 268 MP (Chromium), which bounds the images a page can show.

    Nothing is fetched (the page's Content-Security-Policy forbids it), so it opens offline from a
    file, an e-mail attachment or an archive. The file is written under a temporary name and renamed
    (:func:`jpegtrace.io.atomic_path`), so it is never half-written.
    """
    from .io import atomic_path

    shape = tuple(analysis.shape)
    image = np.asarray(rgb)
    if image.shape[:2] != shape or image.dtype != np.uint8 or image.ndim not in (2, 3) \
            or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"rgb must be uint8 (H, W, 3) or (H, W) of the maps' size {shape}, "
                         f"got {image.dtype} {image.shape}")
    regions = [as_region(r, shape) for r in (regions or ())]
    title = title or "jpegtrace analysis"
    values = {
        "GENERATOR": escape(f"jpegtrace {_version()}"),
        "TITLE": escape(title),
        "SUMMARY": summary_html(analysis, regions, title=title),
        "CONFIG": _script_json(_config(analysis, regions)),
    }
    path = Path(path)
    template = resources.files("jpegtrace").joinpath(_TEMPLATE).read_text(encoding="utf-8")
    pieces = _PLACEHOLDER.split(template)  # literal, name, literal, name, ..., literal
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                f.write(piece.encode("utf-8"))
            elif piece == "IMAGE":  # the largest pieces are encoded only when written, one at a time
                f.write(base64.b64encode(_png(_image_for_png(image, analysis.grayscale))))
            elif piece == "MAPS":
                f.write(base64.b64encode(_png(map_channels(analysis))))
            else:
                f.write(values[piece].encode("utf-8"))
    return path


def summary_html(analysis: Analysis, regions: Iterable[Region] = (), *, title: str = "jpegtrace analysis") -> str:
    """The page's side panel: title, verdict, the whole-image numbers, table, regions and legends (HTML)."""
    regions = list(regions)
    height, width = analysis.shape
    verdict = analysis.verdict
    quality = analysis.headline_quality
    rows = [
        ("QF", "–" if quality is None else f"{quality:.1f} <span class=small>({escape(analysis.quality_source)})</span>"),
        ("QF of the quality map (weighted median)", _number(analysis.median_quality, 1)),
        ("mean QF of the quality map", _number(analysis.mean_quality, 1)),
        ("mean flag", _number(analysis.mean_flag, 3)),
    ]
    if analysis.network_mean_flag is not None:
        rows.append(("the network's own mean flag", _number(analysis.network_mean_flag, 3)))
    if analysis.flag_verdict != verdict:
        rows.append(("the flag map's verdict", escape(analysis.flag_verdict)))
    rows.append(("evidence share", f"{100 * analysis.evidence_share:.1f} %"
                 + ("" if analysis.evidence_map is not None else " <span class=small>(not computed)</span>")))
    grid = analysis.grid
    if grid is None:
        rows.append(("JPEG grid check", "not run"))
    else:
        rows.append(("JPEG grid check", f"score {grid.score:.1f} ({'found' if grid.found else 'not found'}, "
                                        f"threshold {grid.threshold:g})"))
        # The offset means something only where a grid was found.
        rows.append(("grid offset (dy, dx)", f"({grid.grid_offset[0]}, {grid.grid_offset[1]})" if grid.found else "–"))
    table = analysis.table
    if table is not None:
        rows.append(("quantisation table", f"{escape(table.describe())}, {int(table.known.sum())} of 64 steps "
                                           f"read from {table.blocks:,} blocks"))
    elif grid is not None and grid.found:
        rows.append(("quantisation table", "too few steps readable"))
    rows.append(("size", f"{width} × {height} px{', grayscale' if analysis.grayscale else ''}"))
    if analysis.notes:
        rows.append(("notes", "; ".join(escape(n) for n in analysis.notes)))
    parts = [f"<h1>{escape(title)}</h1>",
             f'<p class="verdict {verdict.replace(" ", "-")}">{escape(verdict)}</p>',
             "<table class=facts>", *(f"<tr><th>{k}</th><td class=num>{v}</td></tr>" for k, v in rows), "</table>"]
    if table is not None:
        parts.append("<h2>Luma quantisation table read</h2><table class=steps>")
        for row in table.steps:
            parts.append("<tr>" + "".join(f"<td>{int(s)}</td>" if s > 0 else "<td class=unknown>·</td>"
                                          for s in row) + "</tr>")
        parts.append("</table><p class=small>natural order, DC top left; · : not read</p>")
    parts.append(f"<h2>Regions ({len(regions)})</h2>")
    if regions:
        parts.append("<table class=regions><tr><th>#</th><th>kind</th><th>box</th>"
                     "<th>QF in</th><th>around</th><th>area</th><th>score</th><th>own table</th></tr>")
        for k, r in enumerate(regions, 1):
            box = ",".join(f"{v:g}" for v in r.box)
            parts.append(f"<tr><td>{k}</td><td>{escape(r.kind)}</td><td class=num>{box}</td>"
                         f"<td class=num>{_number(r.quality_inside, 1)}</td><td class=num>{_number(r.quality_around, 1)}</td>"
                         f"<td class=num>{100 * r.area_share:.1f} %</td><td class=num>{r.score:.2f}</td>"
                         f"<td>{escape(r.table or '–')}</td></tr>")
        parts.append("</table><p class=small>box: top, left, bottom, right in pixels (bottom and right "
                     "exclusive)</p>")
    else:
        parts.append("<p class=small>No regions were given; the regions layer is empty.</p>")
    parts.append("<h2>Legend</h2>")
    for name, label, ticks in (("flag", "compression flag (1 = ever JPEG-compressed)", ("0", "0.5", "1")),
                               ("quality", "quality factor (100 = lossless or never compressed)",
                                ("0", "25", "50", "75", "100")),
                               ("evidence", "evidence (0 = no JPEG trace can show here)", ("0", "0.5", "1"))):
        spans = "".join(f"<span>{t}</span>" for t in ticks)
        parts.append(f'<div class=legend data-layer="{name}"><div class=name>{label}</div>'
                     f'<canvas data-lut="{name}"></canvas><div class=ticks>{spans}</div></div>')
    parts.append("<p class=small>Regions: solid cyan outline = flag region, dashed yellow = quality region.</p>")
    parts.append("<h2>About the values</h2><p class=small>The readout under the cursor comes from the maps, "
                 "embedded at full resolution: QF to the nearest 0.5, flag and evidence to the nearest 1/255. "
                 "Means are weighted by the evidence map. The image is embedded losslessly (PNG). "
                 "Keys: <kbd>F</kbd> fit, <kbd>1</kbd> <kbd>2</kbd> <kbd>4</kbd> zoom.</p>")
    return "\n".join(parts)


def _config(analysis: Analysis, regions: list[Region]) -> dict:
    """What the script needs: size, colour tables indexed by the stored bytes, regions."""
    from .eval.reports import EVIDENCE_SCALE, FLAG_SCALE, QUALITY_SCALE, colour_index, colour_table

    luts = {}
    stored = np.arange(256, dtype=np.float32)
    for name, (cmap, _, vmin, vmax), step in (("quality", QUALITY_SCALE, QF_STEP), ("flag", FLAG_SCALE, FLAG_STEP),
                                              ("evidence", EVIDENCE_SCALE, FLAG_STEP)):
        table = colour_table(cmap).astype(np.int64)
        # The colour of each stored byte is that of the value it stands for, binned as matplotlib bins it.
        index = colour_index(stored * np.float32(step), vmin, vmax, len(table))
        rgb = table[index]
        luts[name] = ((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).tolist()
    return {"width": int(analysis.shape[1]), "height": int(analysis.shape[0]),
            "has_evidence": analysis.evidence_map is not None,
            "quantisation": {"qf": QF_STEP, "flag": FLAG_STEP, "evidence": FLAG_STEP},
            "luts": luts,
            "regions": [{**dataclasses.asdict(r), "box": list(r.box), "label": r.label} for r in regions]}


def _script_json(data) -> str:
    """JSON safe inside a ``<script>`` element: no ``</script>`` or ``<!--`` can end it early."""
    return json.dumps(data, ensure_ascii=True, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e")


def _image_for_png(image: np.ndarray, grayscale: bool) -> np.ndarray:
    # A grayscale image (three equal channels, often a read-only view of one) is stored as one channel,
    # a third of the size and the same pixels.
    if image.ndim == 3 and (image.strides[2] == 0 or (grayscale and _channels_equal(image))):
        return np.ascontiguousarray(image[:, :, 0])
    return np.ascontiguousarray(image)


def _channels_equal(image: np.ndarray) -> bool:
    return bool((image[:, :, 0] == image[:, :, 1]).all() and (image[:, :, 1] == image[:, :, 2]).all())


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _number(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _version() -> str:
    from . import __version__

    return __version__
