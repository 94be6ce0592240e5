"""The experiment functions: summaries, masks, localisation scores and the benchmark's mechanics.

A small random-weights network stands in for the shipped model: these tests check the
bookkeeping and the maths, not the accuracy (see test_experiments_shipped_model.py).
"""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from jpegtrace.analysis import VERDICTS, judge
from jpegtrace.eval.audit import assess_images, summarize_assessment
from jpegtrace.eval.calibration import calibrate_flag_threshold
from jpegtrace.eval.collage import collage_benchmark, fit_image, make_collage, run_collage, summarize_collage_benchmark
from jpegtrace.eval.masks import MASK_SHAPES, blob_mask, disc_mask, make_mask, random_mask, read_mask, rectangle_mask
from jpegtrace.eval.metrics import localization_scores, pixel_auc
from jpegtrace.eval.quality import EvaluationRecord, evaluate_files, evaluate_model, summarize_evaluation
from jpegtrace.nn.qfnet import NetConfig, QFNet


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return QFNet(NetConfig(width=8, dilations=(1, 2, 1))).eval()


@pytest.fixture
def small_files(photo_folder):
    """Three small never-compressed PNGs (at most 96 px) and one file that is not an image."""
    folder = photo_folder("small", 80, 96)
    (folder / "broken.png").write_bytes(b"this is not a PNG")
    return folder


# --- Fig. 2 and Table 1 -----------------------------------------------------------------------

def _records():
    rows = [("a", 10, 20.0, 0.9), ("b", 10, 10.0, 0.8), ("a", 90, 80.0, 0.7), ("b", 90, 90.0, 0.6),
            ("a", 98, 99.0, 0.4), ("b", 98, 97.0, 0.6), ("a", 100, 100.0, 0.2), ("b", 100, 99.0, 0.3),
            ("a", None, 100.0, 0.1), ("b", None, 99.0, 0.7)]
    # no grid check in these: every verdict is the paper's rule on the mean flag
    return [EvaluationRecord(*row, verdict=judge(row[3]), flag_verdict=judge(row[3]), network_verdict=judge(row[3]))
            for row in rows]


def test_summary_has_fig2_rows_table1_shares_and_overall_scores():
    summary = summarize_evaluation(_records())
    by_q = {r["quality"]: r for r in summary["per_quality"]}
    assert [r["quality"] for r in summary["per_quality"]] == [10, 90, 98, 100, None]
    assert by_q[10]["mean_estimate"] == pytest.approx(15.0) and by_q[10]["std_estimate"] == pytest.approx(5.0)
    assert by_q[10]["mae"] == pytest.approx(5.0) and by_q[90]["mae"] == pytest.approx(5.0)
    assert by_q[None]["mae"] is None
    table1 = {r["label"]: r["judged_uncompressed"] for r in summary["table1"]}
    assert table1 == {"QF 98": 0.5, "QF 100": 1.0, "without JPEG": 0.5}
    # QF MAE over QF <= 95 only: |20-10|, 0, |80-90|, 0
    assert summary["qf_mae"] == pytest.approx(5.0)
    assert summary["qf_mae_all_qualities"] == pytest.approx((10 + 0 + 10 + 0 + 1 + 1 + 0 + 1) / 8)
    # right verdicts: 4 (QF 10, 90) + 1 (QF 98 b) + 0 (QF 100) + 1 (original a) of 10
    assert summary["detection_accuracy"] == pytest.approx(0.6)
    assert summary["clean_judged_uncompressed"] == pytest.approx(0.5)
    assert summary["n_images"] == 2 and summary["n_records"] == 10


def test_summary_without_low_qualities_has_no_qf_mae():
    summary = summarize_evaluation([EvaluationRecord("a", 98, 97.0, 0.9, "compressed", "compressed", "compressed")])
    assert summary["qf_mae"] is None and summary["table1"][0]["quality"] == 98


def test_summary_leaves_images_without_evidence_out_of_the_estimates_and_counts_them():
    def record(image, quality, estimate, flag, verdict, share=1.0):
        return EvaluationRecord(image, quality, estimate, flag, verdict, verdict, verdict, evidence_share=share)

    none = "no evidence"
    records = [record("a", 90, 80.0, 0.7, "compressed"), record("b", 90, None, None, none, 0.01),
               record("a", None, None, None, none, 0.0), record("b", None, 99.0, 0.2, "never compressed")]
    summary = summarize_evaluation(records)
    by_q = {r["quality"]: r for r in summary["per_quality"]}
    assert (by_q[90]["n"], by_q[90]["mean_estimate"], by_q[90]["mae"], by_q[90]["mean_flag"]) == (2, 80.0, 10.0, 0.7)
    assert by_q[90]["judged_uncompressed"] == 0.5 and by_q[90]["no_evidence"] == 0.5
    assert (by_q[None]["mean_estimate"], by_q[None]["mean_flag"], by_q[None]["no_evidence"]) == (99.0, 0.2, 0.5)
    assert by_q[None]["judged_uncompressed"] == 1.0  # "no evidence" is not "compressed"
    assert summary["qf_mae"] == pytest.approx(10.0) and summary["qf_mae_all_qualities"] == pytest.approx(10.0)
    assert summary["detection_accuracy"] == pytest.approx(0.75) and summary["clean_judged_uncompressed"] == 1.0
    row = records[1].as_row()
    assert (row["estimated_quality"], row["mean_flag"], row["abs_error"]) == ("", "", "")
    assert (row["verdict"], row["evidence_share"]) == (none, 0.01) and not records[1].compressed
    assert "judged_compressed" not in row and records[0].as_row()["verdict"] == "compressed"
    only_none = summarize_evaluation([records[1]])["per_quality"][0]
    assert (only_none["mean_estimate"], only_none["std_estimate"], only_none["mae"], only_none["mean_flag"]) == \
        (None, None, None, None)


def test_evaluate_files_reads_lazily_and_lists_unreadable_files(tiny_model, small_files):
    files = sorted(small_files.iterdir())
    records, failures = evaluate_files(tiny_model, files, qualities=(10, 90))
    assert len(records) == 3 * 3  # three readable images, two QFs and the original
    assert [(f.file.endswith("broken.png"), "not an image" in f.reason) for f in failures] == [(True, True)]
    assert {r.quality for r in records} == {10, 90, None}
    again, _ = evaluate_files(tiny_model, {f.name: f for f in files}, qualities=(10, 90))
    assert [(r.estimated_quality, r.mean_flag) for r in again] == [(r.estimated_quality, r.mean_flag) for r in records]
    assert again[0].image == "astronaut.png"


# --- masks --------------------------------------------------------------------------------------

def test_rectangle_and_disc_masks_have_the_expected_area():
    rect = rectangle_mask(40, 60)
    assert rect.sum() == 20 * 30 and rect[20, 30] and not rect[0, 0]
    disc = disc_mask(100, 100)
    assert disc.sum() == pytest.approx(np.pi * 30 ** 2, rel=0.02)


def test_blob_masks_are_reproducible_from_the_generator_and_cover_the_asked_area():
    a = blob_mask(64, 80, np.random.default_rng(5), area_fraction=0.2)
    b = blob_mask(64, 80, np.random.default_rng(5), area_fraction=0.2)
    c = blob_mask(64, 80, np.random.default_rng(6), area_fraction=0.2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.mean() == pytest.approx(0.2, abs=0.01)


@pytest.mark.parametrize("shape", MASK_SHAPES)
def test_make_mask_gives_each_shape(shape):
    mask = make_mask(shape, 48, 64, rng=np.random.default_rng(0))
    assert mask.shape == (48, 64) and mask.dtype == bool and 0.05 < mask.mean() < 0.5


def test_random_masks_draw_every_shape_and_lie_inside_the_image():
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(30):
        mask, shape = random_mask(50, 70, rng)
        seen.add(shape)
        assert mask.shape == (50, 70) and 0.03 < mask.mean() < 0.6
    assert seen == set(MASK_SHAPES)
    with pytest.raises(ValueError):
        random_mask(10, 10, rng, shapes=("star",))


def test_read_mask_thresholds_at_half_scale_and_checks_the_size(tmp_path):
    values = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    Image.fromarray(values).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), [[False, False, True, True]])
    from jpegtrace import ImageReadError

    with pytest.raises(ImageReadError, match="mask is 4x1 pixels"):
        read_mask(tmp_path / "m.png", height=2, width=4)


def test_fit_image_crops_or_mirrors():
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    np.testing.assert_array_equal(fit_image(image, 2, 3, offset=(1, 2)), image[1:3, 2:5])
    grown = fit_image(image, 6, 7)
    assert grown.shape == (6, 7, 3)
    np.testing.assert_array_equal(grown[:4, :5], image)
    np.testing.assert_array_equal(grown[4, :5], image[3])  # mirrored


# --- localisation scores ------------------------------------------------------------------------

def _brute_auc(scores, labels):
    pos, neg = scores[labels], scores[~labels]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=2, max_size=30))
def test_pixel_auc_equals_the_pairwise_definition(pairs):
    scores = np.array([s for s, _ in pairs], dtype=np.float32) / 4
    labels = np.array([label for _, label in pairs])
    if labels.all() or not labels.any():
        assert np.isnan(pixel_auc(scores, labels))
    else:
        assert pixel_auc(scores, labels) == pytest.approx(_brute_auc(scores, labels))


def test_localization_scores_on_synthetic_maps():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:6, 2:6] = True  # 16 pixels
    perfect = localization_scores(mask.astype(np.float32), mask)
    assert (perfect.iou, perfect.f1, perfect.auc, perfect.precision, perfect.recall) == (1, 1, 1, 1, 1)
    inverted = localization_scores(1.0 - mask, mask)
    assert inverted.iou == 0 and inverted.f1 == 0 and inverted.auc == 0
    shifted = np.zeros((10, 10), dtype=np.float32)
    shifted[4:8, 2:6] = 0.9  # 8 of its 16 pixels overlap the mask
    s = localization_scores(shifted, mask)
    assert s.iou == pytest.approx(8 / 24) and s.f1 == pytest.approx(16 / 32)
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(0.5)
    # positives: 8 at 0.9, 8 at 0; negatives: 8 at 0.9, 76 at 0
    assert s.auc == pytest.approx((8 * 76 + 0.5 * 8 * 8 + 0.5 * 8 * 76) / (16 * 84))
    flat = localization_scores(np.full((10, 10), 0.5, dtype=np.float32), mask)  # 0.5 is not above 0.5
    assert flat.iou == 0 and flat.auc == 0.5 and np.isnan(flat.precision)
    empty = localization_scores(np.zeros((4, 4), np.float32), np.zeros((4, 4), bool))
    assert empty.iou == 1 and empty.f1 == 1 and np.isnan(empty.auc)
    assert empty.as_dict()["auc"] is None


def test_make_collage_compresses_only_inside_the_mask(photo):
    background = photo[:64, :64]
    donor = photo[-64:, -64:]
    mask = disc_mask(64, 64)
    fake = make_collage(background, donor, 30, mask)
    np.testing.assert_array_equal(fake[~mask], background[~mask])
    assert not np.array_equal(fake[mask], donor[mask])


def test_run_collage_scores_its_own_analysis(tiny_model, photo):
    mask = rectangle_mask(64, 72)
    result = run_collage(tiny_model, photo[:64, :72], photo[20:50, 10:40], 50, mask)  # a small donor is mirrored
    assert result.fake.shape == (64, 72, 3) and result.analysis.flag_map.shape == (64, 72)
    assert result.scores.as_dict() == localization_scores(result.analysis.flag_map, mask).as_dict()
    assert result.flag_inside == pytest.approx(float(result.analysis.flag_map[mask].mean()))
    row = result.as_dict()
    assert row["quality"] == 50 and row["mask_fraction"] == pytest.approx(mask.mean(), abs=1e-4)


# --- the collage benchmark ----------------------------------------------------------------------

def test_collage_benchmark_is_reproducible_from_its_seed(tiny_model, small_files):
    files = sorted(small_files.iterdir())
    first, failures = collage_benchmark(tiny_model, files, pairs=6, seed=3, qualities=(50, 80), crop=48)
    second, _ = collage_benchmark(tiny_model, files, pairs=4, seed=3, qualities=(50, 80), crop=48)
    other, _ = collage_benchmark(tiny_model, files, pairs=6, seed=4, qualities=(50, 80), crop=48)
    # pair i depends on (seed, i) alone: a shorter run is a prefix of a longer one
    assert [r.as_row() for r in first if r.pair < 4] == [r.as_row() for r in second]
    assert [(r.background, r.donor, r.shape, r.quality) for r in first] != \
           [(r.background, r.donor, r.shape, r.quality) for r in other]
    # the unreadable file is reported once, and the pairs that need it are skipped
    assert len(failures) == 1 and failures[0].file.endswith("broken.png")
    assert all("broken" not in r.background + r.donor for r in first)
    assert all(r.background != r.donor and r.height == r.width == 48 for r in first)
    summary = summarize_collage_benchmark(first)
    assert summary["n"] == len(first)
    assert summary["mean_iou"] == pytest.approx(np.mean([r.iou for r in first]), abs=1e-4)
    assert sum(row["n"] for row in summary["by_quality"]) == len(first)
    assert sum(row["n"] for row in summary["by_shape"]) == len(first)


def test_calibration_scores_the_benchmark_collages_at_each_threshold(tiny_model, small_files):
    files = sorted(p for p in small_files.iterdir() if "broken" not in p.name)
    thresholds = (0.2, 0.4, 0.5, 0.6, 0.8)
    calibration = calibrate_flag_threshold(tiny_model, files, pairs=5, seed=2, thresholds=thresholds, crop=48)
    assert calibration.pairs == 5 and calibration.thresholds == thresholds
    for threshold, mean_iou in zip(thresholds, calibration.mean_iou):
        records, _ = collage_benchmark(tiny_model, files, pairs=5, seed=2, crop=48, threshold=threshold)
        assert mean_iou == pytest.approx(np.mean([r.iou for r in records]))
    assert calibration.best == thresholds[int(np.argmax(calibration.mean_iou))]
    assert calibration.as_dict()["best"] == calibration.best
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        calibrate_flag_threshold(tiny_model, files, pairs=1, thresholds=(0.5, 1.0))


def test_hat_means_give_the_mean_of_any_piecewise_linear_map():
    from jpegtrace.eval.calibration import CALIBRATION_KNOTS, _hat_means

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.random(500), [0.0, 1.0, 0.05]])
    knots = np.array(CALIBRATION_KNOTS)
    for _ in range(3):
        mapped = np.sort(rng.random(len(knots)))
        assert _hat_means(values, knots) @ mapped == pytest.approx(np.interp(values, knots, mapped).mean())
        # weighted as the reported QF is (by the evidence map): the weighted mean of the map
        weights = rng.random(values.shape) * (rng.random(values.shape) > 0.3)
        assert _hat_means(values, knots, weights) @ mapped == pytest.approx(
            np.average(np.interp(values, knots, mapped), weights=weights))


def test_calibration_solver_recovers_a_monotone_distortion():
    from jpegtrace.eval.calibration import CALIBRATION_KNOTS, _hat_means, _solve_calibration

    knots = np.array(CALIBRATION_KNOTS)
    truth = np.sqrt(knots)  # the calibration that undoes a network whose maps are squared
    rng = np.random.default_rng(0)
    features, targets = [], []
    for _ in range(300):  # test images: true quality t, the network's pixels around t ** 2
        t = rng.uniform(0, 1)
        pixels = np.clip(t ** 2 + rng.normal(0, 0.01, 400), 0, 1)
        features.append(_hat_means(pixels, knots))
        targets.append(np.interp(pixels, knots, truth).mean())
    fitted = _solve_calibration(np.array(features), np.array(targets), knots)
    np.testing.assert_allclose(fitted.values, truth, atol=0.02)
    # a reversed relation cannot be followed: the map stays non-decreasing
    backwards = _solve_calibration(np.array(features), 1 - np.array(targets), knots)
    assert all(b >= a for a, b in zip(backwards.values, backwards.values[1:]))
    # with a bound on the slope, the square root's steep start (10 between the first knots) is cut to it
    bounded = _solve_calibration(np.array(features), np.array(targets), knots, max_slope=1.6)
    slopes = np.diff(bounded.values) / np.diff(knots)
    assert slopes.min() >= -1e-9 and slopes.max() <= 1.6 + 1e-6 and np.diff(fitted.values)[0] / knots[1] > 5
    np.testing.assert_allclose(np.asarray(bounded.values)[knots >= 0.3], truth[knots >= 0.3], atol=0.05)  # caught up


def test_a_monotone_calibration_moves_the_weighted_median_with_it():
    """What lets fit_quality_calibration fit the median's map from each image's raw median."""
    from jpegtrace.analysis import weighted_median
    from jpegtrace.nn.weights import QualityCalibration

    calibration = QualityCalibration((0.0, 0.1, 0.5, 1.0), (0.0, 0.05, 0.7, 1.0))
    rng = np.random.default_rng(4)
    raw = rng.beta(2, 6, size=(120, 90)).astype(np.float32)
    weights = rng.random(raw.shape).astype(np.float32)
    mapped_median = weighted_median(calibration(raw), weights, high=1.0, resolution=1e-4)
    raw_median = weighted_median(raw, weights, high=1.0, resolution=1e-4)
    median_mapped = np.interp(raw_median, (0, 0.1, 0.5, 1), (0, 0.05, 0.7, 1))
    assert mapped_median == pytest.approx(median_mapped, abs=3e-4)  # a bin either way, times the slope


def test_quality_calibration_fit_does_better_than_none_on_its_own_images(photos):
    from jpegtrace.eval.calibration import CALIBRATION_KNOTS, fit_quality_calibration
    from jpegtrace.nn.qfnet import QUALITY_CHANNEL

    torch.manual_seed(0)
    model = QFNet(NetConfig(width=8, dilations=(1, 2, 1))).eval()
    with torch.no_grad():  # a network whose quality map is far off: a calibration has much to do
        model.layers[-1].bias[QUALITY_CHANNEL] += 0.3
    images = {name: image[:64, :64] for name, image in photos.items()}
    qualities = (10, 50, 90)  # every one of them, in 4:2:0 only: the fitted images are known
    calibration = fit_quality_calibration(model, images, qualities=qualities, per_image=3, variants=("4:2:0",))
    assert calibration.knots == CALIBRATION_KNOTS
    assert all(b >= a for a, b in zip(calibration.values, calibration.values[1:]))

    def errors():
        records = evaluate_model(model, images, (None, *qualities), grid_check=False)
        return np.array([r.estimated_quality - (r.quality or 100) for r in records])

    raw = errors()
    model.quality_calibration = calibration
    calibrated = errors()
    # the identity map is one of those the least-squares fit chose from (the solver's own accuracy
    # is checked above; this network's maps hardly depend on the QF, so little more can be asked)
    assert (calibrated ** 2).sum() < (raw ** 2).sum()
    for bad, reason in (({"per_image": 4}, "per_image"), ({"variants": ("4:1:1",)}, "unknown calibration variant"),
                        ({"variants": ()}, "no calibration variants")):
        with pytest.raises(ValueError, match=reason):
            fit_quality_calibration(model, images, qualities=qualities, **bad)
    with pytest.raises(ValueError, match="no images"):
        fit_quality_calibration(model, {})
    # flat images carry no evidence: nothing to fit (they would get "no evidence", and no QF)
    flat = {"grey": np.full((64, 64, 3), 128, np.uint8), "white": np.full((64, 64, 3), 255, np.uint8)}
    with pytest.raises(ValueError, match="no test image carries evidence"):
        fit_quality_calibration(model, flat, qualities=qualities, per_image=3, variants=("4:2:0",))
    # and among photos they change nothing: the fit leaves them out
    with_flat = fit_quality_calibration(model, {**images, **flat}, qualities=qualities, per_image=3,
                                        variants=("4:2:0",))
    np.testing.assert_allclose(with_flat.values, calibration.values, atol=1e-9)


def test_collages_use_the_models_flag_threshold_unless_told(photo):
    torch.manual_seed(0)
    model = QFNet(NetConfig(width=8, dilations=(1, 2, 1)), flag_threshold=0.7).eval()
    mask = rectangle_mask(64, 72)
    background, donor = photo[:64, :72], photo[10:74, 5:77]
    assert run_collage(model, background, donor, 50, mask).scores.threshold == 0.7
    told = run_collage(model, background, donor, 50, mask, threshold=0.3)
    assert told.scores.as_dict() == localization_scores(told.analysis.flag_map, mask, threshold=0.3).as_dict()


# --- data-set audits ----------------------------------------------------------------------------

def test_assess_images_marks_grayscale_and_lists_unreadable_files(tiny_model, small_files, photo):
    Image.fromarray(photo[:64, :64].mean(axis=2).astype(np.uint8)).save(small_files / "gray.png")
    seen = []
    records, failures = assess_images(tiny_model, sorted(small_files.iterdir()),
                                      on_result=lambda name, rgb, analysis: seen.append((name, rgb.shape)))
    assert len(records) == 4 and len(seen) == 4
    gray = [r for r in records if r.file.endswith("gray.png")]
    assert len(gray) == 1 and gray[0].grayscale and (gray[0].height, gray[0].width) == (64, 64)
    assert sum(r.grayscale for r in records) == 1
    assert len(failures) == 1 and "not an image" in failures[0].reason
    summary = summarize_assessment(records, failures)
    assert summary["n_files"] == 5 and summary["n_failed"] == 1 and summary["n_grayscale"] == 1
    assert summary["n_compressed"] + summary["n_uncompressed"] + summary["n_no_evidence"] == 4
    assert summary["n_no_evidence"] == 0  # crops of photos: all carry evidence
    assert all(r.verdict in VERDICTS and r.compressed == (r.verdict == "compressed") for r in records)
    assert sum(summary["histogram"]["counts"]) == summary["n_compressed"]


def test_assessment_histogram_counts_only_compressed_images():
    from jpegtrace.eval.audit import AssessmentRecord

    yes, no = "compressed", "never compressed"
    records = [AssessmentRecord("a", 8, 8, 32.0, 0.9, yes), AssessmentRecord("b", 8, 8, 34.0, 0.8, yes),
               AssessmentRecord("c", 8, 8, 77.0, 0.7, yes), AssessmentRecord("d", 8, 8, 99.0, 0.1, no),
               AssessmentRecord("e", 8, 8, 100.0, 0.6, yes),
               AssessmentRecord("f", 8, 8, None, None, "no evidence", evidence_share=0.0)]
    summary = summarize_assessment(records)
    counts = dict(zip(summary["histogram"]["edges"], summary["histogram"]["counts"]))
    assert counts[30.0] == 2 and counts[75.0] == 1 and counts[95.0] == 1  # QF 100 falls in the last bin
    assert sum(summary["histogram"]["counts"]) == 4
    assert summary["mean_quality_compressed"] == pytest.approx((32 + 34 + 77 + 100) / 4, abs=0.01)
    assert (summary["n_compressed"], summary["n_uncompressed"], summary["n_no_evidence"]) == (4, 1, 1)
    assert records[0].compressed and not records[3].compressed and not records[5].compressed
    row = records[5].as_row()
    assert (row["mean_quality"], row["mean_flag"], row["verdict"], row["evidence_share"]) == ("", "", "no evidence", 0.0)


def test_summary_scores_the_headline_qf_beside_the_networks():
    def record(image, quality, estimate, headline, source):
        return EvaluationRecord(image, quality, estimate, 0.9, "compressed", "compressed", "compressed",
                                headline_quality=headline, quality_source=source)

    records = [record("a", 50, 46.0, 50.0, "table (IJG)"), record("b", 50, 53.0, 53.0, "network"),
               record("a", 90, 88.0, 91.0, "table (non-standard)"), record("b", None, 99.0, 99.0, "network")]
    summary = summarize_evaluation(records)
    by_q = {r["quality"]: r for r in summary["per_quality"]}
    assert summary["qf_mae"] == pytest.approx((4 + 3 + 2) / 3)
    assert summary["headline_qf_mae"] == pytest.approx((0 + 3 + 1) / 3)
    assert by_q[50]["mean_headline"] == pytest.approx(51.5) and by_q[50]["table_share"] == 0.5
    assert by_q[90]["headline_mae"] == pytest.approx(1.0) and by_q[None]["headline_mae"] is None
    row = records[0].as_row()
    assert (row["headline_quality"], row["quality_source"]) == (50.0, "table (IJG)")


def test_evaluate_model_records_the_table_qf_of_a_readable_jpeg(photo, tiny_model):
    records = evaluate_model(tiny_model, {"photo": photo}, [50])
    assert records[0].quality_source == "table (IJG)" and records[0].headline_quality == 50.0


def test_evaluate_model_processes_jpegs_after_decoding_with_their_labels(photo, tiny_model):
    """``after_jpeg_seed``: each JPEG gets a gamma or mild noise after decoding (one draw per image and QF,
    the same in every run); the record keeps the JPEG's QF, and the table, whose lattice the processing
    breaks, is read less often than from the plain JPEGs."""
    plain = evaluate_model(tiny_model, {"photo": photo}, [30, 50])
    processed = evaluate_model(tiny_model, {"photo": photo}, [30, 50], after_jpeg_seed=11)
    again = evaluate_model(tiny_model, {"photo": photo}, [30, 50], after_jpeg_seed=11)
    assert [r.quality for r in processed] == [30, 50]
    assert [(r.estimated_quality, r.mean_flag) for r in processed] == [(r.estimated_quality, r.mean_flag) for r in again]
    assert [r.mean_flag for r in processed] != [r.mean_flag for r in plain]  # (a tiny model's median QF may stay put)
    assert all(r.quality_source == "table (IJG)" for r in plain)
    assert sum(r.quality_source == "table (IJG)" for r in processed) < 2
