"""Writing result files so that an interrupted run never leaves a half-written one."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The rename is atomic on POSIX, so readers see either the old file or the complete new
    one. On error (or Ctrl-C) the temporary file is removed and ``path`` is left untouched;
    other files in the folder are never touched. Only a killed process can leave a hidden
    ``.STEM.*.tmpSUFFIX`` file behind, never a broken ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:100]}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        _fsync(tmp_path)  # the data is on disk before the name points at it
        tmp_path.replace(path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, data) -> Path:
    """Atomically write ``data`` as indented JSON."""
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_csv(path: str | os.PathLike, rows: Sequence[dict], fieldnames: Sequence[str] | None = None) -> Path:
    """Atomically write a list of dicts as CSV (columns: ``fieldnames`` or the first row's keys)."""
    fieldnames = list(fieldnames or (rows[0].keys() if rows else []))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def save_figure(figure, path: str | os.PathLike, **kwargs) -> Path:
    """Atomically save a matplotlib figure as PNG."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", **kwargs)
    return Path(path)
