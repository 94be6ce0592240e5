"""The backends (jpegtrace.nn.backends): OpenVINO's maps equal torch's, bf16 keeps the answer, and what
'auto' chooses."""

import json

import numpy as np
import pytest
import torch

from conftest import FLOAT32_ORDER

from jpegtrace.analysis import analyze_array, check_pixels, finish_analysis, predict_maps
from jpegtrace.cli.main import main
from jpegtrace.jpeg import jpeg_compress
from jpegtrace.nn import backends
from jpegtrace.nn.engine import bf16_is_fast
from jpegtrace.nn.qfnet import NetConfig, QFNet
from jpegtrace.nn.weights import load_weights, save_weights

openvino_installed = "openvino" in backends.installed_backends()
needs_openvino = pytest.mark.skipif(not openvino_installed, reason="openvino is not installed")
needs_bf16 = pytest.mark.skipif(not bf16_is_fast("cpu"), reason="this CPU has no native bf16")


@pytest.fixture(scope="module")
def shipped():
    return load_weights()


@needs_openvino
def test_openvino_fp32_maps_equal_the_torch_engine_and_its_tiles_one_pass(shipped, photo):
    from jpegtrace.nn.openvino import OpenVinoRunner

    image = jpeg_compress(np.concatenate([photo, photo[::-1]], axis=1)[:, :301], 70)  # 170 x 301
    reference = predict_maps(shipped, image, backend="torch", precision="fp32")
    runner = OpenVinoRunner(shipped, threads=1)
    whole = runner.predict_maps(image, tile_size=1000)
    assert np.abs(whole - reference).max() < FLOAT32_ORDER  # the presence's sums in another order
    assert np.abs(runner.predict_maps(image, tile_size=48) - whole).max() < FLOAT32_ORDER  # (1e-5 on Intel)
    paper = QFNet(NetConfig(width=8, dilations=(1, 2, 1))).eval()  # a network without the grid presence
    assert np.abs(OpenVinoRunner(paper).predict_maps(image) - predict_maps(paper, image, backend="torch")).max() < 1e-5


@needs_openvino
@needs_bf16
def test_openvino_bf16_keeps_the_first_and_last_layers_exact_enough(shipped, photo):
    # OpenVINO's own bf16 hint would round the pixels themselves (up to 15 QF on a pixel); the graph
    # converts the inner layers only, as the torch engine does.
    image = jpeg_compress(photo, 50)
    reference = predict_maps(shipped, image, backend="torch", precision="fp32")
    for backend in ("openvino", "torch"):
        maps = predict_maps(shipped, image, backend=backend, precision="bf16")
        assert 100 * np.abs(maps[0] - reference[0]).max() < backends.TOLERANCE["max_pixel_qf"], backend


@needs_openvino
def test_openvino_bf16_constants_are_rounded_to_nearest_not_truncated():
    """OpenVINO folds a Convert of a constant to bf16 by truncating; the graph's constants are bf16 values
    already (rounded to nearest, ties to even, as torch rounds), so the folding cannot move them."""
    import openvino as ov
    import openvino.opset13 as ops

    from jpegtrace.nn.openvino import _as_constant

    values = torch.tensor([1.0155, -1.0155, 1 + 2 ** -8, 3.0e-3, 0.1], dtype=torch.float32)
    rounded = _as_constant(values, bf16=True)
    assert np.array_equal(rounded, values.to(torch.bfloat16).float().numpy())
    assert rounded[0] == np.float32(1.015625) and rounded[2] == 1.0  # to nearest; the tie to even
    assert np.array_equal(_as_constant(values, bf16=False), values.numpy())
    # what the folding does: a truncated 1.0155 would read 1.0078125
    zero = ops.parameter([5], ov.Type.f32)
    folded = ops.add(ops.convert(ops.convert(ops.constant(rounded), ov.Type.bf16), ov.Type.f32), zero)
    compiled = ov.Core().compile_model(ov.Model([ops.result(folded)], [zero]), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert np.array_equal(compiled({0: np.zeros(5, np.float32)})[0], rounded)


@needs_bf16
@pytest.mark.parametrize("backend", ["torch", pytest.param("openvino", marks=needs_openvino)])
def test_bf16_keeps_the_answer_on_a_few_images(shipped, photos, backend):
    """The tolerance 'auto' chooses bf16 by (benchmarks/check_precision.py checks it on every val image)."""
    for name, photo in photos.items():
        for quality in (None, 30, 90):
            image = photo if quality is None else jpeg_compress(photo, quality)
            checks = check_pixels(image)
            exact = finish_analysis(image, predict_maps(shipped, image, backend="torch", precision="fp32"), checks,
                                    quality_calibration=shipped.quality_calibration)
            approx = finish_analysis(image, predict_maps(shipped, image, backend=backend, precision="bf16"),
                                     check_pixels(image), quality_calibration=shipped.quality_calibration)
            assert approx.verdict == exact.verdict, (name, quality)
            assert np.abs(approx.quality_map - exact.quality_map).max() <= backends.TOLERANCE["max_pixel_qf"]
            if exact.headline_quality is not None:
                assert abs(approx.headline_quality - exact.headline_quality) <= backends.TOLERANCE["max_image_qf"]


@needs_openvino
@needs_bf16
def test_openvino_bf16_maps_are_f32_sums_of_bf16_products(shipped, photo):
    """The last layer's products are bf16, its sums and bias f32: the maps are not rounded to bf16 (most of
    their values are not bf16 numbers) and stay close to fp32's."""
    from jpegtrace.nn.openvino import OpenVinoRunner

    image = jpeg_compress(photo, 50)[:96, :96]
    low = OpenVinoRunner(shipped, precision="bf16", threads=1).predict_maps(image)
    exact = OpenVinoRunner(shipped, precision="fp32", threads=1).predict_maps(image)
    as_bf16 = torch.from_numpy(low).to(torch.bfloat16).float().numpy()
    assert (as_bf16 != low).mean() > 0.9
    assert np.abs(low - exact).max() < 0.05


def test_auto_takes_the_fastest_installed_backend_and_bf16_only_for_a_checked_model(shipped, monkeypatch):
    torch.manual_seed(0)
    unchecked = QFNet(NetConfig(width=8, dilations=(1, 2, 1))).eval()
    fastest = next(b for b in backends.CPU_SPEED_ORDER["fp32"] if b in backends.installed_backends())
    assert backends.resolve(unchecked) == (fastest, "fp32")  # never checked: fp32
    assert backends.resolve(unchecked, backend="torch", precision="bf16") == ("torch", "bf16")  # asked for
    assert backends.resolve(shipped, device="cuda") [0] == "torch"
    shipped_checked = backends.bf16_checked(shipped, "torch")
    if bf16_is_fast("cpu") and shipped_checked:
        assert backends.resolve(shipped, backend="torch") == ("torch", "bf16")
    monkeypatch.setattr(backends, "bf16_is_fast", lambda device: False)
    assert backends.resolve(shipped, backend="torch") == ("torch", "fp32")  # no native bf16: fp32
    with pytest.raises(ValueError, match="fp32 only"):
        backends.resolve(shipped, backend="onnxruntime", precision="bf16")
    with pytest.raises(ValueError, match="CPU only"):
        backends.resolve(shipped, backend="openvino", device="cuda")
    with pytest.raises(ValueError, match="backend must be"):
        backends.resolve(shipped, backend="tensorrt")


def test_the_precision_record_names_models_by_their_tensors(shipped, tmp_path):
    fingerprint = backends.weights_fingerprint(shipped)
    copy = load_weights(save_weights(shipped, tmp_path / "copy.safetensors"))
    assert backends.weights_fingerprint(copy) == fingerprint
    with torch.no_grad():
        copy.layers[0].bias.add_(1e-3)
    assert backends.weights_fingerprint(copy) != fingerprint
    record = tmp_path / "precision.json"
    checked = {"within_tolerance": True, "layers": backends.bf16_layers("torch", 7)}
    record.write_text(json.dumps({"models": {fingerprint: {"bf16": {"torch": checked}}}}))
    assert backends.bf16_checked(shipped, "torch", record=record)
    assert not backends.bf16_checked(shipped, "openvino", record=record)
    assert not backends.bf16_checked(copy, "torch", record=record)
    # a check of another choice of bf16 layers does not count for this one
    backends._precision_record.cache_clear()
    other = {**checked, "layers": backends.bf16_layers("openvino", 7)}
    record.write_text(json.dumps({"models": {fingerprint: {"bf16": {"torch": other}}}}))
    assert not backends.bf16_checked(shipped, "torch", record=record)


def test_bf16_layers_say_what_each_layer_computes_in():
    assert backends.bf16_layers("torch", 7) == "f32 bf16 bf16 bf16 bf16 bf16 f32"
    assert backends.bf16_layers("openvino", 7) == "f32 f32 bf16 bf16 bf16 bf16 bf16>f32"


def test_grayscale_images_need_a_bf16_check_of_their_own(shipped, tmp_path, monkeypatch):
    """The colour check does not count for grayscale images: 'auto' takes bf16 for them only where the
    record's grayscale check kept the answer (the shipped model's did not: pixels moved 2.5 QF)."""
    fingerprint = backends.weights_fingerprint(shipped)
    checked = {"within_tolerance": True, "layers": backends.bf16_layers("openvino", 7)}
    record = tmp_path / "precision.json"
    record.write_text(json.dumps({"models": {fingerprint: {"bf16": {"openvino": checked}}}}))
    assert backends.bf16_checked(shipped, "openvino", record=record)
    assert not backends.bf16_checked(shipped, "openvino", grayscale=True, record=record)
    backends._precision_record.cache_clear()
    record.write_text(json.dumps({"models": {fingerprint: {"bf16": {"openvino": checked},
                                                           "grayscale": {"bf16": {"openvino": checked}}}}}))
    assert backends.bf16_checked(shipped, "openvino", grayscale=True, record=record)
    backends._precision_record.cache_clear()
    entry = json.loads(backends.PRECISION_RECORD.read_text())["models"][fingerprint]
    gray = entry["grayscale"]["bf16"]["openvino"]
    assert gray["n"] >= 50 * 8 and not gray["within_tolerance"] and gray["max_pixel_qf"] > 2
    monkeypatch.setattr(backends, "bf16_is_fast", lambda device: True)
    if openvino_installed:
        assert backends.resolve(shipped, backend="openvino") == ("openvino", "bf16")
    assert backends.resolve(shipped, backend="openvino" if openvino_installed else "torch",
                            grayscale=True)[1] == "fp32"
    assert backends.resolve(shipped, precision="bf16", grayscale=True)[1] == "bf16"  # asked for


def test_a_grayscale_files_record_names_the_precision_that_ran_it(photo, tmp_path, capsys):
    from PIL import Image

    from jpegtrace.jpeg import to_grayscale

    gray, colour = tmp_path / "gray.png", tmp_path / "colour.png"
    Image.fromarray(jpeg_compress(to_grayscale(photo), 60)).save(gray)
    Image.fromarray(jpeg_compress(photo, 60)).save(colour)
    assert main(["analyze", "--json", str(gray), str(colour)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[0]["grayscale"] and records[0]["network"]["precision"] == "fp32"
    assert records[1]["network"]["precision"] == backends.resolve(load_weights())[1]


def test_the_shipped_model_is_recorded_as_checked():
    record = json.loads(backends.PRECISION_RECORD.read_text())
    entry = record["models"][backends.weights_fingerprint(load_weights())]
    assert entry["bf16"]["torch"]["n"] >= 50 * 8  # every val image at every QF of the check
    for backend, result in entry["bf16"].items():
        assert result["within_tolerance"] == (result["max_image_qf"] <= 0.25 and result["max_pixel_qf"] <= 2
                                              and result["verdict_changes"] == 0)
        assert result["layers"] == backends.bf16_layers(backend, 7)  # checked as the code runs it


def test_cli_backend_options(photo, tmp_path, capsys):
    path = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(jpeg_compress(photo, 60)).save(path)
    assert main(["analyze", str(path), "--backend", "onnxruntime", "--precision", "bf16"]) == 2
    assert "fp32 only" in capsys.readouterr().err
    lines = {}
    for backend in ("torch", *(["openvino"] if openvino_installed else [])):
        assert main(["analyze", str(path), "--json", "--backend", backend, "--precision", "fp32"]) == 0
        lines[backend] = json.loads(capsys.readouterr().out)
    assert len({(r["verdict"], round(r["quality"], 2)) for r in lines.values()}) == 1
    assert main(["analyze", str(path), "--json"]) == 0  # auto
    auto = json.loads(capsys.readouterr().out)
    assert auto["verdict"] == lines["torch"]["verdict"] and abs(auto["quality"] - lines["torch"]["quality"]) <= 0.25


def test_analyze_array_passes_the_backend_on(shipped, photo):
    image = jpeg_compress(photo, 40)
    torch_result = analyze_array(image, shipped, backend="torch", precision="fp32")
    auto = analyze_array(image, shipped)
    assert auto.verdict == torch_result.verdict
    assert abs(auto.headline_quality - torch_result.headline_quality) <= backends.TOLERANCE["max_image_qf"]


def test_the_command_line_parser_does_not_import_torch():
    """--help, --version and usage errors answer at once: the backends are listed without torch
    (importing it takes most of a second)."""
    import subprocess
    import sys

    code = ("import sys\nfrom jpegtrace.cli.main import build_parser\nparser = build_parser()\n"
            "print(sorted(a.dest for a in parser._subparsers._group_actions[0].choices['analyze']._actions"
            " if a.dest in ('backend', 'precision')), 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "['backend', 'precision'] False"


# --- OpenVINO without torch: the weights file's arrays and a numpy network input -------------------


def test_the_grid_presence_in_numpy_equals_torchs(photo):
    """The network input the runtimes without torch compute (block scores, grid presence, centred RGB) is
    the torch input up to float32 sums in another order. Its luma must be torch's bit for bit: one grey level
    off breaks a block's lattice (it once moved the presence by 0.23 and a pixel's QF by 13)."""
    from jpegtrace.nn.inputs import network_input_array
    from jpegtrace.nn.qfnet import network_input

    config = NetConfig(grid_presence=True)
    for image in (photo, jpeg_compress(photo, 99, subsampling="4:4:4"), jpeg_compress(photo[3:, 5:], 60)):
        exact = network_input(torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float().div_(255.0), config)
        ours = network_input_array(image, config)
        assert ours.shape == exact.shape and ours.dtype == np.float32
        difference = np.abs(ours - exact.numpy())
        assert difference[0, :3].max() == 0.0  # the centred pixels exactly
        # Within 1e-5 on the Intel CPUs; on an AMD EPYC the BLAS sums the DCT in another order, and a
        # coefficient at exactly +-1 (those of frequency 4 are multiples of 1/8) can fall on the other side
        # of the threshold: one coefficient more or less in a block moves the presence by about 0.02 over
        # the 40 x 40 pixels whose lattice holds the block.
        presence = difference[0, 3]
        assert np.mean(presence < FLOAT32_ORDER) > 0.8 and presence.max() < 0.05


def test_block_scores_in_numpy_equal_torchs_on_any_shape():
    from jpegtrace.grid.dct import block_scores, block_scores_array, luma_tensor

    rng = np.random.default_rng(5)
    for shape in ((5, 40), (8, 8), (9, 130), (77, 31)):
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        exact = block_scores(luma_tensor(torch.from_numpy(image).permute(2, 0, 1)[None].float()))[0, 0].numpy()
        from jpegtrace.grid.dct import luma

        ours = block_scores_array(luma(image)[0])
        assert ours.shape == exact.shape and np.abs(ours - exact).max() < FLOAT32_ORDER


def test_read_weights_gives_the_model_load_weights_builds(shipped, tmp_path):
    from jpegtrace.nn.weights import NetworkWeights, read_weights

    arrays = read_weights()
    assert isinstance(arrays, NetworkWeights) and arrays.config == shipped.config
    assert arrays.flag_threshold == shipped.flag_threshold and arrays.quality_calibration == shipped.quality_calibration
    assert backends.weights_fingerprint(arrays) == backends.weights_fingerprint(shipped)
    for name, tensor in shipped.state_dict().items():
        np.testing.assert_array_equal(arrays.tensors[name], tensor.numpy())
    # a file in bfloat16 is widened exactly (numpy has no bfloat16)
    half = QFNet(NetConfig(width=8, dilations=(1, 2, 1))).eval()
    path = tmp_path / "bf16.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.to(torch.bfloat16) for k, v in half.state_dict().items()}, str(path),
              metadata={"net_config": half.config.to_json()})
    for name, tensor in read_weights(path).tensors.items():
        np.testing.assert_array_equal(tensor, half.state_dict()[name].to(torch.bfloat16).float().numpy())


@needs_openvino
def test_openvino_runs_the_arrays_as_the_torch_network(shipped, photo):
    from jpegtrace.nn.openvino import OpenVinoRunner
    from jpegtrace.nn.weights import read_weights

    image = jpeg_compress(photo, 85)
    arrays = read_weights()
    reference = predict_maps(shipped, image, backend="torch", precision="fp32")
    ours = predict_maps(arrays, image, backend="openvino", precision="fp32")
    assert np.abs(ours - OpenVinoRunner(shipped).predict_maps(image)).max() == 0.0
    assert np.abs(ours - reference).max() < FLOAT32_ORDER
    # the arrays run on torch too, through a network built once; their OpenVINO graph is built once too
    assert np.abs(predict_maps(arrays, image, backend="torch", precision="fp32") - reference).max() == 0.0
    assert backends.torch_model(arrays) is backends.torch_model(arrays)
    assert backends.runner(arrays, "openvino", "fp32") is backends.runner(arrays, "openvino", "fp32")


def test_a_network_the_runtimes_cannot_build_is_refused():
    unusual = QFNet(NetConfig(width=8, dilations=(1, 2, 1))).eval()
    unusual.layers[1] = torch.nn.Identity()  # no ReLU after the first convolution
    assert backends.network_arrays(unusual) is None
    if openvino_installed:
        from jpegtrace.nn.openvino import OpenVinoRunner

        with pytest.raises(ValueError, match="plain stacks"):
            OpenVinoRunner(unusual)


@needs_openvino
def test_analyze_runs_without_torch_where_openvino_runs_the_network(photo, tmp_path):
    """`jpegtrace analyze` and `jpegtrace.analyze` with the default settings on the CPU never import torch
    (about 0.8 s of start-up); asking for the torch backend does."""
    import subprocess
    import sys

    from PIL import Image

    path = tmp_path / "photo.png"
    Image.fromarray(jpeg_compress(photo, 80)).save(path)
    code = ("import sys\nfrom jpegtrace.cli.main import main\ncode = main(['analyze', sys.argv[1]] + sys.argv[2:])\n"
            "print('torch' in sys.modules, code)")
    for extra, torch_loaded in (([], False), (["--backend", "torch"], True)):
        result = subprocess.run([sys.executable, "-c", code, str(path), *extra], capture_output=True, text=True,
                                check=True)
        lines = result.stdout.strip().splitlines()
        assert lines[-1] == f"{torch_loaded} 0" and "compressed" in lines[0] and "QF 80" in lines[0], result.stdout
    # Nor scipy (0.3 s of imports): the evidence filters, the regions' morphology and the chroma solve are numpy.
    api = ("import sys\nimport jpegtrace\nresult = jpegtrace.analyze(sys.argv[1])\n"
           "print(result.verdict, result.headline_quality, 'torch' in sys.modules, 'scipy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", api, str(path)], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "compressed 80.0 False False"


@needs_openvino
def test_the_program_imports_openvino_without_its_model_conversion(photo, tmp_path):
    """`jpegtrace analyze` (main() as the program runs it) leaves out openvino.tools.ovc, which OpenVINO's
    package imports only if it can (0.06-0.3 s of start-up); the analysis is the same, and the
    conversion API can still be imported afterwards. A caller's main([...]) imports OpenVINO as it is."""
    import subprocess
    import sys

    from PIL import Image

    path = tmp_path / "photo.png"
    Image.fromarray(jpeg_compress(photo, 80)).save(path)
    tail = "print('openvino.tools.ovc' in sys.modules, code)\nimport openvino.tools.ovc\nprint('importable')"
    as_program = "import sys\nfrom jpegtrace.cli.main import main\nsys.argv = ['jpegtrace', 'analyze', sys.argv[1]]\ncode = main()\n"
    as_caller = "import sys\nfrom jpegtrace.cli.main import main\ncode = main(['analyze', sys.argv[1]])\n"
    outputs = [subprocess.run([sys.executable, "-c", head + tail, str(path)], capture_output=True, text=True,
                              check=True).stdout.strip().splitlines() for head in (as_program, as_caller)]
    assert "compressed" in outputs[0][0] and "QF 80" in outputs[0][0] and outputs[1][0] == outputs[0][0], outputs
    assert outputs[0][1:] == ["False 0", "importable"] and outputs[1][1:] == ["True 0", "importable"], outputs


@needs_openvino
def test_a_model_changed_in_place_is_run_as_it_is_now(photo):
    """The runners copy the weights into their graphs and are cached per model: training's validation
    runs the same model object every few thousand steps, and must see its weights of the moment (it once
    got the first validation's scores again)."""
    model = QFNet(NetConfig(width=8, dilations=(1, 2, 1))).eval()
    image = jpeg_compress(photo, 60)
    before = predict_maps(model, image, backend="openvino", precision="fp32")
    fingerprint = backends.weights_fingerprint(model)
    assert backends.provenance(model, backend="openvino")["model"] == fingerprint[:16]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(torch.rand(1, 3, 16, 16)).square().sum().backward()
    optimizer.step()
    after = predict_maps(model, image, backend="openvino", precision="fp32")
    assert np.abs(after - before).max() > 1e-3
    assert np.abs(after - predict_maps(model, image, backend="torch", precision="fp32")).max() < 1e-4
    assert backends.provenance(model, backend="openvino")["model"] == backends.weights_fingerprint(model)[:16] != \
        fingerprint[:16]


def _site_without_torch(folder):
    """A folder of links to every installed package but torch's: on ``PYTHONPATH`` with ``python -S``, an
    install of jpegtrace without its torch extra."""
    import sysconfig
    from pathlib import Path

    site = Path(folder) / "site"
    site.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name.lower()
        if name in ("torch", "functorch", "torchgen") or name.startswith("torch-") or name.endswith(".pth"):
            continue
        (site / entry.name).symlink_to(entry)
    return site


@needs_openvino
def test_analyze_and_assess_run_where_torch_is_not_installed(photo, tmp_path):
    """torch is an extra (issue 24): without it `analyze` and `assess` run on OpenVINO; what needs it
    (training, the torch backend) says so in one line and exits 2."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image

    import jpegtrace

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(jpeg_compress(photo, 80)).save(folder / "photo.png")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_site_without_torch(tmp_path)),
                                                         str(Path(jpegtrace.__file__).parents[1])])}

    def jpegtrace_cli(*args):
        return subprocess.run([sys.executable, "-S", "-m", "jpegtrace.cli", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path)

    probe = subprocess.run([sys.executable, "-S", "-c", "import importlib.util; print(importlib.util.find_spec('torch'))"],
                           capture_output=True, text=True, env=env, check=True)
    assert probe.stdout.strip() == "None"
    analyzed = jpegtrace_cli("analyze", str(folder / "photo.png"))
    assert analyzed.returncode == 0 and "compressed\tQF 80" in analyzed.stdout, analyzed.stderr
    assessed = jpegtrace_cli("assess", str(folder), "--out", str(tmp_path / "audit"), "--quiet")
    assert assessed.returncode == 0, assessed.stderr
    assert '"verdict": "compressed"' in (tmp_path / "audit" / "records.jsonl").read_text()
    for args, what in ((["analyze", "--backend", "torch", str(folder / "photo.png")], "analyze --backend torch"),
                       (["train", "--data", str(folder), "--out", str(tmp_path / "run")], "train")):
        refused = jpegtrace_cli(*args)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert refused.stderr.strip() == (f"jpegtrace: error: {what} needs PyTorch, which is not installed: "
                                          "pip install 'jpegtrace[torch]'")
