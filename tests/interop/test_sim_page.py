"""The simulated box's page (/sim/) in a real browser: headless Chromium (selenium) on the real
`dicom-gateway run` with hw-sim's serial film imager and optical drive. The page jams the printer
and a DICOM print client (pynetdicom N-GET of the Printer SOP instance) gets FILM JAM; the page
inserts a blank CD and the export rule writes the stored study to it; the queue table shows what
waits for an unreachable PACS. The front panel is not wired into the service yet (another part of
issue 9), so its test runs the status server in this process over the real panel drivers on the
simulated panel, with the test standing in for the panel logic: a button press shows a line.
A screenshot of each page is kept in the test's tmp dir."""

from __future__ import annotations

import re
import threading

import pytest
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE

from drivers import registry
from gateway.config.panel import PanelSection
from gateway.config.status_http import StatusHttpSection
from gateway.events import EventBus
from gateway.status.metrics import new_registry
from gateway.status.server import StatusServer
from peers import TEST_FILES, free_port, require, storescu, wait_until

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

GRAY_META = "1.2.840.10008.5.1.1.9"
PRINTER, PRINTER_INSTANCE = "1.2.840.10008.5.1.1.16", "1.2.840.10008.5.1.1.17"
CT = TEST_FILES / "CT_small.dcm"


@pytest.fixture
def browser():
    from selenium import webdriver  # the test extra's
    from selenium.webdriver.chrome.service import Service

    require("chromium", "chromium")
    driver_path = require("chromedriver", "chromium-driver")
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1000"):
        opts.add_argument(arg)
    b = webdriver.Chrome(service=Service(driver_path), options=opts)
    yield b
    b.quit()


def _text(browser, element_id: str) -> str | None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    try:
        return browser.find_element(By.ID, element_id).text
    except (NoSuchElementException, StaleElementReferenceException):
        return None  # the page redraws on each event: looked at again on the next try


def _click(browser, element_id: str) -> None:
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


def _printer_status_info(port: int) -> str:
    """Printer Status Info (2110,0020) as a print SCU gets it: N-GET of the Printer SOP instance."""
    ae = AE(ae_title="PRINTSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    ae.add_requested_context(GRAY_META, [ImplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title="EDGE")
    assert assoc.is_established, "association refused"
    try:
        st, ds = assoc.send_n_get([0x21100010, 0x21100020], PRINTER, PRINTER_INSTANCE, meta_uid=GRAY_META)
        assert st.Status in (0x0000, 0x0107), hex(st.Status)  # 0107: attribute list error (warning)
        return str(ds.PrinterStatusInfo)
    finally:
        assoc.release()


def test_the_page_drives_the_printer_and_the_drive_of_the_running_service(gateway_factory, browser, tmp_path):
    require("xorriso", "xorriso")
    sim = tmp_path / "sim"
    gw = gateway_factory({
        "peers": {"printscu": {"ae_title": "PRINTSCU", "may_print": True}},
        # Nobody listens there: the stored study waits in the forward queue, for the page's queue table.
        "destinations": {"pacs": {"ae_title": "PACS", "host": "127.0.0.1", "port": free_port()}},
        "print": {"enabled": True, "poll_interval_s": 0.3,
                  "printer": {"kind": "serial-sim", "dpi": 50, "sim_dir": str(sim / "printer")}},
        "media": {"drives": {"cd": {"kind": "optical-sim", "sim_dir": str(sim / "media"), "sim_cd_mb": 10}},
                  "export_rules": [{"name": "new-studies", "stable_s": 0}]},
    })
    wait_until(lambda: "simulated box (hw-sim): " in gw.log, 30, what="the page's address in the log")
    url = re.search(r"simulated box \(hw-sim\): (http://127\.0\.0\.1:\d+/sim/)", gw.log).group(1)
    r = storescu(gw.port, [CT])
    assert r.returncode == 0 and "E:" not in r.stderr, r.stderr

    browser.get(url)
    wait_until(lambda: _text(browser, "stream") == "live", 20, what="the stream to be live")
    marker = browser.execute_script("window.notReloaded = 7; return window.notReloaded")
    assert _text(browser, "printer-status") == "NORMAL"
    assert _printer_status_info(gw.port) == "NORMAL"

    # The printer: jammed from the page; the page shows it, the gateway sees it, a print SCU gets it.
    _click(browser, "act-printer-jam")
    wait_until(lambda: _text(browser, "printer-status") == "FILM JAM", 20, what="the page to show the jam")
    wait_until(lambda: (_text(browser, "gw-printer") or "").startswith("FAILURE"), 20,
               what="the gateway's printer status on the page")
    assert _printer_status_info(gw.port) == "FILM JAM"
    _click(browser, "act-printer-unjam")
    wait_until(lambda: _text(browser, "printer-status") == "NORMAL", 20, what="the page to show it cleared")
    wait_until(lambda: _printer_status_info(gw.port) == "NORMAL", 20, what="the print SCU to get NORMAL")

    # The queue table: the study waits for the PACS nobody listens for.
    wait_until(lambda: "forward pacs 1" in " ".join((_text(browser, "queue") or "").split()), 30,
               what="the queue table to show the waiting forward")

    # The drive: a blank CD from the page; the export rule writes the study, verifies and ejects it.
    _click(browser, "act-cd-insert-cd-blank")
    wait_until(lambda: _text(browser, "cd-medium") == "cd blank", 20, what="the page to show the blank disc")
    wait_until(lambda: "drive cd: blank cd: rule new-studies queued 1 studies" in gw.log, 60,
               what="the export rule to queue the study")
    wait_until(lambda: "drive cd: medium removed" in gw.log, 120, what="the written disc to be ejected")
    wait_until(lambda: _text(browser, "cd-medium") == "empty", 20, what="the page to show the tray empty")
    assert list((sim / "media" / "cd" / "ejected").glob("*-disc.iso")), "the written disc was not kept"

    assert browser.execute_script("return window.notReloaded") == marker  # the same page throughout
    assert "HWSIM" not in browser.page_source and "Traceback" not in gw.log
    browser.save_screenshot(str(tmp_path / "sim-page.png"))
    assert (tmp_path / "sim-page.png").stat().st_size > 0


def test_a_panel_button_clicked_on_the_page_reaches_the_drivers_and_the_glass_shows_it(browser, tmp_path):
    cfg = PanelSection(kind="sim", columns=16, sim_long_press_s=0.3)
    panel = registry.create("panel", "sim", cfg, lambda p: tmp_path / p)
    pressed = []

    def logic(ev):
        # Stands in for gateway/panel (not wired into the service yet): a press shows its button.
        if ev.pressed:
            pressed.append(ev.name)
            panel.show(f"PRESSED {ev.name}", f"{len(pressed)} presses")

    panel.start(logic)
    panel.show("READY", "")
    panel.set_led("error", "blink-fast")
    section = StatusHttpSection.model_construct(enabled=True, bind="127.0.0.1", port=0, token="", sse_max_clients=4)
    metrics, _ = new_registry(EventBus(), dict)
    server = StatusServer(section, lambda: {}, metrics, lambda: None, devices=lambda: [panel])
    server.start()
    try:
        browser.get(server.sim_url())
        wait_until(lambda: (_text(browser, "display-line-0") or "").strip() == "READY", 20, what="the glass")
        assert browser.find_element("id", "led-error").get_attribute("data-pattern") == "blink-fast"
        assert "blink-125-125" in browser.find_element("id", "led-error").value_of_css_property("animation-name")
        _click(browser, "btn-ack")
        wait_until(lambda: (_text(browser, "display-line-0") or "").strip() == "PRESSED ack", 20,
                   what="the glass to show the press")
        assert pressed == ["ack"]
        wait_until(lambda: _text(browser, "outcome") == "panel press: pressed ack", 20,
                   what="the page to report a short press (a click is one)")
        # The "long" toggle: the simulator holds the button sim_long_press_s, one press, one release.
        _click(browser, "long")
        _click(browser, "btn-export")
        wait_until(lambda: (_text(browser, "display-line-1") or "").strip() == "2 presses", 20, what="a second press")
        wait_until(lambda: _text(browser, "outcome") == "panel press: pressed export (long)", 20,
                   what="the page to report the long press")
        edges = [(e["button"], e["pressed"]) for e in panel.simulator.state()["edges"]]
        wait_until(lambda: [(e["button"], e["pressed"]) for e in panel.simulator.state()["edges"]][-1]
                   == ("export", False), 20, what="the long press's release")
        assert edges[:2] == [("ack", True), ("ack", False)]
        browser.save_screenshot(str(tmp_path / "sim-panel.png"))
        assert (tmp_path / "sim-panel.png").stat().st_size > 0
    finally:
        server.stop()
        panel.stop()
