"""The sharded QF part of scripts/evaluate_generalisation.py: shards merged give one run's scores."""

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "evaluate_generalisation.py"


def _script():
    spec = importlib.util.spec_from_file_location("evaluate_generalisation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_merged_shards_score_as_their_records_together():
    script = _script()
    from jpegtrace.eval.quality import EvaluationRecord, summarize_evaluation

    rng = np.random.default_rng(0)
    records = [EvaluationRecord(f"img{i}.png", q, q + rng.normal(0, 3), 0.9, "compressed", "compressed", "compressed",
                                headline_quality=float(q + rng.integers(-2, 3)), quality_source="table (IJG)")
               for i in range(6) for q in script.MAE_QUALITIES + script.TABLE1]
    records += [EvaluationRecord(f"img{i}.png", None, 50.0, 0.1, "never compressed", "never compressed",
                                 "never compressed") for i in range(6)]
    shards = [{"model": "m", "split": "test", "n_images": 3, "shard": f"{k}/2", "seconds": 1.0,
               "records": {"grayscale": [dataclasses.asdict(r) for r in records if int(r.image[3]) % 2 == k],
                           "camera_tables": [dataclasses.asdict(r) for r in records
                                             if int(r.image[3]) % 2 == k and r.quality in script.MAE_QUALITIES]}}
              for k in (0, 1)]
    merged = script.merged_report(shards)
    whole = summarize_evaluation(records)
    assert merged["n_images"] == 6 and merged["shards"] == ["0/2", "1/2"]
    assert merged["qf"]["grayscale"]["qf_mae"] == pytest.approx(whole["qf_mae"])
    assert merged["qf"]["grayscale"]["headline_qf_mae"] == pytest.approx(whole["headline_qf_mae"])
    assert merged["table1"]["grayscale"]["None"] == 1.0
    camera = summarize_evaluation([r for r in records if r.quality in script.MAE_QUALITIES])
    assert merged["qf"]["camera_tables"]["headline_qf_mae"] == pytest.approx(camera["headline_qf_mae"])
    with pytest.raises(SystemExit):
        script.merged_report([shards[0], {**shards[1], "split": "val"}])


@pytest.mark.slow
def test_shards_of_a_split_merge_into_the_whole_runs_scores(tmp_path):
    from skimage import data

    photo = data.astronaut()
    for name, (top, left) in {"a.png": (0, 0), "b.png": (200, 200), "c.png": (300, 100)}.items():
        Image.fromarray(photo[top:top + 96, left:left + 128]).save(tmp_path / name)
    (tmp_path / "split.csv").write_text("file,split\na.png,val\nb.png,val\nc.png,val\n")
    run = [sys.executable, str(SCRIPT), "--data", str(tmp_path), "--split", "val", "--parts", "qf",
           "--variants", "camera_tables", "--threads", "1"]
    for k in (0, 1):
        subprocess.run(run + ["--shard", f"{k}/2", "--out", str(tmp_path / f"s{k}.json")], check=True)
    subprocess.run([sys.executable, str(SCRIPT), "--merge", str(tmp_path / "s0.json"), str(tmp_path / "s1.json"),
                    "--out", str(tmp_path / "merged.json")], check=True)
    subprocess.run(run + ["--out", str(tmp_path / "whole.json")], check=True)
    merged, whole = (json.loads((tmp_path / f).read_text()) for f in ("merged.json", "whole.json"))
    assert merged["n_images"] == whole["n_images"] == 3
    assert merged["qf"]["camera_tables"] == pytest.approx(whole["qf"]["camera_tables"])


def test_the_table_joins_runs_of_one_split_and_quotes_headline_and_network_qf():
    spec = importlib.util.spec_from_file_location("generalisation_table", ROOT / "scripts" / "generalisation_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    bias = {"5": 0.4, "50": -0.8, "97": -3.0}  # 97 lies outside QF 5..95: not the largest error quoted
    qf_run = {"qf": {"4:2:0": {"qf_mae": 2.5, "headline_qf_mae": 0.3, "headline_bias_per_quality": bias}},
              "table1": {"4:2:0": {"97": 0.0, "98": 0.02, "None": 1.0}}}
    again = {"qf": {"grayscale": {"qf_mae": 2.0, "headline_qf_mae": 0.5, "headline_bias_per_quality": {"5": 0.1}}}}
    local = {"collage_qf80": {"mean_iou": 0.95, "mean_precision": 0.97}}
    cells = table.rows(table.joined([qf_run, again, local]))
    assert cells["QF MAE 5..95, 4:2:0"] == "0.30 / 2.50"
    assert cells["QF MAE 5..95, grayscale"] == "0.50 / 2.00"
    assert cells["QF MAE 5..95, 4:4:4"] == "not measured"
    assert cells["largest mean headline error at one QF 5..95: 4:2:0 / 4:4:4 / shifted / gray"] == \
        "-0.80 / not measured / not measured / +0.10"
    assert cells["QF 97-100 judged uncompressed, worst QF: 4:2:0 / 4:4:4 / shifted / gray"].startswith("0.02 / ")
    assert cells["collage QF 80, mean IoU (flag > 0.5)"] == "0.950"
    assert set(cells) == set(table.BARS)


def test_the_saturated_part_scores_collages_and_clean_photos_of_saturated_versions(tmp_path, photo):
    """The stand-in for camera photos with saturated colours: the split's photos saturated (many channels
    clipped, grey kept grey), then the collage and clean-photo scores of those."""
    import torch

    from jpegtrace.nn.config import NetConfig
    from jpegtrace.nn.qfnet import QFNet

    script = _script()
    vivid = script.saturate(photo)
    clipped = lambda image: ((image == 0) | (image == 255)).any(axis=2).mean()  # noqa: E731
    assert vivid.shape == photo.shape and vivid.dtype == np.uint8 and clipped(vivid) > clipped(photo) + 0.05
    grey = np.full((8, 8, 3), 90, np.uint8)
    assert np.ptp(script.saturate(grey), axis=2).max() == 0
    files = []
    for name, (top, left) in {"a.png": (0, 0), "b.png": (20, 30)}.items():
        files.append(tmp_path / name)
        Image.fromarray(photo[top:top + 64, left:left + 80]).save(files[-1])
    torch.manual_seed(0)
    report: dict = {}
    script.saturated_photos(report, QFNet(NetConfig(width=8, dilations=(1, 2, 1))).eval(), files, pairs=2)
    scores = report["saturated"]
    assert scores["collage_qf80"]["n"] == 2 and 0.0 <= scores["collage_qf80"]["mean_iou"] <= 1.0
    assert scores["clipped_pixel_share"] > 0.05
    assert set(scores["clean_photos"]) >= {"mean_flagged_share", "judged_compressed", "verdicts"}
    assert sum(scores["clean_photos"]["verdicts"].values()) == 2
