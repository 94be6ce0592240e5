"""Format bias of a labelled data set: how JPEG compression differs between its classes.

A classifier trained on a data set whose class A is mostly JPEG and class B mostly PNG can learn
the compression instead of the class. :func:`class_bias` gives, per class (a folder's first level,
or a manifest's label column), the share of JPEG-origin images, the distribution of their QF and
the share without evidence, and flags the classes whose compression differs most from the rest,
e.g. "class A: 93 % JPEG-origin, median QF 75; class B: 4 %".

Both engines of ``jpegtrace assess`` call it on their records (``bias.json`` and a section of
``index.html``); nothing here needs Ray or reads files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import PurePath

import numpy as np

from ..analysis import JPEG_VERDICTS, NEVER_COMPRESSED, NO_EVIDENCE
from .audit import HISTOGRAM_EDGES

#: A class is flagged when its JPEG-origin share differs from the other classes' by this much...
MIN_SHARE_GAP = 0.2
#: ... and the difference is this many standard errors (two-proportion z), so small classes are not flagged by chance.
MIN_Z = 3.0
#: Or when the median QF of its JPEG-origin images differs from the others' by this many QF...
MIN_QUALITY_GAP = 10.0
#: ... with at least this many JPEG-origin images on both sides.
MIN_JPEG_FOR_QUALITY = 5


def folder_label(file: str) -> str | None:
    """The class of a file named by its path relative to the audited folder: its first folder.

    ``"cats/001.png"`` is in class ``"cats"``; a file at the top level (``"001.png"``) has none.
    """
    parts = PurePath(file).parts
    return parts[0] if len(parts) > 1 else None


@dataclass(frozen=True)
class ClassBias:
    """The compression of one class of a data set (see :func:`class_bias`).

    Shares are of the class's analysed images (``n``), so ``share_jpeg + share_never +
    share_no_evidence`` is 1; files that could not be read are counted apart (``n_failed``).
    ``quality_*`` describe the headline QF of the JPEG-origin images (None without any);
    ``share_gap`` and ``quality_gap`` compare the class with all the other classes together.
    """

    label: str
    n: int
    n_failed: int
    n_jpeg: int
    n_never: int
    n_no_evidence: int
    share_jpeg: float | None
    share_never: float | None
    share_no_evidence: float | None
    quality_median: float | None
    quality_q1: float | None
    quality_q3: float | None
    quality_counts: tuple[int, ...]
    share_gap: float | None = None
    z: float | None = None
    quality_gap: float | None = None
    flagged: bool = False
    reasons: tuple[str, ...] = field(default=())

    def line(self) -> str:
        """The class in one line: ``class A: 93 % JPEG-origin, median QF 75, 2 % without evidence (120 images)``."""
        if not self.n:
            return f"class {self.label}: no image analysed ({self.n_failed} unreadable)"
        text = f"class {self.label}: {_percent(self.share_jpeg)} JPEG-origin"
        if self.quality_median is not None:
            text += f", median QF {self.quality_median:.0f}"
        text += f", {_percent(self.share_no_evidence)} without evidence ({self.n} image{'s' if self.n != 1 else ''})"
        if self.flagged:
            text += " - flagged: " + "; ".join(self.reasons)
        return text


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f} %"


def _share(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def _z(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """Two-proportion z statistic of k1/n1 against k2/n2 (None when a side is empty; 0 when it cannot differ)."""
    if not n1 or not n2:
        return None
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return 0.0 if se == 0 else (k1 / n1 - k2 / n2) / se


def _median(values: np.ndarray) -> float | None:
    return round(float(np.median(values)), 2) if values.size else None


def _counts_median(counts: np.ndarray) -> float:
    """The median of values given as counts per 0.01 QF (the mean of the two middle ones for an even number)."""
    total = int(counts.sum())
    cumulative = np.cumsum(counts)
    low = int(np.searchsorted(cumulative, (total - 1) // 2 + 1))
    high = int(np.searchsorted(cumulative, total // 2 + 1))
    return (low + high) / 200.0


def class_bias(rows: Iterable[Mapping], *, min_share_gap: float = MIN_SHARE_GAP, min_z: float = MIN_Z,
               min_quality_gap: float = MIN_QUALITY_GAP, min_jpeg_for_quality: int = MIN_JPEG_FOR_QUALITY,
               edges: Sequence[float] = HISTOGRAM_EDGES) -> dict:
    """Per-class share of JPEG-origin images, their QF distribution, the share without evidence.

    Parameters
    ----------
    rows : iterable of mapping
        One per file: ``label`` (str, or None for a file without class), ``ok`` (False for a file
        that could not be read), ``verdict`` and ``quality`` (the record's headline QF), as in a
        :mod:`jpegtrace.record` record with a ``label`` added.
    min_share_gap, min_z
        A class is flagged when its JPEG-origin share is at least ``min_share_gap`` away from the
        share of all the other classes together and the gap is at least ``min_z`` standard errors.
    min_quality_gap, min_jpeg_for_quality
        A class is also flagged when the median QF of its JPEG-origin images is at least
        ``min_quality_gap`` away from the other classes', both having ``min_jpeg_for_quality`` or more.
    edges : sequence of float
        Bin edges of the per-class QF histogram (those of the audit's histogram by default).

    Returns
    -------
    dict
        JSON-ready: ``n_classes``, ``n_labelled``, ``n_unlabelled`` (files without class, left out),
        ``classes`` (:class:`ClassBias` as dicts, most JPEG-origin first), ``flagged`` (their labels),
        ``lines`` (each class in one line), ``summary`` (one sentence) and ``settings``.

    Notes
    -----
    "JPEG-origin" is the verdict compressed or partly compressed (:data:`~jpegtrace.analysis.JPEG_VERDICTS`).
    A class is compared with the rest pooled, not with each other class, so with two classes
    both are flagged, and one odd class among many stands out alone. With a single class nothing
    is flagged.
    """
    edges = np.asarray(edges, dtype=np.float64)
    groups: dict[str, dict] = {}
    unlabelled = 0
    for row in rows:
        label = row.get("label")
        if label is None or label == "":
            unlabelled += 1
            continue
        group = groups.setdefault(str(label), {"failed": 0, "verdicts": [], "qualities": []})
        if not row.get("ok", True):
            group["failed"] += 1
            continue
        verdict = row["verdict"]
        group["verdicts"].append(verdict)
        if verdict in JPEG_VERDICTS and row.get("quality") is not None:
            group["qualities"].append(float(row["quality"]))
    counts = {label: (sum(v in JPEG_VERDICTS for v in g["verdicts"]), len(g["verdicts"])) for label, g in groups.items()}
    total_jpeg = sum(k for k, _ in counts.values())
    total_n = sum(n for _, n in counts.values())
    all_qualities = {label: np.asarray(g["qualities"], dtype=np.float64) for label, g in groups.items()}
    # The other classes' median QF from counts in steps of 0.01 QF (records round the QF so): one
    # pass per class over 10,001 counts instead of over all the other classes' images.
    fine = {label: np.bincount(np.clip(np.round(q * 100).astype(np.int64), 0, 10_000), minlength=10_001)
            for label, q in all_qualities.items()}
    fine_total = sum(fine.values()) if fine else np.zeros(10_001, dtype=np.int64)
    classes = []
    for label, group in groups.items():
        verdicts = group["verdicts"]
        k, n = counts[label]
        qualities = all_qualities[label]
        n_never = sum(v == NEVER_COMPRESSED for v in verdicts)
        n_none = sum(v == NO_EVIDENCE for v in verdicts)
        share_gap = z = quality_gap = None
        reasons = []
        if len(groups) > 1:
            rest_k, rest_n = total_jpeg - k, total_n - n
            if n and rest_n:
                share_gap = round(k / n - rest_k / rest_n, 4)
                z = _z(k, n, rest_k, rest_n)
                if abs(share_gap) >= min_share_gap and z is not None and abs(z) >= min_z:
                    reasons.append(f"JPEG-origin {100 * share_gap:+.0f} points against the other classes")
            rest = fine_total - fine[label]
            rest_size = int(rest.sum())
            if qualities.size and rest_size:
                quality_gap = round(float(np.median(qualities)) - _counts_median(rest), 2)
                if (abs(quality_gap) >= min_quality_gap and qualities.size >= min_jpeg_for_quality
                        and rest_size >= min_jpeg_for_quality):
                    reasons.append(f"median QF {quality_gap:+.0f} against the other classes")
        hist = np.histogram(qualities, bins=edges)[0]
        classes.append(ClassBias(
            label=label, n=n, n_failed=group["failed"], n_jpeg=k, n_never=n_never, n_no_evidence=n_none,
            share_jpeg=_share(k, n), share_never=_share(n_never, n), share_no_evidence=_share(n_none, n),
            quality_median=_median(qualities),
            quality_q1=round(float(np.percentile(qualities, 25)), 2) if qualities.size else None,
            quality_q3=round(float(np.percentile(qualities, 75)), 2) if qualities.size else None,
            quality_counts=tuple(int(c) for c in hist), share_gap=share_gap,
            z=None if z is None else round(z, 2), quality_gap=quality_gap, flagged=bool(reasons),
            reasons=tuple(reasons)))
    # Most JPEG-origin first; ties by label, so the order is the same whatever the rows' order.
    classes.sort(key=lambda c: (-(c.share_jpeg if c.share_jpeg is not None else -1), c.label))
    return {
        "n_classes": len(classes),
        "n_labelled": sum(c.n + c.n_failed for c in classes),
        "n_unlabelled": unlabelled,
        "classes": [_as_json(c) for c in classes],
        "flagged": [c.label for c in classes if c.flagged],
        "lines": [c.line() for c in classes],
        "summary": _summary(classes),
        "histogram_edges": [float(e) for e in edges],
        "settings": {"min_share_gap": min_share_gap, "min_z": min_z, "min_quality_gap": min_quality_gap,
                     "min_jpeg_for_quality": min_jpeg_for_quality},
    }


def _as_json(c: ClassBias) -> dict:
    out = asdict(c)
    out["quality_counts"] = list(c.quality_counts)
    out["reasons"] = list(c.reasons)
    return out


def _short(c: ClassBias) -> str:
    text = f"class {c.label}: {_percent(c.share_jpeg)}"
    if c.quality_median is not None and c.n_jpeg:
        text += f" JPEG-origin, median QF {c.quality_median:.0f}"
    return text


def _summary(classes: Sequence[ClassBias]) -> str:
    """One sentence: the flagged classes at both ends, e.g. "class A: 93 % JPEG-origin, median QF 75; class B: 4 %"."""
    analysed = [c for c in classes if c.n]
    if len(analysed) < 2:
        return "fewer than two classes with analysed images: no comparison"
    flagged = [c for c in analysed if c.flagged]
    if not flagged:
        low, high = analysed[-1], analysed[0]
        return (f"no class stands out: JPEG-origin shares from {_percent(low.share_jpeg)} ({low.label}) "
                f"to {_percent(high.share_jpeg)} ({high.label})")
    more = f"; and {len(flagged) - 4} more" if len(flagged) > 4 else ""
    shown = flagged if len(flagged) <= 4 else flagged[:2] + flagged[-2:]  # the two ends, most JPEG first
    return "compression differs by class: " + "; ".join(_short(c) for c in shown) + more


def bias_html(bias: dict) -> str:
    """The format-bias section of an audit's HTML page (a heading, the summary and a table per class)."""
    from html import escape

    parts = ["<h2>Format bias per class</h2>",
             f"<p>{escape(bias['summary'])}. JPEG-origin: judged compressed or partly compressed; shares are of "
             f"the class's analysed images. A class is flagged when its JPEG-origin share is at least "
             f"{100 * bias['settings']['min_share_gap']:.0f} points and {bias['settings']['min_z']:g} standard "
             f"errors away from the other classes', or its median QF {bias['settings']['min_quality_gap']:g} QF away."
             + (f" {bias['n_unlabelled']} files without a class are left out." if bias["n_unlabelled"] else "")
             + "</p>",
             "<table class=bias><thead><tr><th>class</th><th>images</th><th>JPEG-origin</th><th>median QF "
             "(quartiles)</th><th>never compressed</th><th>without evidence</th><th>unreadable</th>"
             "<th>flagged</th></tr></thead><tbody>"]
    for c in bias["classes"]:
        quartiles = ("-" if c["quality_median"] is None
                     else f"{c['quality_median']:.0f} ({c['quality_q1']:.0f}-{c['quality_q3']:.0f})")
        style = ' class="compressed"' if c["flagged"] else ""
        parts.append(f"<tr><td class=file>{escape(c['label'])}</td><td class=num>{c['n']}</td>"
                     f"<td class=num><span{style}>{_percent(c['share_jpeg'])}</span></td>"
                     f"<td class=num>{quartiles}</td><td class=num>{_percent(c['share_never'])}</td>"
                     f"<td class=num>{_percent(c['share_no_evidence'])}</td><td class=num>{c['n_failed']}</td>"
                     f"<td class=notes>{escape('; '.join(c['reasons']))}</td></tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


def write_bias(out_dir, bias: dict) -> dict:
    """Write ``bias.json`` into ``out_dir``; returns ``{"bias": path}``."""
    from pathlib import Path

    from ..io import write_json

    return {"bias": write_json(Path(out_dir) / "bias.json", bias)}


def local_bias(records, failures=()) -> dict | None:
    """:func:`class_bias` of the local engine's results, the class of each file its first folder level.

    ``records`` are :class:`~jpegtrace.eval.audit.AssessmentRecord` (their ``record``) and
    ``failures`` :class:`~jpegtrace.eval.common.Failure`; None when no file is in a sub-folder.
    """
    rows = [{**r.record, "label": folder_label(r.file)} for r in records]
    rows += [{"label": folder_label(f.file), "ok": False} for f in failures]
    if not any(row["label"] is not None for row in rows):
        return None
    return class_bias(rows)
