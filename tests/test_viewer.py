"""The per-image viewer page and the assessment page: self-contained, offline, and the values they show are the maps'.

The browser tests drive Debian's Chromium through Playwright (no ``playwright install`` needed); they skip,
saying why, where either is missing. CI installs both (``.ci/run``, the ``test`` extra).
"""

import base64
import dataclasses
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jpegtrace.analysis import summarize
from jpegtrace.grid.check import GridEvidence
from jpegtrace.viewer import FLAG_STEP, QF_STEP, map_channels, write_viewer

HEIGHT, WIDTH = 192, 256
#: The rectangle where the image was "compressed": top, left, bottom, right (bottom and right exclusive).
BOX = (48, 64, 144, 176)
INSIDE, OUTSIDE = (100, 90), (20, 170)  # (x, y) pixels inside and outside BOX
REGIONS = [{"box": list(BOX), "kind": "flag", "quality_inside": 40.0, "quality_around": 90.0,
            "area_share": 96 * 112 / (HEIGHT * WIDTH), "score": 0.93}]


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A textured RGB image (a gradient with noise), so that overlays visibly change its screenshot."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.stack([xx * 255 / WIDTH, yy * 255 / HEIGHT, np.full_like(xx, 128.0)], axis=2)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def analysis():
    """Flag high (0.95) and QF 40 inside BOX, flag 0.05 and QF 90 elsewhere; no evidence in a left strip."""
    top, left, bottom, right = BOX
    raw = np.empty((2, HEIGHT, WIDTH), np.float32)
    raw[0], raw[1] = 0.1, 0.05  # normalised quality 0.1 is QF 90
    raw[0, top:bottom, left:right], raw[1, top:bottom, left:right] = 0.6, 0.95
    raw += np.random.default_rng(1).normal(0, 0.004, raw.shape).astype(np.float32)  # values between the steps
    evidence = np.ones((HEIGHT, WIDTH), np.float32)
    evidence[:, :8] = 0.0
    return summarize(raw, evidence=evidence, grid=GridEvidence(score=23.4, grid_offset=(3, 5), coefficients=4000),
                     notes=("alpha channel dropped",))


@pytest.fixture(scope="module")
def page(tmp_path_factory, image, analysis) -> Path:
    return write_viewer(tmp_path_factory.mktemp("viewer") / "photo.html", image, analysis, regions=REGIONS,
                        title="photo.png")


def _embedded_png(html: str, element_id: str) -> np.ndarray:
    found = re.search(rf'<script type="text/plain" id="{element_id}">([A-Za-z0-9+/=]*)</script>', html)
    assert found, element_id
    with Image.open(io.BytesIO(base64.b64decode(found.group(1)))) as im:
        return np.asarray(im)


# --- the file itself ----------------------------------------------------------------------------

def test_the_page_references_no_outside_resource(page):
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"(?i)https?://|ftp://|wss?://", html)  # ":" is not base64, so no payload can match
    tags = re.findall(r"<[a-zA-Z][^<>]*>", html)
    assert tags and not [t for t in tags if re.search(r"(?i)\b(?:src|href|action|srcset|poster)\s*=", t)]
    # The script sets sources only to blob: URLs of the embedded bytes.
    assert re.findall(r"\.src\s*=\s*([\w.]+)\(", html) == ["URL.createObjectURL"]
    assert not re.search(r"(?i)\burl\(|@import|<link\b|<iframe\b|\bfetch\(|XMLHttpRequest|WebSocket", html)
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert sorted(p.name for p in page.parent.iterdir()) == ["photo.html"]  # one file, no temporary left


def test_the_page_embeds_the_image_and_the_maps_at_full_resolution(page, image, analysis):
    html = page.read_text(encoding="utf-8")
    assert np.array_equal(_embedded_png(html, "image-png"), image)  # lossless
    maps = _embedded_png(html, "maps-png")
    assert maps.shape == (HEIGHT, WIDTH, 3) and np.array_equal(maps, map_channels(analysis))
    # Quantisation: QF to 0.5, flag and evidence to 1/255, each rounded to the nearest step.
    assert np.abs(maps[:, :, 0] * QF_STEP - analysis.quality_map).max() <= QF_STEP / 2 + 1e-4
    assert np.abs(maps[:, :, 1] * FLAG_STEP - analysis.flag_map).max() <= FLAG_STEP / 2 + 1e-6
    assert np.abs(maps[:, :, 2] * FLAG_STEP - analysis.evidence_map).max() <= FLAG_STEP / 2 + 1e-6


def test_the_summary_names_the_verdict_qf_evidence_and_grid(page, analysis):
    html = page.read_text(encoding="utf-8")
    assert f'<p class="verdict compressed">compressed</p>' in html  # the grid was found
    assert f"{analysis.headline_quality:.1f} <span class=small>(network)</span>" in html
    assert f"{100 * analysis.evidence_share:.1f} %" in html
    assert "score 23.4 (found" in html and "(3, 5)" in html  # the grid's offset
    assert "alpha channel dropped" in html and "<h1>photo.png</h1>" in html
    assert "<td class=num>48,64,144,176</td>" in html  # the region's box, in the regions table


def test_regions_are_checked_clipped_and_optional(tmp_path, image, analysis):
    @dataclasses.dataclass
    class Found:  # the regions of another module may come as dataclasses of the same fields
        box: tuple
        kind: str = "quality"
        quality_inside: float | None = None
        quality_around: float | None = float("nan")
        area_share: float = 0.5
        score: float = 1.0

    path = write_viewer(tmp_path / "a.html", image, analysis, regions=[Found(box=(-5, -5, 500, 10))])
    assert "-5" not in path.read_text().split('id="config">')[1].split("</script>")[0]  # clipped to the image
    for box in ([10, 10, 10, 20], [0, 0, 5], [300, 0, 400, 10], ["a", 0, 1, 1]):
        with pytest.raises(ValueError, match="box"):
            write_viewer(tmp_path / "b.html", image, analysis, regions=[{"box": box}])
    assert not (tmp_path / "b.html").exists()
    plain = write_viewer(tmp_path / "c.html", image, analysis).read_text()
    assert "No regions were given" in plain and '"regions": []' in plain


def test_text_is_escaped_and_sizes_are_checked(tmp_path, image, analysis):
    hostile = "</script><script>alert(1)</script>"
    path = write_viewer(tmp_path / "x.html", image, analysis, title=hostile,
                        regions=[{**REGIONS[0], "kind": hostile}])
    html = path.read_text()
    assert html.count("<script>alert") == 0 and "&lt;/script&gt;" in html
    with pytest.raises(ValueError, match="size"):
        write_viewer(tmp_path / "y.html", image[:, :-1], analysis)


def test_a_grayscale_image_is_embedded_as_one_channel(tmp_path, analysis):
    gray = np.random.default_rng(2).integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
    path = write_viewer(tmp_path / "g.html", np.broadcast_to(gray[:, :, None], (HEIGHT, WIDTH, 3)), analysis)
    assert np.array_equal(_embedded_png(path.read_text(), "image-png"), gray)


def test_assessment_page_links_pages_and_shows_both_thumbnails(tmp_path, image, analysis):
    html = _assessment(tmp_path, image, analysis)
    assert '<a href="pages/00001%20odd%23name.html"' in html  # percent-encoded relative link
    assert 'src="thumbnails/00001_flag.png"' in html and 'src="thumbnails/00001_quality.png"' in html
    assert "<th>quality map</th>" in html
    with Image.open(tmp_path / "thumbnails" / "00001_quality.png") as im:
        assert max(im.size) == 160


def _assessment(out: Path, image, analysis) -> str:
    from jpegtrace.eval.audit import AssessmentRecord, summarize_assessment
    from jpegtrace.eval.reports import save_thumbnails, write_assessment_report

    long_name = "a-very-long-folder-name-without-any-spaces/" * 4 + "image_with_a_long_name.png"
    notes = tuple(f"note {i}: a long remark about how this file was read and what was done to it" for i in range(6))
    from jpegtrace.record import analysis_record

    records = [AssessmentRecord(file=name, height=HEIGHT, width=WIDTH, mean_quality=analysis.mean_quality,
                                mean_flag=analysis.mean_flag, verdict=analysis.verdict, notes=notes, grid_score=23.4,
                                quality=analysis.headline_quality, record=analysis_record(analysis, file=name))
               for name in ("odd#name.png", long_name)]
    thumbnails = {r.file: save_thumbnails(out, i, image, analysis.flag_map, quality_map=analysis.quality_map)
                  for i, r in enumerate(records, 1)}
    pages = {"odd#name.png": "pages/00001 odd#name.html"}
    write_viewer(out / "pages" / "00001 odd#name.html", image, analysis)
    written = write_assessment_report(out, records, [], summarize_assessment(records, []), thumbnails, pages=pages)
    return written["html"].read_text()


# --- in a browser -------------------------------------------------------------------------------

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium); Playwright drives the system's one")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def opened(browser):
    """``opened(path)``: a 1280 x 800 page showing ``path`` once it is ready, and the lists of its console
    errors and requests."""
    pages = []

    def open_page(path: Path):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        pages.append(page)
        errors, requests = [], []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(path.as_uri())
        return page, errors, requests

    yield open_page
    for page in pages:
        page.close()


def _screen_point(page, x: int, y: int) -> tuple[float, float]:
    box = page.locator("#stack").bounding_box()
    return box["x"] + (x + 0.5) * box["width"] / WIDTH, box["y"] + (y + 0.5) * box["height"] / HEIGHT


def _readout(page, x: int, y: int) -> dict:
    page.mouse.move(*_screen_point(page, x, y))
    readout = page.locator("#readout")
    return {key: readout.get_attribute(f"data-{key}") for key in ("x", "y", "qf", "flag", "evidence")} | {
        "text": readout.text_content()}


def _screenshot(page) -> np.ndarray:
    with Image.open(io.BytesIO(page.locator("#stack").screenshot())) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


@pytest.mark.slow  # a browser end to end, seconds: `make test` (CI) runs it, `make check` leaves it out
def test_the_viewer_in_chromium(opened, page, analysis):
    tab, errors, requests = opened(page)
    tab.wait_for_selector("body[data-ready]", timeout=20_000)

    # Moving the opacity slider changes what the image area shows.
    slider = tab.locator("#opacity")
    slider.focus()
    tab.keyboard.press("Home")
    assert tab.locator("#opacity-value").text_content() == "0 %"
    clear = _screenshot(tab)
    tab.keyboard.press("End")
    assert tab.locator("#opacity-value").text_content() == "100 %"
    covered = _screenshot(tab)
    assert clear.shape == covered.shape and np.abs(clear - covered).mean() > 20
    for _ in range(10):
        tab.keyboard.press("ArrowLeft")  # steps of 0.05: back to half opacity
    assert tab.locator("#opacity-value").text_content() == "50 %"
    half = _screenshot(tab)
    assert 5 < np.abs(half - covered).mean() < np.abs(clear - covered).mean()

    # The readout under the cursor: the pixel's own values, at every zoom.
    for zoom in ("#zoom-fit", "#zoom-100", "#zoom-200"):
        tab.click(zoom)
        if zoom == "#zoom-200":  # the rectangle's pixel may lie outside the view: bring it in
            tab.evaluate("([x, y]) => { const v = document.getElementById('viewport');"
                         " v.scrollLeft = 2 * x - v.clientWidth / 2; v.scrollTop = 2 * y - v.clientHeight / 2; }",
                         list(INSIDE))
        inside = _readout(tab, *INSIDE)
        assert (int(inside["x"]), int(inside["y"])) == INSIDE, zoom
        assert float(inside["qf"]) == pytest.approx(40, abs=1.0) and float(inside["flag"]) > 0.9, zoom
        assert float(inside["qf"]) == pytest.approx(analysis.quality_map[INSIDE[1], INSIDE[0]], abs=QF_STEP / 2 + 1e-4)
        assert float(inside["flag"]) == pytest.approx(analysis.flag_map[INSIDE[1], INSIDE[0]], abs=FLAG_STEP / 2 + 1e-6)
        assert re.search(r"QF 4\d\.\d · flag 0\.9\d\d · evidence 1\.000 · in region 1$", inside["text"]), inside["text"]
    tab.click("#zoom-fit")
    outside = _readout(tab, *OUTSIDE)
    assert float(outside["qf"]) == pytest.approx(90, abs=1.0) and float(outside["flag"]) < 0.1
    assert "in region" not in outside["text"]
    assert float(_readout(tab, 3, 100)["evidence"]) == 0.0  # the strip without evidence

    # Every pixel the script reads is the embedded byte (no colour management, no premultiplication).
    expected = map_channels(analysis)
    rng = np.random.default_rng(5)
    points = [[int(x), int(y)] for x, y in zip(rng.integers(0, WIDTH, 300), rng.integers(0, HEIGHT, 300))]
    values = tab.evaluate("(points) => points.map(([x, y]) => { const v = jpegtraceViewer.valueAt(x, y);"
                          " return [v.qf * 2, Math.round(v.flag * 255), Math.round(v.evidence * 255)]; })", points)
    assert values == [expected[y, x].tolist() for x, y in points]

    # Zoom to 100 %: one image pixel per CSS pixel; fit fills the window's image area instead.
    width = "document.getElementById('photo').getBoundingClientRect().width"
    assert tab.evaluate(width) > 1.5 * WIDTH  # fit enlarges this small image
    tab.click("#zoom-100")
    assert tab.evaluate(width) == WIDTH == tab.evaluate("document.getElementById('photo').naturalWidth")
    assert tab.evaluate("document.getElementById('overlay').getBoundingClientRect().width") == WIDTH
    assert tab.get_attribute("#zoom-100", "aria-pressed") == "true"

    # The layers: the region is drawn with its label and can be hidden; the quality overlay differs from the flag's.
    assert tab.locator(".region").count() == 1 and "QF 40 in, 90 around" in tab.locator(".region").text_content()
    tab.uncheck("#show-regions")
    assert not tab.locator(".region").is_visible()
    flag_view = _screenshot(tab)
    tab.check("input[name=layer][value=quality]")
    assert np.abs(_screenshot(tab) - flag_view).mean() > 5
    assert tab.locator(".legend.active").get_attribute("data-layer") == "quality"

    assert errors == []
    assert all(url == page.as_uri() or url.startswith(("data:", "blob:")) for url in requests), requests


@pytest.mark.slow
def test_the_assessment_page_fits_a_1280_pixel_window(opened, tmp_path, image, analysis):
    _assessment(tmp_path, image, analysis)
    tab, errors, _ = opened(tmp_path / "index.html")
    tab.wait_for_load_state("load")
    assert tab.evaluate("document.documentElement.scrollWidth") <= tab.evaluate("document.documentElement.clientWidth")
    notes_height = tab.locator("td.notes").first.bounding_box()["height"]
    assert notes_height > 40  # the long notes wrapped onto several lines
    tab.click("a[title='open the page of odd#name.png'] >> nth=-1")  # the file name's link opens its page
    tab.wait_for_selector("body[data-ready]", timeout=20_000)
    assert tab.url.endswith("/pages/00001%20odd%23name.html")
    assert errors == []
