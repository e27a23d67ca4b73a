"""The pages in a real headless Chromium (Selenium) against a real HTTP server.

Skipped where Chromium, chromedriver or selenium is missing, unless
ARSEARCH_REQUIRE_BROWSER=1 (CI), where that is a failure.
Install: apt-get install chromium chromium-driver; pip install selenium.
"""

import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

from indexer.build import build_index
from indexer.sample import sample_path
from search_app.app import create_app

# ٱلۡعَٰلَمِينَ as the sample's Qur'an text spells it (U+06E1 for sukun).
AL_ALAMIN = "\u0671\u0644\u06e1\u0639\u064e\u0670\u0644\u064e\u0645\u0650\u064a\u0646\u064e"


def _find(env, *names):
    found = os.environ.get(env)
    return found if found else next(filter(None, map(shutil.which, names)), None)


def _browser_parts():
    """(chromium, chromedriver), or skip (fail under ARSEARCH_REQUIRE_BROWSER=1)."""
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    chromium = _find("ARSEARCH_CHROMIUM", "chromium", "chromium-browser", "google-chrome")
    driver = _find("ARSEARCH_CHROMEDRIVER", "chromedriver")
    if not chromium:
        missing.append("chromium")
    if not driver:
        missing.append("chromedriver")
    if missing:
        reason = (f"browser tests need {', '.join(missing)} "
                  "(apt-get install chromium chromium-driver; pip install selenium)")
        if os.environ.get("ARSEARCH_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " and ARSEARCH_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    return chromium, driver


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser") / "ix"
    build_index(folder, [str(sample_path())], jobs=1, log=lambda l: None)
    return folder


@pytest.fixture(scope="module")
def server(sample_index):
    """The app on a free port of 127.0.0.1, served from a background thread."""
    httpd = make_server("127.0.0.1", 0, create_app(sample_index), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(10)
    httpd.server_close()


@pytest.fixture
def browser(tmp_path):
    chromium, driver_path = _browser_parts()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # With the driver's path given, Selenium Manager (which downloads) is not used.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, condition, seconds=10):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds).until(condition)


def _console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_typed_query_finds_and_marks_the_vocalized_word(browser, server, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    box = browser.find_element(By.NAME, "q")
    assert browser.switch_to.active_element == box  # autofocus
    box.send_keys("العالمين")  # no diacritics
    browser.find_element(By.CSS_SELECTOR, "form.search button[type=submit]").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".hit"))

    assert "q=" in browser.current_url
    first = browser.find_elements(By.CSS_SELECTOR, ".hit")[0]
    assert first.find_element(By.CSS_SELECTOR, "h2 a").text == "سورة الفاتحة"
    marks = [m.text for m in first.find_elements(By.CSS_SELECTOR, ".snippet mark")]
    assert marks and set(marks) == {AL_ALAMIN}
    style = browser.execute_script(
        "var m = document.querySelector('mark'); var s = getComputedStyle(m);"
        "return [getComputedStyle(document.body).direction, s.backgroundColor];")
    assert style[0] == "rtl" and style[1] not in ("rgba(0, 0, 0, 0)", "transparent")

    shot = tmp_path / "results.png"
    assert browser.save_screenshot(str(shot))
    assert shot.exists() and shot.stat().st_size > 0

    first.find_element(By.CSS_SELECTOR, "h2 a").click()
    _wait(browser, lambda d: "/doc/" in d.current_url)
    text = browser.find_element(By.CSS_SELECTOR, ".doc .text")
    assert text.value_of_css_property("white-space") == "pre-wrap"
    assert AL_ALAMIN in [m.text for m in text.find_elements(By.TAG_NAME, "mark")]
    assert not _console_errors(browser)


def test_suggestions_fill_the_datalist(browser, server):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    browser.find_element(By.NAME, "q").send_keys("الكت")
    options = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#q-suggestions option"))
    assert "الكتاب" in [o.get_attribute("value") for o in options]
    assert not _console_errors(browser)


def test_phone_width_has_no_sideways_scrolling(browser, server, tmp_path):
    browser.set_window_size(390, 844)
    browser.get(server + "/?q=الجزائر")
    _wait(browser, lambda d: d.find_elements("css selector", ".hit"))
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
    assert overflow <= 0
    shot = tmp_path / "phone.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 0
