"""Fresh never-compressed negatives that are not photos, and how often a model calls them compressed.

The images come from :func:`jpegtrace.train.synthetic.synthetic_image` with the fonts kept out of
training (:data:`~jpegtrace.train.synthetic.HELD_OUT_FONTS`), seeds no training stream uses and
sizes unlike training patches, plus nearest-neighbour and bilinear rescales of given photos.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..analysis import DEFAULT_TILE_SIZE, JPEG_VERDICTS, NO_EVIDENCE, analyze_array
from ..nn.qfnet import QFNet
from ..train.synthetic import HELD_OUT_FONTS, KINDS, TEXTURELESS_KINDS, rescaled, synthetic_image

#: Seeds of the negatives start here; training streams draw from ``(seed, batch index)`` with small seeds.
NEGATIVES_SEED = 90_210


@dataclass(frozen=True)
class NegativeRecord:
    """The analysis of one fresh negative: its kind, verdict, whether the grid check fired, and the
    share of its pixels with flag > 0.5."""

    name: str
    kind: str
    verdict: str
    grid_found: bool
    flagged_share: float
    evidence_share: float

    def as_row(self) -> dict:
        return {"name": self.name, "kind": self.kind, "verdict": self.verdict, "grid_found": self.grid_found,
                "flagged_share": round(self.flagged_share, 4), "evidence_share": round(self.evidence_share, 4)}


def fresh_negatives(per_kind: int, *, photos: Mapping[str, np.ndarray] = {}, seed: int = NEGATIVES_SEED,
                    fonts: Sequence[str] = HELD_OUT_FONTS) -> list[tuple[str, str, np.ndarray]]:
    """``per_kind`` images of every kind of :data:`~jpegtrace.train.synthetic.KINDS` (and as many
    rescales of ``photos``), 160 to 520 pixels on a side, as ``(name, kind, image)``."""
    rng = np.random.default_rng(seed)
    out = []
    for kind in KINDS:
        for i in range(per_kind):
            height, width = (int(v) for v in rng.integers(160, 521, size=2))
            image, _ = synthetic_image(rng, height, width, kind=kind, fonts=fonts)
            out.append((f"{kind}-{i}", kind, image))
    names = sorted(photos)
    for i in range(per_kind if names else 0):
        name = names[i % len(names)]
        out.append((f"rescaled-{name}-{i}", "rescaled", rescaled(photos[name], rng)))
    return out


def evaluate_negatives(model: QFNet, negatives: Sequence[tuple[str, str, np.ndarray]], *,
                       device: str | None = None, tile_size: int = DEFAULT_TILE_SIZE,
                       progress=None) -> list[NegativeRecord]:
    """Analyse every negative (with the grid check) and record its verdict."""
    records = []
    for name, kind, image in (progress(negatives) if progress else negatives):
        result = analyze_array(image, model, tile_size=tile_size, device=device)
        records.append(NegativeRecord(name, kind, result.verdict, bool(result.grid.found),
                                      float((result.flag_map > 0.5).mean()), result.evidence_share))
    return records


def summarize_negatives(records: Sequence[NegativeRecord]) -> dict:
    """Shares judged compressed (all, and by the grid check), and per kind; flat kinds' "no evidence" share."""
    def shares(rs):
        return {"n": len(rs), "judged_compressed": float(np.mean([r.verdict in JPEG_VERDICTS for r in rs])),
                "grid_found": float(np.mean([r.grid_found for r in rs])),
                "no_evidence": float(np.mean([r.verdict == NO_EVIDENCE for r in rs])),
                "mean_flagged_share": float(np.mean([r.flagged_share for r in rs]))}

    kinds = sorted({r.kind for r in records})
    flat = [r for r in records if r.kind in TEXTURELESS_KINDS]
    return {**shares(records), "textureless_no_evidence": shares(flat)["no_evidence"] if flat else None,
            "per_kind": {k: shares([r for r in records if r.kind == k]) for k in kinds}}
