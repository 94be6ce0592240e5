"""Training settings as TOML files with --set overrides, read back exactly; the shipped lineage's files parse."""

from pathlib import Path

import pytest

from jpegtrace.train.config import TrainConfig, load_config, parse_setting

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"


def test_settings_are_read_as_toml_values():
    assert parse_setting("steps=400") == ("steps", 400)
    assert parse_setting("lr=5e-5") == ("lr", 5e-5)
    assert parse_setting("grid_presence=true") == ("grid_presence", True)
    assert parse_setting("dilations=[1, 2, 1]") == ("dilations", [1, 2, 1])
    assert parse_setting("out=runs/x") == ("out", "runs/x")  # a bare string
    with pytest.raises(ValueError, match="key=value"):
        parse_setting("steps")


def test_a_config_file_and_overrides_make_a_config_that_round_trips(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('data = "imgs"\nout = "runs/a"\nsteps = 50\ndilations = [1, 2, 1]\n')
    config = load_config(path, ["steps=70", "batch_size=4"])
    assert (config.steps, config.batch_size, config.dilations) == (70, 4, (1, 2, 1))
    saved = tmp_path / "saved.toml"
    saved.write_text(config.to_toml())
    assert load_config(saved) == config


def test_unknown_settings_are_refused(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('data = "x"\nout = "y"\ngrid_feature = true\n')
    with pytest.raises(ValueError, match="unknown training setting.*grid_feature"):
        load_config(path)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_parses_and_describes_a_valid_recipe(path):
    config = load_config(path, ["out=runs/test"])
    assert isinstance(config, TrainConfig)
    config.synthesis()  # raises on an invalid recipe
    config.net()
