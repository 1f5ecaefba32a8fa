"""docs/serve.png: the `genre-cnn serve` page in headless Chromium after a real GTZAN clip was uploaded.

    .venv/bin/python docs/make_screenshot.py [--ckpt CKPT] [--file FILE] [--out docs/serve.png]

Needs the app extra (pip install -e .[app]), selenium, and Debian's chromium + chromium-driver. Serves the
app on a free localhost port in this process, picks the file in the page, waits for the answer and saves a
screenshot of the whole page. Default: the model `genre-cnn serve` answers with, jazz.00005 of ../shared/gtzan_mini.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

CLIP = Path(__file__).resolve().parents[2] / "shared" / "gtzan_mini" / "genres" / "jazz" / "jazz.00005.wav"


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from genre_cnn.app.serve import make_app, serve_in_thread
    from genre_cnn.inference.session import Predictor

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=None)
    parser.add_argument("--file", type=Path, default=CLIP)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "serve.png")
    args = parser.parse_args()
    url, stop = serve_in_thread(make_app(Predictor.open(args.ckpt, "torch")))
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,1400",
                "--hide-scrollbars"):
        options.add_argument(arg)
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    try:
        browser.get(url + "/")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda b: "from" in b.find_element(By.ID, "model").text)
        browser.find_element(By.ID, "file").send_keys(str(args.file.resolve()))
        wait.until(lambda b: b.find_element(By.ID, "result").is_displayed() or b.find_element(By.ID, "error").text)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # the whole page in one shot
                                {"width": 1000, "height": height, "deviceScaleFactor": 1, "mobile": False})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(args.out))
        print(f"{args.out}: {browser.find_element(By.ID, 'top-line').text}")
    finally:
        browser.quit()
        stop()


if __name__ == "__main__":
    main()
