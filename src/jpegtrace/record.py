"""One record per analysed image, the same in every output: JSON Lines, CSV, the one-line text.

``jpegtrace analyze`` prints these records as each image finishes, and ``jpegtrace assess``
writes them (``records.jsonl``, ``table.csv``, ``assessment.json``), so that a script reads the
same fields whichever command made them. :data:`SCHEMA_PATH` is the JSON Schema of a record; it
ships with the package and a test validates real outputs against it.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the analysis (and torch) load only where an image is analysed, not to report a failure
    from .analysis import Analysis

#: The JSON Schema (draft 2020-12) of one record.
SCHEMA_PATH = Path(__file__).parent / "schema" / "record.schema.json"
#: Version of the record's fields; it changes when a field changes meaning or goes away.
SCHEMA_VERSION = 1

#: The columns of the CSV form (:func:`csv_row`), numbers as numbers and "" for what is missing.
CSV_COLUMNS = ("file", "ok", "error", "height", "width", "verdict", "compressed", "quality", "quality_source",
               "map_quality", "mean_flag", "evidence_share", "outside_flag", "grid_score", "grid_found",
               "grid_offset_y", "grid_offset_x", "table_quality", "table_standard", "table_known_steps",
               "double_compressed", "primary_quality", "n_regions", "region_area_share", "region_quality", "file_format", "file_quality", "notes")


def _rounded(value, digits: int):
    return None if value is None else round(float(value), digits)


def analysis_record(analysis: Analysis, *, file: str, input_info=None, maps: dict | None = None,
                    network: dict | None = None) -> dict:
    """The record of one analysed image, as JSON-ready values (see :data:`SCHEMA_PATH`).

    Parameters
    ----------
    analysis : Analysis
    file : str
        The name the image is reported under (its path as given, ``-`` for standard input).
    input_info : object with ``as_dict()``, optional
        What the input file is (format, lossy, its own QF), e.g.
        :func:`jpegtrace.io.describe_file`'s; ``input`` is null without it.
    maps : dict of str to str, optional
        Files written for the image (maps, viewer page), by kind.
    network : dict, optional
        What computed the maps: ``{"model": ..., "backend": ..., "precision": ...}`` (the weights'
        fingerprint, :func:`jpegtrace.nn.backends.weights_fingerprint`, to 16 hex digits), where the
        caller knows it. The default precision depends on the CPU (bf16 only where it is native and
        checked), so the same image can get maps that differ within the bf16 tolerance on two machines.

    Notes
    -----
    ``quality`` is the headline QF (:attr:`~jpegtrace.analysis.Analysis.headline_quality`: the
    table's where it was read from the pixels, the largest region's for a partly compressed image,
    else the maps'), ``quality_source`` says which, and ``map_quality`` is the evidence-weighted
    median of the quality map (:attr:`~jpegtrace.analysis.Analysis.median_quality`). ``grid.offset``
    is null when no grid was found; ``grid`` is null when the check was not run.
    """
    grid = analysis.grid
    record = {
        "file": file, "ok": True, "schema": SCHEMA_VERSION,
        "height": int(analysis.shape[0]), "width": int(analysis.shape[1]),
        "verdict": analysis.verdict, "compressed": analysis.compressed,
        "quality": _rounded(analysis.headline_quality, 2), "quality_source": analysis.quality_source,
        "map_quality": _rounded(analysis.median_quality, 2),
        "mean_flag": _rounded(analysis.mean_flag, 4), "network_mean_flag": _rounded(analysis.network_mean_flag, 4),
        "evidence_share": round(float(analysis.evidence_share), 4),
        "outside_flag": _rounded(analysis.outside_flag, 4),
        "grid": None if grid is None else {"score": round(float(grid.score), 2), "found": bool(grid.found),
                                           "offset": list(grid.grid_offset) if grid.found else None,
                                           "method": grid.method if grid.found else None},
        "table": None if analysis.table is None else analysis.table.as_dict(),
        "history": None if analysis.history is None else analysis.history.as_dict(),
        "regions": [r.as_dict() for r in analysis.regions],
        "grayscale": bool(analysis.grayscale), "notes": list(analysis.notes),
        "input": None if input_info is None else input_info.as_dict(),
    }
    if maps:
        record["maps"] = dict(maps)
    if network:
        record["network"] = dict(network)
    return record


def failure_record(file: str, reason: str) -> dict:
    """The record of an input that could not be analysed, with the one-line reason."""
    return {"file": file, "ok": False, "schema": SCHEMA_VERSION, "error": reason}


def csv_row(record: dict) -> dict:
    """A record flattened into :data:`CSV_COLUMNS` (the largest flag region stands for the regions)."""
    if not record["ok"]:
        return {**{c: "" for c in CSV_COLUMNS}, "file": record["file"], "ok": 0, "error": record["error"]}
    grid, table, info = record["grid"] or {}, record["table"] or {}, record.get("input") or {}
    history = record.get("history") or {}
    offset = grid.get("offset") or ("", "")
    flag_regions = [r for r in record["regions"] if r["kind"] == "flag"]
    largest = flag_regions[0] if flag_regions else {}
    table_quality = table.get("ijg_quality") if table.get("ijg_quality") is not None else table.get("equivalent_quality")

    def cell(value):
        if value is None:
            return ""
        return int(value) if isinstance(value, bool) else value

    return {"file": record["file"], "ok": 1, "error": "", "height": record["height"], "width": record["width"],
            "verdict": record["verdict"], "compressed": int(record["compressed"]),
            "quality": cell(record["quality"]), "quality_source": record["quality_source"],
            "map_quality": cell(record["map_quality"]), "mean_flag": cell(record["mean_flag"]),
            "evidence_share": record["evidence_share"], "outside_flag": cell(record["outside_flag"]),
            "grid_score": cell(grid.get("score")), "grid_found": cell(grid.get("found")),
            "grid_offset_y": offset[0], "grid_offset_x": offset[1],
            "table_quality": cell(table_quality), "table_standard": cell(table.get("standard")),
            "table_known_steps": cell(table.get("known_steps")),
            "double_compressed": cell(history.get("detected")), "primary_quality": cell(history.get("primary_quality")),
            "n_regions": len(flag_regions), "region_area_share": cell(largest.get("area_share")),
            "region_quality": cell(largest.get("quality_inside")),
            "file_format": cell(info.get("format")), "file_quality": cell(info.get("file_quality")),
            "notes": "; ".join(record["notes"])}


def text_line(record: dict) -> str:
    """The one-line, human form: ``file<TAB>verdict<TAB>QF<TAB>details``.

    Examples: ``fake.png  partly compressed  QF ≈ 74  1 region, 28 % of the image at x 32-136,
    y 32-136, never compressed around it``; ``photo.png  compressed  QF 84 (table, IJG)  flag 0.91,
    evidence 97 %, grid 45.2 at (0, 0), chroma 4:2:0``. Machine readers want ``--format jsonl`` or ``csv``.
    """
    if not record["ok"]:
        return f"{record['file']}\terror\t-\t{record['error']}"
    from .analysis import NO_EVIDENCE, PARTLY_COMPRESSED
    from .tables import describe_table

    verdict, quality, source = record["verdict"], record["quality"], record["quality_source"]
    if quality is None:
        shown = "QF -"
    elif source == "table (IJG range)":
        shown = f"QF ≥ {record['table']['ijg_range'][0]} (table, IJG; ≈ {quality:.0f} by the maps)"
    elif source.startswith("table"):
        shown = f"QF {quality:.0f} ({source.replace('table (', 'table, ').rstrip(')')})"
    elif source == "region table (IJG)":
        shown = f"QF {quality:.0f} (region's table, IJG)"
    else:
        shown = f"QF ≈ {quality:.0f}"
    details = []
    flag_regions = [r for r in record["regions"] if r["kind"] == "flag"]
    if verdict == PARTLY_COMPRESSED:
        area = sum(r["area_share"] for r in flag_regions)
        boxes = ", ".join(_box_text(r) for r in flag_regions[:3])
        details.append(f"{len(flag_regions)} region{'s' if len(flag_regions) > 1 else ''}, {area:.0%} of the image "
                       f"at {boxes}, never compressed around it")
        for r in flag_regions[:3]:
            if r.get("table"):
                details.append(f"{_box_text(r)}: its own {describe_table(r['table'], offset=True)}")
    elif verdict == NO_EVIDENCE:
        details.append("too few pixels carry JPEG evidence")
    if record["mean_flag"] is not None and verdict != PARTLY_COMPRESSED:
        details.append(f"flag {record['mean_flag']:.2f}")
    details.append(f"evidence {record['evidence_share']:.0%}")
    grid = record["grid"]
    if grid is not None:
        details.append(f"grid {grid['score']:.1f}" + (f" at ({grid['offset'][0]}, {grid['offset'][1]})"
                                                      if grid["found"] else "")
                       + (" by flat blocks" if grid.get("method") == "flat blocks" else ""))
    table = record.get("table") or {}
    if table.get("subsampling"):
        details.append(f"chroma {table['subsampling']}")
    quality_regions = [r for r in record["regions"] if r["kind"] == "quality"]
    for r in quality_regions[:3]:
        own = _quality_region_table(r.get("table"), record.get("table"))
        details.append(f"QF ≈ {r['quality_inside']:.0f} in {_box_text(r)} (≈ {r['quality_around']:.0f} around{own})")
    history = record.get("history") or {}
    if history.get("detected"):
        details.append(f"compressed at least twice (earlier QF ≈ {history['primary_quality']})")
    info = record.get("input") or {}
    if info.get("file_quality") is not None:
        details.append(f"file: {info.get('format', 'JPEG')} QF {info['file_quality']:.0f} by its own tables")
    if record["notes"]:
        details.append("; ".join(record["notes"]))
    return f"{record['file']}\t{verdict}\t{shown}\t{', '.join(details)}"


def _quality_region_table(table: dict | None, image_table: dict | None) -> str:
    """What a quality region's box table adds to the one-line output: its own table, or that the box reads the
    image's (then the QF difference is the network's word alone, :func:`jpegtrace.regions.same_quantisation`)."""
    from .regions import same_quantisation
    from .tables import describe_table

    if not table:
        return ""
    if image_table and same_quantisation(_table_of(table), _table_of(image_table)):
        return "; its box reads the image's table"
    earlier = f", earlier QF {table['earlier_quality']}" if table.get("earlier_quality") is not None else ""
    return f"; its own {describe_table(table, offset=True)}{earlier}"


def _table_of(table: dict) -> SimpleNamespace:
    """A record's table as :func:`jpegtrace.regions.same_quantisation` reads a
    :class:`~jpegtrace.tables.TableEstimate`."""
    steps = np.asarray(table["steps"])
    return SimpleNamespace(steps=steps, known=steps > 0, grid_offset=tuple(table["grid_offset"]),
                           earlier_quality=table.get("earlier_quality"))


def _box_text(region: dict) -> str:
    """A region's box as the one-line output names it: ``x left-right, y top-bottom``."""
    top, left, bottom, right = region["box"]
    return f"x {left}-{right}, y {top}-{bottom}"
