"""What the experiments share: named file lists, failures, progress."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: QFs at which Table 1 reports the share of images judged uncompressed.
TABLE1_QUALITIES = (97, 98, 99, 100)
#: The QFs of the paper's Fig. 2 plus the near-lossless ones of its Table 1.
DEFAULT_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97, 98, 99, 100)


Progress = Callable[[Iterable], Iterable]


Files = Mapping[str, "str | os.PathLike"] | Sequence["str | os.PathLike"]


@dataclass(frozen=True)
class Failure:
    """A file an experiment could not use and the one-line reason; the run went on without it."""

    file: str
    reason: str


def _named_files(files: Files) -> list[tuple[str, Path]]:
    """``(name, path)`` pairs: a mapping gives its own names, a sequence is named by its paths."""
    if isinstance(files, Mapping):
        return [(str(name), Path(path)) for name, path in files.items()]
    named = []
    for path in files:
        text = os.fsdecode(path)
        named.append((text.encode("utf-8", "backslashreplace").decode("utf-8"), Path(text)))
    return named


def _wrap(progress: Progress | None, items):
    return progress(items) if progress is not None else items


def cell(value: float | None, digits: int):
    """A number for a CSV or JSON row, rounded to ``digits``; ``""`` for None (no estimate, no grid check)."""
    return "" if value is None else round(value, digits)
