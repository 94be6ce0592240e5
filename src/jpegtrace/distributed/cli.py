"""``jpegtrace assess --engine ray``: the options of the distributed engine and the command's run.

:func:`add_engine_options` adds ``--engine`` and the Ray options to the ``assess`` parser (it
imports nothing heavy, so ``jpegtrace --help`` does not import Ray); :func:`run_ray_assess` is the
branch ``assess`` takes with ``--engine ray``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
from pathlib import Path

ENGINES = ("local", "ray")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of 0 or more, got {text}")
    return value


def add_engine_options(p) -> None:
    """``--engine`` and, for ``--engine ray``, the cluster, worker, manifest and resume options."""
    from ..cli.common import positive_int_arg

    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: this process, one image after another (the default; no Ray needed); ray: Ray Data "
                        "on a local or existing cluster, results as Parquet shards in OUT_DIR/records, resumable "
                        "(needs the extra: pip install 'jpegtrace[ray]'; see docs/ray.md)")
    g = p.add_argument_group("the Ray engine (--engine ray)")
    g.add_argument("--address", metavar="ADDR",
                   help="join this Ray cluster (e.g. ray://head:10001 or auto); without it a local Ray starts here")
    g.add_argument("--num-workers", type=positive_int_arg, metavar="N",
                   help="network workers, each holding the model (default: one per GPU, else the CPUs less one)")
    g.add_argument("--num-gpus-per-worker", type=_non_negative_float, metavar="G",
                   help="GPUs per network worker (default 1 when the cluster has GPUs, else 0)")
    g.add_argument("--manifest", metavar="FILE",
                   help="CSV or Parquet file with a 'path' column (local paths, relative to the manifest, or URIs) "
                        "and optional label columns: audit these files instead of SOURCE")
    g.add_argument("--label-column", metavar="NAME",
                   help="the manifest's column of classes for the format-bias report (default: 'label' if present)")
    g.add_argument("--resume-by", choices=("stat", "hash"), default="stat",
                   help="a file is already done when a stored row has its path, size and modification time "
                        "(stat, the default) or, failing that, the same SHA-256 of its bytes (hash: reads every "
                        "changed file again to hash it)")
    g.add_argument("--retry-failures", action="store_true",
                   help="audit again the files whose stored row is a failure (by default they are done)")
    g.add_argument("--shard-rows", type=positive_int_arg, default=1000, metavar="N",
                   help="rows per Parquet shard (default 1000; a shard is also written every minute)")


def check_local_engine(args) -> str | None:
    """Why the local engine cannot run these arguments (a Ray-only source or option), or None."""
    from .sources import is_uri

    if getattr(args, "manifest", None):
        return "--manifest needs --engine ray"
    if args.folder is None:
        return "give a DIR to audit"
    if is_uri(args.folder) or (not Path(args.folder).is_dir() and any(c in args.folder for c in "*?[")):
        return f"{args.folder}: URIs and globs need --engine ray"
    return None


def _default_workers(resources: dict, gpus_per_worker: float) -> int:
    if gpus_per_worker:
        return max(1, int(resources.get("GPU", 0) // gpus_per_worker))
    return max(1, int(resources.get("CPU", 1)) - 1)  # one CPU left for the read and summary tasks


def run_ray_assess(args) -> int:
    """``jpegtrace assess --engine ray``: list, audit what is not done yet, write the report from the Parquet."""
    from ..cli.common import display, error, load_network, prepare_out, resolve_backend_args, run_settings
    from ..errors import JpegTraceError

    for module in ("ray", "pyarrow"):
        if importlib.util.find_spec(module) is None:
            error(f"--engine ray needs {module}: pip install 'jpegtrace[ray]'")
            return 2
    if args.pages:
        error("--pages needs --engine local (a page per image does not fit an audit of millions)")
        return 2
    from .pipeline import RayAuditOptions, done_index, ray_session, run_ray_audit, select_pending
    from .report import write_ray_report
    from .sources import list_source
    from .store import ParquetStore

    try:
        listing = list_source(args.folder, recursive=args.recursive, manifest=args.manifest,
                              label_column=args.label_column, exclude=args.out)
    except JpegTraceError as exc:
        error(str(exc))
        return 2
    if not listing.items:
        error(f"{display(listing.source)}: no image files")
        return 2
    model = load_network(args)
    if model is None or not resolve_backend_args(args, model) or not prepare_out(args):
        return 2
    resolved = args.resolved
    try:
        weights = None if args.model is None else Path(args.model).read_bytes()
    except OSError as exc:
        error(f"{display(args.model)}: cannot read the weights ({exc.strerror or exc})")
        return 2
    store = ParquetStore(args.out)
    progress = None
    # Nothing left for a worker (all done, or only files the listing found missing): no Ray to start.
    pending, _ = select_pending(listing.items, done_index(store.done(retry_failures=args.retry_failures)),
                                hash_files=args.resume_by == "hash")
    needs_ray = any(item.error is None for item, _ in pending)
    try:
        with ray_session(address=args.address) if needs_ray else contextlib.nullcontext({}) as resources:
            gpus = args.num_gpus_per_worker
            if gpus is None:
                gpus = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
            workers = args.num_workers or _default_workers(resources, gpus)
            options = RayAuditOptions(weights=weights, tile_size=args.tile_size, device=args.device,
                                      grid_check=args.grid_check, max_pixels=args.max_pixels,
                                      allow_damaged=args.allow_damaged, time_limit=args.time_limit,
                                      backend=args.backend, precision=args.precision, num_workers=workers,
                                      num_gpus_per_worker=gpus, hash_files=args.resume_by == "hash")

            def start(counts):
                nonlocal progress
                from tqdm import tqdm

                print(f"{counts.listed} files listed, {counts.already_done} already done, "
                      f"{counts.submitted + counts.listing_failures} to audit on {workers} worker"
                      f"{'s' if workers != 1 else ''}" + (f" with {gpus:g} GPU each" if gpus else ""), file=sys.stderr)
                disable = bool(args.quiet) or not sys.stderr.isatty()
                progress = tqdm(total=counts.submitted + counts.listing_failures, desc="assess", unit=" image",
                                disable=disable, file=sys.stderr, dynamic_ncols=True)

            try:
                counts = run_ray_audit(listing, store, options, quality_calibration=model.quality_calibration,
                                       retry_failures=args.retry_failures, shard_rows=args.shard_rows,
                                       on_rows=lambda n: progress.update(n), on_start=start)
            except KeyboardInterrupt:
                error(f"interrupted; {store.rows_written} new results kept in {display(Path(args.out) / 'records')}: "
                      "run the same command again to resume")
                raise
            finally:
                if progress is not None:
                    progress.close()
    except OSError as exc:
        from ..cli.common import write_error

        return write_error(exc)
    except JpegTraceError as exc:
        error(str(exc))
        return 2
    settings = run_settings(args, engine="ray", source=display(listing.source), recursive=args.recursive,
                            manifest=display(args.manifest) if args.manifest else None,
                            label_column=args.label_column, grid_check=args.grid_check, max_pixels=args.max_pixels,
                            allow_damaged=args.allow_damaged, time_limit=args.time_limit,
                            backend=args.backend, precision=args.precision, runs_as="/".join(resolved),
                            address=args.address, num_workers=workers, num_gpus_per_worker=gpus,
                            resume_by=args.resume_by)
    import dataclasses

    try:
        written = write_ray_report(args.out, store, settings=settings, skipped=listing.skipped,
                                   run=dataclasses.asdict(counts))
    except OSError as exc:
        from ..cli.common import write_error

        return write_error(exc)
    import json

    summary = json.loads(written["summary"].read_text(encoding="utf-8"))
    print(f"{summary['n_compressed']} compressed ({summary['n_partly_compressed']} in part), "
          f"{summary['n_uncompressed']} never compressed, {summary['n_no_evidence']} without evidence "
          f"({summary['n_grayscale']} grayscale), {summary['n_failed']} unreadable, {summary['n_skipped']} skipped"
          f"; {counts.rows_written} new rows this run")
    if summary.get("bias"):
        print(f"format bias: {summary['bias']['summary']}")
    print(f"results written to {display(args.out)}; open {display(written['html'])}")
    return 1 if summary["n_failed"] else 0
