"""The page in a real browser: headless Chromium loads the app, runs the examples, and the comparison shows
(verdicts and Grad-CAM after Analyze; the per-frame timeline drawn for the video), on a page that is not blank.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``: JSON messages
ending in NUL on file descriptors 3 and 4), so no websocket package and no port are needed. Skipped
when /usr/bin/chromium is absent (``make test`` installs it; by hand: ``apt-get install -y chromium``).

``SAVE_SCREENSHOT=1`` also writes the finished video comparison to docs/screenshot.png; it then uses the
embedded models under models/ when they are there, else the small untrained test models.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import select
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_server import REPO, make_models, serve_app

CHROMIUM = Path("/usr/bin/chromium")
SAVE = os.environ.get("SAVE_SCREENSHOT") == "1"
EMBEDDED = {"teacher": REPO / "models" / "teacher", "student": REPO / "models" / "student-kd"}
VERDICTS = ("fake", "real", "uncertain")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium "
                                "(apt-get install -y chromium, or make test)")


class Browser:
    """Headless Chromium with one page, controlled over the DevTools pipe."""

    def __init__(self, profile: Path, log: Path, width: int = 1440, height: int = 2000) -> None:
        self._to_chrome_r, self._to_chrome_w = os.pipe()
        self._from_chrome_r, self._from_chrome_w = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
                 f"--user-data-dir={profile}", f"--window-size={width},{height}", "--remote-debugging-pipe"]
        to_r, from_w = self._to_chrome_r, self._from_chrome_w

        def pipes_on_3_and_4() -> None:  # in the child, before exec: Chromium reads fd 3, writes fd 4
            a, b = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        with log.open("w") as out:
            self.process = subprocess.Popen([str(CHROMIUM), *flags, "about:blank"], stdout=out,
                                            stderr=subprocess.STDOUT, pass_fds=(3, 4), preexec_fn=pipes_on_3_and_4)
        os.close(self._to_chrome_r)
        os.close(self._from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        for fd in (self._to_chrome_w, self._from_chrome_r):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome_r], [], [], left)[0]:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._from_chrome_r, 1 << 20)
            if not chunk:
                raise ConnectionError(f"Chromium closed the pipe (exit code {self.process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, timeout: float = 30.0, browser: bool = False) -> dict:
        """One DevTools command; events that arrive meanwhile are dropped."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not browser:
            message["sessionId"] = self.session
        os.write(self._to_chrome_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": url}, browser=True)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 browser=True)["sessionId"]
        self.send("Runtime.enable")

    def js(self, expression: str, timeout: float = 30.0):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.5)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")

    def screenshot(self) -> Image.Image:
        data = self.send("Page.captureScreenshot", {"format": "png"}, timeout=60)["data"]
        return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


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
def browser(tmp_path):
    b = Browser(tmp_path / "profile", tmp_path / "chromium.log")
    try:
        yield b
    finally:
        b.close()


def _assert_not_blank(shot: Image.Image) -> None:
    pixels = np.asarray(shot.resize((shot.width // 4, shot.height // 4)))
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    non_white = float((pixels.min(axis=-1) < 235).mean())
    assert colours > 500, f"only {colours} distinct colours: the page looks blank"
    assert non_white > 0.05, f"only {non_white:.1%} of the page is not white"


def _run_example(browser: Browser, url: str, label: str, stem: str) -> None:
    """Open the page, click the example called ``label`` and wait for its (lazily cached) result."""
    browser.open(url)
    browser.wait_for("!!document.querySelector('#analyze')", 90, "the page to render")
    browser.wait_for(CLICK_EXAMPLE % json.dumps(label), 30, f"the example {label!r} to be clickable")
    browser.wait_for(f"{_text('#media')}.includes({json.dumps(stem)})", 60, "the example file to load")
    browser.wait_for(FINISHED, 240, f"the result of the example {label!r}")


def test_example_then_analyze_shows_the_comparison(server, browser, tmp_path):
    from deepfake_space.examples import face_crops

    crops = face_crops()
    assert crops, "examples/ holds no face crops"
    _run_example(browser, server.url, crops[0].label, crops[0].path.stem)
    browser.js(WATCH_PENDING)
    browser.js("document.querySelector('#analyze').click(), true")
    verdicts = browser.wait_for(f"window.__pendingSeen && {FINISHED}", 240, "both verdicts from Analyze")
    assert "Analysed" in verdicts[0] and all(any(v in text for v in VERDICTS) for text in verdicts[1:])
    assert browser.js("document.querySelectorAll('#cams-a img, #cams-b img').length") >= 2, "no Grad-CAM images"
    time.sleep(1.0)  # let the images paint
    shot = browser.screenshot()
    shot.save(tmp_path / "screenshot.png")
    _assert_not_blank(shot)


def test_video_example_draws_the_timeline(server, browser, tmp_path):
    _run_example(browser, server.url, "video of a moving face (synthesized)", "moving_face")
    strokes = browser.wait_for(
        "(() => { const s = [...document.querySelectorAll('#timeline .mark-line path')]"
        ".map(p => getComputedStyle(p).stroke); return s.length >= 2 ? s : null })()", 30, "the timeline's lines")
    assert all(s not in ("none", "") for s in strokes), f"the timeline's lines are not drawn: {strokes}"
    assert browser.js("document.querySelectorAll('#frames-gallery img').length") >= 2, "no sampled frames shown"
    time.sleep(1.5)  # let the images and the plot paint
    shot = browser.screenshot()
    shot.save(tmp_path / "screenshot.png")
    _assert_not_blank(shot)
    if SAVE:
        (REPO / "docs").mkdir(exist_ok=True)
        shot.save(REPO / "docs" / "screenshot.png", optimize=True)
