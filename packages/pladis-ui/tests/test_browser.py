"""The page in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium): a prompt
typed, PLADIS off / on with 2 steps on the toy model, both images shown, different, and equal to what
`pladis compare` writes; a bad input shows its message and runs nothing."""

from __future__ import annotations

import io
import os
import shutil
import urllib.request

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
INSTALL = ("needs Debian's chromium and chromium-driver and the selenium package: "
           "`bash tools/install_browser.sh` (apt-get install -y chromium chromium-driver) and "
           "`pip install -c constraints.txt selenium`")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1400")
PROMPT = "a red circle left of a blue square"
TIMEOUT = 120


def _missing() -> str | None:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        return f"no {CHROMIUM} or {CHROMEDRIVER}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "no selenium"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=f"browser test {INSTALL} ({_missing()})")


@pytest.fixture
def browser(tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not look for downloads
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(TIMEOUT)
    yield driver
    driver.quit()


def wait(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, TIMEOUT, poll_frequency=0.05).until(condition, message)


def type_into(driver, field: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.ID, field)
    element.clear()
    element.send_keys(text)


def shown_pixels(driver, image) -> np.ndarray:
    """The image's pixels as the browser decoded them (drawn into a canvas at its natural size)."""
    data = driver.execute_script("""
        const img = arguments[0], canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const context = canvas.getContext('2d');
        context.drawImage(img, 0, 0);
        return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data);""", image)
    height, width = (driver.execute_script("return [arguments[0].naturalHeight, arguments[0].naturalWidth]", image))
    return np.array(data, dtype=np.uint8).reshape(height, width, 4)[..., :3]


def fetch(url: str) -> tuple[bytes, dict]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read(), dict(response.headers)


def test_page_runs_off_and_on_and_shows_what_pladis_compare_writes(browser, server, engine, cli_compare, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server)
    wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true",
         "the page did not load /api/info")
    assert "embedded:toy" in browser.find_element(By.ID, "model").text
    type_into(browser, "prompt", PROMPT)
    type_into(browser, "steps", "2")
    browser.find_element(By.ID, "run-compare").click()

    def loaded(driver):
        images = driver.find_elements(By.CSS_SELECTOR, "#result-compare img")
        ok = len(images) == 2 and all(driver.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", img) for img in images)
        return images if ok else False

    off, on = wait(browser, loaded, "the two images did not appear")
    assert "off" in off.get_attribute("class") and "on" in on.get_attribute("class")
    assert off.is_displayed() and on.is_displayed() and off.size["width"] >= 128
    assert browser.find_element(By.ID, "progress").get_attribute("value") == "1"
    assert "compare: done 100%" in browser.find_element(By.ID, "status-text").text
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None

    expected = cli_compare(PROMPT, "--steps", "2")
    reference = {name: np.asarray(Image.open(path).convert("RGB")) for name, path in expected.items()}
    shown = {"baseline": shown_pixels(browser, off), "pladis": shown_pixels(browser, on)}
    served = {"baseline": fetch(off.get_attribute("src"))[0], "pladis": fetch(on.get_attribute("src"))[0]}
    for variant in ("baseline", "pladis"):
        np.testing.assert_array_equal(shown[variant], reference[variant])
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(served[variant])).convert("RGB")),
                                      reference[variant])
    assert not np.array_equal(shown["baseline"], shown["pladis"])

    captions = [figure.text for figure in browser.find_elements(By.CSS_SELECTOR, "#result-compare figure")]
    assert "PLADIS off" in captions[0] and "PLADIS lambda=2 alpha=1.5" in captions[1]
    assert all("generate" in caption and " s" in caption for caption in captions)
    links = browser.find_elements(By.CSS_SELECTOR, "#result-compare a.sidecar")
    assert [link.get_attribute("download") for link in links] == \
        [path.with_suffix(".json").name for path in expected.values()]
    body, headers = fetch(links[1].get_attribute("href"))
    assert headers["Content-Disposition"].startswith("attachment")
    assert b'"scale": 2.0' in body and b'"num_inference_steps": 2' in body

    screenshot = tmp_path / "pladis-ui.png"
    assert browser.save_screenshot(str(screenshot))
    assert Image.open(screenshot).size[0] >= 1000

    jobs = len(engine.jobs)
    type_into(browser, "alpha", "3")
    browser.find_element(By.ID, "run-compare").click()
    error = wait(browser, lambda d: d.find_element(By.ID, "error") if d.find_element(By.ID, "error").is_displayed()
                 else False, "no message for α = 3")
    assert error.text == "α (alpha): alpha must be 1 (softmax) or in [1.01, 2] (1.5 = entmax15, 2 = sparsemax); got 3.0"
    assert "invalid" in browser.find_element(By.ID, "alpha").get_attribute("class")
    assert len(engine.jobs) == jobs  # nothing was queued
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result-compare img")) == 2  # the last result stays


def test_sweep_and_maps_tabs_show_their_grids(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(server)
    wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true",
         "the page did not load /api/info")
    assert not browser.find_element(By.ID, "pag_scale").is_displayed()
    Select(browser.find_element(By.ID, "guidance")).select_by_value("pag")
    assert browser.find_element(By.ID, "pag_scale").is_displayed()
    assert not browser.find_element(By.ID, "seg_scale").is_displayed()
    Select(browser.find_element(By.ID, "guidance")).select_by_value("cfg")
    type_into(browser, "prompt", PROMPT)
    type_into(browser, "steps", "2")

    def grid_in(panel):
        def shown(driver):
            images = driver.find_elements(By.CSS_SELECTOR, f"#result-{panel} img.grid")
            ok = images and driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0",
                                                  images[0])
            return images[0] if ok else False
        return shown

    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="sweep"]').click()
    assert not browser.find_element(By.ID, "scale").is_displayed()  # λ values replace λ here
    type_into(browser, "scales", "0,2")
    browser.find_element(By.ID, "run-sweep").click()
    grid = wait(browser, grid_in("sweep"), "the sweep grid did not appear")
    assert "cells\n4" in browser.find_element(By.ID, "result-sweep").text
    assert grid.get_attribute("naturalWidth") and int(grid.get_attribute("naturalWidth")) > 2 * 192

    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="maps"]').click()
    type_into(browser, "tokens", "circle,square")
    browser.find_element(By.ID, "run-maps").click()
    wait(browser, grid_in("maps"), "the attention-map grid did not appear")
    text = browser.find_element(By.ID, "result-maps").text
    assert "circle" in text and "square" in text and "token's peak" in text
    bar = browser.find_element(By.CSS_SELECTOR, "#result-maps .colorbar")
    assert "linear-gradient" in bar.value_of_css_property("background-image")
    assert [a.get_attribute("download").rsplit("-", 1)[-1] for a in
            browser.find_elements(By.CSS_SELECTOR, "#result-maps a[download]")] == ["maps.json", "maps.npz"]


def test_cancel_button_stops_the_run_and_the_pipeline_is_unchanged(browser, server, engine):
    from selenium.webdriver.common.by import By

    from pladis.adapters import find_denoiser

    denoiser = find_denoiser(engine.session.pipe)
    before = dict(denoiser.attn_processors)
    browser.get(server)
    wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true",
         "the page did not load /api/info")
    type_into(browser, "prompt", PROMPT)
    type_into(browser, "steps", "200")
    browser.find_element(By.ID, "run-compare").click()
    wait(browser, lambda d: float(d.find_element(By.ID, "progress").get_attribute("value")) > 0.05,
         "the progress bar did not move")
    assert "compare: running" in browser.find_element(By.ID, "status-text").text
    browser.find_element(By.ID, "cancel").click()
    wait(browser, lambda d: "compare: cancelled" in d.find_element(By.ID, "status-text").text, "not cancelled")
    assert not browser.find_element(By.ID, "cancel").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "#result-compare img") == []
    after = denoiser.attn_processors
    assert after.keys() == before.keys() and all(after[name] is before[name] for name in before)
