"""The README's Python and command-line examples run as written, on files made like the ones they name."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

pytestmark = pytest.mark.slow


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


@pytest.fixture
def workdir(tmp_path, monkeypatch, photos):
    """A folder holding what the examples name: demo/, photo.png, scan.tif, big.tif, clean.png, other.png,
    DIR/ (never-compressed images) with split.csv, and a tiny training config."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--out", str(tmp_path / "demo")],
                   check=True, capture_output=True)
    astronaut, coffee = photos["astronaut"], photos["coffee"]
    Image.fromarray(astronaut).save(tmp_path / "photo.png")
    Image.fromarray(astronaut[:96, :96]).save(tmp_path / "scan.tif")
    Image.fromarray(astronaut[:64, :64]).save(tmp_path / "big.tif")
    Image.fromarray(astronaut).save(tmp_path / "clean.png")
    Image.fromarray(coffee).save(tmp_path / "other.png")
    data = tmp_path / "DIR"
    data.mkdir()
    for name, image in photos.items():
        Image.fromarray(image[:96, :96]).save(data / f"{name}.png")
    (tmp_path / "split.csv").write_text("file,split\nastronaut.png,train\nchelsea.png,train\ncoffee.png,val\n")
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_python_example_runs(workdir, capsys):
    (code,) = _blocks("python")
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip()


def test_every_command_line_example_runs(workdir):
    (block,) = [b for b in _blocks("bash") if "jpegtrace analyze" in b]
    # The examples' settings made small enough for a test, on the folder of images made here.
    tiny = ["--set", "steps=2", "--set", "batch_size=2", "--set", "patch_size=32", "--set", "val_every=2",
            "--set", "init_weights=''", "--set", "threads=1", "--set", "workers=0",
            "--set", 'data="DIR"', "--set", 'split="split.csv"']
    for line in block.splitlines():
        command = line.split("  #")[0].strip()
        if not command.startswith("jpegtrace"):
            continue
        for part in command.split(";"):
            argv = shlex.split(part.replace("*.png", "photo.png clean.png"))
            if argv[1:2] == ["COMMAND"]:
                argv[1] = "analyze"
            if argv[1] == "train" and "--resume" not in argv:
                argv += tiny  # the example's settings, made small enough for a test
            if argv[1] == "collage-benchmark":
                argv += ["--pairs", "2"]
            if argv[1] == "calibrate":
                argv += ["--per-image", "1", "--pairs", "2"]
            result = subprocess.run([sys.executable, "-m", "jpegtrace.cli", *argv[1:]], capture_output=True,
                                    text=True, timeout=600)
            assert result.returncode == 0, f"{part}: {result.stderr[-2000:]}"
