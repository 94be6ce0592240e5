"""`jpegtrace analyze` on good and bad files: one error line per failure, the others still analysed."""

import json
import os

import numpy as np
import pytest
import torch
from imagefiles import png_bytes
from PIL import Image

from jpegtrace.cli import main
from jpegtrace.nn.qfnet import NetConfig, QFNet
from jpegtrace.nn.weights import save_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A small random network: the CLI reads its shape from the file, and nothing here needs accuracy."""
    torch.manual_seed(0)
    return save_weights(QFNet(NetConfig(width=4, dilations=(1, 2, 1))), tmp_path_factory.mktemp("w") / "w.safetensors")


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    good = tmp_path / "good.png"
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(good)
    other = tmp_path / "other.tif"
    Image.fromarray(rng.integers(0, 256, (9, 7), dtype=np.uint8)).save(other)
    text = tmp_path / "text.png"
    text.write_text("not an image\n")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(100_000, 100_000, 8, 2, None))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    return {"good": good, "other": other, "text": text, "empty": empty, "bomb": bomb,
            "truncated": truncated, "missing": tmp_path / "missing.png", "directory": tmp_path}


def _run(capsys, *args):
    code = main(["analyze", *map(str, args)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err.splitlines()


@pytest.mark.parametrize("kind,reason", [
    ("missing", "no such file"), ("directory", "is a directory (use --recursive)"), ("empty", "empty file"),
    ("text", "not an image file"), ("truncated", "cannot decode image"), ("bomb", "exceeds the limit"),
])
def test_single_bad_file_gives_one_error_line(capsys, weights, files, kind, reason):
    code, out, err = _run(capsys, "--model", weights, files[kind])
    assert code != 0
    assert len(err) == 1 and out == ""
    assert err[0].startswith(f"jpegtrace: error: {files[kind]}: ")
    assert reason in err[0]


def test_a_run_of_missing_files_answers_without_loading_the_model(tmp_path):
    """Nothing to analyse: each file's error line and record, and no torch or weights loaded for it."""
    import subprocess
    import sys

    code = ("import sys\nfrom jpegtrace.cli.main import main\n"
            f"code = main(['analyze', '--json', {str(tmp_path / 'a.png')!r}, {str(tmp_path / 'b.png')!r}])\n"
            "print(code, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *records, last = result.stdout.strip().splitlines()
    assert last == "1 False"
    assert [json.loads(r)["error"] for r in records] == ["no such file", "no such file"]
    assert result.stderr.splitlines() == [f"jpegtrace: error: {tmp_path / n}: no such file" for n in ("a.png", "b.png")]


def test_many_files_report_each_failure_and_finish_the_others(capsys, weights, files):
    order = ["missing", "good", "text", "bomb", "other", "directory", "empty", "truncated"]
    code, out, err = _run(capsys, "--model", weights, *(files[k] for k in order))
    assert code == 1
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(files["good"]), str(files["other"])]
    assert len(err) == 6
    bad = [k for k in order if k not in ("good", "other")]
    for line, kind in zip(err, bad):
        assert line.startswith(f"jpegtrace: error: {files[kind]}: ")


def _records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_json_marks_failures_per_file(capsys, weights, files):
    code, out, err = _run(capsys, "--json", "--model", weights, files["good"], files["text"], files["bomb"])
    assert code == 1
    records = _records(out)  # JSON Lines: one object per image, in order, as each finished
    assert sum(not r["ok"] for r in records) == 2
    good, text, bomb = records
    assert good["ok"] is True and good["file"] == str(files["good"]) and good["width"] == 24
    assert text == {"file": str(files["text"]), "ok": False, "schema": 1, "error": text["error"]}
    assert "not an image file" in text["error"] and "exceeds the limit" in bomb["error"]
    assert len(err) == 2  # failures are also reported on stderr; stdout stays pure JSON


def test_all_good_exits_zero(capsys, weights, files):
    code, out, err = _run(capsys, "--model", weights, "--tile-size", "5", files["good"], files["other"])
    assert code == 0 and err == [] and len(out.splitlines()) == 2


def test_non_utf8_file_name(capsys, weights, tmp_path):
    raw = os.fsencode(tmp_path) + b"/bad-\xff.png"
    with open(raw, "wb") as f:
        f.write(b"garbage")
    good = os.fsencode(tmp_path) + b"/good-\xe9.png"
    with open(good, "wb") as f:
        Image.new("RGB", (5, 4), (1, 2, 3)).save(f, format="PNG")
    code, out, err = _run(capsys, "--model", weights, os.fsdecode(raw), os.fsdecode(good))
    assert code == 1
    assert err == [f"jpegtrace: error: {tmp_path}/bad-\\xff.png: not an image file (unrecognised or corrupt format)"]
    assert out.startswith(f"{tmp_path}/good-\\xe9.png\t")
    code, out, err = _run(capsys, "--json", "--model", weights, os.fsdecode(good))
    assert _records(out)[0]["file"] == f"{tmp_path}/good-\\xe9.png"


def test_max_pixels_option(capsys, weights, files):
    code, _, err = _run(capsys, "--model", weights, "--max-pixels", "479", files["good"])  # 24 x 20 = 480
    assert code == 1 and "exceeds the limit of 479 pixels" in err[0]
    code, _, err = _run(capsys, "--model", weights, "--max-pixels", "480", files["good"])
    assert code == 0 and err == []


@pytest.mark.parametrize("option", [["--tile-size", "0"], ["--max-pixels", "-3"], ["--max-pixels", "many"]])
def test_bad_option_values_are_usage_errors(capsys, weights, files, option):
    with pytest.raises(SystemExit) as info:
        main(["analyze", "--model", str(weights), *option, str(files["good"])])
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_bad_model_file_is_one_line_naming_it(capsys, files, tmp_path):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"encoder.weight": torch.zeros(3, 3)}, str(foreign))
    for model, reason in ((foreign, "missing tensor 'layers.0.bias'"), (files["good"], "not a readable safetensors"),
                          (tmp_path / "nope.safetensors", "weights file not found")):
        code, out, err = _run(capsys, "--model", model, files["good"])
        assert code == 2 and out == ""
        assert len(err) == 1 and err[0].startswith(f"jpegtrace: error: {model}: ") and reason in err[0]


def test_unavailable_device_is_one_line(capsys, weights, files):
    code, _, err = _run(capsys, "--model", weights, "--device", "no-such-device", files["good"])
    assert code == 2 and len(err) == 1 and err[0].startswith("jpegtrace: error: cannot use device")


def test_maps_reuse_an_existing_folder_without_deleting_other_files(capsys, weights, files, tmp_path):
    out_dir = tmp_path / "maps"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    (out_dir / "good_overlay.png").write_bytes(b"old")
    code, out, err = _run(capsys, "--json", "--model", weights, "--maps", out_dir, files["good"], files["text"])
    assert code == 1
    assert (out_dir / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "good_evidence.png", "good_flag.png", "good_legend.png", "good_overlay.png", "good_quality.png",
        "keep.txt"]  # no temporary files left
    for kind in ("overlay", "quality", "flag", "evidence"):  # every map at the image's full resolution
        assert Image.open(out_dir / f"good_{kind}.png").size == (24, 20)
    record = _records(out)[0]
    assert record["maps"]["overlay"] == str(out_dir / "good_overlay.png")


def test_unwritable_maps_folder_fails_per_file(capsys, weights, files, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    code, out, err = _run(capsys, "--model", weights, "--maps", blocker, files["good"], files["other"])
    assert code == 1 and out == ""
    assert len(err) == 2 and all("cannot write results" in line for line in err)


def test_codec_messages_do_not_add_stderr_lines(capfd, weights, tmp_path):
    """libtiff prints its own complaints on file descriptor 2; the CLI folds them into its one line."""
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (9, 8), dtype=np.uint8)).save(
        buf, format="TIFF", compression="tiff_adobe_deflate")
    data = bytearray(buf.getvalue())
    data[len(data) - 40] ^= 0x55  # breaks the TIFF directory
    bad = tmp_path / "bad.tif"
    bad.write_bytes(bytes(data))
    good = tmp_path / "good.png"
    Image.new("RGB", (6, 5)).save(good)
    code = main(["analyze", "--model", str(weights), str(bad), str(good)])
    out, err = capfd.readouterr()
    assert code == 1 and out.startswith(f"{good}\t")
    assert err.splitlines() == [err.strip()] and err.startswith(f"jpegtrace: error: {bad}: cannot decode image")


@pytest.mark.parametrize("size", [(1, 1), (13, 7)])
def test_tiny_images(capsys, weights, tmp_path, size):
    path = tmp_path / "tiny.png"
    Image.new("L", size, 90).save(path)
    code, out, err = _run(capsys, "--json", "--model", weights, path)
    record = _records(out)[0]
    assert code == 0 and err == [] and (record["width"], record["height"]) == size and record["grayscale"]


def test_maps_of_files_with_the_same_stem_do_not_overwrite_each_other(capsys, weights, files, tmp_path):
    twin = tmp_path / "twin"
    twin.mkdir()
    Image.new("RGB", (8, 6)).save(twin / "good.bmp")
    code, out, _ = _run(capsys, "--json", "--model", weights, "--maps", tmp_path / "maps", files["good"],
                        twin / "good.bmp")
    first, second = (r["maps"]["overlay"] for r in _records(out))
    assert code == 0 and first.endswith("good_overlay.png") and second.endswith("good-2_overlay.png")
    assert Image.open(first).size == (24, 20) and Image.open(second).size == (8, 6)


@pytest.mark.parametrize("fast,precision,warned", [(False, "bf16", True), (True, "bf16", False),
                                                    (False, "fp32", False)])
def test_bf16_on_a_cpu_without_bf16_arithmetic_is_warned_of(capsys, monkeypatch, weights, files, fast,
                                                             precision, warned):
    import jpegtrace.nn.backends

    monkeypatch.setattr(jpegtrace.nn.backends, "bf16_is_fast", lambda device="cpu": fast)
    code, out, err = _run(capsys, files["good"], "--model", weights, "--precision", precision)
    assert code == 0 and "good.png" in out
    warnings = [line for line in err if "warning" in line]
    assert warnings == (["jpegtrace: warning: this CPU has no native bf16 arithmetic (AVX-512); --precision bf16 "
                         "runs emulated, many times slower than fp32"] if warned else [])


@pytest.mark.parametrize("flags,native", [({"avx512f", "avx512_bf16"}, True), ({"avx512f", "amx_bf16"}, True),
                                          ({"avx512f", "avx512bw", "avx512vl"}, False), ({"avx2", "fma"}, False)])
def test_bf16_is_fast_where_the_cpu_has_native_bf16(monkeypatch, flags, native):
    """Whatever this machine's CPU: its flags are replaced by ``flags``. AVX-512 without its BF16
    extension or AMX emulates bf16, so it is not fast; the device type alone decides off the CPU."""
    from jpegtrace.nn import backends
    from jpegtrace.nn.engine import bf16_is_fast

    monkeypatch.setattr(backends, "cpuinfo_flags", lambda: frozenset(flags))
    backends.cpu_has_native_bf16.cache_clear()
    try:
        assert bf16_is_fast("cpu") is native and bf16_is_fast() is native and backends.bf16_is_fast("cpu") is native
        assert bf16_is_fast("cuda") is True  # no CUDA needed: only the device type is read
    finally:
        backends.cpu_has_native_bf16.cache_clear()


def test_cpuinfo_flags_are_read_from_the_first_cpu(tmp_path):
    from jpegtrace.nn.backends import cpuinfo_flags

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx512f avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu\n")
    assert cpuinfo_flags(str(cpuinfo)) == {"fpu", "avx512f", "avx512_bf16"}
    assert cpuinfo_flags(str(tmp_path / "missing")) is None


@pytest.mark.parametrize("native", [True, False])
def test_bf16_is_fast_asks_onednn_where_the_cpu_flags_cannot_be_read(monkeypatch, native):
    from jpegtrace.nn import backends

    asked = []
    monkeypatch.setattr(backends, "cpuinfo_flags", lambda: None)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: asked.append(1) or native)
    backends.cpu_has_native_bf16.cache_clear()
    try:
        assert backends.bf16_is_fast("cpu") is native and len(asked) == 1
    finally:
        backends.cpu_has_native_bf16.cache_clear()


@pytest.mark.parametrize("error", [AttributeError, RuntimeError])
def test_bf16_is_fast_trusts_the_user_when_torch_cannot_tell(monkeypatch, error):
    from jpegtrace.nn import backends

    def no_check():
        raise error("no such check in this torch")

    monkeypatch.setattr(backends, "cpuinfo_flags", lambda: None)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", no_check)
    backends.cpu_has_native_bf16.cache_clear()
    try:
        assert backends.bf16_is_fast("cpu") is True
    finally:
        backends.cpu_has_native_bf16.cache_clear()
