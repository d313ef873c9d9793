"""The simulated box's page (/sim/) in a real browser: headless Chromium (selenium) on the real
`dicom-gateway run` with hw-sim's serial film imager and optical drive. The page jams the printer
and a DICOM print client (pynetdicom N-GET of the Printer SOP instance) gets FILM JAM; the page
inserts a blank CD and the export rule writes the stored study to it; the queue table shows what
waits for an unreachable PACS. The service's own front panel (`[panel] kind = "sim"`: the panel logic
over the real panel drivers on hw-sim's panel) is driven from the page: a jam from the page raises
the printer alarm on the glass and blinks the printer and error LEDs, ACK clicked on the page
steadies the error LED, NEXT shows the study, a long press of EXPORT queues its export.
A screenshot of each page is kept in the test's tmp dir."""

from __future__ import annotations

import re

import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE

from browser_support import click as _click
from browser_support import text as _text
from peers import TEST_FILES, free_port, require, storescu, wait_until

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

GRAY_META = "1.2.840.10008.5.1.1.9"
PRINTER, PRINTER_INSTANCE = "1.2.840.10008.5.1.1.16", "1.2.840.10008.5.1.1.17"
CT = TEST_FILES / "CT_small.dcm"


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
    # The printer's simulator exists once the print service has opened its connection, which may
    # come after the page's first document: the stream brings the view when it appears.
    wait_until(lambda: _text(browser, "printer-status") == "NORMAL", 20, what="the page to show the printer")
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
    # The blank disc is shown only until the rule starts writing it: a poll through WebDriver on a
    # loaded machine can miss it, so the page itself records every value the drive's line takes.
    browser.execute_script("""
        window.mediaSeen = [];
        const note = () => { const m = document.getElementById("cd-medium");
                             if (m) window.mediaSeen.push(m.textContent); };
        new MutationObserver(note).observe(document.body, {subtree: true, childList: true, characterData: true});
        note();""")
    _click(browser, "act-cd-insert-cd-blank")
    wait_until(lambda: "cd blank" in browser.execute_script("return window.mediaSeen"), 20,
               what="the page to show the blank disc")
    wait_until(lambda: "drive cd: blank cd: rule new-studies queued 1 studies" in gw.log, 60,
               what="the export rule to queue the study")
    wait_until(lambda: "drive cd: medium removed" in gw.log, 120, what="the written disc to be ejected")
    wait_until(lambda: _text(browser, "cd-medium") == "empty", 20, what="the page to show the tray empty")
    assert list((sim / "media" / "cd" / "ejected").glob("*-disc.iso")), "the written disc was not kept"

    assert browser.execute_script("return window.notReloaded") == marker  # the same page throughout
    assert "HWSIM" not in browser.page_source and "Traceback" not in gw.log
    browser.save_screenshot(str(tmp_path / "sim-page.png"))
    assert (tmp_path / "sim-page.png").stat().st_size > 0


def _led(browser, name: str) -> str | None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    try:
        return browser.find_element("id", f"led-{name}").get_attribute("data-pattern")
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def _line(browser, n: int) -> str:
    return (_text(browser, f"display-line-{n}") or "").strip()


def test_the_page_drives_the_services_own_panel(gateway_factory, browser, tmp_path):
    # The panel is the service's (`[panel] kind = "sim"`): its logic (gateway/panel) decides what the
    # glass and the LEDs show; the page only presses hw-sim's buttons and draws hw-sim's LEDs.
    require("xorriso", "xorriso")
    sim = tmp_path / "sim"
    gw = gateway_factory({
        "peers": {"printscu": {"ae_title": "PRINTSCU", "may_print": True}},
        "print": {"enabled": True, "poll_interval_s": 0.3,
                  "printer": {"kind": "serial-sim", "dpi": 50, "sim_dir": str(sim / "printer")}},
        "media": {"drives": {"cd": {"kind": "optical-sim", "sim_dir": str(sim / "media")}}},
        # The logic's long press is shorter than the simulator's hold: the page's "long" is one.
        "panel": {"kind": "sim", "long_press_s": 0.5, "sim_long_press_s": 1.5},
    })
    wait_until(lambda: "simulated box (hw-sim): " in gw.log, 30, what="the page's address in the log")
    url = re.search(r"simulated box \(hw-sim\): (http://127\.0\.0\.1:\d+/sim/)", gw.log).group(1)
    r = storescu(gw.port, [CT])
    assert r.returncode == 0 and "E:" not in r.stderr, r.stderr

    browser.get(url)
    wait_until(lambda: _text(browser, "stream") == "live", 20, what="the stream to be live")
    marker = browser.execute_script("window.notReloaded = 9; return window.notReloaded")
    wait_until(lambda: _line(browser, 0) == "READY", 30, what="READY on the glass")
    assert _led(browser, "power") == "on" and _led(browser, "error") == "off"

    # The printer jammed from the page: the logic raises its alarm; the glass and two LEDs say so.
    _click(browser, "act-printer-jam")
    wait_until(lambda: _line(browser, 0) == "!PRINTER FAULT", 30, what="the printer alarm on the glass")
    assert "FILM JAM" in _line(browser, 1)
    wait_until(lambda: (_led(browser, "printer"), _led(browser, "error")) == ("blink-fast", "blink-fast"), 20,
               what="the printer and error LEDs blinking fast")
    # The page blinks it as the driver set it (125 ms on, 125 ms off: gateway/panel/leds.py FAST).
    assert "blink-125-125" in browser.find_element("id", "led-error").value_of_css_property("animation-name")

    # ACK clicked on the page: acknowledged, still standing (the film is still jammed).
    _click(browser, "btn-ack")
    wait_until(lambda: _text(browser, "outcome") == "panel press: pressed ack", 20, what="the page's short press")
    wait_until(lambda: _led(browser, "error") == "on", 20, what="the acknowledged alarm's steady error LED")
    wait_until(lambda: _line(browser, 0) == "READY", 20, what="the glass back to READY")
    assert _led(browser, "printer") == "blink-fast"
    _click(browser, "act-printer-unjam")
    wait_until(lambda: (_led(browser, "printer"), _led(browser, "error")) == ("off", "off"), 30,
               what="the printer and error LEDs dark once the jam is cleared")

    # NEXT: the studies screen with the stored study's patient.
    _click(browser, "btn-next")
    name = str(pydicom.dcmread(CT, stop_before_pixels=True).PatientName).replace("^", " ")[:16]
    wait_until(lambda: _line(browser, 0) == name, 20, what="the study screen with the patient's name")
    # A long press of EXPORT on it (the page's "long" toggle): the logic queues the export.
    _click(browser, "long")
    _click(browser, "btn-export")
    wait_until(lambda: _text(browser, "outcome") == "panel press: pressed export (long)", 20,
               what="the page's long press")
    wait_until(lambda: _line(browser, 0) == "EXPORT OK", 20, what="the export's answer on the glass")
    listed = gw.cli("queue", "list")
    assert listed.returncode == 0 and "cd: 1 queued" in listed.stdout, listed.stdout + listed.stderr

    assert browser.execute_script("return window.notReloaded") == marker  # the same page throughout
    assert "Traceback" not in gw.log and "front panel not started" not in gw.log
    browser.save_screenshot(str(tmp_path / "sim-panel.png"))
    assert (tmp_path / "sim-panel.png").stat().st_size > 0
