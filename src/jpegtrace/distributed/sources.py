"""What a distributed audit reads: the files of a folder, a glob, a pyarrow filesystem URI or a manifest.

:func:`list_source` turns a ``SOURCE`` (and ``--manifest``) into :class:`SourceItem` rows: each
file's key for resuming (path, size, modification time), its name in the records, its class and
where a worker reads it from. Listing happens once, on the driver; workers only open the files.

pyarrow is imported only for URIs and manifests (and by the callers that build tables); Ray is not
imported here.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat as stat_module
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import JpegTraceError
from ..eval.bias import folder_label
from ..io import IMAGE_SUFFIXES

#: Characters that make a SOURCE a glob pattern.
GLOB_CHARS = "*?["
#: Suffixes refused with their own reason (the local engine's words).
_HEIF_SUFFIXES = {".heic", ".heif", ".avif", ".hif"}
#: The manifest's column of file paths.
PATH_COLUMN = "path"
#: The manifest's column of classes when ``--label-column`` is not given (used when present).
DEFAULT_LABEL_COLUMN = "label"


@dataclass(frozen=True)
class SourceItem:
    """One file to audit.

    Attributes
    ----------
    path : str
        Its full name, the key of the results with ``size`` and ``mtime_ns``: an absolute local
        path, or a URI (``s3://bucket/key``).
    file : str
        The name its record carries (``file``): the path relative to the folder or the glob's
        fixed part, or the path as the manifest writes it.
    label : str or None
        Its class: the first folder level under the source, or the manifest's label column.
    size, mtime_ns : int or None
        From the listing; None when the file could not be found.
    filesystem : int or None
        Index into :attr:`Listing.filesystems` for a file read through pyarrow; None for a local
        file, which is read as the local engine reads it.
    fs_path : str or None
        The path within that filesystem.
    error : str or None
        Why the file cannot be audited, found while listing (a manifest naming a missing file);
        it becomes a failure row without reaching a worker.
    """

    path: str
    file: str
    label: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    filesystem: int | None = None
    fs_path: str | None = None
    error: str | None = None


@dataclass
class Listing:
    """The files of a source: ``items`` to audit, ``skipped`` (``file``, ``reason``) left out by type."""

    source: str
    items: list[SourceItem]
    skipped: list[dict] = field(default_factory=list)
    filesystems: dict[int, object] = field(default_factory=dict)


def is_uri(text: str) -> bool:
    """Whether ``text`` names a pyarrow filesystem URI (``s3://...``, ``file:///...``) rather than a local path."""
    scheme = urlsplit(text).scheme
    return len(scheme) > 1 and "://" in text  # "C:\\..." has a one-letter scheme


def _has_glob(text: str) -> bool:
    return any(c in text for c in GLOB_CHARS)


def _skip_reason(suffix: str) -> str:
    if suffix in _HEIF_SUFFIXES:
        return "HEIF/AVIF images are not supported"
    return f"not an image file type ({suffix or 'no suffix'})"


def _display(path) -> str:
    from ..cli.common import display

    return display(path)


def list_source(source: str | None, *, recursive: bool = False, manifest: str | None = None,
                label_column: str | None = None, exclude: str | os.PathLike | None = None) -> Listing:
    """The files of ``source`` (or of ``manifest``) to audit, with their keys and classes.

    Parameters
    ----------
    source : str or None
        A local folder (its image files; with ``recursive`` those of sub-folders too), a glob
        (``data/*/*.png``, ``**`` for any depth), a local file, or a pyarrow filesystem URI of a
        folder, glob or file (``s3://bucket/prefix``; the credentials are the environment's, on
        the driver for the listing and on each worker for reading). None with ``manifest``.
    recursive : bool
        Also list sub-folders of a folder or URI (a glob says its own depth).
    manifest : str, optional
        A CSV or Parquet file with a ``path`` column (local paths, relative ones to the
        manifest's folder, or URIs) and optional label columns.
    label_column : str, optional
        The manifest's column of classes (default ``label`` when the manifest has one).
    exclude : path, optional
        A local folder whose files are left out (the output folder).

    Raises
    ------
    JpegTraceError
        With the source and one line saying what is wrong (no such folder, a manifest without
        a path column, a URI pyarrow cannot open).

    Notes
    -----
    Classes of a folder, glob or URI are the first folder level under it (``cats/001.png`` is in
    ``cats``; files at the top have none). Items come sorted by ``file``. Files of other types
    are listed in ``skipped`` with the reason; a manifest's entries are all audited, whatever
    their suffix.
    """
    if manifest is not None:
        return list_manifest(manifest, label_column=label_column)
    if source is None:
        raise JpegTraceError(None, "give a SOURCE (folder, glob or URI) or --manifest")
    if is_uri(source):
        return _list_uri(source, recursive=recursive)
    if _has_glob(source) and not os.path.exists(source):
        return _list_glob(source, exclude=exclude)
    path = Path(source)
    if path.is_file():
        item = _local_item(path, path.name, None)
        return Listing(source, [item])
    if not path.is_dir():
        raise JpegTraceError(source, "no such folder, file or glob match")
    return _list_folder(path, recursive=recursive, exclude=exclude)


def _local_item(path: Path, file: str, label: str | None) -> SourceItem:
    try:
        info = os.stat(path)
    except OSError:
        return SourceItem(path=str(path.absolute()), file=file, label=label, error="no such file")
    if stat_module.S_ISDIR(info.st_mode):
        return SourceItem(path=str(path.absolute()), file=file, label=label, error="is a directory, not an image")
    return SourceItem(path=str(path.absolute()), file=file, label=label, size=int(info.st_size),
                      mtime_ns=int(info.st_mtime_ns))


def _walk(folder: Path, recursive: bool) -> Iterator[os.DirEntry]:
    """The entries of ``folder`` that are files (links to files too), sub-folders' with ``recursive``
    (links to folders are not followed, as ``Path.rglob`` does not)."""
    stack = [folder]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if recursive:
                                stack.append(Path(entry.path))
                        elif entry.is_file():
                            yield entry
                    except OSError:
                        continue
        except OSError:
            continue


def _list_folder(folder: Path, *, recursive: bool, exclude) -> Listing:
    excluded = None if exclude is None else Path(exclude).resolve()
    items, skipped = [], []
    for entry in _walk(folder, recursive):
        path = Path(entry.path)
        if excluded is not None and excluded in path.resolve().parents:
            continue
        relative = path.relative_to(folder)
        name = _display(relative)
        suffix = path.suffix.lower()
        if suffix not in IMAGE_SUFFIXES:
            skipped.append({"file": name, "reason": _skip_reason(suffix)})
            continue
        try:
            info = entry.stat()
        except OSError:
            items.append(SourceItem(path=str(path.absolute()), file=name, label=folder_label(name), error="no such file"))
            continue
        items.append(SourceItem(path=str(path.absolute()), file=name, label=folder_label(name),
                                size=int(info.st_size), mtime_ns=int(info.st_mtime_ns)))
    # The local engine's order: by the path relative to the folder.
    items.sort(key=lambda i: Path(i.path).relative_to(folder.absolute()).as_posix())
    skipped.sort(key=lambda s: s["file"])
    return Listing(str(folder), items, skipped)


def _fixed_part(pattern: str, sep: str = "/") -> str:
    """The folder part of ``pattern`` before its first glob character (``data/`` of ``data/*/x.png``)."""
    first = min(pattern.index(c) for c in GLOB_CHARS if c in pattern)
    cut = pattern.rfind(sep, 0, first)
    return pattern[:cut + 1] if cut >= 0 else ""


def _list_glob(pattern: str, *, exclude) -> Listing:
    root = Path(_fixed_part(pattern, os.sep) or ".")
    excluded = None if exclude is None else Path(exclude).resolve()
    items, skipped = [], []
    for text in glob.glob(pattern, recursive=True):
        path = Path(text)
        if not path.is_file() or (excluded is not None and excluded in path.resolve().parents):
            continue
        name = _display(path.relative_to(root))
        suffix = path.suffix.lower()
        if suffix not in IMAGE_SUFFIXES:
            skipped.append({"file": name, "reason": _skip_reason(suffix)})
            continue
        items.append(_local_item(path, name, folder_label(name)))
    if not items and not skipped:
        raise JpegTraceError(pattern, "no file matches the glob")
    items.sort(key=lambda i: i.file)
    skipped.sort(key=lambda s: s["file"])
    return Listing(pattern, items, skipped)


def _filesystem(uri: str):
    """pyarrow's filesystem of ``uri`` and the path within it; a one-line error when it cannot be opened."""
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except Exception as exc:  # noqa: BLE001 -- unknown scheme, missing credentials, no network
        raise JpegTraceError(uri, f"cannot open the filesystem: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _list_uri(uri: str, *, recursive: bool) -> Listing:
    import pyarrow.fs

    uri = uri.rstrip("/") if not _has_glob(uri) else uri
    pattern = None
    root_uri = uri
    if _has_glob(urlsplit(uri).path):
        root_uri = _fixed_part(uri).rstrip("/")
        pattern = uri[len(root_uri) + 1:]
    fs, base = _filesystem(root_uri)
    base = base.rstrip("/")
    try:
        info = fs.get_file_info(base)
        if info.type == pyarrow.fs.FileType.File and pattern is None:
            infos, base, root_uri = [info], base.rpartition("/")[0], root_uri.rpartition("/")[0]
        elif info.type == pyarrow.fs.FileType.NotFound:
            raise JpegTraceError(uri, "no such folder or file")
        else:
            selector = pyarrow.fs.FileSelector(base, recursive=recursive or pattern is not None)
            infos = fs.get_file_info(selector)
    except JpegTraceError:
        raise
    except Exception as exc:  # noqa: BLE001 -- permissions, network
        raise JpegTraceError(uri, f"cannot list: {_one_line(exc)}") from None
    items, skipped = [], []
    for info in infos:
        if info.type != pyarrow.fs.FileType.File:
            continue
        relative = info.path[len(base):].lstrip("/") if base else info.path
        if pattern is not None and not fnmatch.fnmatchcase(relative, pattern):
            continue
        suffix = os.path.splitext(relative)[1].lower()
        if suffix not in IMAGE_SUFFIXES:
            skipped.append({"file": relative, "reason": _skip_reason(suffix)})
            continue
        items.append(SourceItem(path=f"{root_uri}/{relative}", file=relative, label=folder_label(relative),
                                size=int(info.size), mtime_ns=None if info.mtime_ns is None else int(info.mtime_ns),
                                filesystem=0, fs_path=info.path))
    items.sort(key=lambda i: i.file)
    skipped.sort(key=lambda s: s["file"])
    return Listing(uri, items, skipped, {0: fs})


def read_manifest(manifest: str | os.PathLike, *, label_column: str | None = None) -> tuple[list[str], list | None]:
    """The ``path`` column of a CSV or Parquet manifest and its label column (None without one).

    Raises
    ------
    JpegTraceError
        When the manifest cannot be read, has no ``path`` column, or lacks ``label_column``.
    """
    import pyarrow as pa

    name = str(manifest)
    try:
        if name.lower().endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            table = pq.read_table(name)
        else:
            import pyarrow.csv as pacsv

            # Every column as text: a class named "007" stays "007", a path "1e5" is not a number.
            names = pacsv.read_csv(name, read_options=pacsv.ReadOptions(block_size=1 << 16)).column_names
            table = pacsv.read_csv(name, convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in names}, strings_can_be_null=False))
    except FileNotFoundError:
        raise JpegTraceError(name, "no such manifest") from None
    except Exception as exc:  # noqa: BLE001 -- pyarrow's errors for malformed files
        raise JpegTraceError(name, f"cannot read the manifest: {_one_line(exc)}") from None
    if PATH_COLUMN not in table.column_names:
        raise JpegTraceError(name, f"the manifest has no {PATH_COLUMN!r} column (columns: "
                                   f"{', '.join(table.column_names) or 'none'})")
    column = label_column or (DEFAULT_LABEL_COLUMN if DEFAULT_LABEL_COLUMN in table.column_names else None)
    if column is not None and column not in table.column_names:
        raise JpegTraceError(name, f"the manifest has no label column {column!r}")
    paths = [str(p) for p in table.column(PATH_COLUMN).to_pylist() if p is not None and str(p) != ""]
    labels = None
    if column is not None:
        labels = [None if v is None or str(v) == "" else str(v)
                  for p, v in zip(table.column(PATH_COLUMN).to_pylist(), table.column(column).to_pylist())
                  if p is not None and str(p) != ""]
    return paths, labels


def list_manifest(manifest: str | os.PathLike, *, label_column: str | None = None) -> Listing:
    """The files a manifest names (see :func:`list_source`), each stat-ed; a missing one becomes an item with ``error``.

    Notes
    -----
    Relative local paths are relative to the manifest's folder. A path listed twice is audited
    once (its first row's label). URIs are stat-ed through pyarrow a thousand at a time per
    filesystem.
    """
    paths, labels = read_manifest(manifest, label_column=label_column)
    labels = labels or [None] * len(paths)
    here = Path(manifest).parent
    items: list[SourceItem | None] = []
    remote: dict[tuple[str, str], list[int]] = {}
    seen = set()
    for text, label in zip(paths, labels):
        if text in seen:
            continue
        seen.add(text)
        if is_uri(text):
            parts = urlsplit(text)
            remote.setdefault((parts.scheme, parts.netloc), []).append(len(items))
            items.append(SourceItem(path=text, file=text, label=label))
        else:
            path = Path(text) if os.path.isabs(text) else here / text
            items.append(_local_item(path, text, label))
    filesystems = {}
    for fs_id, indexes in enumerate(remote.values()):
        fs, first = _filesystem(items[indexes[0]].path)
        filesystems[fs_id] = fs
        prefix = _fs_prefix(items[indexes[0]].path, first)
        for start in range(0, len(indexes), 1000):
            chunk = indexes[start:start + 1000]
            fs_paths = [prefix + urlsplit(items[i].path).path.lstrip("/") for i in chunk]
            try:
                infos = fs.get_file_info(fs_paths)
            except Exception as exc:  # noqa: BLE001
                reason = f"cannot stat: {_one_line(exc)}"
                infos = [None] * len(chunk)
            for i, fs_path, info in zip(chunk, fs_paths, infos):
                items[i] = _remote_item(items[i], fs_id, fs_path, info, reason if info is None else None)
    return Listing(str(manifest), [i for i in items if i is not None], filesystems=filesystems)


def _fs_prefix(uri: str, fs_path: str) -> str:
    """What pyarrow puts before a URI's path in the filesystem's path: ``bucket/`` for S3, ``/`` for HDFS."""
    tail = urlsplit(uri).path.lstrip("/")
    return fs_path[:len(fs_path) - len(tail)] if tail and fs_path.endswith(tail) else fs_path.rstrip("/") + "/"


def _remote_item(item: SourceItem, fs_id: int, fs_path: str, info, reason: str | None) -> SourceItem:
    import dataclasses

    import pyarrow.fs

    if info is None:
        return dataclasses.replace(item, filesystem=fs_id, fs_path=fs_path, error=reason)
    if info.type == pyarrow.fs.FileType.NotFound:
        return dataclasses.replace(item, filesystem=fs_id, fs_path=fs_path, error="no such file")
    if info.type == pyarrow.fs.FileType.Directory:
        return dataclasses.replace(item, filesystem=fs_id, fs_path=fs_path, error="is a directory, not an image")
    return dataclasses.replace(item, filesystem=fs_id, fs_path=fs_path, size=int(info.size),
                               mtime_ns=None if info.mtime_ns is None else int(info.mtime_ns))
