"""The summary of a distributed audit, made from its Parquet store: counts, histogram, format bias, failures.

A run of millions of files has no page with a row per image; the rows are the Parquet shards.
:func:`write_ray_report` reads only the columns it needs and writes ``assessment.json``,
``failures.csv``, ``qf_histogram.png``, ``bias.json`` (when files have classes) and ``index.html``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..analysis import JPEG_VERDICTS, NEVER_COMPRESSED, NO_EVIDENCE, PARTLY_COMPRESSED
from ..eval.audit import HISTOGRAM_EDGES

#: Failures listed in assessment.json and on the page (all of them are in failures.csv).
MAX_LISTED_FAILURES = 1000
#: The columns the report reads from the shards.
REPORT_COLUMNS = ("file", "ok", "error", "verdict", "quality", "map_quality", "grayscale", "label")


def summarize_rows(table, *, edges: Sequence[float] = HISTOGRAM_EDGES) -> dict:
    """:func:`jpegtrace.eval.audit.summarize_assessment`'s counts and histogram, from the store's columns.

    Notes
    -----
    The same keys and rules, computed on columns instead of records (the headline QF, or the
    map's QF where it has none, of the images judged compressed). The records round QF to
    0.01, so ``mean_quality_compressed`` can differ from the local engine's by 0.01.
    """
    ok = np.asarray(table.column("ok").to_numpy(zero_copy_only=False), dtype=bool)
    verdict = np.asarray(table.column("verdict").to_pylist(), dtype=object)[ok]
    quality = table.column("quality").to_pylist()
    map_quality = table.column("map_quality").to_pylist()
    grayscale = np.asarray([bool(g) for g, o in zip(table.column("grayscale").to_pylist(), ok) if o], dtype=bool)
    compressed = np.isin(verdict, list(JPEG_VERDICTS))
    analysed_index = np.flatnonzero(ok)
    headline = [quality[i] if quality[i] is not None else map_quality[i] for i in analysed_index[compressed]]
    qualities = np.array([q for q in headline if q is not None], dtype=np.float64)
    counts, bin_edges = np.histogram(qualities, bins=np.asarray(edges, dtype=np.float64))
    n_analysed = int(ok.sum())
    return {
        "n_files": int(table.num_rows),
        "n_analysed": n_analysed,
        "n_compressed": int(compressed.sum()),
        "n_partly_compressed": int((verdict == PARTLY_COMPRESSED).sum()),
        "n_uncompressed": int((verdict == NEVER_COMPRESSED).sum()),
        "n_no_evidence": int((verdict == NO_EVIDENCE).sum()),
        "n_grayscale": int(grayscale.sum()),
        "n_failed": int(table.num_rows - n_analysed),
        "share_compressed": round(int(compressed.sum()) / n_analysed, 4) if n_analysed else None,
        "mean_quality_compressed": round(float(qualities.mean()), 2) if qualities.size else None,
        "histogram": {"edges": [float(e) for e in bin_edges], "counts": [int(c) for c in counts]},
    }


def bias_of_table(table) -> dict | None:
    """:func:`jpegtrace.eval.bias.class_bias` of the store's rows; None when no row has a class."""
    from ..eval.bias import class_bias

    labels = table.column("label").to_pylist()
    if not any(label is not None for label in labels):
        return None
    rows = ({"label": label, "ok": ok, "verdict": verdict, "quality": quality}
            for label, ok, verdict, quality in zip(labels, table.column("ok").to_pylist(),
                                                   table.column("verdict").to_pylist(),
                                                   table.column("quality").to_pylist()))
    return class_bias(rows)


def _failures(table) -> list[dict]:
    import pyarrow.compute as pc

    failed = table.filter(pc.invert(pc.field("ok"))).select(["file", "error"])
    rows = [{"file": f, "reason": r} for f, r in zip(failed.column("file").to_pylist(), failed.column("error").to_pylist())]
    return sorted(rows, key=lambda r: r["file"])


def write_ray_report(out_dir: str | os.PathLike, store, *, settings: dict | None = None,
                     skipped: Sequence[dict] = (), run: dict | None = None) -> dict[str, Path]:
    """Write the summary files of the audit whose shards ``store`` holds.

    Parameters
    ----------
    out_dir : path
    store : ParquetStore
    settings : dict, optional
        The run's settings (source, model, engine...), written into ``assessment.json``.
    skipped : sequence of dict
        Files left out by type (``file``, ``reason``); counted by reason, the first
        :data:`MAX_LISTED_FAILURES` listed.
    run : dict, optional
        What this run did (:class:`~jpegtrace.distributed.pipeline.RunCounts` as a dict).

    Returns
    -------
    dict of str to Path
        ``summary`` (assessment.json), ``failures``, ``histogram``, ``html`` and, with classes, ``bias``.
    """
    from ..eval.bias import write_bias
    from ..eval.reports import qf_histogram_figure
    from ..io import save_figure, write_csv, write_json, write_text

    out = Path(out_dir)
    table = store.read(REPORT_COLUMNS)
    summary = summarize_rows(table)
    failures = _failures(table)
    bias = bias_of_table(table)
    summary["n_skipped"] = len(skipped)
    summary["skipped_by_reason"] = dict(Counter(s["reason"] for s in skipped))
    written = {
        "failures": write_csv(out / "failures.csv", failures, ["file", "reason"]),
        "summary": write_json(out / "assessment.json", {
            "settings": settings or {}, **summary, "run": run or {},
            "store": {"folder": "records", "shards": len(store.shards()), "rows": table.num_rows},
            "failures": failures[:MAX_LISTED_FAILURES], "skipped": list(skipped[:MAX_LISTED_FAILURES]),
            "bias": None if bias is None else {"summary": bias["summary"], "flagged": bias["flagged"]}}),
    }
    if bias is not None:
        written.update(write_bias(out, bias))
    written["histogram"] = save_figure(qf_histogram_figure(summary), out / "qf_histogram.png", dpi=120)
    written["html"] = write_text(out / "index.html", ray_report_html(summary, failures, bias=bias,
                                                                     source=(settings or {}).get("source"),
                                                                     n_shards=len(store.shards())))
    return written


def ray_report_html(summary: dict, failures: Sequence[dict], *, bias: dict | None = None, source: str | None = None,
                    n_shards: int = 0, histogram: str = "qf_histogram.png",
                    title: str = "JPEG compression audit") -> str:
    """The page of a distributed audit: counts, the QF histogram, the format bias, the first failures."""
    from html import escape

    from ..eval.bias import bias_html
    from ..eval.reports import _HTML_STYLE
    from ..grid.check import GRID_SCORE_THRESHOLD

    mean_q = summary.get("mean_quality_compressed")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{escape(title)}</title><style>{_HTML_STYLE}</style></head><body>",
             f"<h1>{escape(title)}</h1>"]
    if source:
        parts.append(f"<p>Source: <code>{escape(source)}</code></p>")
    parts.append(
        f"<p><b>{summary['n_compressed']}</b> images judged JPEG-compressed (mean flag above 0.5, or a JPEG "
        f"block grid found: grid score above {GRID_SCORE_THRESHOLD:g}), <b>{summary['n_partly_compressed']}</b> "
        f"of them only in part, <b>{summary['n_uncompressed']}</b> never compressed, "
        f"<b>{summary['n_no_evidence']}</b> without evidence, of {summary['n_analysed']} analysed "
        f"({summary['n_grayscale']} grayscale); {summary['n_failed']} "
        f"{'file' if summary['n_failed'] == 1 else 'files'} could not be read."
        + (f" Mean headline QF of the compressed ones: {mean_q:.1f}." if mean_q is not None else "")
        + (f" {summary['n_skipped']} files were skipped by type (see assessment.json)." if summary.get("n_skipped") else "")
        + "</p>")
    parts.append(f"<p>One row per file, with its full record, is in <code>records/</code> ({n_shards} Parquet "
                 "shards; see docs/ray.md for the columns).</p>")
    parts.append(f'<p><img class="histogram" src="{escape(histogram)}" alt="histogram of estimated QF"></p>')
    if bias is not None:
        parts.append(bias_html(bias))
    if failures:
        shown = failures[:MAX_LISTED_FAILURES]
        parts.append(f"<h2>Files that could not be read ({len(failures)})</h2>"
                     + (f"<p>The first {len(shown)}; all are in failures.csv.</p>" if len(shown) < len(failures) else "")
                     + "<table class=failed><thead><tr><th>file</th><th>reason</th></tr></thead><tbody>")
        parts.extend(f"<tr class=failed><td class=file>{escape(f['file'])}</td>"
                     f"<td class=reason>{escape(f['reason'] or '')}</td></tr>" for f in shown)
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
