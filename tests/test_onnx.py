"""The ONNX export and the ONNX Runtime backend give the torch engine's maps (within 1e-4)."""

from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from conftest import FLOAT32_ORDER  # noqa: E402
from jpegtrace.analysis import analyze_array, predict_maps  # noqa: E402
from jpegtrace.jpeg import jpeg_compress  # noqa: E402
from jpegtrace.nn.onnx import OnnxRunner, export_onnx  # noqa: E402
from jpegtrace.nn.qfnet import NetConfig, QFNet  # noqa: E402
from jpegtrace.nn.weights import load_weights  # noqa: E402


@pytest.fixture(scope="module")
def shipped():
    return load_weights()


def _cpu_has_amx() -> bool:
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


# On an AMX Xeon (2026-12-02) ONNX Runtime 1.32's CPU provider was 6e-3 off a float64 pass where torch fp32 was
# 1e-6 off: a runtime's reduced-precision path there, not the export; recorded, not hidden (docs/backends.md).
@pytest.mark.xfail(_cpu_has_amx(), reason="ONNX Runtime's CPU provider is ~6e-3 off float64 on AMX CPUs", strict=False)
@pytest.mark.parametrize("shape", [(1, 3, 40, 56), (2, 3, 97, 131), (1, 3, 300, 64)])
def test_the_exported_graph_computes_the_networks_maps(shipped, shape, tmp_path):
    path = tmp_path / "qfnet.onnx"
    export_onnx(shipped, path)
    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = shipped(x).numpy()
    assert np.abs(session.run(None, {"image": x.numpy()})[0] - expected).max() < 1e-4


def test_a_paper_network_exports_too():
    model = QFNet(NetConfig(width=8, dilations=(1, 2, 1))).eval()
    session = ort.InferenceSession(export_onnx(model), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, 33, 45)
    with torch.no_grad():
        assert np.abs(session.run(None, {"image": x.numpy()})[0] - model(x).numpy()).max() < 1e-5


def test_the_runners_tiles_equal_one_pass_and_the_torch_engine(shipped, photo):
    image = jpeg_compress(np.concatenate([photo, photo[::-1]], axis=1), 70)  # 170 x 340
    runner = OnnxRunner(shipped, threads=1)
    whole = runner.predict_maps(image, tile_size=1000)
    tiled = runner.predict_maps(image, tile_size=64)
    assert np.abs(tiled - whole).max() < FLOAT32_ORDER  # each tile's presence sums in its own order (1e-5 on Intel)
    # numpy's presence against torch's: on an AMD EPYC a coefficient at exactly +-1 fell on the other side of
    # the threshold in one block, which moved the maps around it by up to 0.0016 (1e-4 everywhere on Intel)
    difference = np.abs(whole - predict_maps(shipped, image, precision="fp32"))
    assert np.mean(difference < 1e-4) > 0.9 and difference.max() < 0.01


def test_analyze_on_onnxruntime_gives_the_same_verdict_and_qf(shipped, photo):
    image = jpeg_compress(photo, 60)
    torch_result = analyze_array(image, shipped, backend="torch", precision="fp32")
    onnx_result = analyze_array(image, shipped, backend="onnxruntime")
    assert onnx_result.verdict == torch_result.verdict
    assert abs(onnx_result.mean_quality - torch_result.mean_quality) < 0.01
    with pytest.raises(ValueError, match="backend"):
        analyze_array(image, shipped, backend="tensorrt")


def test_the_export_command_writes_a_graph(tmp_path):
    from jpegtrace.cli import main

    path = tmp_path / "model.onnx"
    assert main(["export", "--onnx", str(path)]) == 0
    onnx.checker.check_model(str(path))
