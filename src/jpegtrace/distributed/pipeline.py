"""The Ray Data pipeline of a distributed audit: read and check in tasks, the network in an actor pool, summarise in tasks.

Stages, each a ``map_batches`` over blocks of a few files:

1. :func:`read_and_check` (tasks): read the file (a local path as the local engine reads it, a
   URI through pyarrow), hash it when asked, decode it and run :func:`jpegtrace.analysis.check_pixels`
   (grid check, evidence map, block structure). A file that cannot be read becomes a failure here.
2. :class:`NetworkWorker` (an actor pool of ``num_workers``, each loading the model once, on a GPU
   when given one): :func:`jpegtrace.analysis.predict_maps`.
3. :func:`summarise` (tasks): :func:`jpegtrace.analysis.finish_analysis`, the record
   (:func:`jpegtrace.record.analysis_record`) and its Parquet row (:func:`~jpegtrace.distributed.store.parquet_row`).

The driver (:func:`run_ray_audit`) takes the rows as they come and writes them in shards
(:class:`~jpegtrace.distributed.store.ShardWriter`). The three stages are the three parts of
:func:`jpegtrace.analysis.analyze_array`, so a row holds the record the local engine writes.

Ray is imported inside the functions that need it, never when this module is imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..analysis import DEFAULT_TILE_SIZE
from ..io import DEFAULT_MAX_PIXELS
from .sources import Listing, SourceItem
from .store import ParquetStore, ShardWriter, parquet_row, rows_table

#: Files per block, at most: small blocks spread the work and make a retried block cheap.
MAX_BLOCK_ROWS = 4


@dataclass(frozen=True)
class FaultInjection:
    """Make a network worker exit (``os._exit``) the first time it meets ``file``, to test retries.

    ``marker`` is a file the worker creates before exiting; while it exists the fault does not
    happen again, so the retried task succeeds.
    """

    file: str
    marker: str


@dataclass(frozen=True)
class RayAuditOptions:
    """How the pipeline analyses each file.

    Attributes
    ----------
    weights : bytes or None
        The safetensors file's contents (None: the shipped model); sent to each worker, so a
        cluster needs no copy of the file.
    tile_size, device, grid_check, max_pixels, allow_damaged
        As for ``jpegtrace assess`` (``device`` is used by workers without a GPU).
    time_limit : float or None
        Seconds one file's work may take, as ``assess --time-limit``: its three stages' times add up
        (stage 1 starts the clock; each later stage gets what is left), time spent waiting between
        stages not counted. A file past it is a failure row ``took longer than N s (time limit)``.
    backend, precision : str
        As for :func:`jpegtrace.analysis.predict_maps`, resolved by each worker for its own device
        (a GPU worker runs torch).
    num_workers : int
        Network workers (actors), each holding the model.
    num_gpus_per_worker : float
        GPUs each worker asks Ray for (0: run on CPUs); with one, the worker runs on ``cuda``.
    hash_files : bool
        Compute the SHA-256 of each file's bytes (``sha256`` column), and skip a file whose
        hash equals the one stored for its path although its size or time changed.
    block_rows : int or None
        Files per block (default: up to :data:`MAX_BLOCK_ROWS`, fewer for small runs).
    fault : FaultInjection or None
        For tests only.
    """

    weights: bytes | None = None
    tile_size: int = DEFAULT_TILE_SIZE
    device: str = "cpu"
    grid_check: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS
    allow_damaged: bool = False
    time_limit: float | None = None
    backend: str = "auto"
    precision: str = "auto"
    num_workers: int = 1
    num_gpus_per_worker: float = 0.0
    hash_files: bool = False
    block_rows: int | None = None
    fault: FaultInjection | None = None


@dataclass
class RunCounts:
    """What one run did: files listed, already done, sent to the pipeline, rows written."""

    listed: int = 0
    already_done: int = 0
    submitted: int = 0
    unchanged_by_hash: int = 0
    rows_written: int = 0
    listing_failures: int = 0
    shards: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Choosing the files of a run
# --------------------------------------------------------------------------------------------

def done_index(table) -> dict[str, tuple]:
    """``path -> (size, mtime_ns, sha256)`` of a :meth:`ParquetStore.done` table."""
    columns = [table.column(n).to_pylist() for n in ("path", "size", "mtime_ns", "sha256")]
    return {p: (s, m, h) for p, s, m, h in zip(*columns)}


def select_pending(items: Sequence[SourceItem], done: dict[str, tuple], *,
                   hash_files: bool = False) -> tuple[list[tuple[SourceItem, str | None]], int]:
    """The items still to audit, each with the hash stored for its path (hash mode), and how many are done.

    Notes
    -----
    A file is done when a stored row has its path, size and modification time (a file the
    listing could not find is done when its failure row is there). In hash mode a file whose
    size or time changed is still sent, with the stored hash: the first stage hashes it and
    drops it when the content is the same.
    """
    pending, n_done = [], 0
    for item in items:
        stored = done.get(item.path)
        if stored is not None and (stored[0], stored[1]) == (item.size, item.mtime_ns):
            n_done += 1
            continue
        pending.append((item, stored[2] if (hash_files and stored is not None) else None))
    return pending, n_done


def pending_table(pending: Sequence[tuple[SourceItem, str | None]]):
    """The pending items as one pyarrow table, the input of the pipeline (sent to the cluster once)."""
    import pyarrow as pa

    schema = pa.schema([("path", pa.string()), ("file", pa.string()), ("label", pa.string()),
                        ("size", pa.int64()), ("mtime_ns", pa.int64()), ("filesystem", pa.int32()),
                        ("fs_path", pa.string()), ("done_sha256", pa.string())])
    columns = {name: [] for name in schema.names}
    for item, sha in pending:
        for name in ("path", "file", "label", "size", "mtime_ns", "filesystem", "fs_path"):
            columns[name].append(getattr(item, name))
        columns["done_sha256"].append(sha)
    return pa.table(columns, schema=schema)


def _block_items(batch, items, block_rows: int) -> list[dict]:
    """The items of the blocks whose numbers ``batch`` holds (``id``: block ``i`` is rows ``i * block_rows`` on)."""
    import ray

    table = ray.get(items) if isinstance(items, ray.ObjectRef) else items
    rows = []
    for block in batch.column("id").to_pylist():
        rows.extend(table.slice(block * block_rows, block_rows).to_pylist())
    return rows


# --------------------------------------------------------------------------------------------
# Stage 1: read, decode, check (tasks)
# --------------------------------------------------------------------------------------------

def _read_bytes(row: dict, filesystems: dict) -> bytes:
    """The file's bytes; OSError as the filesystem raises it."""
    if row["filesystem"] is None:
        with open(row["path"], "rb") as f:
            return f.read()
    fs = filesystems[row["filesystem"]]
    with fs.open_input_stream(row["fs_path"]) as f:
        return f.read()


def _open_reason(exc: BaseException) -> str:
    """The local engine's words for a file that cannot be opened."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image"
    text = str(exc).strip()
    return f"cannot open: {text.splitlines()[0] if text else type(exc).__name__}"


def _decode(row: dict, data: bytes | None, max_pixels: int, allow_damaged: bool = False):
    """A row's file read as :func:`jpegtrace.io.read_analysis_input` reads it (an :class:`~jpegtrace.io.AnalysisInput`)."""
    from ..io import read_analysis_data, read_analysis_input

    if row["filesystem"] is None:
        # The local engine's own reader, so that reasons and notes are the same to the letter.
        return read_analysis_input(row["path"], max_pixels=max_pixels, allow_damaged=allow_damaged)
    return read_analysis_data(data, row["file"], max_pixels=max_pixels, allow_damaged=allow_damaged)


@contextlib.contextmanager
def _stage_time(options: RayAuditOptions, file: str, used: float | None) -> Iterator[list]:
    """The rest of the file's time limit kept on the block (as :func:`jpegtrace.limits.time_limit`);
    yields a one-item list that holds the seconds used so far, this stage's included, when it ends.

    Raises :class:`~jpegtrace.errors.TimeLimitError` with the local engine's reason when the time is up."""
    from ..errors import TimeLimitError
    from ..limits import time_limit

    used = used or 0.0
    total = [used]
    if options.time_limit is None:
        yield total
        return
    left = options.time_limit - used
    reason = f"took longer than {options.time_limit:g} s (time limit)"
    if left <= 0:
        raise TimeLimitError(file, reason)
    start = time.monotonic()
    try:
        with time_limit(left, file):
            yield total
    except TimeLimitError:
        raise TimeLimitError(file, reason) from None
    finally:
        total[0] = used + time.monotonic() - start


def _pack_image(rgb: np.ndarray, grayscale: bool, notes, checks, info=None) -> bytes:
    # A grayscale image is a read-only view repeating one channel: send the channel, rebuild the view.
    broadcast = rgb.ndim == 3 and rgb.strides[2] == 0
    pixels = np.ascontiguousarray(rgb[:, :, 0]) if broadcast else rgb
    return pickle.dumps((pixels, broadcast, grayscale, tuple(notes), checks, info), protocol=5)


def _unpack_image(data: bytes):
    pixels, broadcast, grayscale, notes, checks, info = pickle.loads(data)
    rgb = np.broadcast_to(pixels[:, :, None], (*pixels.shape, 3)) if broadcast else pixels
    return rgb, grayscale, notes, checks, info


def _stage_one_schema():
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("file", pa.string()), ("label", pa.string()),
                      ("size", pa.int64()), ("mtime_ns", pa.int64()), ("sha256", pa.string()),
                      ("skip", pa.bool_()), ("failure", pa.string()), ("image", pa.large_binary()),
                      ("seconds", pa.float64())])


def read_and_check(batch, *, options: RayAuditOptions, filesystems: dict, items, block_rows: int):
    """Stage 1: the files of the blocks numbered in ``batch`` read, hashed (in hash mode), decoded and checked.

    ``items`` is :func:`pending_table` (or a reference to it in the object store): block ``i``
    is its rows ``i * block_rows`` on, so the driver sends the list once and each task takes its
    part. A file that cannot be read is a row with the reason.

    Returns a pyarrow table: the key and names, ``sha256``, ``skip`` (hash unchanged: drop it),
    ``failure`` (the reason, or null), ``image`` (pickled pixels, notes and
    :class:`~jpegtrace.analysis.PixelChecks`) and ``seconds`` (of the file's time limit used).
    """
    import pyarrow as pa

    from ..analysis import check_pixels
    from ..errors import ImageReadError, TimeLimitError

    out = []
    for row in _block_items(batch, items, block_rows):
        result = {k: row[k] for k in ("path", "file", "label", "size", "mtime_ns")}
        result.update(sha256=None, skip=False, failure=None, image=None, seconds=None)
        data = None
        try:
            if options.hash_files or row["filesystem"] is not None:
                data = _read_bytes(row, filesystems)
        except Exception as exc:  # noqa: BLE001 -- OSError mostly; any other is this file's failure too
            result["failure"] = _open_reason(exc)
            out.append(result)
            continue
        if options.hash_files:
            result["sha256"] = hashlib.sha256(data).hexdigest()
            if row["done_sha256"] is not None and result["sha256"] == row["done_sha256"]:
                result["skip"] = True
                out.append(result)
                continue
        try:
            with _stage_time(options, row["file"], None) as used:
                try:
                    read = _decode(row, data, options.max_pixels, options.allow_damaged)
                except ImageReadError as exc:
                    result["failure"] = exc.reason
                except TimeLimitError:
                    raise
                except Exception as exc:  # noqa: BLE001 -- the reader promises ImageReadError; never stop the audit
                    result["failure"] = f"cannot decode image: {_one_line(exc)}"
                del data
                if result["failure"] is None:
                    checks = check_pixels(read.rgb, grid_check=options.grid_check, valid=read.valid)
                    result["image"] = _pack_image(read.rgb, read.grayscale, read.notes, checks, read.info)
                read = None
            result["seconds"] = used[0]
        except TimeLimitError as exc:
            result["failure"], result["image"] = exc.reason, None
        except MemoryError:
            result["failure"] = "not enough memory to analyse the image"
        except Exception as exc:  # noqa: BLE001 -- one image's failure must not stop the audit
            result["failure"] = f"analysis failed: {_one_line(exc)}"
        out.append(result)
    return pa.Table.from_pylist(out, schema=_stage_one_schema())


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Stage 2: the network (an actor pool)
# --------------------------------------------------------------------------------------------

class NetworkWorker:
    """A Ray Data actor: the model, loaded once, on the GPU Ray gave it or on ``options.device``.

    Called with stage 1's blocks, it adds ``maps``: the pickled float32 ``(2, H, W)`` output of
    :func:`jpegtrace.analysis.predict_maps`, and ``network``: what computed them (JSON of
    :func:`jpegtrace.nn.backends.provenance`). Ray restarts a worker that dies and runs its block again.
    """

    def __init__(self, options: RayAuditOptions):
        import ray

        from ..analysis import load_network

        self.options = options
        self.device = "cuda" if ray.get_gpu_ids() else options.device
        # An explicit CPU backend on a GPU worker would fail every file: such a worker runs torch.
        backend = options.backend if self.device == "cpu" else "auto"
        # The weights file's arrays where OpenVINO runs them on the CPU (no torch), else the torch network.
        if options.weights is None:
            self.model = load_network(None, device=self.device, backend=backend)
        else:
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "weights.safetensors")
                with open(path, "wb") as f:
                    f.write(options.weights)
                self.model = load_network(path, device=self.device, backend=backend)
        from ..nn.backends import provenance, resolve
        # What this worker computes the maps with, per kind of image ('auto' may take fp32 for grayscale
        # ones), for the records (workers may differ: GPU or CPU).
        self.runs = {gray: resolve(self.model, backend=backend, precision=options.precision, device=self.device,
                                   grayscale=gray) for gray in (False, True)}
        self.networks = {gray: json.dumps(provenance(self.model, backend=b, precision=p, device=self.device))
                         for gray, (b, p) in self.runs.items()}

    def __call__(self, batch):
        import pyarrow as pa

        from ..analysis import predict_maps

        from ..errors import TimeLimitError

        maps = []
        failures = batch.column("failure").to_pylist()
        seconds = batch.column("seconds").to_pylist()
        networks = [None] * len(failures)
        for i, (file, image) in enumerate(zip(batch.column("file").to_pylist(), batch.column("image").to_pylist())):
            if image is None:
                maps.append(None)
                continue
            fault = self.options.fault
            if fault is not None and file == fault.file and not os.path.exists(fault.marker):
                with open(fault.marker, "w") as f:
                    f.write(f"worker {os.getpid()} exited on {file}\n")
                os._exit(1)  # as a killed worker: no exception, no clean-up
            rgb, grayscale = _unpack_image(image)[:2]
            backend, precision = self.runs[grayscale]
            networks[i] = self.networks[grayscale]
            try:
                with _stage_time(self.options, file, seconds[i]) as used:
                    raw = predict_maps(self.model, rgb, tile_size=self.options.tile_size, device=self.device,
                                       backend=backend, precision=precision)
                seconds[i] = used[0]
                maps.append(pickle.dumps(np.asarray(raw, dtype=np.float32), protocol=5))
            except TimeLimitError as exc:
                maps.append(None)
                failures[i] = exc.reason
            except MemoryError:
                maps.append(None)
                failures[i] = "not enough memory to analyse the image"
            except Exception as exc:  # noqa: BLE001
                maps.append(None)
                failures[i] = f"network failed: {_one_line(exc)}"
        batch = batch.set_column(batch.schema.get_field_index("failure"), "failure", pa.array(failures, pa.string()))
        batch = batch.set_column(batch.schema.get_field_index("seconds"), "seconds", pa.array(seconds, pa.float64()))
        batch = batch.append_column("maps", pa.array(maps, type=pa.large_binary()))
        return batch.append_column("network", pa.array([None if m is None else n for m, n in zip(maps, networks)],
                                                       pa.string()))


# --------------------------------------------------------------------------------------------
# Stage 3: summarise (tasks)
# --------------------------------------------------------------------------------------------

def summarise(batch, *, options: RayAuditOptions | None = None, quality_calibration=None):
    """Stage 3: each row's analysis finished and turned into its Parquet row; hash-unchanged rows dropped."""
    from ..analysis import finish_analysis
    from ..errors import TimeLimitError
    from ..record import analysis_record, failure_record

    options = options or RayAuditOptions()
    rows = []
    columns = {name: batch.column(name).to_pylist()
               for name in ("path", "file", "label", "size", "mtime_ns", "sha256", "skip", "failure", "image", "maps",
                            "network", "seconds")}
    for i in range(batch.num_rows):
        if columns["skip"][i]:
            continue
        file = columns["file"][i]
        failure = columns["failure"][i]
        record = None
        if failure is None:
            try:
                with _stage_time(options, file, columns["seconds"][i]):
                    rgb, grayscale, notes, checks, info = _unpack_image(columns["image"][i])
                    raw = pickle.loads(columns["maps"][i])
                    analysis = finish_analysis(rgb, raw, checks, quality_calibration=quality_calibration,
                                               grayscale=grayscale, notes=notes)
                    network = columns["network"][i]
                    record = analysis_record(analysis, file=file, input_info=info,
                                             network=None if network is None else json.loads(network))
            except TimeLimitError as exc:
                record, failure = None, exc.reason
            except MemoryError:
                failure = "not enough memory to analyse the image"
            except Exception as exc:  # noqa: BLE001
                failure = f"analysis failed: {_one_line(exc)}"
        if record is None:
            record = failure_record(file, failure)
        rows.append(parquet_row(record, path=columns["path"][i], size=columns["size"][i],
                                mtime_ns=columns["mtime_ns"][i], label=columns["label"][i],
                                sha256=columns["sha256"][i]))
    return rows_table(rows)


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------

def _quiet_data_context() -> None:
    """No Ray Data progress bars or per-run banners: the driver shows its own progress."""
    import ray.data

    context = ray.data.DataContext.get_current()
    for name, value in (("enable_progress_bars", False), ("print_on_execution_start", False),
                        ("enable_auto_log_stats", False), ("verbose_progress", False)):
        if hasattr(context, name):
            setattr(context, name, value)


def build_dataset(pending: Sequence[tuple[SourceItem, str | None]], *, options: RayAuditOptions,
                  filesystems: dict, quality_calibration=None):
    """The Ray Dataset of a run: the pending files through the three stages (nothing runs until it is read).

    Notes
    -----
    The input is a range of block numbers, one per block of ``block_rows`` files, and the list of
    files is put in the object store once: no task per block is needed up front, as
    ``from_arrow`` of a million small tables would need.
    """
    import ray
    import ray.data

    workers = max(1, int(options.num_workers))
    block_rows = options.block_rows or max(1, min(MAX_BLOCK_ROWS, -(-len(pending) // (4 * workers))))
    n_blocks = -(-len(pending) // block_rows)
    workers = min(workers, n_blocks)  # more actors than blocks would idle
    try:
        ds = ray.data.range(n_blocks, override_num_blocks=n_blocks)
    except TypeError:  # Ray before 2.10
        ds = ray.data.range(n_blocks, parallelism=n_blocks)
    ds = ds.map_batches(read_and_check, batch_size=None, batch_format="pyarrow", num_cpus=1,
                        fn_kwargs={"options": options, "filesystems": filesystems,
                                   "items": ray.put(pending_table(pending)), "block_rows": block_rows})
    # Ray Data restarts a dead actor and retries its block (max_restarts and max_task_retries are
    # -1 by default for actor pools), so a killed worker loses nothing and duplicates nothing.
    resources = {"num_gpus": options.num_gpus_per_worker} if options.num_gpus_per_worker else {"num_cpus": 1}
    ds = ds.map_batches(NetworkWorker, batch_size=None, batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(size=workers),
                        fn_constructor_kwargs={"options": options}, **resources)
    return ds.map_batches(summarise, batch_size=None, batch_format="pyarrow", num_cpus=1,
                          fn_kwargs={"options": options, "quality_calibration": quality_calibration})


def run_ray_audit(listing: Listing, store: ParquetStore, options: RayAuditOptions, *, quality_calibration=None,
                  retry_failures: bool = False, shard_rows: int = 1000, flush_seconds: float = 60.0,
                  on_rows: Callable[[int], None] | None = None,
                  on_start: Callable[[RunCounts], None] | None = None) -> RunCounts:
    """Audit the files of ``listing`` not yet in ``store``, on the Ray cluster this process is connected to.

    Parameters
    ----------
    listing : Listing
    store : ParquetStore
        Its rows decide what is done; the new rows go into new shards.
    options : RayAuditOptions
    quality_calibration : QualityCalibration, optional
        The model's (``model.quality_calibration``), for stage 3.
    retry_failures : bool
        Audit again the files whose row is a failure.
    shard_rows, flush_seconds
        A shard is written every ``shard_rows`` rows or ``flush_seconds`` seconds.
    on_rows : callable, optional
        Called with the number of rows of each block received (progress).
    on_start : callable, optional
        Called with the counts once the files to audit are known.

    Returns
    -------
    RunCounts

    Notes
    -----
    Interrupted (Ctrl-C, an exception in ``on_rows``), it writes the rows it holds before
    returning the interruption: a later run with the same store skips them, and audits the
    files whose rows had not reached the driver.
    """
    store.remove_temporaries()
    pending, n_done = select_pending(listing.items, done_index(store.done(retry_failures=retry_failures)),
                                     hash_files=options.hash_files)
    failed_early = [(i, sha) for i, sha in pending if i.error is not None]
    pending = [(i, sha) for i, sha in pending if i.error is None]
    counts = RunCounts(listed=len(listing.items), already_done=n_done, submitted=len(pending),
                       listing_failures=len(failed_early))
    if on_start is not None:
        on_start(counts)
    writer = ShardWriter(store, shard_rows=shard_rows, seconds=flush_seconds)
    before = store.rows_written
    try:
        if failed_early:
            from ..record import failure_record

            writer.add(rows_table([parquet_row(failure_record(i.file, i.error), path=i.path, size=i.size,
                                               mtime_ns=i.mtime_ns, label=i.label) for i, _ in failed_early]))
            if on_rows is not None:
                on_rows(len(failed_early))
        if pending:
            _quiet_data_context()
            ds = build_dataset(pending, options=options, filesystems=listing.filesystems,
                               quality_calibration=quality_calibration)
            received = 0
            for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                writer.add(table)
                received += table.num_rows
                if on_rows is not None:
                    on_rows(table.num_rows)
            counts.unchanged_by_hash = len(pending) - received
    finally:
        writer.flush()
        counts.rows_written = store.rows_written - before
    return counts


@contextlib.contextmanager
def ray_session(*, address: str | None = None, num_cpus: int | None = None,
                ship_package: bool | None = None) -> Iterator[dict]:
    """Connect to the Ray cluster at ``address``, or start a local one; yields its resources.

    Notes
    -----
    An existing connection of this process (``ray.init`` called before, as tests do) is used
    as it is and left open. Joining a cluster ships this jpegtrace package to its workers
    (``runtime_env`` ``py_modules``; ``ship_package=False`` not to), so they run the driver's
    code; its dependencies (torch, numpy, Pillow, pyarrow) must be installed there. The
    session started here is shut down on leaving, whatever happens.
    """
    import ray

    if ray.is_initialized():
        yield ray.cluster_resources()
        return
    settings = {"logging_level": logging.WARNING, "log_to_driver": True}
    if address:
        if ship_package is None or ship_package:
            import jpegtrace

            settings["runtime_env"] = {"py_modules": [os.path.dirname(jpegtrace.__file__)]}
        ray.init(address=address, **settings)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **settings)
    try:
        yield ray.cluster_resources()
    finally:
        ray.shutdown()
