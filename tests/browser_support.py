"""Headless Chromium (Debian's chromium + chromium-driver) driven by selenium, for the tests of the
pages the box serves: the `browser` fixture (tests/conftest.py) and the two reads every page test
needs on a page that redraws itself on each pushed event."""

from __future__ import annotations

from peers import require, wait_until


def chromium():
    """A headless Chromium 1200x1000 (skipped naming the package when absent; a failure in CI)."""
    from selenium import webdriver  # the test extra's
    from selenium.webdriver.chrome.service import Service

    require("chromium", "chromium")
    driver_path = require("chromedriver", "chromium-driver")
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1000"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def text(browser, element_id: str) -> str | None:
    """#element_id's text; None while it is not there (the page redraws on each event: looked at
    again on the next try)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    try:
        return browser.find_element(By.ID, element_id).text
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def click(browser, element_id: str) -> None:
    """Click #element_id; found again when a pushed change redrew it between finding and clicking."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def clicked():
        try:
            browser.find_element(By.ID, element_id).click()
            return True
        except (NoSuchElementException, StaleElementReferenceException):
            return False
    wait_until(clicked, 20, what=f"#{element_id} to be clicked")
