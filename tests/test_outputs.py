"""Result files are never half-written: the old file or the complete new one, nothing else."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from jpegtrace.analysis import summarize
from jpegtrace.eval.reports import save_maps
from jpegtrace.io import atomic_path, write_csv, write_json, write_text


def test_success_replaces_the_file(tmp_path):
    target = tmp_path / "out" / "r.json"  # missing folders are made
    write_json(target, {"a": 1})
    write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    write_csv(tmp_path / "r.csv", [{"x": 1, "y": 2}])
    assert (tmp_path / "r.csv").read_text().splitlines() == ["x,y", "1,2"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "r.csv", "r.json"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_midway_keeps_the_old_file_and_leaves_no_temporary(tmp_path, error):
    target = tmp_path / "r.txt"
    write_text(target, "old complete content")
    (tmp_path / "unrelated.txt").write_text("mine")
    with pytest.raises(error):
        with atomic_path(target) as tmp:
            tmp.write_text("new half")
            raise error()
    assert target.read_text() == "old complete content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt", "unrelated.txt"]


def test_killed_writer_leaves_the_old_file(tmp_path):
    target = tmp_path / "r.txt"
    target.write_text("old")
    script = textwrap.dedent(f"""
        import os, sys, time
        from jpegtrace.io import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
                f.flush()
                print("writing", flush=True)
                time.sleep(60)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target.read_text() == "old"  # a hidden temporary may remain; the result file is intact


def test_interrupted_save_maps_keeps_old_maps(tmp_path, monkeypatch):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    raw = np.random.default_rng(1).random((2, 12, 16), dtype=np.float32)
    result = summarize(raw)
    first = save_maps(result, rgb, tmp_path, "img")
    before = {k: p.read_bytes() for k, p in first.items()}

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_maps(summarize(1 - raw), rgb, tmp_path, "img")
    assert {k: p.read_bytes() for k, p in first.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img_flag.png", "img_legend.png", "img_overlay.png",
                                                          "img_quality.png"]


def test_large_maps_are_drawn_in_figures_as_block_means(monkeypatch):
    from jpegtrace.eval import reports

    values = np.random.default_rng(2).random((53, 31), dtype=np.float32)
    small = reports._preview(values, max_side=10)  # blocks of 6 x 6, the last ones partial
    assert small.shape == (9, 6)
    assert small[0, 0] == pytest.approx(values[:6, :6].mean(), rel=1e-5)
    assert small[-1, -1] == pytest.approx(values[48:, 30:].mean(), rel=1e-5)
    assert reports._preview(values, max_side=53) is values
    monkeypatch.setattr(reports, "PREVIEW_SIDE", 10)  # read when a figure is drawn, not when _preview was defined
    result = summarize(np.stack([values, values]))
    for make in (reports.quality_map_figure, reports.flag_map_figure):
        (ax, _colour_bar) = make(result).axes
        assert ax.images[0].get_array().shape == (9, 6)
    assert result.quality_map.shape == (53, 31)  # the analysis itself is left whole


def test_save_maps_writes_the_maps_at_the_image_resolution(tmp_path):
    from matplotlib import colormaps

    from jpegtrace.eval import reports

    rng = np.random.default_rng(3)
    raw = rng.random((2, 53, 31), dtype=np.float32)
    evidence = rng.random((53, 31), dtype=np.float32)
    result = summarize(raw, evidence=evidence)
    rgb = rng.integers(0, 256, (53, 31, 3), dtype=np.uint8)
    written = save_maps(result, rgb, tmp_path, "big")
    assert set(written) == {"quality", "flag", "evidence", "overlay", "legend"}
    for kind, values, cmap, top in (("quality", result.quality_map, "viridis", 100), ("flag", result.flag_map, "magma", 1),
                                    ("evidence", evidence, "gray", 1)):
        with Image.open(written[kind]) as im:
            assert im.size == (31, 53) and im.mode == "RGB"  # one pixel per image pixel, no margins
            expected = np.round(colormaps[cmap](values / top)[:, :, :3] * 255).astype(np.uint8)
            assert np.array_equal(np.asarray(im), expected)  # the colours imshow gives the map
    with Image.open(written["overlay"]) as im:
        assert im.size == (31, 53)
    with Image.open(written["legend"]) as im:
        assert im.size[0] <= 800 and im.size[1] <= 400  # a small figure of its own
    # Without an evidence map there is no evidence picture.
    assert "evidence" not in save_maps(summarize(raw), rgb, tmp_path / "plain", "x")
    assert reports.colour_index(np.array([0.0, 0.5, 99.99, 100.0, 120.0, -3.0, np.nan]), 0, 100).tolist() == \
        [0, 1, 255, 255, 255, 0, 0]


def test_save_raw_maps_round_trips_the_float_maps(tmp_path):
    from jpegtrace.eval.reports import save_raw_maps

    rng = np.random.default_rng(4)
    raw = rng.random((2, 20, 24), dtype=np.float32)
    evidence = rng.random((20, 24), dtype=np.float32)
    result = summarize(raw, evidence=evidence)
    path = save_raw_maps(result, tmp_path / "out", "img")
    assert path == tmp_path / "out" / "img_maps.npz"
    assert sorted(p.name for p in path.parent.iterdir()) == ["img_maps.npz"]  # no temporary left
    with np.load(path) as saved:
        assert sorted(saved.files) == ["evidence_map", "flag_map", "quality_map"]
        for name in saved.files:
            assert saved[name].dtype == np.float32
            assert np.array_equal(saved[name], getattr(result, name))
    with np.load(save_raw_maps(summarize(raw), tmp_path, "plain")) as saved:
        assert sorted(saved.files) == ["flag_map", "quality_map"]  # no evidence map was computed
