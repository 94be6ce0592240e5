"""The experiment commands end to end: files written, their rows, reasons for failures, determinism.

They run with a small random-weights network passed as --model; the accuracy of the shipped
model is checked in test_experiments_shipped_model.py.
"""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from jpegtrace.analysis import VERDICTS
from jpegtrace.cli import main
from jpegtrace.evidence import MIN_EVIDENCE_SHARE
from jpegtrace.nn.qfnet import NetConfig, QFNet
from jpegtrace.nn.weights import save_weights

#: End-to-end: seconds each (`make check` leaves them out).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    return str(save_weights(QFNet(NetConfig(width=8, dilations=(1, 2, 1))),
                            tmp_path_factory.mktemp("model") / "tiny.safetensors"))


@pytest.fixture
def folder(tmp_path, photo_folder):
    """Three small never-compressed PNGs, a split CSV (coffee is 'val') and a broken file."""
    data = photo_folder("data", 72, 88)
    (data / "broken.png").write_bytes(b"\x89PNG but not really")
    (data / "notes.txt").write_text("not an image, not listed")
    split = tmp_path / "split.csv"
    split.write_text("file,split\nastronaut.png,train\nchelsea.png,train\ncoffee.png,val\nbroken.png,train\n")
    return data, split


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- evaluate -------------------------------------------------------------------------------------

def test_evaluate_writes_fig2_table1_and_is_deterministic(folder, weights, tmp_path, capsys):
    data, _ = folder
    outs = [tmp_path / "eval1", tmp_path / "eval2"]
    for out in outs:
        code = main(["evaluate", "--data", str(data), "--qualities", "10,90,98,100", "--model", weights,
                     "--out", str(out), "--quiet"])
        assert code == 1  # broken.png could not be read; the others were evaluated
    captured = capsys.readouterr()
    assert captured.err.count("broken.png: not an image file") == 2  # once per run
    assert "detection accuracy" in captured.out
    for name in ("records.csv", "per_quality.csv", "table1.csv", "failures.csv", "summary.json",
                 "fig2_quality.png", "table1.png"):
        assert (outs[0] / name).stat().st_size > 0, name
    records = _csv(outs[0] / "records.csv")
    assert len(records) == 3 * 5  # three images, four QFs and the original
    assert {r["quality"] for r in records} == {"10", "90", "98", "100", ""}
    summary = json.loads((outs[0] / "summary.json").read_text())
    assert [r["quality"] for r in summary["per_quality"]] == [10, 90, 98, 100, None]
    assert [r["label"] for r in summary["table1"]] == ["QF 98", "QF 100", "without JPEG"]
    assert summary["n_images"] == 3 and summary["failures"] == [
        {"file": "broken.png", "reason": "not an image file (unrecognised or corrupt format)"}]
    assert summary["settings"]["qualities"] == [10, 90, 98, 100]
    # the numbers in the files agree with each other
    per_q = {r["quality"]: r for r in _csv(outs[0] / "per_quality.csv")}
    est10 = [float(r["estimated_quality"]) for r in records if r["quality"] == "10"]
    assert float(per_q["10"]["mean_estimate"]) == pytest.approx(np.mean(est10), abs=1e-3)
    errors = [float(r["abs_error"]) for r in records if r["quality"] in ("10", "90")]
    assert summary["qf_mae"] == pytest.approx(np.mean(errors), abs=1e-3)
    # the grid check scored every test image and joined the verdict; the paper's rule is reported beside it
    assert all(r["grid_score"] != "" for r in records)
    for r in records:  # the verdict of analysis.judge: a grid found, else the evidence, else the mean flag
        # A grid is found by its score, or (a coarse JPEG) by its flat blocks and an IJG table.
        assert r["grid_found"] == "1" or float(r["grid_score"]) <= 8
        if r["grid_found"] == "1":
            expected = "compressed"
        elif r["mean_flag"] == "" or float(r["evidence_share"]) < MIN_EVIDENCE_SHARE:
            expected = "no evidence"
        else:
            expected = "compressed" if float(r["mean_flag"]) > 0.5 else "never compressed"
        assert r["verdict"] == expected and 0 <= float(r["evidence_share"]) <= 1
    for quality in ("10", "100", ""):
        no_evidence = [r["verdict"] == "no evidence" for r in records if r["quality"] == quality]
        assert float(per_q[quality]["no_evidence"]) == pytest.approx(np.mean(no_evidence), abs=1e-4)
    assert all(float(r["grid_score"]) > 8 for r in records if r["quality"] in ("98", "100"))
    assert float(per_q["100"]["judged_uncompressed"]) == 0.0
    flag_alone = [float(r["mean_flag"]) <= 0.5 for r in records if r["quality"] == "100"]
    assert float(per_q["100"]["flag_judged_uncompressed"]) == pytest.approx(np.mean(flag_alone), abs=1e-4)
    assert "(flag alone)" in captured.out
    verdicts = [(r["verdict"] == "compressed") == (r["quality"] != "") for r in records]
    assert summary["detection_accuracy"] == pytest.approx(np.mean(verdicts), abs=1e-4)
    # same images and QFs: same numbers
    for name in ("records.csv", "per_quality.csv", "table1.csv"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()
    again = json.loads((outs[1] / "summary.json").read_text())
    assert again == summary


def test_evaluate_uses_the_split_and_keeps_unrelated_files(folder, weights, tmp_path, capsys):
    data, split = folder
    out = tmp_path / "eval"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code = main(["evaluate", "--data", str(data), "--split", str(split), "--subset", "val", "--qualities", "50",
                 "--grid-shift", "--grayscale", "--subsampling", "4:4:4", "--model", weights, "--out", str(out)])
    assert code == 0
    records = _csv(out / "records.csv")
    assert {r["image"] for r in records} == {"coffee.png"} and len(records) == 2
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert settings["grid_offset"] == [3, 5] and settings["grayscale"] and settings["subset"] == "val"
    assert (out / "mine.txt").read_text() == "keep me"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("argv, message", [
    (["--qualities", "0,50"], "quality factors must be in 1..100"),
    (["--qualities", "high"], "expected comma-separated integers"),
    (["--grid-shift", "3"], "expected DY,DX"),
])
def test_evaluate_rejects_bad_options(folder, weights, tmp_path, capsys, argv, message):
    data, _ = folder
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--data", str(data), "--out", str(tmp_path / "o"), "--model", weights, *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_evaluate_reports_an_empty_folder_and_a_missing_model(tmp_path, weights, folder, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", "--data", str(empty), "--out", str(tmp_path / "o"), "--model", weights]) == 2
    assert "no never-compressed images" in capsys.readouterr().err
    data, _ = folder
    assert main(["evaluate", "--data", str(data), "--out", str(tmp_path / "o"),
                 "--model", str(tmp_path / "missing.safetensors")]) == 2
    assert "weights file not found" in capsys.readouterr().err


# --- collage ----------------------------------------------------------------------------------------

def test_collage_writes_the_fake_image_mask_maps_and_scores(folder, weights, tmp_path, capsys):
    data, _ = folder
    out = tmp_path / "collage"
    code = main(["collage", "--background", str(data / "astronaut.png"), "--donor", str(data / "coffee.png"),
                 "--quality", "80", "--shape", "disc", "--model", weights, "--out", str(out)])
    assert code == 0
    assert "IoU" in capsys.readouterr().out
    for name in ("fake.png", "mask.png", "fake_quality.png", "fake_flag.png", "fake_overlay.png", "collage.png",
                 "maps.npz", "scores.json", "scores.csv"):
        assert (out / name).stat().st_size > 0, name
    background = np.asarray(Image.open(data / "astronaut.png"))
    fake = np.asarray(Image.open(out / "fake.png"))
    mask = np.asarray(Image.open(out / "mask.png")) > 127
    assert fake.shape == background.shape and mask.shape == background.shape[:2]
    np.testing.assert_array_equal(fake[~mask], background[~mask])  # uncompressed outside the disc
    assert not np.array_equal(fake[mask], background[mask])
    scores = json.loads((out / "scores.json").read_text())
    maps = np.load(out / "maps.npz")
    from jpegtrace.eval.metrics import localization_scores

    expected = localization_scores(maps["flag_map"], maps["mask"]).as_dict()
    assert {k: scores[k] for k in expected} == expected
    assert scores["quality"] == 80 and scores["settings"]["mask"] == "disc"
    np.testing.assert_array_equal(maps["mask"], mask)
    assert _csv(out / "scores.csv")[0]["iou"] == str(scores["iou"])


def test_collage_takes_a_mask_file_and_checks_its_size(folder, weights, tmp_path, capsys):
    data, _ = folder
    mask = np.zeros((72, 88), dtype=np.uint8)
    mask[10:40, 20:70] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "collage"
    assert main(["collage", "--background", str(data / "chelsea.png"), "--donor", str(data / "coffee.png"),
                 "--mask", str(tmp_path / "mask.png"), "--quality", "30", "--model", weights, "--out", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out / "maps.npz")["mask"], mask > 0)
    Image.fromarray(mask[:50]).save(tmp_path / "small_mask.png")
    assert main(["collage", "--background", str(data / "chelsea.png"), "--donor", str(data / "coffee.png"),
                 "--mask", str(tmp_path / "small_mask.png"), "--model", weights, "--out", str(out)]) == 2
    assert "mask is 88x50 pixels, the background 88x72" in capsys.readouterr().err
    assert main(["collage", "--background", str(data / "broken.png"), "--donor", str(data / "coffee.png"),
                 "--model", weights, "--out", str(out)]) == 2
    assert "broken.png: not an image file" in capsys.readouterr().err


def test_collage_blob_mask_follows_the_seed(folder, weights, tmp_path):
    data, _ = folder
    masks = []
    for seed, out in ((1, "a"), (1, "b"), (2, "c")):
        assert main(["collage", "--background", str(data / "chelsea.png"), "--donor", str(data / "coffee.png"),
                     "--shape", "blob", "--seed", str(seed), "--model", weights, "--out", str(tmp_path / out)]) == 0
        masks.append(np.load(tmp_path / out / "maps.npz")["mask"])
    assert np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[0], masks[2])


def test_collage_scores_at_the_models_threshold_or_the_one_given(folder, tmp_path, capsys):
    from jpegtrace.eval.metrics import localization_scores

    data, _ = folder
    torch.manual_seed(0)
    calibrated = save_weights(QFNet(NetConfig(width=8, dilations=(1, 2, 1)), flag_threshold=0.7),
                              tmp_path / "calibrated.safetensors")
    common = ["collage", "--background", str(data / "chelsea.png"), "--donor", str(data / "coffee.png"),
              "--model", str(calibrated)]
    for extra, expected in (([], 0.7), (["--threshold", "0.35"], 0.35)):
        out = tmp_path / f"c{expected}"
        assert main(common + extra + ["--out", str(out)]) == 0
        assert f"(flag > {expected:g})" in capsys.readouterr().out
        scores = json.loads((out / "scores.json").read_text())
        maps = np.load(out / "maps.npz")
        assert scores["threshold"] == scores["settings"]["threshold"] == expected
        assert scores["iou"] == localization_scores(maps["flag_map"], maps["mask"], threshold=expected).as_dict()["iou"]
    with pytest.raises(SystemExit):
        main(common + ["--threshold", "1", "--out", str(tmp_path / "bad")])
    assert "strictly between 0 and 1" in capsys.readouterr().err


# --- collage-benchmark ------------------------------------------------------------------------------

def test_collage_benchmark_is_reproducible_and_reports_means(folder, weights, tmp_path, capsys):
    data, _ = folder
    outs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        outs[name] = tmp_path / name
        code = main(["collage-benchmark", "--data", str(data), "--pairs", "5", "--seed", str(seed),
                     "--qualities", "50,80", "--crop", "48", "--model", weights, "--out", str(outs[name]), "--quiet"])
        assert code in (0, 1)  # 1 when a pair needed broken.png
    assert "mean IoU" in capsys.readouterr().out
    assert (outs["a"] / "pairs.csv").read_bytes() == (outs["b"] / "pairs.csv").read_bytes()
    assert (outs["a"] / "pairs.csv").read_bytes() != (outs["c"] / "pairs.csv").read_bytes()
    rows = _csv(outs["a"] / "pairs.csv")
    summary = json.loads((outs["a"] / "summary.json").read_text())
    assert (outs["a"] / "scores.png").stat().st_size > 0
    assert summary["n"] == len(rows) >= 1
    assert summary["mean_iou"] == pytest.approx(np.mean([float(r["iou"]) for r in rows]), abs=1e-3)
    assert summary["mean_f1"] == pytest.approx(np.mean([float(r["f1"]) for r in rows]), abs=1e-3)
    assert {r["shape"] for r in rows} <= {"disc", "rectangle", "blob"}
    assert {r["quality"] for r in rows} <= {"50", "80"}
    assert summary["settings"]["seed"] == 7 and summary["settings"]["pairs"] == 5
    assert summary["settings"]["threshold"] == 0.5 and {r["threshold"] for r in rows} == {"0.5"}


def test_collage_benchmark_uses_the_split(folder, weights, tmp_path):
    data, split = folder
    out = tmp_path / "bench"
    assert main(["collage-benchmark", "--data", str(data), "--split", str(split), "--subset", "train",
                 "--pairs", "3", "--shapes", "disc", "--model", weights, "--out", str(out)]) in (0, 1)
    rows = _csv(out / "pairs.csv")
    assert {r["background"] for r in rows} | {r["donor"] for r in rows} <= {"astronaut.png", "chelsea.png"}
    assert {r["shape"] for r in rows} == {"disc"}


# --- assess -------------------------------------------------------------------------------------------

def test_assess_lists_unreadable_files_marks_grayscale_and_writes_the_page(folder, weights, tmp_path, photo, capsys):
    data, _ = folder
    sub = data / "more"
    sub.mkdir()
    Image.fromarray(photo[:60, :60].mean(axis=2).astype(np.uint8)).save(sub / "gray.png")
    Image.fromarray(photo[:64, :64]).save(sub / "photo.jpg", quality=40)
    out = data / "audit"  # inside the audited folder: must not audit itself on a second run
    for _ in range(2):
        code = main(["assess", str(data), "--recursive", "--model", weights, "--out", str(out), "--quiet"])
        assert code == 1
    err = capsys.readouterr().err
    assert "broken.png: not an image file (unrecognised or corrupt format)" in err
    rows = _csv(out / "table.csv")  # the records of analyze: failures are rows too (ok 0)
    assert [r["file"] for r in rows if r["ok"] == "0"] == ["broken.png"]
    table = [r for r in rows if r["ok"] == "1"]
    assert [r["file"] for r in table] == ["astronaut.png", "chelsea.png", "coffee.png", "more/gray.png",
                                          "more/photo.jpg"]
    assert [json.loads((out / "assessment.json").read_text())["images"][i]["grayscale"] for i in range(5)] == [
        False, False, False, True, False]
    assert table[3]["width"] == "60" and table[3]["height"] == "60"
    assert all(r["verdict"] in VERDICTS and 0 <= float(r["evidence_share"]) <= 1 for r in table)
    assert all(float(r["grid_score"]) >= 0 for r in table)
    assert _csv(out / "failures.csv") == [
        {"file": "broken.png", "reason": "not an image file (unrecognised or corrupt format)"}]
    report = json.loads((out / "assessment.json").read_text())
    assert report["n_analysed"] == 5 and report["n_failed"] == 1 and report["n_grayscale"] == 1
    assert report["n_compressed"] + report["n_uncompressed"] + report["n_no_evidence"] == 5
    assert report["n_compressed"] == sum(r["verdict"] in ("compressed", "partly compressed") for r in table)
    for key, verdict in (("n_uncompressed", "never compressed"), ("n_no_evidence", "no evidence"),
                         ("n_partly_compressed", "partly compressed")):
        assert report[key] == sum(r["verdict"] == verdict for r in table)
    assert sum(report["histogram"]["counts"]) == report["n_compressed"]
    assert (out / "qf_histogram.png").stat().st_size > 0
    page = (out / "index.html").read_text()
    assert "more/gray.png" in page and "grayscale" in page and "broken.png" in page and "qf_histogram.png" in page
    for i in range(1, 6):
        assert f'src="thumbnails/{i:05d}.png"' in page and f'src="thumbnails/{i:05d}_flag.png"' in page
        assert (out / "thumbnails" / f"{i:05d}_flag.png").is_file()
    with Image.open(out / "thumbnails" / "00001.png") as im:
        assert max(im.size) == 160


def test_assess_without_recursion_and_a_missing_folder(folder, weights, tmp_path, capsys):
    data, _ = folder
    (data / "more").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(data / "more" / "hidden_deeper.png")
    out = tmp_path / "audit"
    assert main(["assess", str(data), "--model", weights, "--out", str(out), "--thumbnail-size", "32"]) == 1
    assert [r["file"] for r in _csv(out / "table.csv") if r["ok"] == "1"] == ["astronaut.png", "chelsea.png",
                                                                            "coffee.png"]
    assert main(["assess", str(tmp_path / "nowhere"), "--model", weights, "--out", str(out)]) == 2
    assert "not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["evaluate", "collage", "collage-benchmark", "assess"])
def test_help_describes_each_command(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--out" in text and "--model" in text


def test_an_output_path_that_is_a_file_is_refused_before_the_run(folder, weights, tmp_path, capsys):
    data, _ = folder
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    assert main(["assess", str(data), "--model", weights, "--out", str(blocker)]) == 2
    assert "cannot create the output folder" in capsys.readouterr().err
    assert blocker.read_text() == "a file, not a folder"


# --- calibrate --------------------------------------------------------------------------------------

def test_calibrate_writes_weights_with_both_calibrations_fitted_on_the_train_subset(folder, weights, tmp_path, capsys):
    from jpegtrace.eval.calibration import calibrate_flag_threshold, fit_quality_calibration
    from jpegtrace.nn.weights import load_weights

    data, split = folder
    out = tmp_path / "calibrated.safetensors"
    weights = str(save_weights(load_weights(weights), tmp_path / "step12.safetensors", {"step": "12"}))
    code = main(["calibrate", "--model", weights, "--data", str(data), "--split", str(split), "--per-image", "2",
                 "--pairs", "3", "--seed", "4", "--out", str(out), "--quiet"])
    printed = capsys.readouterr()
    assert code == 1  # broken.png is in the train subset: reported, the rest still calibrated
    assert "broken.png" in printed.err and "Traceback" not in printed.err
    calibrated = load_weights(out)
    # the same fits as the API's on the readable train images (coffee is val: left out)
    train = {name: np.asarray(Image.open(data / name).convert("RGB")) for name in ("astronaut.png", "chelsea.png")}
    model = load_weights(weights)
    expected = fit_quality_calibration(model, train, per_image=2, seed=4)
    threshold = calibrate_flag_threshold(model, [data / "astronaut.png", data / "broken.png", data / "chelsea.png"],
                                         pairs=3, seed=4)
    assert calibrated.quality_calibration == expected
    assert calibrated.flag_threshold == threshold.best
    for key, value in model.state_dict().items():
        torch.testing.assert_close(calibrated.state_dict()[key], value)
    assert "quality calibration (QF in -> QF out): 100 -> " in printed.out
    assert f"flag threshold of localisation masks: {threshold.best:g}" in printed.out
    assert load_weights(weights).quality_calibration is None  # the input file is left as it was
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        assert f.metadata()["step"] == "12" and f.metadata()["calibration_seed"] == "4"  # the file's own kept


def test_calibrate_refuses_bad_weights_and_devices_in_one_line(folder, weights, tmp_path, capsys):
    data, _ = folder
    (tmp_path / "bad.safetensors").write_bytes(b"not weights")
    assert main(["calibrate", "--model", str(tmp_path / "bad.safetensors"), "--data", str(data),
                 "--out", str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jpegtrace: error: ") and "bad.safetensors" in err and len(err.splitlines()) == 1
    assert main(["calibrate", "--model", weights, "--data", str(data), "--device", "nosuch",
                 "--out", str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jpegtrace: error: cannot use device 'nosuch'") and len(err.splitlines()) == 1
    assert not (tmp_path / "out.safetensors").exists()
