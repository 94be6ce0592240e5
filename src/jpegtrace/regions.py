"""Local evidence: the regions of an image whose flag or quality differs from the rest.

The whole-image means hide what an analyst looks for first: a region pasted from a JPEG into a
never-compressed photo, or a QF-40 region inside a QF-92 photo. This module finds such regions
in the maps of :func:`jpegtrace.analysis.analyze` on the 8x8 block lattice (the unit a JPEG
works in): connected areas of flagged blocks (the flag map), and, among flagged blocks, areas whose
QF differs clearly from the rest of the flagged image (the quality map).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .morphology import CROSS, SQUARE, closing, dilate, fill_holes, label, nan_median_3x3, opening

#: Side (pixels) of the cells the maps are averaged over before regions are looked for.
CELL = 8
#: A cell is flagged when its evidence-weighted mean flag is above this.
FLAG_THRESHOLD = 0.5
#: A cell takes part only when at least this share of its pixels carry evidence.
MIN_CELL_EVIDENCE = 0.5
#: Smallest region reported: this many cells (32 x 32 pixels) ...
MIN_REGION_CELLS = 16
#: ... and this share of the image's cells with evidence (so that a 12 MP photo's speckles are not regions).
MIN_REGION_SHARE = 0.002
#: A quality region's QF differs from the rest of the flagged image by at least this much, both cell
#: by cell (smoothed) and between the medians inside and in the ring around it.
MIN_QUALITY_DIFFERENCE = 15.0
#: Smallest quality region: this many cells (48 x 48 pixels). The network's QF wanders by 10-20 over
#: smaller low-detail patches of a uniformly compressed photo.
MIN_QUALITY_REGION_CELLS = 36
#: A flag region is evidence enough by itself (for "partly compressed") from this score, or with a
#: JPEG grid found inside its box. QF-60..95 regions pasted into val photos score 0.71-0.95, the
#: one blotch the network leaves on 50 val and 80 train never-compressed photos 0.72.
MIN_REGION_SCORE = 0.75
#: ... and from this side (pixels) in both directions: a strip along the image's edge, where the
#: network sees only half its context, is evidence only with a grid of its own (a 64 x 18 strip of a
#: never-compressed val photo scored 0.84).
MIN_CONFIRMED_SIDE = 32
#: Width (cells) of the ring around a region over which "around" is measured.
RING_CELLS = 4
#: A region's table and the image's show the same quantisation only where they agree at this many
#: frequencies or more that both read.
MIN_COMMON_STEPS = 3

FLAG = "flag"
QUALITY = "quality"


@dataclass(frozen=True)
class Region:
    """One region of an image's maps.

    Attributes
    ----------
    kind : {"flag", "quality"}
        "flag": an area of flagged blocks (compressed here); "quality": an area of flagged blocks
        whose QF differs from the rest of the flagged image.
    box : (int, int, int, int)
        ``(top, left, bottom, right)`` in pixels, bottom and right exclusive.
    area_share : float
        The region's pixels over the image's.
    mean_flag : float
        Mean flag inside.
    quality_inside : float or None
        Median QF of the region's cells.
    quality_around : float or None
        Median QF of the cells with evidence in a ring around the region (flagged or not;
        None when the ring has none).
    flag_around : float or None
        Mean flag in that ring.
    score : float
        How clearly the region stands out, 0..1: for a flag region the flag inside less the flag
        around; for a quality region the QF difference over 50 (capped at 1).
    grid_score : float or None
        Score of the JPEG grid check (:func:`jpegtrace.grid.find_jpeg_grid`) on the pixels of the
        box alone; None when it was not run (:func:`confirm_regions` runs it).
    grid_found : bool
        Whether that check found a grid.
    table : TableEstimate or None
        The luma table read in the box at the grid check's best offset there
        (:func:`jpegtrace.tables.estimate_luma_table`; its grid offset in the image's coordinates),
        where one could be read: a region pasted from a JPEG shows its own table and offset.
    """

    kind: str
    box: tuple[int, int, int, int]
    area_share: float
    mean_flag: float
    quality_inside: float | None
    quality_around: float | None
    flag_around: float | None
    score: float
    grid_score: float | None = None
    grid_found: bool = False
    table: object | None = None

    @property
    def confirmed(self) -> bool:
        """A flag region strong enough to make an image partly compressed: score at least
        :data:`MIN_REGION_SCORE` over a box of at least :data:`MIN_CONFIRMED_SIDE` pixels each way,
        or a JPEG grid found in its box."""
        top, left, bottom, right = self.box
        large = min(bottom - top, right - left) >= MIN_CONFIRMED_SIDE
        return self.kind == FLAG and ((self.score >= MIN_REGION_SCORE and large) or self.grid_found)

    def as_dict(self) -> dict:
        """The region as JSON-ready values (the record schema's ``regions`` items)."""
        def r(value, digits):
            return None if value is None else round(float(value), digits)

        return {"kind": self.kind, "box": [int(v) for v in self.box], "area_share": round(self.area_share, 4),
                "mean_flag": round(self.mean_flag, 4), "quality_inside": r(self.quality_inside, 1),
                "quality_around": r(self.quality_around, 1), "flag_around": r(self.flag_around, 4),
                "score": round(self.score, 3),
                "grid_score": None if self.grid_score is None else round(self.grid_score, 2),
                "grid_found": self.grid_found, "table": None if self.table is None else self.table.as_dict()}

    def describe(self) -> str:
        """One line: ``flag region at (top, left)-(bottom, right), 28 % of the image, QF ≈ 80 inside``."""
        top, left, bottom, right = self.box
        text = f"{self.kind} region {left},{top}-{right},{bottom} ({self.area_share:.0%})"
        if self.quality_inside is not None:
            text += f" QF ≈ {self.quality_inside:.0f} inside"
        if self.quality_around is not None and self.kind == QUALITY:
            text += f", {self.quality_around:.0f} around"
        if self.table is not None:
            text += f", its own {self.table.describe()} at grid offset {self.table.grid_offset}"
        return text


#: Pixels averaged at once by :func:`cell_means` (bands of whole cell rows), bounding its memory.
_BAND_PIXELS = 1 << 14


def cell_means(values: np.ndarray, weights: np.ndarray | None, *, cell: int = CELL) -> tuple[np.ndarray, np.ndarray]:
    """Weighted means of ``values`` over ``cell`` x ``cell`` cells (partial cells at the edges included;
    NaN where the weights sum to 0), and each cell's mean weight."""
    height, width = values.shape
    rows, cols = -(-height // cell), -(-width // cell)
    mean = np.full((rows, cols), np.nan, np.float32)
    weight = np.zeros((rows, cols), np.float32)
    band = max(1, _BAND_PIXELS // (cell * max(1, width)))  # cell rows at once
    edge = np.zeros(cols * cell, np.float32)
    edge[:width] = 1.0
    for r0 in range(0, rows, band):
        y0, y1 = r0 * cell, min(height, (r0 + band) * cell)
        n = -(-(y1 - y0) // cell)
        v = np.zeros((n * cell, cols * cell), np.float32)
        w = np.zeros((n * cell, cols * cell), np.float32)
        v[:y1 - y0, :width] = values[y0:y1]
        w[:y1 - y0, :width] = 1.0 if weights is None else weights[y0:y1]
        count = np.zeros((n * cell, cols * cell), np.float32)
        count[:y1 - y0] = edge
        wsum = w.reshape(n, cell, cols, cell).sum(axis=(1, 3))
        v *= w
        vsum = v.reshape(n, cell, cols, cell).sum(axis=(1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean[r0:r0 + n] = np.where(wsum > 0, vsum / np.maximum(wsum, 1e-12), np.nan)
            weight[r0:r0 + n] = wsum / count.reshape(n, cell, cols, cell).sum(axis=(1, 3))
    return mean, weight


def outside_regions(regions, flag_map: np.ndarray, evidence_map: np.ndarray | None) -> tuple[float | None, float]:
    """Mean flag (evidence-weighted) and share of the image's evidence outside the flag regions' boxes.

    Returns ``(None, 0.0)`` without flag regions; the mean is None when nothing outside carries
    evidence. Computed on the 8x8 cells (the boxes are made of whole cells).
    """
    boxes = [r.box for r in regions if r.kind == FLAG]
    if not boxes:
        return None, 0.0
    flag, weight = cell_means(flag_map, evidence_map)
    height, width = flag_map.shape
    # Pixels per cell (partial cells at the right and bottom edges have fewer).
    pixels = np.outer(np.diff(np.minimum(np.arange(flag.shape[0] + 1) * CELL, height)),
                      np.diff(np.minimum(np.arange(flag.shape[1] + 1) * CELL, width))).astype(np.float64)
    mass = weight * pixels
    for top, left, bottom, right in boxes:
        mass[top // CELL:-(-bottom // CELL), left // CELL:-(-right // CELL)] = 0.0
    total = float(mass.sum())
    share = total / (height * width)
    if total <= 0:
        return None, share
    return float(np.nansum(np.where(mass > 0, flag, 0.0) * mass) / total), share


def find_regions(quality_map: np.ndarray, flag_map: np.ndarray, evidence_map: np.ndarray | None = None, *,
                 flag_threshold: float = FLAG_THRESHOLD, min_cells: int = MIN_REGION_CELLS,
                 min_share: float = MIN_REGION_SHARE,
                 min_quality_difference: float = MIN_QUALITY_DIFFERENCE) -> list[Region]:
    """Regions of flagged blocks, and of flagged blocks whose QF differs from the rest.

    Parameters
    ----------
    quality_map, flag_map : ndarray of float32, (H, W)
        An :class:`~jpegtrace.analysis.Analysis`'s maps (QF 0..100, flag 0..1).
    evidence_map : ndarray of float32, (H, W), optional
        Where the pixels carry evidence; cells with less than :data:`MIN_CELL_EVIDENCE` take no
        part (they are neither flagged nor clean).
    flag_threshold : float
        Flag above which a cell is flagged.
    min_cells, min_share : int, float
        Smallest region: this many 8x8 cells and this share of the cells with evidence.
    min_quality_difference : float
        Smallest QF difference between a quality region and the rest of the flagged cells.

    Returns
    -------
    list of Region
        Flag regions first (largest first), then quality regions (largest first). An image flagged
        all over has one flag region covering it.

    Notes
    -----
    The maps are averaged over 8x8 cells weighted by the evidence. Flagged cells are cleaned by a
    binary opening and closing with a 3x3 cross (removing speckles one cell wide and bridging
    one-cell gaps), their holes filled, and split into 8-connected components. Quality regions are
    looked for among flagged cells only: the cells' QF is smoothed by the median of the flagged
    cells in their 3x3 neighbourhood (:func:`jpegtrace.morphology.nan_median_3x3`), compared with
    the median QF of all flagged cells, and cells more than ``min_quality_difference`` away (in
    either direction) form components as above, of :data:`MIN_QUALITY_REGION_CELLS` cells at least,
    kept when their median QF also differs by as much from the median in the ring around them.
    "Around" is a ring :data:`RING_CELLS` wide outside each region (flagged cells only for a
    quality region).
    """
    flag, weight = cell_means(flag_map, evidence_map)
    quality, _ = cell_means(quality_map, evidence_map)
    usable = (weight >= MIN_CELL_EVIDENCE) & np.isfinite(flag)
    if not usable.any():
        return []
    smallest = max(min_cells, int(np.ceil(min_share * usable.sum())))
    flagged = usable & (flag > flag_threshold)
    flagged = _clean(flagged) & usable
    flagged = fill_holes(flagged)
    height, width = flag_map.shape
    regions = [_region(FLAG, component, flag, quality, usable, height, width, flag_threshold)
               for component in _components(flagged, smallest)]

    inside = flagged & usable
    if inside.sum() >= 2 * smallest:
        smooth = nan_median_3x3(np.where(inside, quality, np.nan))
        smooth = np.where(np.isfinite(smooth), smooth, quality)
        reference = float(np.median(quality[inside]))
        differs = inside & (np.abs(smooth - reference) >= min_quality_difference)
        differs = _clean(differs) & inside
        for component in _components(differs, max(smallest, MIN_QUALITY_REGION_CELLS)):
            # A quality region covering most of the flagged cells is the image's own QF, not a region.
            if component.sum() > 0.5 * inside.sum():
                continue
            region = _region(QUALITY, component, flag, quality, usable & flagged, height, width, flag_threshold)
            if (region.quality_around is not None
                    and abs(region.quality_inside - region.quality_around) >= min_quality_difference):
                regions.append(region)
    return regions


def _clean(mask: np.ndarray) -> np.ndarray:
    """Opening then closing with the 3x3 cross, with the image's edge cells continued outwards (so that
    a region reaching the edge keeps its edge cells)."""
    padded = np.pad(mask, 2, mode="edge")
    cleaned = closing(opening(padded, CROSS), CROSS)
    return cleaned[2:-2, 2:-2]


def _components(mask: np.ndarray, smallest: int) -> list[np.ndarray]:
    labels, count = label(mask, SQUARE)
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel())[1:]
    order = [i + 1 for i in np.argsort(-sizes, kind="stable") if sizes[i] >= smallest]
    return [labels == label for label in order]


def _region(kind: str, component: np.ndarray, flag: np.ndarray, quality: np.ndarray, ring_cells: np.ndarray,
            height: int, width: int, flag_threshold: float) -> Region:
    rows, cols = np.nonzero(component)
    top, left = int(rows.min()) * CELL, int(cols.min()) * CELL
    bottom, right = min(height, (int(rows.max()) + 1) * CELL), min(width, (int(cols.max()) + 1) * CELL)
    grown = dilate(component, SQUARE, iterations=RING_CELLS)
    ring = grown & ~component & ring_cells
    inside_quality = quality[component & np.isfinite(quality)]
    around_quality = quality[ring & np.isfinite(quality)]
    q_in = float(np.median(inside_quality)) if inside_quality.size else None
    q_out = float(np.median(around_quality)) if around_quality.size else None
    f_in = float(np.nanmean(flag[component]))
    f_out = float(np.nanmean(flag[ring])) if ring.any() else None
    if kind == FLAG:
        score = f_in - (f_out if f_out is not None else 0.0)
    else:
        score = min(1.0, abs((q_in or 0.0) - (q_out if q_out is not None else q_in or 0.0)) / 50.0)
    area = float(component.sum()) * CELL * CELL / (height * width)
    return Region(kind=kind, box=(top, left, bottom, right), area_share=min(1.0, area), mean_flag=f_in,
                  quality_inside=q_in, quality_around=q_out, flag_around=f_out, score=float(np.clip(score, 0, 1)))


def confirm_regions(image: np.ndarray, regions: list[Region] | tuple[Region, ...], *,
                    image_grid=None, image_table=None) -> tuple[Region, ...]:
    """``regions`` with the JPEG grid check run on each region's box (``grid_score``, ``grid_found``),
    and the box's own luma table read at the grid offset that check scored best (``table``).

    ``image_grid`` (the whole ``image``'s grid evidence) and ``image_table``
    (:func:`~jpegtrace.tables.estimate_luma_table` of it at that grid's offset), where the caller has
    them, stand for the checks of a region whose box is the whole image: the same functions of the same
    pixels (a whole-image flag region is common in a JPEG, and the two checks cost a quarter of the
    network's time at 1 MP). A grid found by its flat blocks (``method='flat blocks'``) is not what
    :func:`~jpegtrace.grid.find_jpeg_grid` returns, so the box is checked again then.

    A region pasted from a JPEG keeps its own 8x8 grid, at any offset, and its own table; a blotch of
    the network's flag map over never-compressed pixels has neither. The table is read even where
    the grid's score stays under the threshold (a 168-pixel box of a QF-50 JPEG scored 4.2): its own
    tests decide, and never-compressed images have no table even at a made-up grid
    (``tests/test_tables.py``). A quality region's table says whether its pixels were quantised
    otherwise than the rest (:func:`quality_regions_supported`).
    """
    from .grid.check import find_jpeg_grid
    from .tables import estimate_luma_table

    out = []
    for region in regions:
        top, left, bottom, right = region.box
        box = image[top:bottom, left:right]
        whole = box.shape[:2] == image.shape[:2]
        reuse = whole and image_grid is not None and image_grid.method == "coefficients"
        grid = image_grid if reuse else find_jpeg_grid(box)
        if not grid.coefficients:
            table = None
        elif whole and image_table is not None and image_table.grid_offset == grid.grid_offset:
            table = image_table
        else:
            table = estimate_luma_table(box, grid_offset=grid.grid_offset)
        region = replace(region, grid_score=float(grid.score), grid_found=bool(grid.found),
                         table=None if table is None else table.within(top, left))
        out.append(region)
    return tuple(out)


def same_quantisation(table, reference) -> bool:
    """Whether ``table`` (read in a region's box, offset in the image's coordinates) shows the last JPEG
    of ``reference`` (the whole image's table): the same grid, the same step at every frequency both
    know (at least :data:`MIN_COMMON_STEPS` of them), and no earlier JPEG of its own."""
    if table is None or reference is None or table.earlier_quality is not None:
        return False
    if tuple(table.grid_offset) != tuple(reference.grid_offset):
        return False
    common = table.known & reference.known
    return int(common.sum()) >= MIN_COMMON_STEPS and bool(np.all(table.steps[common] == reference.steps[common]))


def quality_regions_supported(regions, image_table) -> tuple[Region, ...]:
    """``regions`` (of :func:`confirm_regions`) without the quality regions that read higher than around
    although their box reads the image's own table (:func:`same_quantisation`).

    Notes
    -----
    Such a region's pixels were quantised last by the same table as the rest. An earlier, finer JPEG under
    them would be erased by that coarser last one, so their higher QF is the network's alone: it reads
    smooth, low-detail areas of uniformly compressed photos 15-25 QF high. A region that reads *lower*
    than around under the image's table stays: an earlier, coarser JPEG survives a finer last one (a
    region pasted from a JPEG into a photo then saved again, on any grid), and a region of another
    table or grid keeps that table (its own, in :attr:`Region.table`).

    Measured on the 50 ``val`` images (4:2:0, Pillow; ``scripts/evaluate_quality_regions.py``,
    docs/regions.md): as single JPEGs at QF 30, 50, 70, 80 and 90, 25 of the 250 had quality regions
    (29), 6 now (9); QF-40 squares pasted into a QF-92 JPEG's pixels, QF-95 ones into a QF-70 JPEG's,
    and QF-40 squares pasted into a photo then saved at QF 92 (on the same grid and on another) keep
    every quality region found.
    """
    return tuple(r for r in regions
                 if r.kind != QUALITY or not (same_quantisation(r.table, image_table)
                                              and r.quality_inside is not None and r.quality_around is not None
                                              and r.quality_inside > r.quality_around))
