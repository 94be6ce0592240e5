"""The Ray engine of ``jpegtrace assess`` (jpegtrace.distributed) and the format-bias report of both engines.

The tests marked slow start a local Ray (``ray.init(num_cpus=2)``) once for the module and audit
about 20 generated images (bad files among them) with a small random network: the Parquet rows
equal the local engine's records, an interrupted audit resumes without losing or repeating a
row, and a worker that dies mid-run has its block retried.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jpegtrace.cli.main import main
from jpegtrace.eval.bias import class_bias, folder_label
from jpegtrace.nn.qfnet import NetConfig, QFNet
from jpegtrace.nn.weights import save_weights

pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install 'jpegtrace[ray]')")

from jpegtrace.distributed.pipeline import FaultInjection, RayAuditOptions, run_ray_audit, select_pending  # noqa: E402
from jpegtrace.distributed.sources import SourceItem, list_source  # noqa: E402
from jpegtrace.distributed.store import COLUMN_TYPES, ParquetStore, parquet_row, rows_table  # noqa: E402
from jpegtrace.record import CSV_COLUMNS, failure_record  # noqa: E402

BAD_FILES = {"cats/empty.png", "cats/text.png", "dogs/truncated.png"}


def _texture(rng, height: int, width: int, gray: bool = False) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    base = 128 + 60 * np.sin(x / 7.0 + rng.uniform(0, 6)) * np.cos(y / 9.0) + rng.normal(0, 12, (height, width))
    if gray:
        return np.clip(base, 0, 255).astype(np.uint8)
    return np.clip(np.stack([base, base * 0.8 + 20, 255 - base], -1), 0, 255).astype(np.uint8)


def make_corpus(root: Path, per_class: int = 8) -> Path:
    """Two classes (``cats`` mostly JPEG-origin, ``dogs`` mostly not) of PNGs up to 128 px, a grayscale
    image at the top, three bad files and a text file that is skipped: ``2 * per_class + 4`` images."""
    rng = np.random.default_rng(7)
    for label, jpeg_share in (("cats", 0.9), ("dogs", 0.1)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            image = _texture(rng, int(rng.integers(48, 97)), int(rng.integers(48, 97)))
            if rng.random() < jpeg_share:
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, "JPEG", quality=int(rng.integers(40, 95)))
                image = np.asarray(Image.open(buffer).convert("RGB"))
            Image.fromarray(image).save(root / label / f"{i:03d}.png")
    Image.fromarray(_texture(rng, 64, 80, gray=True)).save(root / "gray.png")
    (root / "dogs" / "truncated.png").write_bytes((root / "dogs" / "000.png").read_bytes()[:300])
    (root / "cats" / "text.png").write_text("not an image")
    (root / "cats" / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("skipped")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus") / "data")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    import torch

    torch.manual_seed(0)
    return str(save_weights(QFNet(NetConfig(width=4, dilations=(1, 2, 1))),
                            tmp_path_factory.mktemp("w") / "tiny.safetensors"))


@pytest.fixture(scope="module")
def local_run(corpus, weights, tmp_path_factory):
    """The local engine's audit of the corpus: its output folder."""
    out = tmp_path_factory.mktemp("local") / "out"
    assert main(["assess", str(corpus), "--recursive", "--model", weights, "--out", str(out), "--quiet"]) == 1
    return out


def _local_records(out: Path) -> dict[str, dict]:
    return {r["file"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}


def _store_records(out: Path) -> dict[str, dict]:
    return {r["file"]: json.loads(r["record"]) for r in ParquetStore(out).read(["file", "record"]).to_pylist()}


def _all_rows(out: Path) -> list[dict]:
    """Every row of every shard, duplicates included (the store's read keeps one per path)."""
    import pyarrow.parquet as pq

    return [row for shard in ParquetStore(out).shards() for row in pq.read_table(shard).to_pylist()]


# --- sources, rows and the store (no Ray) ----------------------------------------------------------

def test_folder_listing_has_keys_classes_and_skipped_files(corpus):
    listing = list_source(str(corpus), recursive=True)
    files = [i.file for i in listing.items]
    assert files == sorted(files) and len(files) == 20 and "gray.png" in files
    item = next(i for i in listing.items if i.file == "cats/000.png")
    stat = (corpus / "cats" / "000.png").stat()
    assert (item.path, item.size, item.mtime_ns, item.label) == (str(corpus / "cats" / "000.png"), stat.st_size,
                                                                 stat.st_mtime_ns, "cats")
    assert next(i for i in listing.items if i.file == "gray.png").label is None
    assert listing.skipped == [{"file": "notes.txt", "reason": "not an image file type (.txt)"}]
    assert [i.file for i in list_source(str(corpus)).items] == ["gray.png"]


def test_glob_uri_and_manifests(corpus, tmp_path):
    by_glob = list_source(str(corpus / "*" / "00[01].png"))
    assert [(i.file, i.label) for i in by_glob.items] == [("cats/000.png", "cats"), ("cats/001.png", "cats"),
                                                          ("dogs/000.png", "dogs"), ("dogs/001.png", "dogs")]
    by_uri = list_source(f"file://{corpus}", recursive=True)
    assert [i.file for i in by_uri.items] == [i.file for i in list_source(str(corpus), recursive=True).items]
    assert by_uri.items[0].path == f"file://{corpus}/{by_uri.items[0].file}" and by_uri.items[0].filesystem == 0
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,species,other\n{corpus}/cats/000.png,007,x\n../nowhere.png,cat,y\n"
                        f"{corpus}/cats/000.png,dup,z\nfile://{corpus}/dogs/001.png,dog,w\n")
    listed = list_source(None, manifest=str(manifest), label_column="species")
    assert [(i.file, i.label, i.error) for i in listed.items] == [
        (f"{corpus}/cats/000.png", "007", None), ("../nowhere.png", "cat", "no such file"),
        (f"file://{corpus}/dogs/001.png", "dog", None)]
    assert listed.items[2].size == (corpus / "dogs" / "001.png").stat().st_size
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"path": ["cats/001.png"], "label": ["c"]}), corpus.parent / "m.parquet")
    item = list_source(None, manifest=str(corpus.parent / "m.parquet")).items[0]
    assert (item.path, item.label) == (str(corpus.parent / "cats" / "001.png"), "c")  # relative to the manifest
    from jpegtrace.errors import JpegTraceError

    with pytest.raises(JpegTraceError, match="no 'path' column"):
        (tmp_path / "bad.csv").write_text("file\nx.png\n")
        list_source(None, manifest=str(tmp_path / "bad.csv"))
    with pytest.raises(JpegTraceError, match="no label column 'kind'"):
        list_source(None, manifest=str(manifest), label_column="kind")


def test_parquet_row_types_the_csv_columns_and_keeps_the_record(local_run):
    records = _local_records(local_run)
    ok, failed = records["cats/000.png"], records["cats/empty.png"]
    row = parquet_row(ok, path="/x/cats/000.png", size=10, mtime_ns=20, label="cats")
    assert json.loads(row["record"]) == ok and set(row) == set(COLUMN_TYPES) >= set(CSV_COLUMNS)
    assert row["ok"] is True and row["error"] is None and row["verdict"] == ok["verdict"]
    assert row["width"] == ok["width"] and row["grayscale"] is False
    bad = parquet_row(failed, path="/x/cats/empty.png", size=0, mtime_ns=1)
    assert bad["ok"] is False and bad["error"] == "empty file" and bad["verdict"] is None and bad["quality"] is None
    table = rows_table([row, bad])
    assert table.schema.field("quality").type == pa.float64() and table.schema.field("ok").type == pa.bool_()


def test_store_writes_shards_atomically_keeps_the_last_row_per_path_and_knows_what_is_done(tmp_path):
    store = ParquetStore(tmp_path)
    first = rows_table([parquet_row(failure_record("a.png", "empty file"), path="/a.png", size=0, mtime_ns=1),
                        parquet_row(failure_record("b.png", "no such file"), path="/b.png", size=None, mtime_ns=None)])
    store.write(first)
    again = ParquetStore(tmp_path)  # a later run: its shards come after
    again.write(rows_table([parquet_row(failure_record("a.png", "changed"), path="/a.png", size=5, mtime_ns=2)]))
    (store.folder / ".part-000009-abc.tmp.parquet").write_bytes(b"half a shard")  # a killed write
    assert [p.name.split("-")[1] for p in again.shards()] == ["000000", "000001"]
    table = again.read()
    assert table.num_rows == 2 and dict(zip(table.column("path").to_pylist(), table.column("error").to_pylist())) == {
        "/a.png": "changed", "/b.png": "no such file"}
    assert again.remove_temporaries() == 1
    done = again.done().to_pylist()
    assert {(d["path"], d["size"], d["mtime_ns"]) for d in done} == {("/a.png", 5, 2), ("/b.png", None, None)}
    assert again.done(retry_failures=True).num_rows == 0


def test_select_pending_skips_by_path_size_and_mtime_and_hands_on_the_stored_hash():
    items = [SourceItem(path="/a", file="a", size=1, mtime_ns=1), SourceItem(path="/b", file="b", size=2, mtime_ns=5),
             SourceItem(path="/c", file="c", size=3, mtime_ns=3)]
    done = {"/a": (1, 1, "h1"), "/b": (2, 2, "h2")}
    pending, n_done = select_pending(items, done)
    assert n_done == 1 and [(i.path, sha) for i, sha in pending] == [("/b", None), ("/c", None)]
    pending, _ = select_pending(items, done, hash_files=True)
    assert [(i.path, sha) for i, sha in pending] == [("/b", "h2"), ("/c", None)]


def test_read_image_data_reads_bytes_as_read_image_reads_the_file(corpus):
    from jpegtrace.errors import ImageReadError
    from jpegtrace.io import read_image, read_image_data

    for name in ("cats/000.png", "gray.png"):
        array, notes = read_image(corpus / name)
        from_bytes, notes_from_bytes = read_image_data((corpus / name).read_bytes(), name)
        assert np.array_equal(array, from_bytes) and notes == notes_from_bytes
    for name in sorted(BAD_FILES):
        with pytest.raises(ImageReadError) as by_path:
            read_image(corpus / name)
        with pytest.raises(ImageReadError) as by_bytes:
            read_image_data((corpus / name).read_bytes(), name)
        assert by_bytes.value.reason == by_path.value.reason and by_bytes.value.path == name


# --- format bias ---------------------------------------------------------------------------------

def _rows(label, n_jpeg, n_never, n_none=0, quality=75.0):
    return ([{"label": label, "ok": True, "verdict": "compressed", "quality": quality}] * n_jpeg
            + [{"label": label, "ok": True, "verdict": "never compressed", "quality": None}] * n_never
            + [{"label": label, "ok": True, "verdict": "no evidence", "quality": None}] * n_none)


def test_class_bias_flags_the_classes_whose_compression_differs():
    rows = (_rows("A", 93, 7) + _rows("B", 4, 90, 6, quality=90.0) + _rows("C", 50, 50) + _rows("tiny", 2, 0)
            + [{"label": "B", "ok": False}, {"label": None, "ok": True, "verdict": "compressed", "quality": 50.0}])
    bias = class_bias(rows)
    by_label = {c["label"]: c for c in bias["classes"]}
    assert [c["label"] for c in bias["classes"]] == ["tiny", "A", "C", "B"]  # most JPEG-origin first
    a, b = by_label["A"], by_label["B"]
    assert (a["share_jpeg"], a["quality_median"], a["n"]) == (0.93, 75.0, 100)
    assert (b["share_jpeg"], b["share_no_evidence"], b["n_failed"], b["share_never"]) == (0.04, 0.06, 1, 0.9)
    assert bias["flagged"] == ["A", "B"]  # "tiny" is all JPEG but two images are no evidence of a difference
    assert bias["n_unlabelled"] == 1 and bias["n_labelled"] == 303
    assert bias["summary"] == ("compression differs by class: class A: 93 % JPEG-origin, median QF 75; "
                               "class B: 4 % JPEG-origin, median QF 90")
    assert bias["lines"][1].startswith("class A: 93 % JPEG-origin, median QF 75, 0 % without evidence (100 images)")
    assert sum(a["quality_counts"]) == 93
    assert class_bias(_rows("A", 5, 5))["flagged"] == [] and folder_label("a/b/c.png") == "a"
    assert folder_label("c.png") is None


def test_class_bias_flags_a_class_by_its_quality_alone():
    bias = class_bias(_rows("A", 50, 50, quality=60.0) + _rows("B", 50, 50, quality=90.0))
    assert bias["flagged"] == ["A", "B"]
    assert bias["classes"][0]["reasons"] == ["median QF -30 against the other classes"]


def test_local_engine_writes_the_bias_report(local_run):
    bias = json.loads((local_run / "bias.json").read_text())
    assert [c["label"] for c in bias["classes"]] == ["cats", "dogs"] and bias["n_unlabelled"] == 1
    assert {c["label"]: c["n_failed"] for c in bias["classes"]} == {"cats": 2, "dogs": 1}
    assert "Format bias per class" in (local_run / "index.html").read_text()


def test_help_does_not_import_ray_and_the_local_engine_refuses_ray_sources(tmp_path, capsys):
    code = ("import sys\nfrom jpegtrace.cli.main import main\ntry:\n    main(['assess', '--help'])\n"
            "except SystemExit:\n    pass\nprint('ray' in sys.modules, 'pyarrow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False False"
    assert main(["assess", "s3://bucket/x", "--out", str(tmp_path / "o")]) == 2
    assert main(["assess", "--manifest", "m.csv", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "s3://bucket/x: URIs and globs need --engine ray" in err and "--manifest needs --engine ray" in err


# --- the Ray engine ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'jpegtrace[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield ray
    finally:
        ray.shutdown()


def _options(weights: str, **extra) -> RayAuditOptions:
    return RayAuditOptions(weights=Path(weights).read_bytes(), num_workers=2, block_rows=2, **extra)


def _calibration(weights: str):
    from jpegtrace.analysis import load_model

    return load_model(weights).quality_calibration


@pytest.mark.slow
def test_ray_rows_equal_the_local_engine(ray_cluster, corpus, weights, local_run, tmp_path, capsys):
    out = tmp_path / "ray"
    assert main(["assess", str(corpus), "--recursive", "--model", weights, "--out", str(out), "--quiet",
                 "--engine", "ray", "--num-workers", "2", "--shard-rows", "7"]) == 1
    rows = _all_rows(out)
    assert len(rows) == 20 and len({r["path"] for r in rows}) == 20  # one row per file, no duplicate
    assert _store_records(out) == _local_records(local_run)
    # each record says what computed its maps (the workers resolve their backend as the local engine does)
    assert all(r["network"]["backend"] in ("torch", "onnxruntime", "openvino")
               for r in _store_records(out).values() if r["ok"])
    failed = {r["file"]: r["error"] for r in rows if not r["ok"]}
    assert set(failed) == BAD_FILES and failed["cats/empty.png"] == "empty file"
    assert {r["label"] for r in rows} == {"cats", "dogs", None}
    local, distributed = (json.loads((o / "assessment.json").read_text()) for o in (local_run, out))
    for key in ("n_files", "n_analysed", "n_compressed", "n_uncompressed", "n_no_evidence", "n_grayscale",
                "n_failed", "histogram", "n_skipped", "skipped_by_reason"):
        assert distributed[key] == local[key], key
    assert distributed["mean_quality_compressed"] == pytest.approx(local["mean_quality_compressed"], abs=0.011)
    assert json.loads((out / "bias.json").read_text()) == json.loads((local_run / "bias.json").read_text())
    assert "Format bias per class" in (out / "index.html").read_text()
    capsys.readouterr()
    # Run again: everything is done, nothing is audited, no row is added.
    assert main(["assess", str(corpus), "--recursive", "--model", weights, "--out", str(out), "--quiet",
                 "--engine", "ray", "--num-workers", "1"]) == 1
    assert "20 files listed, 20 already done, 0 to audit" in capsys.readouterr().err
    assert len(_all_rows(out)) == 20


@pytest.mark.slow
def test_an_interrupted_audit_resumes_without_losing_or_repeating_a_row(ray_cluster, corpus, weights, local_run,
                                                                       tmp_path):
    # Files as file:// URIs in a manifest: read through pyarrow's filesystem, as from object storage.
    local = _local_records(local_run)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label\n" + "".join(f"file://{corpus}/{f},{folder_label(f) or ''}\n" for f in sorted(local))
                        + f"file://{corpus}/gone.png,dogs\n")
    listing = list_source(None, manifest=str(manifest))
    store = ParquetStore(tmp_path / "out")
    seen = []

    def interrupt(n):
        seen.append(n)
        if sum(seen) >= 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_ray_audit(listing, store, _options(weights), quality_calibration=_calibration(weights), shard_rows=100,
                      on_rows=interrupt)
    kept = ParquetStore(tmp_path / "out").read()
    assert kept.num_rows == sum(seen) == store.rows_written  # every row the driver held was written
    resumed = ParquetStore(tmp_path / "out")
    counts = run_ray_audit(listing, resumed, _options(weights), quality_calibration=_calibration(weights))
    assert counts.already_done == kept.num_rows and counts.rows_written == 21 - kept.num_rows
    rows = _all_rows(tmp_path / "out")
    assert len(rows) == 21 and len({r["path"] for r in rows}) == 21
    records = {r["path"]: json.loads(r["record"]) for r in rows}
    assert records[f"file://{corpus}/gone.png"] == failure_record(f"file://{corpus}/gone.png", "no such file")
    for file, record in local.items():  # the same analysis through pyarrow's reader, named by the URI
        assert records[f"file://{corpus}/{file}"] == {**record, "file": f"file://{corpus}/{file}"}


@pytest.mark.slow
def test_a_killed_worker_has_its_block_retried(ray_cluster, corpus, weights, local_run, tmp_path):
    marker = tmp_path / "killed-once"
    listing = list_source(str(corpus), recursive=True)
    store = ParquetStore(tmp_path / "out")
    options = _options(weights, fault=FaultInjection(file="dogs/003.png", marker=str(marker)), hash_files=True)
    counts = run_ray_audit(listing, store, options, quality_calibration=_calibration(weights), shard_rows=3)
    assert marker.exists()  # the worker did exit on that file
    rows = _all_rows(tmp_path / "out")
    assert counts.rows_written == len(rows) == 20 and len({r["path"] for r in rows}) == 20
    assert _store_records(tmp_path / "out") == _local_records(local_run)
    hashed = {r["file"]: r["sha256"] for r in rows}
    import hashlib

    assert hashed["cats/000.png"] == hashlib.sha256((corpus / "cats" / "000.png").read_bytes()).hexdigest()
    # Hash mode: a file touched (new mtime) but unchanged is not analysed again.
    import os

    touched = corpus / "cats" / "001.png"
    before = touched.stat()
    os.utime(touched, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    try:
        again = run_ray_audit(list_source(str(corpus), recursive=True), ParquetStore(tmp_path / "out"), options,
                              quality_calibration=_calibration(weights))
    finally:
        os.utime(touched, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (again.submitted, again.unchanged_by_hash, again.rows_written) == (1, 1, 0)


@pytest.mark.slow
def test_damaged_files_and_the_time_limit_as_the_local_engine_has_them(ray_cluster, weights, tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "damaged"
    folder.mkdir()
    buffer = io.BytesIO()
    Image.fromarray(_texture(rng, 96, 128)).save(buffer, "JPEG", quality=80)
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])
    Image.fromarray(_texture(rng, 64, 64)).save(folder / "sound.png")
    for allow in (False, True):
        flags = ["--allow-damaged"] if allow else []
        local, distributed = tmp_path / f"local-{allow}", tmp_path / f"ray-{allow}"
        main(["assess", str(folder), "--model", weights, "--out", str(local), "--quiet", *flags])
        main(["assess", str(folder), "--model", weights, "--out", str(distributed), "--quiet", "--engine", "ray",
              "--num-workers", "1", *flags])
        records = _store_records(distributed)
        assert records == _local_records(local)
        truncated = records["truncated.jpg"]
        if allow:  # analysed, with the damage named in its notes
            assert truncated["verdict"] is not None and any("damaged" in n or "truncated" in n
                                                            for n in truncated["notes"]), truncated
        else:
            assert "--allow-damaged" in (truncated.get("error") or ""), truncated
    # A limit no file can keep: every file is a failure row with the local engine's reason.
    out = tmp_path / "limited"
    main(["assess", str(folder), "--model", weights, "--out", str(out), "--quiet", "--engine", "ray",
          "--num-workers", "1", "--allow-damaged", "--time-limit", "0.0001"])
    assert {f: r["error"] for f, r in _store_records(out).items()} == {
        f: "took longer than 0.0001 s (time limit)" for f in ("truncated.jpg", "sound.png")}
