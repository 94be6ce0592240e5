"""The Parquet store of a distributed audit: result rows in shards written atomically, and resuming.

Rows live in ``OUT/records/part-NNNNNN-RUN.parquet``. Each shard is written under a temporary
name and renamed, so a shard is either whole or absent, whatever kills the run. On start,
:meth:`ParquetStore.done` reads the keys already there and the audit skips those files; reading
keeps one row per file (the last written), so a row written twice, by two runs or a retry,
counts once.

Row columns (:data:`PARQUET_SCHEMA`): the key ``path``, ``size``, ``mtime_ns``; ``label`` (the
class); ``sha256`` (of the file's bytes, when the audit hashed them); the columns of
:data:`jpegtrace.record.CSV_COLUMNS` with their own types, null where the CSV has ``""``;
``grayscale``; and ``record``, the full record (:func:`jpegtrace.record.analysis_record` or
:func:`~jpegtrace.record.failure_record`) as JSON text, from which every other field follows.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..record import CSV_COLUMNS, csv_row

#: The folder of the shards under ``--out``.
RECORDS_DIR = "records"
#: How a shard is named: its sequence number (write order across runs) and the run that wrote it.
_SHARD = re.compile(r"^part-(\d+)-([0-9a-f]+)\.parquet$")

#: The key columns: a file is done when a row has its path, size and modification time.
KEY_COLUMNS = ("path", "size", "mtime_ns")

#: Arrow type names of the columns, in order (see the module's docstring and docs/ray.md).
COLUMN_TYPES = {
    "path": "string", "size": "int64", "mtime_ns": "int64", "label": "string", "sha256": "string",
    "file": "string", "ok": "bool", "error": "string", "height": "int32", "width": "int32",
    "verdict": "string", "compressed": "bool", "quality": "float64", "quality_source": "string",
    "map_quality": "float64", "mean_flag": "float64", "evidence_share": "float64", "outside_flag": "float64",
    "grid_score": "float64", "grid_found": "bool", "grid_offset_y": "int32", "grid_offset_x": "int32",
    "table_quality": "float64", "table_standard": "bool", "table_known_steps": "int32",
    "double_compressed": "bool", "primary_quality": "int32", "n_regions": "int32", "region_area_share": "float64", "region_quality": "float64",
    "file_format": "string", "file_quality": "float64", "notes": "string", "grayscale": "bool",
    "record": "string",
}
assert set(CSV_COLUMNS) <= set(COLUMN_TYPES), "every CSV column of the record needs an Arrow type here"

_BOOLEAN = {"ok", "compressed", "grid_found", "table_standard", "grayscale", "double_compressed"}


def parquet_schema():
    """The pyarrow schema of a row (:data:`COLUMN_TYPES`)."""
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, "bool_" if kind == "bool" else kind)()) for name, kind in COLUMN_TYPES.items()])


def parquet_row(record: dict, *, path: str, size: int | None, mtime_ns: int | None, label: str | None = None,
                sha256: str | None = None) -> dict:
    """A record as a row of the store: its CSV columns typed (null for ``""``), ``grayscale``, the record as JSON.

    Notes
    -----
    The CSV form (:func:`jpegtrace.record.csv_row`) decides every flat column, so the Parquet
    rows and ``table.csv`` of the local engine agree column for column; ``record`` keeps the
    rest (regions, the table's steps, grid offsets as a list).
    """
    flat = csv_row(record)
    row = {"path": path, "size": size, "mtime_ns": mtime_ns, "label": label, "sha256": sha256}
    for column in CSV_COLUMNS:
        value = flat[column]
        if value == "" and column not in ("file", "notes"):
            value = None
        elif column in _BOOLEAN:
            value = bool(value)
        row[column] = value
    if not record["ok"]:
        row["notes"] = None
    row["grayscale"] = bool(record.get("grayscale")) if record["ok"] else None
    row["record"] = json.dumps(record, ensure_ascii=False)
    return row


def rows_table(rows: Sequence[Mapping]):
    """Rows of :func:`parquet_row` as a pyarrow table of :func:`parquet_schema`."""
    import pyarrow as pa

    schema = parquet_schema()
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)


class ParquetStore:
    """The shards of one ``--out`` folder.

    Parameters
    ----------
    out_dir : path
        The audit's output folder; shards go into its ``records`` folder (created).

    Notes
    -----
    Each instance is one run: its shards carry a run id of its own and sequence numbers after
    those already there, so the write order across runs is the shards' order.
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.folder = Path(out_dir) / RECORDS_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self.run = uuid.uuid4().hex[:12]
        shards = self.shards()
        self._next = (max(_SHARD.match(p.name).group(1) for p in shards) if shards else None)
        self._next = 0 if self._next is None else int(self._next) + 1
        self.rows_written = 0

    def shards(self) -> list[Path]:
        """The complete shards, in write order (temporary files of a killed write are not shards)."""
        found = [p for p in self.folder.iterdir() if _SHARD.match(p.name)]
        return sorted(found, key=lambda p: (int(_SHARD.match(p.name).group(1)), p.name))

    def remove_temporaries(self) -> int:
        """Delete what a killed write left (``.part-*.tmp.parquet``); returns how many."""
        removed = 0
        for p in self.folder.glob(".part-*"):
            try:
                p.unlink()
                removed += 1
            except OSError:
                pass
        return removed

    def write(self, table) -> Path | None:
        """Write ``table`` (rows of :func:`parquet_schema`) as the next shard, atomically; None when empty."""
        import pyarrow.parquet as pq

        from ..io import atomic_path

        if table.num_rows == 0:
            return None
        path = self.folder / f"part-{self._next:06d}-{self.run}.parquet"
        self._next += 1
        with atomic_path(path) as tmp:
            pq.write_table(table.cast(parquet_schema()), tmp, compression="zstd")
        self.rows_written += table.num_rows
        return path

    def read(self, columns: Sequence[str] | None = None):
        """Every row, one per ``path`` (the last written), as a pyarrow table.

        ``columns`` reads only those (``path`` is always read); a shard that cannot be read
        raises :class:`~jpegtrace.errors.JpegTraceError` naming it.
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from ..errors import JpegTraceError

        wanted = None if columns is None else list(dict.fromkeys(["path", *columns]))
        tables = []
        for shard in self.shards():
            try:
                tables.append(pq.read_table(shard, columns=wanted).cast(
                    pa.schema([parquet_schema().field(n) for n in (wanted or parquet_schema().names)])))
            except Exception as exc:  # noqa: BLE001 -- a shard written by something else, or damaged
                raise JpegTraceError(shard, f"cannot read the shard: {str(exc).strip().splitlines()[0]}") from None
        if not tables:
            return parquet_schema().empty_table() if wanted is None else pa.schema(
                [parquet_schema().field(n) for n in wanted]).empty_table()
        table = pa.concat_tables(tables)
        # The last row of each path wins: a file audited again (changed, or its failure retried) replaces its row.
        order = pa.array(range(table.num_rows), type=pa.int64())
        last = table.select(["path"]).append_column("_order", order).group_by("path").aggregate([("_order", "max")])
        keep = pc.sort_indices(last.column("_order_max"))
        return table.take(pc.take(last.column("_order_max"), keep))

    def done(self, *, retry_failures: bool = False):
        """The key columns and ``sha256`` of the files already audited (failures too, unless ``retry_failures``)."""
        import pyarrow.compute as pc

        table = self.read(["size", "mtime_ns", "sha256", "ok"])
        if retry_failures:
            table = table.filter(pc.field("ok"))
        return table.select(["path", "size", "mtime_ns", "sha256"])


class ShardWriter:
    """Rows collected as they come and written as a shard every ``shard_rows`` rows or ``seconds``.

    Notes
    -----
    :meth:`flush` in a ``finally`` writes what has come when the run is interrupted: a result the
    driver holds is never lost, and one it has not received is computed again on resume.
    """

    def __init__(self, store: ParquetStore, *, shard_rows: int = 1000, seconds: float = 60.0):
        self.store, self.shard_rows, self.seconds = store, shard_rows, seconds
        self._pending: list = []
        self._rows = 0
        self._since = time.monotonic()

    def add(self, table) -> None:
        if table.num_rows == 0:
            return
        self._pending.append(table)
        self._rows += table.num_rows
        if self._rows >= self.shard_rows or time.monotonic() - self._since >= self.seconds:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self._pending:
            self.store.write(pa.concat_tables([t.cast(parquet_schema()) for t in self._pending]))
        self._pending, self._rows, self._since = [], 0, time.monotonic()
