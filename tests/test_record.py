"""One record schema for every output: analyze's JSON Lines and CSV, assess's records, validated."""

import csv
import io
import json
import sys

import jsonschema
import numpy as np
import pytest
import torch
from PIL import Image

from jpegtrace.analysis import summarize
from jpegtrace.cli import main
from jpegtrace.nn.qfnet import QFNet
from jpegtrace.nn.weights import save_weights
from jpegtrace.record import CSV_COLUMNS, SCHEMA_PATH, analysis_record, csv_row, failure_record, text_line


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "random.safetensors"
    save_weights(QFNet().eval(), path)
    return path


@pytest.fixture
def folder(tmp_path, photo):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(photo).save(images / "photo.png")
    Image.fromarray(photo).save(images / "photo.jpg", quality=60)
    Image.fromarray(photo[:40, :50, 0]).save(images / "gray.tif")
    (images / "broken.png").write_bytes(b"not a PNG")
    (images / "notes.txt").write_text("not an image")
    return images


def _partly_compressed_analysis():
    flag = np.full((200, 240), 0.05, np.float32)
    quality = np.full((200, 240), 99.0, np.float32)
    flag[40:140, 60:180], quality[40:140, 60:180] = 0.95, 70.0
    return summarize(np.stack([1.0 - quality / 100.0, flag]))


def test_records_of_every_verdict_validate_and_flatten(validator):
    partly = _partly_compressed_analysis()
    flat = summarize(np.zeros((2, 64, 64), np.float32), evidence=np.zeros((64, 64), np.float32))
    for analysis, verdict in ((partly, "partly compressed"), (flat, "no evidence")):
        record = analysis_record(analysis, file="x.png")
        validator.validate(record)
        assert record["verdict"] == verdict and record["grid"] is None
        row = csv_row(record)
        assert list(row) == list(CSV_COLUMNS)
        assert all(isinstance(row[c], (int, float)) or row[c] == "" for c in ("quality", "mean_flag", "evidence_share"))
    record = analysis_record(partly, file="x.png")
    assert record["quality"] == pytest.approx(70.0, abs=1) and record["quality_source"] == "region"
    assert [r["kind"] for r in record["regions"]] == ["flag"]
    line = text_line(record)
    assert line.startswith("x.png\tpartly compressed\tQF ≈ 70\t1 region, ")
    assert "never compressed around it" in line
    validator.validate(failure_record("bad.png", "not an image file"))
    assert csv_row(failure_record("bad.png", "why"))["ok"] == 0
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**record, "verdict": "uncompressed"})


def test_the_text_line_says_what_a_quality_regions_box_table_adds():
    """A quality region's own table is named; one whose box reads the image's table is said to (the QF
    difference is then the network's alone)."""
    from dataclasses import replace

    from jpegtrace.jpeg import ijg_table
    from jpegtrace.regions import QUALITY
    from jpegtrace.tables import TableEstimate

    def table(quality, offset=(0, 0), earlier=None):
        return TableEstimate(ijg_table(quality).astype(int), np.ones((8, 8)), offset, 500, quality, quality,
                             earlier_quality=earlier)

    flag = np.full((256, 320), 0.95, np.float32)
    quality = np.full((256, 320), 92.0, np.float32)
    quality[64:160, 96:224] = 45.0
    analysis = replace(summarize(np.stack([1.0 - quality / 100.0, flag])), table=table(92))
    region = next(r for r in analysis.regions if r.kind == QUALITY)

    def line(region_table):
        regions = tuple(replace(r, table=region_table) if r is region else r for r in analysis.regions)
        return text_line(analysis_record(replace(analysis, regions=regions), file="x.png"))

    assert "(≈ 92 around)" in line(None)
    assert "(≈ 92 around; its own QF 40 (table, IJG) at grid offset (3, 5))" in line(table(40, (3, 5)))
    assert "(≈ 92 around; its box reads the image's table)" in line(table(92))
    assert "(≈ 92 around; its own QF 92 (table, IJG) at grid offset (0, 0), earlier QF 40)" in line(table(92, earlier=40))


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_analyze_jsonl_and_csv_validate_and_agree(capsys, validator, weights, folder):
    files = [folder / "photo.png", folder / "photo.jpg", folder / "gray.tif", folder / "broken.png"]
    code, out, _ = _run(capsys, "analyze", "--format", "jsonl", "--model", weights, *files)
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and [r["ok"] for r in records] == [True, True, True, False]
    for record in records:
        validator.validate(record)
    jpeg = records[1]
    assert jpeg["grid"]["found"] and jpeg["grid"]["offset"] == [0, 0] and jpeg["table"]["ijg_quality"] == 60
    assert jpeg["quality"] == 60 and jpeg["quality_source"] == "table (IJG)"
    assert records[0]["grid"]["offset"] is None  # no grid: no offset
    # what computed the maps: these weights, on the backend and precision auto resolves to here
    from jpegtrace.nn import backends
    from jpegtrace.nn.weights import load_weights

    model = load_weights(weights)
    expected = dict(zip(("backend", "precision"), backends.resolve(model)))
    assert all(r["network"] == {"model": backends.weights_fingerprint(model)[:16], **expected} for r in records[:3])
    code, out, _ = _run(capsys, "analyze", "--json", "--model", weights, "--backend", "torch", "--precision", "fp32",
                        files[0])
    assert json.loads(out)["network"]["backend"] == "torch" and json.loads(out)["network"]["precision"] == "fp32"
    code, out, _ = _run(capsys, "analyze", "--format", "csv", "--model", weights, *files)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == 4
    assert [r["file"] for r in rows] == [r["file"] for r in records]
    assert float(rows[1]["quality"]) == 60.0 and rows[3]["ok"] == "0" and rows[1]["grid_offset_x"] == "0"


def test_assess_writes_the_same_records(capsys, validator, weights, folder, tmp_path):
    out_dir = tmp_path / "audit"
    code, _, _ = _run(capsys, "assess", folder, "--out", out_dir, "--model", weights)
    assert code == 1  # broken.png
    streamed = [json.loads(line) for line in (out_dir / "records.jsonl").read_text().splitlines()]
    document = json.loads((out_dir / "assessment.json").read_text())
    for record in streamed + document["images"]:
        validator.validate(record)
    by_file = {r["file"]: r for r in streamed}
    assert sorted(by_file) == ["broken.png", "gray.tif", "photo.jpg", "photo.png"]
    assert sorted(r["file"] for r in document["images"]) == sorted(by_file)
    assert document["skipped"] == [{"file": "notes.txt", "reason": "not an image file type (.txt)"}]
    assert document["n_skipped"] == 1
    # the same fields as analyze prints
    code, out, _ = _run(capsys, "analyze", "--json", "--model", weights, folder / "photo.jpg")
    alone = json.loads(out)
    alone["file"] = "photo.jpg"
    assert alone == by_file["photo.jpg"]
    rows = list(csv.DictReader(open(out_dir / "table.csv")))
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == 4


def test_stdin_and_recursive_inputs(capsys, monkeypatch, weights, folder):
    data = (folder / "photo.jpg").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = _run(capsys, "analyze", "--json", "--model", weights, "-")
    record = json.loads(out)
    assert code == 0 and record["file"] == "-" and record["quality"] == 60
    code, out, err = _run(capsys, "analyze", "--json", "--model", weights, folder)
    assert code == 1 and "is a directory (use --recursive)" in err
    nested = folder / "sub"
    nested.mkdir()
    Image.open(folder / "photo.png").save(nested / "deep.png")
    code, out, err = _run(capsys, "analyze", "--json", "-r", "--model", weights, folder)
    files = [json.loads(line)["file"] for line in out.splitlines()]
    assert [f.rsplit("/", 1)[-1] for f in files] == ["broken.png", "gray.tif", "photo.jpg", "photo.png", "deep.png"]
    assert code == 1 and err.count("\n") == 1  # broken.png


def test_no_progress_bar_into_a_pipe(capsys, weights, folder):
    code, out, err = _run(capsys, "analyze", "--model", weights, folder / "photo.png")
    assert code == 0 and err == "" and out.count("\n") == 1
