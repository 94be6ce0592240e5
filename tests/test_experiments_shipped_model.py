"""The paper's experiments with the shipped model: these check accuracy, not just mechanics.

They need the trained weights at ``src/jpegtrace/weights/qfnet.safetensors`` (loaded with
``jpegtrace.load_model()``); without them they fail with "weights file not found".
"""

import csv
import json

import numpy as np
import pytest
from PIL import Image

import jpegtrace
from jpegtrace.cli import main
from jpegtrace.eval.collage import run_collage
from jpegtrace.eval.masks import disc_mask
from jpegtrace.eval.quality import evaluate_files

#: End-to-end: seconds each (`make check` leaves them out).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model():
    return jpegtrace.load_model()


@pytest.fixture
def clean_folder(photo_folder):
    """Three never-compressed photos of at most 150 x 150 pixels."""
    return photo_folder("clean", 150, 150)


def test_evaluate_estimates_a_lower_qf_for_qf_10_than_for_qf_90(clean_folder, tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", "--data", str(clean_folder), "--qualities", "10,90", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    by_q = {row["quality"]: row for row in summary["per_quality"]}
    assert by_q[10]["mean_estimate"] < by_q[90]["mean_estimate"]
    with open(out / "records.csv", newline="") as f:
        records = list(csv.DictReader(f))
    for image in ("astronaut.png", "chelsea.png", "coffee.png"):
        est = {r["quality"]: float(r["estimated_quality"]) for r in records if r["image"] == image}
        assert est["10"] < est["90"], image
    assert by_q[10]["judged_uncompressed"] == 0.0  # QF 10 is never mistaken for an original
    assert summary["qf_mae"] < 20


def test_evaluate_files_api_matches_the_paper_trend(model, clean_folder):
    records, failures = evaluate_files(model, sorted(clean_folder.iterdir()), qualities=(20, 50, 80))
    assert not failures
    means = [np.mean([r.estimated_quality for r in records if r.quality == q]) for q in (20, 50, 80)]
    assert means[0] < means[1] < means[2]


def test_collage_with_a_disc_finds_the_pasted_region(clean_folder, tmp_path):
    out = tmp_path / "collage"
    assert main(["collage", "--background", str(clean_folder / "astronaut.png"),
                 "--donor", str(clean_folder / "coffee.png"), "--quality", "80", "--shape", "disc",
                 "--out", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["iou"] > 0.5
    assert scores["auc"] > 0.75
    assert scores["flag_inside"] > scores["flag_outside"]


def test_collage_api_disc_iou(model, photos):
    background = photos["chelsea"][:128, :128]
    donor = photos["astronaut"][:128, :128]
    result = run_collage(model, background, donor, 80, disc_mask(128, 128))
    assert result.scores.iou > 0.5
    assert abs(result.quality_inside - 80) < 20


def test_assess_tells_a_jpeg_from_a_clean_image(tmp_path, photos):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(photos["astronaut"]).save(folder / "clean.png")
    Image.fromarray(photos["coffee"]).save(folder / "was_jpeg.jpg", quality=30)
    out = tmp_path / "audit"
    assert main(["assess", str(folder), "--out", str(out), "--quiet"]) == 0
    with open(out / "table.csv", newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    assert rows["clean.png"]["verdict"] == "never compressed"
    assert rows["was_jpeg.jpg"]["verdict"] == "compressed"
    assert abs(float(rows["was_jpeg.jpg"]["map_quality"]) - 30) < 20
    # the headline: the table the pixels hold, and the file's own tables beside it
    assert float(rows["was_jpeg.jpg"]["quality"]) == 30 and rows["was_jpeg.jpg"]["quality_source"] == "table (IJG)"
    assert rows["was_jpeg.jpg"]["file_format"] == "JPEG" and float(rows["was_jpeg.jpg"]["file_quality"]) == 30
    report = json.loads((out / "assessment.json").read_text())
    assert report["n_compressed"] == 1 and sum(report["histogram"]["counts"]) == 1
