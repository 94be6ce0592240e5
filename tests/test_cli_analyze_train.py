import json

import pytest
import torch
from PIL import Image

from jpegtrace.cli import build_parser, main
from jpegtrace.nn.qfnet import QFNet
from jpegtrace.nn.weights import save_weights


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
    file, qf, flag, grid, verdict = lines[0].split("\t")[:5]
    assert file == str(png) and qf.startswith("QF") and flag.startswith("flag") and grid.startswith("grid")
    assert verdict in {"compressed", "uncompressed"}
    assert main(["analyze", str(png), "--model", str(weights), "--no-grid-check"]) == 0
    assert "grid" not in capsys.readouterr().out


def test_analyze_json_and_maps(capsys, png, weights, tmp_path):
    out = tmp_path / "maps"
    (out).mkdir()
    (out / "unrelated.txt").write_text("keep me")
    assert main(["analyze", str(png), "--json", "--maps", str(out), "--model", str(weights)]) == 0
    report = json.loads(capsys.readouterr().out)
    record = report["images"][0]
    assert report["failed"] == 0 and record["ok"] and (record["height"], record["width"]) == (64, 80)
    assert 0 <= record["estimated_quality"] <= 100 and 0 <= record["mean_flag"] <= 1
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
    record = json.loads(capsys.readouterr().out)["images"][0]
    assert record["grid"]["found"] and record["grid"]["offset"] == [2, 7] and record["grid"]["score"] > 8
    assert record["compressed"]  # whatever the random network's flag says
    assert main(["analyze", str(path), "--json", "--no-grid-check", "--model", str(weights)]) == 0
    record = json.loads(capsys.readouterr().out)["images"][0]
    assert "grid" not in record and record["compressed"] == (record["mean_flag"] > 0.5)


def test_analyze_in_bf16_stays_close_to_fp32(capsys, png, weights):
    estimates = {}
    for precision in ("fp32", "bf16"):
        assert main(["analyze", str(png), "--json", "--precision", precision, "--model", str(weights)]) == 0
        record = json.loads(capsys.readouterr().out)["images"][0]
        estimates[precision] = (record["estimated_quality"], record["mean_flag"])
    assert abs(estimates["bf16"][0] - estimates["fp32"][0]) < 1.0  # QF points
    assert abs(estimates["bf16"][1] - estimates["fp32"][1]) < 0.01


def test_train_command_writes_weights_and_resumes(capsys, image_folder, tmp_path):
    folder, split = image_folder
    out = tmp_path / "run"
    args = ["train", "--data", str(folder), "--split", str(split), "--out", str(out), "--steps", "3",
            "--batch-size", "2", "--patch-size", "20", "--workers", "0", "--val-every", "0", "--threads", "1"]
    assert main(args) == 0
    assert (out / "model.safetensors").exists() and (out / "checkpoint.pt").exists()
    assert main(args[:-8] + ["--steps", "5", "--resume", "--workers", "0", "--val-every", "0"]) == 0
    steps = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert steps == 5
    assert "weights written to" in capsys.readouterr().out
    first, second = (out / "command.txt").read_text().splitlines()  # every command that trained the model
    assert first.startswith("jpegtrace train --data ") and "# from step 0, " in first
    assert "--steps 5 --resume" in second and "# from step 3, " in second


def test_resume_keeps_the_run_settings_that_are_not_given_again(image_folder, tmp_path):
    folder, split = image_folder
    out = tmp_path / "run"
    common = ["train", "--data", str(folder), "--out", str(out), "--batch-size", "2", "--patch-size", "20",
              "--workers", "0", "--threads", "1"]
    assert main(common + ["--steps", "2", "--recipe", "paper", "--val-every", "0", "--checkpoint-every", "7"]) == 0
    assert main(common + ["--resume", "--steps", "3"]) == 0
    config = torch.load(out / "checkpoint.pt", weights_only=True)["config"]
    assert (config["recipe"], config["val_every"], config["checkpoint_every"]) == ("paper", 0, 7)
    assert config["steps"] == 3
    assert main(common + ["--resume", "--steps", "4", "--recipe", "jpegtrace"]) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["config"]["recipe"] == "jpegtrace"
    assert main(common + ["--resume", "--steps", "5", "--splice-fraction", "0.4", "--uncompressed-fraction", "0.2"]) == 0
    config = torch.load(out / "checkpoint.pt", weights_only=True)["config"]
    assert (config["splice_fraction"], config["uncompressed_fraction"], config["steps"]) == (0.4, 0.2, 5)
    assert main(common + ["--resume", "--steps", "6", "--high-quality-fraction", "0.3"]) == 0
    config = torch.load(out / "checkpoint.pt", weights_only=True)["config"]
    assert (config["high_quality_fraction"], config["splice_fraction"], config["steps"]) == (0.3, 0.4, 6)
    assert config["high_quality_subsampling"] is None
    assert main(common + ["--resume", "--steps", "7", "--high-quality-subsampling", "4:4:4"]) == 0
    config = torch.load(out / "checkpoint.pt", weights_only=True)["config"]
    assert (config["high_quality_subsampling"], config["high_quality_fraction"]) == ("4:4:4", 0.3)
    # larger patches from here on; left out afterwards, they stay
    assert main(common + ["--resume", "--steps", "8", "--patch-size", "32", "--batch-size", "1"]) == 0
    config = torch.load(out / "checkpoint.pt", weights_only=True)["config"]
    assert (config["patch_size"], config["batch_size"], config["steps"]) == (32, 1, 8)
    bare = [a for a in common if a not in ("--batch-size", "2", "--patch-size", "20")]
    assert main(bare + ["--resume", "--steps", "9"]) == 0
    config = torch.load(out / "checkpoint.pt", weights_only=True)["config"]
    assert (config["patch_size"], config["batch_size"], config["steps"]) == (32, 1, 9)


def test_resume_from_a_copied_run_folder_writes_into_the_copy(image_folder, tmp_path):
    import shutil

    folder, _ = image_folder
    common = ["train", "--data", str(folder), "--batch-size", "2", "--patch-size", "20", "--workers", "0",
              "--threads", "1", "--val-every", "0"]
    assert main(common + ["--out", str(tmp_path / "a"), "--steps", "2"]) == 0
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert main(common + ["--out", str(tmp_path / "b"), "--resume", "--steps", "4"]) == 0
    assert torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["step"] == 2
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and state["config"]["out"] == str(tmp_path / "b")


def test_train_refuses_a_fraction_outside_0_1_in_one_line(capsys, image_folder, tmp_path):
    folder, _ = image_folder
    assert main(["train", "--data", str(folder), "--out", str(tmp_path / "run"), "--splice-fraction", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "splice_fraction must lie in [0, 1]" in err[0]
    assert not (tmp_path / "run").exists()


def test_missing_weights_file_is_a_one_line_error(capsys, png, tmp_path):
    assert main(["analyze", str(png), "--model", str(tmp_path / "nope.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jpegtrace: error:") and "not found" in err[0]
