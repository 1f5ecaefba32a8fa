"""`genre-cnn serve`: the page in a real headless Chromium, and the upload API over plain HTTP.

    .venv/bin/python -m pytest tests/test_serve.py

The browser test needs Debian's chromium + chromium-driver (`.ci/run` installs them) and selenium (the dev
extra); it is skipped, saying which is missing, without them. Every test serves a CNN trained on the demo set.
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import GTZAN_MINI, needs_gtzan_mini

pytest.importorskip("starlette", reason="the app extra is not installed: pip install -e .[app]")
pytest.importorskip("uvicorn", reason="the app extra is not installed: pip install -e .[app]")

CLIP = GTZAN_MINI / "genres" / "jazz" / "jazz.00005.wav"


@pytest.fixture(scope="module")
def ckpt(demo_run) -> Path:
    from genre_cnn.inference.predict import latest_checkpoint

    return latest_checkpoint(demo_run["root"], model="cnn")  # the CNN: a point per 3-s window, and chroma


@pytest.fixture(scope="module")
def server(ckpt, tmp_path_factory):
    """The app on a free localhost port, with a 1 MB upload limit and its own upload folder."""
    from genre_cnn.app.serve import make_app, serve_in_thread
    from genre_cnn.inference.predict import load_model

    uploads = tmp_path_factory.mktemp("uploads")
    url, stop = serve_in_thread(make_app(load_model(ckpt), max_mb=1.0, upload_dir=uploads))
    yield {"url": url, "uploads": uploads}
    stop()


@pytest.fixture(scope="module")
def server_big(ckpt, tmp_path_factory):
    """The same with the default 50 MB limit, for real 30-s clips (1.3 MB)."""
    from genre_cnn.app.serve import make_app, serve_in_thread
    from genre_cnn.inference.predict import load_model

    uploads = tmp_path_factory.mktemp("uploads_big")
    url, stop = serve_in_thread(make_app(load_model(ckpt), upload_dir=uploads))
    yield {"url": url, "uploads": uploads}
    stop()


def post(url: str, body, name: str, headers: dict | None = None) -> tuple[int, dict]:
    """POSTs `body` (bytes, or an iterable of chunks: sent chunked, without a length) as the file `name`."""
    req = urllib.request.Request(f"{url}/api/analyse?name={name}", data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def expected_top(ckpt: Path, clip: Path) -> str:
    from genre_cnn.inference.api import load_model, predict_files

    results, errors = predict_files(load_model(ckpt), [clip], progress=False)
    assert not errors
    return results[0]["top"][0]["genre"]


def test_page_and_info_are_served(server, ckpt):
    with urllib.request.urlopen(server["url"] + "/", timeout=10) as resp:
        assert resp.status == 200 and b'id="drop"' in resp.read()
    with urllib.request.urlopen(server["url"] + "/api/info", timeout=10) as resp:
        info = json.loads(resp.read())
    assert info["checkpoint"] == str(ckpt) and info["model"] == "WindowClassifier" and info["max_mb"] == 1.0
    assert info["max_minutes"] == 15


def test_text_file_named_wav_is_a_clear_422_and_leaves_no_file(server):
    status, body = post(server["url"], b"this is not audio\n" * 100, "notes.wav")
    assert status == 422
    assert body["error"] == "notes.wav: not an audio file (it holds text)", body
    assert "Traceback" not in body["error"] and "\n" not in body["error"]
    assert list(server["uploads"].iterdir()) == []


def test_empty_and_too_short_uploads_say_why(server, demo_dir):
    assert post(server["url"], b"", "empty.wav") == (400, {"error": "empty.wav: empty upload"})
    import numpy as np
    import soundfile as sf

    short = Path(server["uploads"]).parent / "short.wav"
    sf.write(short, np.full(2205, 0.5, dtype=np.float32), 22050)  # 0.1 s
    status, body = post(server["url"], short.read_bytes(), "short.wav")
    assert status == 422 and body["error"].startswith("short.wav: too short"), body


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_upload_is_refused_while_streaming(server, chunked):
    big = b"\0" * (2 * 1024 * 1024)  # 2 MB > the 1 MB limit
    body = (big[i:i + 65536] for i in range(0, len(big), 65536)) if chunked else big
    assert post(server["url"], body, "huge.wav") == (413, {"error": "huge.wav: larger than the 1 MB limit (--max-mb)"})
    assert list(server["uploads"].iterdir()) == []


def test_a_demo_clip_gives_the_same_genre_as_predict(server, ckpt, demo_dir):
    clip = sorted(demo_dir.rglob("*.wav"))[0]
    status, r = post(server["url"], clip.read_bytes(), clip.name)
    assert status == 200, r
    assert r["genres"][max(range(len(r["genres"])), key=r["probabilities"].__getitem__)] == expected_top(ckpt, clip)
    assert len(r["window_times"]) == len(r["window_probabilities"]) > 1  # 8-s clip, 3-s windows
    assert all(abs(sum(p) - 1) < 1e-4 for p in r["window_probabilities"])
    assert r["logmel_png"].startswith("data:image/png;base64,") and r["chroma_png"].startswith("data:image/png")
    assert list(server["uploads"].iterdir()) == []


def test_the_server_answers_while_a_model_runs(server, demo_dir, monkeypatch):
    import threading

    from genre_cnn.app import serve
    from genre_cnn.audio.decode import AudioError

    release, started = threading.Event(), threading.Event()

    def slow_analyse(model, path, check=None):
        started.set()
        release.wait(30)
        raise AudioError(f"{path}: released")

    monkeypatch.setattr(serve, "analyse", slow_analyse)
    clip = sorted(demo_dir.rglob("*.wav"))[0]
    upload = threading.Thread(target=post, args=(server["url"], clip.read_bytes(), clip.name))
    upload.start()
    assert started.wait(30)
    with urllib.request.urlopen(server["url"] + "/api/info", timeout=5) as resp:  # not stuck behind the model
        assert resp.status == 200
    release.set()
    upload.join(30)


def test_dense_model_gives_one_point(demo_run, demo_dir):
    from genre_cnn.app.serve_analysis import analyse
    from genre_cnn.inference.predict import latest_checkpoint, load_model

    model = load_model(latest_checkpoint(demo_run["root"], model="dense"))
    r = analyse(model, sorted(demo_dir.rglob("*.wav"))[0])
    assert r["model"] == "HandcraftedClassifier" and len(r["window_probabilities"]) == 1
    assert r["window_probabilities"][0] == pytest.approx(r["probabilities"])
    assert r["logmel"].shape[0] == model.frontend.config.n_mels and r["chroma"].shape[0] == 12


def test_cli_without_the_app_extra_says_what_to_install(monkeypatch, capsys):
    from genre_cnn.app.cli import main

    monkeypatch.delitem(sys.modules, "genre_cnn.app.serve", raising=False)
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` now fails as if not installed
    assert main(["serve"]) == 1
    assert capsys.readouterr().err.strip() == "error: genre-cnn serve needs uvicorn: pip install -e .[app]"


def chrome():
    """A headless Chromium driven by selenium, or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver; .ci/run does it)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1800",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"):  # a microphone that beeps
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


@needs_gtzan_mini
def test_browser_shows_the_predicted_genre_and_a_clear_error(server_big, ckpt, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = chrome()
    try:
        browser.get(server_big["url"] + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: str(ckpt) in b.find_element(By.ID, "model").text)
        browser.find_element(By.ID, "file").send_keys(str(CLIP))
        wait.until(lambda b: b.find_element(By.ID, "result").is_displayed())
        assert browser.find_element(By.ID, "top-genre").text == expected_top(ckpt, CLIP)
        assert browser.find_element(By.ID, "file-name").text == CLIP.name
        assert str(ckpt) in browser.find_element(By.ID, "answered-by").text
        assert len(browser.find_elements(By.CSS_SELECTOR, "#bars rect")) == 4  # the demo's four genres
        assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline circle")) >= 4 * 18  # 18 windows in 30 s
        for img in ("logmel", "chroma"):
            assert browser.execute_script(f"return document.getElementById('{img}').naturalWidth") > 100

        fake = tmp_path / "fake.wav"
        fake.write_text("not audio at all\n")
        browser.find_element(By.ID, "file").send_keys(str(fake))
        wait.until(lambda b: b.find_element(By.ID, "error").text)
        assert browser.find_element(By.ID, "error").text == "fake.wav: not an audio file (it holds text)"
        assert "Traceback" not in browser.page_source
        assert not browser.find_element(By.ID, "result").is_displayed()
    finally:
        browser.quit()
    assert list(server_big["uploads"].iterdir()) == []


def test_browser_records_from_the_microphone(server_big):
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from genre_cnn.data.demo import DEMO_GENRES

    browser = chrome()
    try:
        browser.get(server_big["url"] + "/")
        record = browser.find_element(By.ID, "record")
        record.click()
        time.sleep(4)
        record.click()  # stop: the page decodes the recording, encodes it as WAV and uploads it
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "result").is_displayed()
                                         or b.find_element(By.ID, "error").text)
        assert browser.find_element(By.ID, "error").text == ""
        assert browser.find_element(By.ID, "file-name").text == "recording.wav"
        assert browser.find_element(By.ID, "top-genre").text in DEMO_GENRES
    finally:
        browser.quit()
