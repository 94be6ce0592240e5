import json
import re

import pytest
import torch
from PIL import Image

from jpegtrace.analysis import VERDICTS
from jpegtrace.cli import build_parser, main
from jpegtrace.nn.qfnet import QFNet
from jpegtrace.nn.weights import save_weights

#: End-to-end: seconds each (`make check` leaves them out).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    return save_weights(QFNet(), tmp_path_factory.mktemp("w") / "random.safetensors")


@pytest.fixture
def png(tmp_path, photo):
    path = tmp_path / "photo.png"
    Image.fromarray(photo[:64, :80]).save(path)
    return path


def test_help_of_every_subcommand_is_clear(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--help"])
    assert exit_info.value.code == 0
    top = capsys.readouterr().out
    commands = [a for a in parser._subparsers._group_actions[0].choices]
    assert {"analyze", "train"} <= set(commands)
    for command in commands:
        assert command in top
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        text = capsys.readouterr().out
        assert f"usage: jpegtrace {command}" in text and len(text.splitlines()) > 3


def test_analyze_prints_one_line_per_image(capsys, png, weights):
    assert main(["analyze", str(png), str(png), "--model", str(weights)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    # FILE, verdict, QF, details: e.g. "x.png\tcompressed\tQF 66 (table, IJG)\tflag 0.91, evidence 97%, grid 54.2 at (0, 0)"
    file, verdict, qf, details = lines[0].split("\t")
    assert file == str(png) and verdict in VERDICTS
    assert re.fullmatch(r"QF (≈ )?\d+( \(table, (IJG|non-standard)\))?|QF -", qf)
    assert re.search(r"evidence \d+%", details) and re.search(r"grid \d+\.\d", details)
    assert main(["analyze", str(png), "--model", str(weights), "--no-grid-check"]) == 0
    fields = capsys.readouterr().out.strip().split("\t")
    assert len(fields) == 4 and "grid" not in fields[3]


def test_analyze_of_an_image_without_evidence_shows_no_qf_and_no_flag(capsys, tmp_path, weights):
    flat = tmp_path / "flat.png"
    Image.new("RGB", (40, 32), (90, 120, 200)).save(flat)
    assert main(["analyze", str(flat), "--model", str(weights)]) == 0
    assert capsys.readouterr().out.strip().split("\t") == [
        str(flat), "no evidence", "QF -", "too few pixels carry JPEG evidence, evidence 0%, grid 0.0"]
    assert main(["analyze", str(flat), "--json", "--model", str(weights)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["verdict"], record["quality"], record["mean_flag"]) == ("no evidence", None, None)
    assert record["evidence_share"] == 0.0 and record["compressed"] is False
    assert record["grid"] == {"score": 0.0, "found": False, "offset": None, "method": None}


def test_analyze_json_and_maps(capsys, png, weights, tmp_path):
    out = tmp_path / "maps"
    (out).mkdir()
    (out / "unrelated.txt").write_text("keep me")
    assert main(["analyze", str(png), "--json", "--maps", str(out), "--model", str(weights)]) == 0
    record = json.loads(capsys.readouterr().out)  # one JSON Lines record
    assert record["ok"] and (record["height"], record["width"]) == (64, 80)
    assert 0 <= record["map_quality"] <= 100 and 0 <= record["mean_flag"] <= 1
    assert record["verdict"] in VERDICTS
    assert record["compressed"] == (record["verdict"] in ("compressed", "partly compressed"))
    assert 0.05 <= record["evidence_share"] <= 1  # a textured photo
    assert not record["grid"]["found"] and record["grid"]["offset"] is None  # never compressed: no grid, no offset
    for kind in ("quality", "flag", "overlay"):
        written = out / f"photo_{kind}.png"
        assert written.exists() and record["maps"][kind] == str(written)
        with Image.open(written) as im:
            assert im.size[0] > 0
    with Image.open(out / "photo_overlay.png") as im:
        assert im.size == (80, 64)
    assert (out / "unrelated.txt").read_text() == "keep me"
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_analyze_reports_the_grid_of_a_near_lossless_jpeg(capsys, tmp_path, photo, weights):
    from jpegtrace.jpeg import jpeg_compress

    path = tmp_path / "qf100.png"  # a 4:4:4 QF-100 JPEG saved as PNG
    Image.fromarray(jpeg_compress(photo[:96, :128], 100, "4:4:4", grid_offset=(2, 7))).save(path)
    assert main(["analyze", str(path), "--json", "--model", str(weights)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["grid"]["found"] and record["grid"]["offset"] == [2, 7] and record["grid"]["score"] > 8
    assert record["compressed"]  # whatever the random network's flag says
    assert main(["analyze", str(path), "--json", "--no-grid-check", "--model", str(weights)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["grid"] is None
    if not record["regions"]:
        assert record["compressed"] == (record["mean_flag"] > 0.5)


def test_analyze_in_bf16_stays_close_to_fp32(capsys, png, weights):
    estimates = {}
    for precision in ("fp32", "bf16"):
        assert main(["analyze", str(png), "--json", "--precision", precision, "--model", str(weights)]) == 0
        record = json.loads(capsys.readouterr().out)
        estimates[precision] = (record["map_quality"], record["mean_flag"])
    assert abs(estimates["bf16"][0] - estimates["fp32"][0]) < 1.0  # QF points
    assert abs(estimates["bf16"][1] - estimates["fp32"][1]) < 0.01


def _train_toml(path, **settings):
    """A small training config file: ``settings`` on top of tiny, fast ones."""
    values = {"steps": 3, "batch_size": 2, "patch_size": 20, "workers": 0, "val_every": 0, "threads": 1, **settings}
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()))  # TOML too
    return path


def test_train_command_writes_weights_and_resumes(capsys, image_folder, tmp_path):
    from jpegtrace.train.config import load_config

    folder, split = image_folder
    out = tmp_path / "run"
    config = _train_toml(tmp_path / "small.toml")
    folders = ["--data", str(folder), "--split", str(split), "--out", str(out)]
    assert main(["train", "--config", str(config), *folders]) == 0
    assert (out / "model.safetensors").exists() and (out / "checkpoint.pt").exists()
    resolved = load_config(out / "config.toml")  # the run folder records the resolved settings
    assert (resolved.steps, resolved.batch_size, resolved.data, resolved.split) == (3, 2, str(folder), str(split))
    assert main(["train", *folders, "--resume", "--set", "steps=5"]) == 0
    steps = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert steps == 5
    assert "weights written to" in capsys.readouterr().out
    resolved = load_config(out / "config.toml")
    assert (resolved.steps, resolved.batch_size, resolved.patch_size) == (5, 2, 20)


def test_resume_keeps_the_run_settings_that_are_not_given_again(image_folder, tmp_path):
    folder, split = image_folder
    out = tmp_path / "run"
    common = ["train", "--data", str(folder), "--out", str(out)]
    first = _train_toml(tmp_path / "first.toml", steps=2, recipe="paper", checkpoint_every=7)
    assert main(common + ["--config", str(first)]) == 0

    def resume(*settings):
        assert main(common + ["--resume", *(a for s in settings for a in ("--set", s))]) == 0
        return torch.load(out / "checkpoint.pt", weights_only=True)["config"]

    config = resume("steps=3")
    assert (config["recipe"], config["val_every"], config["checkpoint_every"]) == ("paper", 0, 7)
    assert config["steps"] == 3
    assert resume("steps=4", 'recipe="jpegtrace"')["recipe"] == "jpegtrace"
    config = resume("steps=5", "splice_fraction=0.4", "uncompressed_fraction=0.2")
    assert (config["splice_fraction"], config["uncompressed_fraction"], config["steps"]) == (0.4, 0.2, 5)
    config = resume("steps=6", "high_quality_fraction=0.3")
    assert (config["high_quality_fraction"], config["splice_fraction"], config["steps"]) == (0.3, 0.4, 6)
    assert config["high_quality_subsampling"] is None
    config = resume("steps=7", "high_quality_subsampling=4:4:4")  # not TOML: taken as a bare string
    assert (config["high_quality_subsampling"], config["high_quality_fraction"]) == ("4:4:4", 0.3)
    # larger patches from here on; left out afterwards, they stay
    config = resume("steps=8", "patch_size=32", "batch_size=1")
    assert (config["patch_size"], config["batch_size"], config["steps"]) == (32, 1, 8)
    config = resume("steps=9")
    assert (config["patch_size"], config["batch_size"], config["steps"]) == (32, 1, 9)
    # a config file given with --resume goes over the saved settings, and --set over both
    later = tmp_path / "later.toml"
    later.write_text("steps = 11\nsplice_fraction = 0.1\n")
    assert main(common + ["--resume", "--config", str(later), "--set", "steps=10"]) == 0
    config = torch.load(out / "checkpoint.pt", weights_only=True)["config"]
    assert (config["steps"], config["splice_fraction"], config["patch_size"], config["recipe"]) == (10, 0.1, 32, "jpegtrace")


def test_resume_from_a_copied_run_folder_writes_into_the_copy(image_folder, tmp_path):
    import shutil

    folder, _ = image_folder
    config = _train_toml(tmp_path / "small.toml", steps=2)
    assert main(["train", "--config", str(config), "--data", str(folder), "--out", str(tmp_path / "a")]) == 0
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert main(["train", "--data", str(folder), "--out", str(tmp_path / "b"), "--resume", "--set", "steps=4"]) == 0
    assert torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["step"] == 2
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and state["config"]["out"] == str(tmp_path / "b")


@pytest.mark.parametrize("settings,reason", [
    (["--set", "splice_fraction=2"], "splice_fraction must lie in [0, 1]"),
    (["--set", "grid_feature=true"], "unknown training setting(s): grid_feature"),  # a removed setting
    (["--set", "steps"], "expected key=value"),
])
def test_train_refuses_bad_settings_in_one_line(capsys, image_folder, tmp_path, settings, reason):
    folder, _ = image_folder
    config = _train_toml(tmp_path / "small.toml")
    assert main(["train", "--config", str(config), "--data", str(folder), "--out", str(tmp_path / "run"), *settings]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jpegtrace: error: train: ") and reason in err[0]
    assert not (tmp_path / "run").exists()


def test_train_without_a_config_or_a_run_to_resume_is_refused_in_one_line(capsys, image_folder, tmp_path):
    folder, _ = image_folder
    for extra in ([], ["--resume"]):  # --resume of a folder without a checkpoint needs a config too
        assert main(["train", "--data", str(folder), "--out", str(tmp_path / "run"), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "give --config FILE" in err[0]
    assert not (tmp_path / "run").exists()


def test_old_per_setting_flags_are_gone(capsys, image_folder, tmp_path):
    folder, _ = image_folder
    with pytest.raises(SystemExit) as info:
        main(["train", "--data", str(folder), "--out", str(tmp_path / "run"), "--steps", "3"])
    assert info.value.code == 2 and "unrecognized arguments: --steps" in capsys.readouterr().err


def test_missing_weights_file_is_a_one_line_error(capsys, png, tmp_path):
    assert main(["analyze", str(png), "--model", str(tmp_path / "nope.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jpegtrace: error:") and "not found" in err[0]
