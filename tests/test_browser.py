"""The page in a real browser: headless Chromium loads the app, runs the examples, and the comparison shows
(verdicts and Grad-CAM after Analyze; the per-frame timeline drawn for the video), on a page that is not blank.

Chromium is Debian's (/usr/bin/chromium), driven through Playwright (PyPI ``playwright``, whose own browser
download is never used). Skipped when /usr/bin/chromium is absent (``make test`` installs it; by hand:
``apt-get install -y chromium``).

``SAVE_SCREENSHOT=1`` also writes the finished video comparison to docs/screenshot.png; it then uses the
embedded models under models/ when they are there, else the small untrained test models.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, sync_playwright

from app_server import REPO, make_models, serve_app

CHROMIUM = Path("/usr/bin/chromium")
SAVE = os.environ.get("SAVE_SCREENSHOT") == "1"
EMBEDDED = {"teacher": REPO / "models" / "teacher", "student": REPO / "models" / "student-kd"}
VERDICTS = ("fake", "real", "uncertain")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium "
                                "(apt-get install -y chromium, or make test)")


def wait_for(page: Page, expression: str, timeout: float, what: str):
    """The truthy value of ``expression`` once it has one (polled every 0.5 s), or a TimeoutError naming ``what``."""
    try:
        return page.wait_for_function(expression, timeout=timeout * 1000, polling=500).json_value()
    except Exception as e:  # Playwright's own TimeoutError does not say what was awaited
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}") from e


def screenshot(page: Page) -> Image.Image:
    return Image.open(io.BytesIO(page.screenshot(full_page=False))).convert("RGB")


def _text(selector: str) -> str:
    return f"(document.querySelector({json.dumps(selector)})?.innerText || '')"


CLICK_EXAMPLE = """(() => {
  const label = %s;
  const hit = [...document.querySelectorAll('button, td, tr, [role="button"], .gallery-item, div')]
    .filter(e => e.innerText && e.innerText.trim() === label);
  if (!hit.length) return false;
  hit[hit.length - 1].click();
  return true;
})()"""


IDLE = "[...document.querySelectorAll('[data-testid=status-tracker]')].every(e => e.classList.contains('hide'))"
# Finished: nothing pending, the status says so and both Labels hold a verdict; returns their texts.
FINISHED = (f"(() => {{ const s = {_text('#status')}, a = {_text('#verdict-a')}, b = {_text('#verdict-b')};"
            f" return {IDLE} && s.includes('Analysed') && {json.dumps(VERDICTS)}.some(v => a.includes(v))"
            f" && {json.dumps(VERDICTS)}.some(v => b.includes(v)) ? [s, a, b] : null }})()")
# Records that an event started (a progress tracker lost its 'hide' class), so old results are not mistaken
# for new ones.
WATCH_PENDING = """(() => {
  window.__pendingSeen = false;
  new MutationObserver(() => {
    if ([...document.querySelectorAll('[data-testid=status-tracker]')].some(e => !e.classList.contains('hide')))
      window.__pendingSeen = true;
  }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['class'], childList: true});
  return true;
})()"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("browser_app")
    if SAVE and all((p / "config.json").is_file() for p in EMBEDDED.values()):
        # DEEPFAKE_MODELS unset: the app adds models/student-scratch when it is there
        specs, env = {n: str(p) for n, p in EMBEDDED.items()}, {"DEEPFAKE_MODELS": None}
    else:
        specs, env = make_models(work / "models"), None
    with serve_app(specs, work / "run", env=env) as s:
        yield s


@pytest.fixture
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield chromium.new_page(viewport={"width": 1440, "height": 2000})
        finally:
            chromium.close()


def _assert_not_blank(shot: Image.Image) -> None:
    pixels = np.asarray(shot.resize((shot.width // 4, shot.height // 4)))
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    non_white = float((pixels.min(axis=-1) < 235).mean())
    assert colours > 500, f"only {colours} distinct colours: the page looks blank"
    assert non_white > 0.05, f"only {non_white:.1%} of the page is not white"


def _run_example(page: Page, url: str, label: str, stem: str) -> None:
    """Open the page, click the example called ``label`` and wait for its (lazily cached) result."""
    page.goto(url, timeout=90_000)
    wait_for(page, "!!document.querySelector('#analyze')", 90, "the page to render")
    wait_for(page, CLICK_EXAMPLE % json.dumps(label), 30, f"the example {label!r} to be clickable")
    wait_for(page, f"{_text('#media')}.includes({json.dumps(stem)})", 60, "the example file to load")
    wait_for(page, FINISHED, 240, f"the result of the example {label!r}")


def test_example_then_analyze_shows_the_comparison(server, browser, tmp_path):
    from deepfake_space.examples import face_crops

    crops = face_crops()
    assert crops, "examples/ holds no face crops"
    _run_example(browser, server.url, crops[0].label, crops[0].path.stem)
    browser.evaluate(WATCH_PENDING)
    browser.evaluate("document.querySelector('#analyze').click(), true")
    verdicts = wait_for(browser, f"window.__pendingSeen && {FINISHED}", 240, "both verdicts from Analyze")
    assert "Analysed" in verdicts[0] and all(any(v in text for v in VERDICTS) for text in verdicts[1:])
    assert browser.evaluate("document.querySelectorAll('#cams-a img, #cams-b img').length") >= 2, "no Grad-CAM images"
    time.sleep(1.0)  # let the images paint
    shot = screenshot(browser)
    shot.save(tmp_path / "screenshot.png")
    _assert_not_blank(shot)


def test_video_example_draws_the_timeline(server, browser, tmp_path):
    _run_example(browser, server.url, "video of a moving face (synthesized)", "moving_face")
    strokes = wait_for(
        browser, "(() => { const s = [...document.querySelectorAll('#timeline .mark-line path')]"
        ".map(p => getComputedStyle(p).stroke); return s.length >= 2 ? s : null })()", 30, "the timeline's lines")
    assert all(s not in ("none", "") for s in strokes), f"the timeline's lines are not drawn: {strokes}"
    assert browser.evaluate("document.querySelectorAll('#frames-gallery img').length") >= 2, "no sampled frames shown"
    time.sleep(1.5)  # let the images and the plot paint
    shot = screenshot(browser)
    shot.save(tmp_path / "screenshot.png")
    _assert_not_blank(shot)
    if SAVE:
        (REPO / "docs").mkdir(exist_ok=True)
        shot.save(REPO / "docs" / "screenshot.png", optimize=True)
