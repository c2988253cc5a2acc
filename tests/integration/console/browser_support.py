"""What the console's browser tests share: one headless Chromium per module (Debian's, reaching nothing but this
machine), signing in, waiting, and the screenshots in docs/console/."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

SHOTS = Path(__file__).resolve().parents[3] / "docs" / "console"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):  # nothing but this machine
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: webdriver.Chrome, found: Callable[[webdriver.Chrome], Any], what: str) -> None:
    WebDriverWait(driver, 20, poll_frequency=0.1).until(found, message=what)


def sign_in(driver: webdriver.Chrome, url: str, key: str, *, refused: bool = False) -> None:
    driver.delete_all_cookies()
    driver.get(f"{url}/")
    wait_for(driver, lambda d: d.current_url.endswith("/login"), "not sent to the sign-in page")
    driver.find_element(By.ID, "api_key").send_keys(key)
    driver.find_element(By.ID, "sign-in").click()
    if refused:
        wait_for(driver, lambda d: d.find_elements(By.ID, "login-error"), "a wrong key was not refused")
    else:
        wait_for(driver, lambda d: d.find_elements(By.ID, "tenant"), "the overview did not open")


def text(driver: webdriver.Chrome) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    """`docs/console/<name>-light.png` and `-dark.png`: the page in each colour scheme (the page follows the
    scheme as it changes, charts included, so it is not loaded again)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for scheme in ("light", "dark"):
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                               {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
        driver.execute_script("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        driver.save_screenshot(str(SHOTS / f"{name}-{scheme}.png"))
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


SERIES_PIXELS = """
const canvas = document.querySelector(arguments[0] + ' canvas');
if (!canvas) { return -1; }
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let n = 0;  // pixels of the first series' colour (#4c7be8): the data, not the axes or the grid
for (let i = 0; i < data.length; i += 4) {
  if (data[i + 3] > 200 && Math.abs(data[i] - 76) < 12 && Math.abs(data[i + 1] - 123) < 12
      && Math.abs(data[i + 2] - 232) < 12) { n++; }
}
return n;
"""


