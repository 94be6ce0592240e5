"""Inputs that are not what they seem: damaged JPEGs, other lossy formats, unusable arrays, slow files.

A JPEG that decodes from missing or corrupt data (libjpeg fills the rest in grey and only warns) is
refused, or with ``allow_damaged`` analysed with its filled-in area left out; a JPEG's own QF, a
lossy WebP and HEIF/AVIF are said; arrays with NaN are refused in words; a per-file time limit.
"""

import io
import json
import struct
import time

import numpy as np
import pytest
import torch
from PIL import Image, features

from jpegtrace import ImageReadError, analyze, read_image
from jpegtrace import analysis as analysis_module
from jpegtrace.cli import main
from jpegtrace.errors import TimeLimitError
from jpegtrace.eval import audit
from jpegtrace.io import DEFAULT_MAX_PIXELS, as_analysis_array, describe_file, read_analysis_input
from jpegtrace.jpeg import camera_like_tables, ijg_equivalent_quality
from jpegtrace.jpegfile import find_damage, parse_jpeg, repaired
from jpegtrace.limits import time_limit
from jpegtrace.nn.qfnet import NetConfig, QFNet
from jpegtrace.nn.weights import save_weights


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour waves with noise: textured everywhere, as a photo's detail."""
    y, x = np.mgrid[0:height, 0:width]
    waves = np.stack([128 + 60 * np.sin(x / 17 + y / 29), 128 + 60 * np.cos(x / 23 - y / 13),
                      128 + 50 * np.sin((x + y) / 31)], axis=-1)
    noise = np.random.default_rng(seed).normal(0, 12, (height, width, 3))
    return np.clip(waves + noise, 0, 255).astype(np.uint8)


def jpeg_bytes(image: np.ndarray, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", **options)
    return buf.getvalue()


def camera_jpeg(image: np.ndarray) -> bytes:
    """Like a camera's file: its own tables, restart markers every MCU row, EXIF before the frame."""
    luma, chroma = camera_like_tables(88, np.random.default_rng(3))
    exif = Image.Exif()
    exif[0x010F] = "jpegtrace camera"
    return jpeg_bytes(image, qtables=[luma.ravel().tolist(), chroma.ravel().tolist()], restart_marker_rows=1,
                      exif=exif.tobytes())


def with_frame_size(data: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF0/SOF2) edited to claim ``width`` x ``height``."""
    edited = bytearray(data)
    sof = next(i for i in range(len(edited) - 1) if edited[i] == 0xFF and edited[i + 1] in (0xC0, 0xC2))
    struct.pack_into(">HH", edited, sof + 5, height, width)
    return bytes(edited)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A small random network: nothing here needs accuracy."""
    torch.manual_seed(0)
    return save_weights(QFNet(NetConfig(width=4, dilations=(1, 2, 1))), tmp_path_factory.mktemp("w") / "w.safetensors")


@pytest.fixture(scope="module")
def model(weights):
    from jpegtrace.analysis import load_model

    return load_model(weights)


def _refused(path, **kwargs) -> str:
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kwargs)
    assert info.value.path == str(path)
    assert "\n" not in info.value.reason
    return info.value.reason


def _cli(capsys, *args):
    code = main([*map(str, args)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err.splitlines()


# --------------------------------------------------------------------------- sound JPEGs and their own QF

@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"restart_marker_rows": 1},
                                     {"optimize": True, "subsampling": 0}])
def test_a_sound_jpeg_is_read_with_its_own_qf(tmp_path, options):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes(texture(100, 130), quality=90, **options))
    array, notes = read_image(path)
    np.testing.assert_array_equal(array, np.asarray(Image.open(path)))
    assert notes == ("JPEG file, QF 90 by its own tables",)
    assert describe_file(path) == read_analysis_input(path).info
    info = describe_file(path)
    assert (info.format, info.lossy, info.file_quality, info.damaged) == ("JPEG", True, 90.0, False)


def test_camera_tables_get_their_nearest_qf_and_grayscale_jpegs_theirs(tmp_path):
    camera = tmp_path / "camera.jpg"
    camera.write_bytes(camera_jpeg(texture(64, 80)))
    luma = np.array(Image.open(camera).quantization[0]).reshape(8, 8)
    qf = ijg_equivalent_quality(luma)
    assert read_image(camera)[1] == (f"JPEG file, QF ≈ {qf} by its own tables (non-standard)",)
    assert describe_file(camera).file_quality == qf
    gray = tmp_path / "gray.jpg"
    gray.write_bytes(jpeg_bytes(texture(40, 40)[:, :, 0], quality=60))
    assert read_image(gray)[1] == ("JPEG file, QF 60 by its own tables",)


def test_sound_jpegs_of_every_kind_are_not_called_damaged():
    """Flat grey-128 blocks decode like libjpeg's fill, and a cropped last MCU hides most of its pixels:
    neither may pass for damage."""
    images = [texture(37, 51), np.full((48, 64, 3), 128, np.uint8), np.zeros((9, 9, 3), np.uint8),
              np.concatenate([texture(32, 64), np.full((32, 64, 3), 128, np.uint8)]), texture(1, 1)]
    for image in images:
        for options in ({"quality": 100}, {"quality": 30, "progressive": True}, {"quality": 75, "subsampling": 0},
                        {"quality": 95, "restart_marker_rows": 1, "optimize": True}):
            data = jpeg_bytes(image, **options)
            structure = parse_jpeg(data)
            assert structure.problems == () and not structure.truncated
            assert find_damage(repaired(data, structure), structure) is None, (image.shape, options)


def test_a_jpeg_missing_only_its_end_marker_is_read_with_a_note(tmp_path):
    path = tmp_path / "no-eoi.jpg"
    path.write_bytes(jpeg_bytes(texture(48, 64), quality=80)[:-2])
    _, notes = read_image(path)
    assert "JPEG file ends without its end marker (its image data is complete)" in notes


def test_an_mpo_file_is_read_as_its_first_jpeg(tmp_path):
    path = tmp_path / "a.mpo"
    frames = [Image.fromarray(texture(40, 48, seed)) for seed in (1, 2)]
    frames[0].save(path, format="MPO", save_all=True, append_images=frames[1:], quality=85)
    array, notes = read_image(path)
    assert array.shape == (40, 48, 3)
    assert "JPEG file, QF 85 by its own tables" in notes and describe_file(path).format == "MPO"


# --------------------------------------------------------------------------- damaged JPEGs are refused

@pytest.mark.parametrize("maker", [lambda image: jpeg_bytes(image, quality=90), camera_jpeg,
                                   lambda image: jpeg_bytes(image, quality=90, progressive=True)],
                         ids=["ijg", "camera", "progressive"])
def test_a_truncated_jpeg_is_refused_in_one_line(tmp_path, maker):
    data = maker(texture(160, 128))
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[:len(data) // 2])
    reason = _refused(path)
    assert reason.startswith("damaged JPEG: the file is truncated")
    assert "not decoded" in reason and "--allow-damaged" in reason
    assert describe_file(path).damaged


@pytest.mark.parametrize("maker", [lambda image: jpeg_bytes(image, quality=90), camera_jpeg],
                         ids=["ijg", "camera"])
def test_a_frame_header_claiming_a_larger_image_is_refused(tmp_path, maker):
    """640x480 of data in a header saying 1600x1200: libjpeg decodes it as mostly grey, without an error."""
    path = tmp_path / "large.jpg"
    path.write_bytes(with_frame_size(maker(texture(480, 640)), 1600, 1200))
    reason = _refused(path)
    # 4:2:0 MCUs of 16x16: the data's 40 x 30 MCUs fill the first 12 rows of 100 MCUs
    assert reason.startswith("damaged JPEG: ")
    assert "rows 192-1199 (84% of the image) not decoded" in reason


def test_a_frame_header_claiming_a_smaller_image_is_refused(tmp_path):
    path = tmp_path / "small.jpg"
    path.write_bytes(with_frame_size(jpeg_bytes(texture(128, 160), quality=90), 80, 64))
    assert "decoding ended before the end of the image data" in _refused(path)


def test_an_unexpected_marker_inside_the_data_is_refused_and_located(tmp_path):
    data = bytearray(jpeg_bytes(texture(128, 160), quality=90))
    scan = parse_jpeg(bytes(data)).scans[0]
    at = scan.start + (scan.end - scan.start) // 2
    data[at:at + 2] = b"\xff\xc0"  # a second frame header: libjpeg gives up there
    path = tmp_path / "marker.jpg"
    path.write_bytes(bytes(data))
    reason = _refused(path)
    assert "unexpected marker 0xFFC0 inside the image data" in reason and "not decoded" in reason
    read = read_analysis_input(path, allow_damaged=True)
    assert 0.3 < read.valid.mean() < 0.7


def test_a_missing_restart_marker_is_refused(tmp_path):
    data = camera_jpeg(texture(128, 160))
    at = parse_jpeg(data).scans[0].restarts[3][0]
    path = tmp_path / "restart.jpg"
    path.write_bytes(data[:at] + data[at + 2:])
    assert "restart markers out of order" in _refused(path)


def test_corrupt_entropy_data_is_mostly_refused():
    """Bytes overwritten in the middle: where the decoder loses its place and ends early or late, the
    file is refused; where it happens to find its place again exactly, nothing in the data shows it."""
    data = jpeg_bytes(texture(240, 320), quality=90)
    scan = parse_jpeg(data).scans[0]
    rng = np.random.default_rng(7)
    outcomes = []
    for _ in range(12):
        corrupt = bytearray(data)
        at = int(rng.integers(scan.start + 100, scan.end - 100))
        corrupt[at:at + 16] = rng.integers(0, 255, 16, dtype=np.uint8).tobytes()
        structure = parse_jpeg(bytes(corrupt))
        outcomes.append(find_damage(repaired(bytes(corrupt), structure), structure))
    found = [d for d in outcomes if d is not None]
    assert len(found) >= 3
    assert all(d.reasons for d in found)


def test_corrupt_data_in_one_restart_interval_is_located_there(tmp_path):
    data = bytearray(camera_jpeg(texture(128, 160)))
    scan = parse_jpeg(bytes(data)).scans[0]
    start, end = scan.restarts[2][0] + 2, scan.restarts[3][0]  # the fourth interval: MCU row 3
    data[start + 10:end - 10] = b"\x00" * (end - start - 20)
    path = tmp_path / "interval.jpg"
    path.write_bytes(bytes(data))
    reason = _refused(path)
    assert reason.startswith("damaged JPEG: ") and "rows 48-63 (" in reason
    read = read_analysis_input(path, allow_damaged=True)
    assert not read.valid[48:64].any() and read.valid[:48].all() and read.valid[64:].all()


def test_headers_the_parser_did_not_foresee_give_one_line(tmp_path):
    """Found by fuzzing: a 16-bit quantisation table of an odd length; and a scan of a component the
    frame lacks, sampling factors of 0."""
    gray = jpeg_bytes(texture(32, 40)[:, :, 0], quality=80, restart_marker_rows=1)
    dqt, sos, sof = gray.index(b"\xff\xdb"), gray.index(b"\xff\xda"), gray.index(b"\xff\xc0")
    odd = bytearray(gray)
    odd[dqt + 4] = 0x10  # 16-bit steps...
    struct.pack_into(">H", odd, dqt + 2, 66)  # ... in 63 bytes
    stranger, unsampled = bytearray(gray), bytearray(gray)
    stranger[sos + 5] = 9
    unsampled[sof + 11] = 0x00
    for data in (odd, stranger, unsampled):
        path = tmp_path / "odd.jpg"
        path.write_bytes(bytes(data))
        for allow in (False, True):
            try:
                read_image(path, allow_damaged=allow)
            except ImageReadError as exc:
                assert exc.reason and "\n" not in exc.reason


# --------------------------------------------------------------------------- ... or, if allowed, analysed

@pytest.fixture
def enlarged(tmp_path):
    """160x128 of data in a header claiming 320x256: the first 4 of 16 MCU rows decoded."""
    path = tmp_path / "enlarged.jpg"
    path.write_bytes(with_frame_size(jpeg_bytes(texture(128, 160), quality=90), 320, 256))
    return path


def test_allow_damaged_reads_with_a_note_and_the_decoded_area(enlarged):
    read = read_analysis_input(enlarged, allow_damaged=True)
    assert read.rgb.shape == (256, 320, 3) and read.valid.shape == (256, 320)
    assert read.valid[:64].all() and not read.valid[64:].any()
    assert "damaged JPEG (the image data ends before the image does): rows 64-255 not decoded, left out " \
           "(75% of the image)" in read.notes
    assert read.info.damaged and read.info.file_quality == 90.0
    # The old 3-tuple is unchanged; it says the same in its notes.
    rgb, grayscale, notes = as_analysis_array(enlarged, allow_damaged=True)
    np.testing.assert_array_equal(rgb, read.rgb)
    assert notes == read.notes and not grayscale


def test_analyze_leaves_the_undecoded_area_out(enlarged, model):
    with pytest.raises(ImageReadError, match="damaged JPEG"):
        analyze(enlarged, model)
    result = analyze(enlarged, model, allow_damaged=True)
    assert result.evidence_map.shape == (256, 320)
    assert (result.evidence_map[64:] == 0).all()
    assert result.evidence_map[:64].mean() > 0.5
    assert any(n.startswith("damaged JPEG") for n in result.notes)


def test_cli_refuses_a_damaged_jpeg_in_one_line_and_allows_it_on_request(capsys, weights, enlarged, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(texture(24, 32)).save(good)
    code, out, err = _cli(capsys, "analyze", "--model", weights, enlarged, good)
    assert code == 1
    assert len(err) == 1 and err[0].startswith(f"jpegtrace: error: {enlarged}: damaged JPEG: ")
    assert out.splitlines()[0].startswith(str(good))
    code, out, err = _cli(capsys, "analyze", "--allow-damaged", "--model", weights, enlarged)
    assert code == 0 and err == []
    assert "rows 64-255 not decoded, left out" in out and "JPEG file, QF 90 by its own tables" in out
    code, out, _ = _cli(capsys, "analyze", "--json", "--allow-damaged", "--model", weights, enlarged)
    record = json.loads(out)  # one JSON Lines record
    assert record["ok"] and any("not decoded" in n for n in record["notes"])
    assert record["evidence_share"] <= 0.25


# --------------------------------------------------------------------------- other formats

@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_lossy_webp_is_said_and_lossless_is_not(tmp_path):
    image = texture(48, 64)
    lossy, lossless, alpha = tmp_path / "lossy.webp", tmp_path / "lossless.webp", tmp_path / "alpha.webp"
    Image.fromarray(image).save(lossy, quality=80)
    Image.fromarray(image).save(lossless, lossless=True)
    Image.fromarray(np.dstack([image, np.full(image.shape[:2], 200, np.uint8)])).save(alpha, quality=80)  # VP8X
    note = "lossy WebP: its compression is not JPEG's; the maps say nothing about it"
    for path in (lossy, alpha):
        assert note in read_image(path)[1]
        assert describe_file(path).lossy is True and describe_file(path).format == "WEBP"
    assert note not in read_image(lossless)[1] and describe_file(lossless).lossy is False
    frames = [Image.fromarray(texture(16, 16, seed)) for seed in range(3)]
    animated = tmp_path / "animated.webp"
    frames[0].save(animated, save_all=True, append_images=frames[1:], quality=70)
    assert note in read_image(animated)[1]


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\0\0\0\0" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + struct.pack(">I", 8) + b"mdat"


@pytest.mark.parametrize("name,data,kind", [("a.heic", _ftyp(b"heic", b"mif1", b"heic"), "HEIF"),
                                            ("a.avif", _ftyp(b"avif", b"mif1", b"avif"), "AVIF"),
                                            ("b.heif", _ftyp(b"mif1", b"mif1"), "HEIF")])
def test_heif_and_avif_that_pillow_cannot_open_are_named(tmp_path, capsys, weights, name, data, kind):
    path = tmp_path / name
    path.write_bytes(data)
    reason = _refused(path)
    assert reason.startswith("HEIF/AVIF images are not supported (") and kind in reason
    assert describe_file(path).format == kind
    code, out, err = _cli(capsys, "analyze", "--model", weights, path)
    assert code == 1 and len(err) == 1 and "HEIF/AVIF images are not supported" in err[0]


def test_a_video_with_an_ftyp_box_is_not_called_heif(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(_ftyp(b"isom", b"isom", b"mp42"))
    assert "not an image file" in _refused(path)


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
def test_an_avif_pillow_reads_is_analysed_with_a_note(tmp_path):
    path = tmp_path / "a.avif"
    Image.fromarray(texture(32, 48)).save(path, quality=60)
    array, notes = read_image(path)
    assert array.shape == (32, 48, 3)
    assert any(n.startswith("AVIF file: its compression") for n in notes)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_arrays_with_nan_or_infinite_values_are_refused_in_words(bad):
    array = np.random.default_rng(0).random((8, 9, 3))
    array[3, 4, 1] = bad
    with pytest.raises(ImageReadError, match=r"^array has NaN or infinite values$"):
        as_analysis_array(array)
    with pytest.raises(ImageReadError, match="array has NaN or infinite values"):
        analyze(array.astype(np.float32), model=object())
    assert as_analysis_array(np.nan_to_num(array, posinf=1, neginf=0))[0].dtype == np.uint8


def test_a_floating_point_tiff_is_scaled_strip_by_strip_as_a_whole(tmp_path, monkeypatch):
    from jpegtrace import io as images

    values = np.random.default_rng(2).normal(0, 100, (37, 23)).astype(np.float32)
    values[5, 5], values[6, 6], values[7, 7] = np.nan, np.inf, -np.inf
    path = tmp_path / "f.tif"
    Image.fromarray(values, mode="F").save(path)
    monkeypatch.setattr(images, "_STRIP_PIXELS", 23 * 4)  # strips of 4 rows
    array, notes = read_image(path)
    finite = values[np.isfinite(values)].astype(np.float64)
    lo, hi = finite.min(), finite.max()
    expected = np.round((np.clip(np.nan_to_num(values.astype(np.float64), nan=lo, posinf=hi, neginf=lo), lo, hi)
                         - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    np.testing.assert_array_equal(array, expected)
    assert "floating-point image scaled to 8 bits" in notes


# --------------------------------------------------------------------------- limits of a batch run

def test_time_limit_raises_in_the_block_and_restores_the_handler():
    import signal

    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(TimeLimitError) as info, time_limit(0.05, "slow.png"):
        while True:
            time.sleep(0.005)
    assert str(info.value) == "slow.png: took longer than 0.05 s (time limit)"
    assert signal.getsignal(signal.SIGALRM) is before
    with time_limit(5):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with pytest.raises(ValueError):
        with time_limit(0):
            pass


@pytest.mark.parametrize("step", ["parse_jpeg", "find_damage"])
def test_a_time_limit_expiring_while_reading_stays_a_time_limit(tmp_path, monkeypatch, step):
    """Regression (a CI run of 2026-12-04): the limit expired inside the JPEG structure reader, whose
    catch-all turned it into 'cannot read the JPEG structure: ... (time limit)'."""
    import jpegtrace.io as io_module

    path = tmp_path / "slow.jpg"
    path.write_bytes(jpeg_bytes(texture(64, 64)))

    def slow(*args, **kwargs):
        while True:
            time.sleep(0.005)

    monkeypatch.setattr(getattr(io_module, "jpegfile"), step, slow)
    with pytest.raises(TimeLimitError) as info, time_limit(0.05, path.name):
        read_image(path)
    assert str(info.value) == "slow.jpg: took longer than 0.05 s (time limit)"


def _slow_for_tall_images(monkeypatch, module):
    real = analysis_module.analyze_array

    def analyze_array(rgb, *args, **kwargs):
        while rgb.shape[0] == 40:  # the "slow" file: never ends by itself
            time.sleep(0.005)
        return real(rgb, *args, **kwargs)

    monkeypatch.setattr(module, "analyze_array", analyze_array)


def test_analyze_time_limit_fails_the_slow_file_and_goes_on(capsys, weights, tmp_path, monkeypatch):
    slow, quick = tmp_path / "slow.png", tmp_path / "quick.png"
    Image.fromarray(texture(40, 24)).save(slow)
    Image.fromarray(texture(24, 24)).save(quick)
    _slow_for_tall_images(monkeypatch, analysis_module)
    code, out, err = _cli(capsys, "analyze", "--time-limit", "0.3", "--model", weights, slow, quick)
    assert code == 1
    assert err == [f"jpegtrace: error: {slow}: took longer than 0.3 s (time limit)"]
    assert out.splitlines()[0].startswith(str(quick))


def test_assess_time_limit_and_max_pixels_fail_those_files_and_go_on(capsys, weights, tmp_path, monkeypatch):
    folder, out = tmp_path / "data", tmp_path / "out"
    folder.mkdir()
    Image.fromarray(texture(40, 24)).save(folder / "slow.png")  # 960 pixels
    Image.fromarray(texture(24, 24)).save(folder / "quick.png")  # 576 pixels
    Image.fromarray(texture(32, 32)).save(folder / "large.png")  # 1024 pixels
    _slow_for_tall_images(monkeypatch, audit)
    code, stdout, err = _cli(capsys, "assess", str(folder), "--out", out, "--model", weights, "--quiet",
                             "--time-limit", "0.3", "--max-pixels", "1000")
    assert code == 1
    assert sorted(err) == [f"jpegtrace: error: large.png: {_refused(folder / 'large.png', max_pixels=1000)}",
                           "jpegtrace: error: slow.png: took longer than 0.3 s (time limit)"]
    report = json.loads((out / "assessment.json").read_text())
    assert report["n_analysed"] == 1 and report["n_failed"] == 2
    assert [row["file"] for row in report["images"] if row["ok"]] == ["quick.png"]  # failures are records too


def test_assess_refuses_a_damaged_jpeg_unless_allowed(capsys, weights, tmp_path, enlarged):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "enlarged.jpg").write_bytes(enlarged.read_bytes())
    code, _, err = _cli(capsys, "assess", str(folder), "--out", tmp_path / "a", "--model", weights, "--quiet")
    assert code == 1 and len(err) == 1 and "enlarged.jpg: damaged JPEG: " in err[0]
    code, _, err = _cli(capsys, "assess", str(folder), "--out", tmp_path / "b", "--model", weights, "--quiet",
                        "--allow-damaged")
    assert code == 0 and err == []
    rows = (tmp_path / "b" / "table.csv").read_text()
    assert "rows 64-255 not decoded, left out" in rows


def test_the_default_pixel_limit_keeps_the_worst_case_under_2_gib():
    # 23 bytes a pixel at worst (see jpegtrace.io.DEFAULT_MAX_PIXELS) over about 285 MiB of fixed cost
    assert DEFAULT_MAX_PIXELS == 64_000_000
    assert 285 + DEFAULT_MAX_PIXELS * 23 / 2**20 < 2048
