"""The race page in a real headless browser (Debian's chromium with its driver, through selenium):
load it from a real ``ponder serve``, race FFS with n=4, and check that each sample got a lane,
that one won and the losers were stopped, and that the counts add up.

Needs ``apt-get install -y chromium chromium-driver`` and ``pip install selenium`` (``.ci/run``
installs both); without them the test fails and says so. The screenshot goes to the test's tmp
dir; ``PONDER_SCREENSHOT=bench/results/serve_page.png`` also writes it there (for the README).

    python -m pytest -q tests/test_serve_page.py
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from serve_process import ServeProcess

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium (or run .ci/run)"


def _browser():
    try:
        from selenium import webdriver
    except ImportError:
        pytest.fail(f"the race page test needs selenium and a headless chromium: {INSTALL}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(f"the race page test needs chromium and chromedriver on PATH: {INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1100"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


@pytest.fixture(scope="module")
def server():
    with ServeProcess(["--answer-kind", "integer", "--log-level", "warning"], env={"PYTHONPATH": str(ROOT)}) as proc:
        yield proc


@pytest.fixture(scope="module")
def browser():
    driver = _browser()
    yield driver
    driver.quit()


def test_the_race_page_shows_ffs_lanes_the_winner_and_the_counts(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(f"{server.root}/")
    wait = WebDriverWait(browser, 120)
    wait.until(lambda d: len(Select(d.find_element(By.ID, "controller")).options) > 0)
    for field, value in (("problem", "Compute 385+716+042"), ("n", "4"), ("seed", "0")):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    Select(browser.find_element(By.ID, "controller")).select_by_value("ffs")
    browser.find_element(By.ID, "go").click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-phase") in ("done", "error"))
    status = browser.find_element(By.ID, "status").text
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-phase") == "done", status

    lanes = browser.find_elements(By.CSS_SELECTOR, "#lanes .lane")
    states = [lane.get_attribute("data-state") for lane in lanes]
    tokens = [int(lane.get_attribute("data-tokens")) for lane in lanes]
    assert len(lanes) == 4 and states.count("won") == 1 and "aborted" in states, states
    assert set(states) <= {"won", "aborted", "finished"}
    winner = lanes[states.index("won")]
    assert "so the answer is" in winner.find_element(By.TAG_NAME, "pre").text

    def count(name: str) -> int:
        return int(browser.find_element(By.ID, name).text)

    answer = browser.find_element(By.ID, "answer").text
    assert answer.isdigit() and f"\\boxed{{{answer}}}" in status
    assert count("samples") == 4 and count("aborted") == states.count("aborted")
    assert count("sequential") == tokens[states.index("won")]
    assert count("total") == sum(tokens) + count("wasted")  # every token the engine made, wasted ones included
    assert count("wasted") <= count("aborted")  # at most the one step in flight per aborted sample

    shot = tmp_path / "serve_page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("PONDER_SCREENSHOT"):
        shutil.copy(shot, ROOT / os.environ["PONDER_SCREENSHOT"])
