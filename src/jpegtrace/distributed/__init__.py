"""Audits of millions of images on Ray: ``jpegtrace assess SOURCE --engine ray`` (see docs/ray.md).

- :mod:`~jpegtrace.distributed.sources`: the files of a folder, glob, pyarrow URI or manifest, with their keys and classes.
- :mod:`~jpegtrace.distributed.store`: the Parquet shards, written atomically; what is done, for resuming.
- :mod:`~jpegtrace.distributed.pipeline`: the Ray Data pipeline (read and check in tasks, the network in an actor pool).
- :mod:`~jpegtrace.distributed.report`: the summary, histogram and format bias made from the shards.
- :mod:`~jpegtrace.distributed.cli`: the ``assess`` options and run of the Ray engine.

Ray and pyarrow are an optional extra (``pip install 'jpegtrace[ray]'``); they are imported only
by the functions that use them, so importing this package, or running ``jpegtrace --help``, does
not import them.
"""

from .._lazy import lazy_exports

#: Public name -> the submodule that defines it (imported on first use).
_EXPORTS = {
    "FaultInjection": "pipeline", "Listing": "sources", "ParquetStore": "store", "RayAuditOptions": "pipeline",
    "RunCounts": "pipeline", "SourceItem": "sources", "list_source": "sources", "parquet_row": "store",
    "ray_session": "pipeline", "run_ray_audit": "pipeline", "summarize_rows": "report",
    "write_ray_report": "report",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
