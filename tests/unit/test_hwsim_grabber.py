"""hw-sim's frame grabber (hwsim/grabber.py) from outside: `hw-sim grabber` through its control
folder, one-line refusals, and its view on the simulated box's page (state, actions, the last
frame as PNG)."""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from drivers.grabber.pipe import PipeSource
from drivers.grabber.v4l2 import V4l2Grabber
from gateway.config.status_http import StatusHttpSection
from gateway.events import EventBus
from gateway.status.metrics import new_registry
from gateway.status.server import StatusServer
from gateway.status.views import SimViews
from hwsim import cli
from hwsim import grabber as sim_grabber
from hwsim.grabber import Picture, SimError, SimulatedGrabber, parse_size, send

READ_S = 5.0


@pytest.fixture
def source(tmp_path):
    sims = []

    def make(**keys):
        sim = SimulatedGrabber(tmp_path / "grabber", **keys)
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


def test_the_counter_blocks_read_back_and_sizes_are_checked():
    picture = Picture(640, 480)
    for counter in (0, 1, 2 ** 23 + 5, 123456):
        band = picture.frame_rgb(counter, "2026-01-02 03:04:05", counter % 6)
        assert picture.counter_of(band) == counter
    assert parse_size("800X600") == (800, 600)
    for bad, why in (("800", "is not WIDTHxHEIGHT"), ("801x600", "width must be even"),
                     ("100x100", "outside 160x120")):
        with pytest.raises(SimError, match=why):
            parse_size(bad)


def test_hwsim_grabber_verbs_go_through_the_control_folder(source, tmp_path, capsys):
    sim = source()
    folder = str(tmp_path / "grabber")
    assert cli.main(["grabber", "--grabber-dir", folder, "status"]) == 0
    assert capsys.readouterr().out == ("grabber: signal on; 640x480 at 30 fps yuyv422; frames sent 0; "
                                       "no driver connected\n")
    assert cli.main(["grabber", "--grabber-dir", folder, "signal-off"]) == 0
    assert "signal off" in capsys.readouterr().out and not sim.signal
    assert cli.main(["grabber", "--grabber-dir", folder, "signal-on"]) == 0
    assert sim.signal
    assert cli.main(["grabber", "--grabber-dir", folder, "resolution", "800x600"]) == 0
    assert "800x600" in capsys.readouterr().out
    assert (sim.picture.width, sim.picture.height) == (800, 600)
    # Refusals: one line on stderr, exit 1; the simulator itself refuses what the CLI lets through.
    assert cli.main(["grabber", "--grabber-dir", folder, "resolution", "801x600"]) == 1
    err = capsys.readouterr().err
    assert err == "hw-sim: resolution 801x600: the width must be even (YUYV pairs pixels)\n"
    with pytest.raises(SimError, match="is outside") as refused:
        send(tmp_path / "grabber", {"verb": "resolution", "size": "8000x600"})
    assert "\n" not in str(refused.value)
    with pytest.raises(SimError, match="unknown command 'explode'"):
        send(tmp_path / "grabber", {"verb": "explode"})
    assert cli.main(["grabber", "--grabber-dir", str(tmp_path / "nowhere"), "status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hw-sim: no simulated frame grabber in") and err.count("\n") == 1
    with pytest.raises(SystemExit) as usage:
        cli.main(["grabber", "--grabber-dir", folder, "explode"])
    assert usage.value.code == 2


def test_the_view_acts_reports_changes_and_refuses_in_one_line(source):
    sim = source()
    views = SimViews(lambda: [sim])
    heard = threading.Event()
    views.add_listener(heard.set)
    state = views.states()[0]
    assert state["kind"] == "grabber" and state["film"] is True
    assert state["actions"] == ["signal-off", "signal-on", "resolution"]
    assert state["state"]["format"] == {"width": 640, "height": 480, "fps": 30.0, "pixel_format": "yuyv422"}
    heard.clear()
    assert views.act("grabber", "signal-off", {}) == "grabber: signal off, 640x480"
    assert heard.wait(5) and views.states()[0]["state"]["signal"] is False
    assert views.act("grabber", "resolution", {"size": "800x600"}) == "grabber: signal off, 800x600"
    with pytest.raises(ValueError, match="unknown argument 'width'"):
        views.act("grabber", "resolution", {"width": 800})
    with pytest.raises(ValueError) as bad:
        views.act("grabber", "resolution", {"size": "huge"})
    assert str(bad.value) == "grabber: resolution 'huge' is not WIDTHxHEIGHT (e.g. 800x600)"
    assert sim.view_film() is None  # nothing sent yet


def _snapshot():
    return {"pid": 1, "started": 1.0, "queues": None, "destinations": {}, "printer": None, "media": {},
            "disk": {}, "counts": {"received": 0, "refused": 0, "forwarded": 0, "dead_lettered": 0},
            "last_received": {"at": None, "source": ""}, "last_forwarded": {"at": None, "target": ""}}


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as rsp:
            return rsp.status, rsp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_page_shows_the_last_frame_sent_as_png(source, monkeypatch):
    sim = source()
    section = StatusHttpSection.model_construct(enabled=True, bind="127.0.0.1", port=0, token="", sse_max_clients=4)
    registry_, _ = new_registry(EventBus(), _snapshot)
    server = StatusServer(section, _snapshot, registry_, lambda: None, devices=lambda: [sim])
    server.start()
    driver = V4l2Grabber("g0", "sim", 640, 480, 30, source=PipeSource(sim.address))
    try:
        status, page = _get(server.url + "sim/")
        assert status == 200 and b"grabber: drawGrabber" in page
        assert _get(server.url + "sim/film/grabber")[0] == 404  # no frame sent yet
        driver.open()
        driver.read(READ_S)
        status, png = _get(server.url + "sim/film/grabber")
        assert status == 200
        shown = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        assert shown.shape == (480, 640, 3)
        assert np.array_equal(shown, sim.frame_rgb(sim.counter_of(shown)))  # PNG: the picture drawn
        doc = json.loads(_get(server.url + "sim/state")[1])
        assert doc["views"][0]["state"]["frames_sent"] > 0 and doc["views"][0]["state"]["connected"]
        # Throttled: within FILM_EVERY_S the same PNG, however many frames went out meanwhile.
        monkeypatch.setattr(sim_grabber, "FILM_EVERY_S", 3600.0)
        sent = sim.frames_sent
        for _ in range(100):  # frames already queued come first: read until new ones went out
            driver.read(READ_S)
            if sim.frames_sent > sent + 1:
                break
        assert sim.frames_sent > sent + 1
        assert sim.view_film() == png
        monkeypatch.setattr(sim_grabber, "FILM_EVERY_S", 0.0)
        assert sim.view_film() != png
    finally:
        driver.close()
        server.stop()


@pytest.mark.interop
@pytest.mark.timeout(180)
def test_the_page_draws_the_grabber_and_its_buttons_work_in_a_browser(source, browser, tmp_path):
    """Headless Chromium on /sim/: the signal, the format, the last frame (loaded, of the stream's
    size), and the buttons: signal off, a resolution, signal on."""
    from browser_support import click, text
    from selenium.common.exceptions import StaleElementReferenceException

    from peers import wait_until

    sim = source()
    section = StatusHttpSection.model_construct(enabled=True, bind="127.0.0.1", port=0, token="", sse_max_clients=4)
    registry_, _ = new_registry(EventBus(), _snapshot)
    server = StatusServer(section, _snapshot, registry_, lambda: None, devices=lambda: [sim])
    server.start()
    grabber = V4l2Grabber("g0", "sim", 640, 480, 30, source=PipeSource(sim.address))
    try:
        grabber.open()  # its reader takes the frames: the source sends them
        browser.get(server.url + "sim/")

        def picture_width():
            try:
                return browser.execute_script(
                    "const i = document.getElementById('grabber-film'); return i && i.complete ? i.naturalWidth : 0;")
            except StaleElementReferenceException:
                return 0

        wait_until(lambda: text(browser, "grabber-signal") == "on", 20, what="signal on shown")
        wait_until(lambda: "640x480" in (text(browser, "grabber-format") or ""), 20, what="the format shown")
        wait_until(lambda: picture_width() == 640, 20, what="the last frame shown")
        browser.save_screenshot(str(tmp_path / "grabber-page.png"))
        click(browser, "act-grabber-signal-off")
        wait_until(lambda: text(browser, "grabber-signal") == "off", 20, what="signal off shown")
        assert not sim.signal
        click(browser, "act-grabber-resolution-800x600")
        wait_until(lambda: "800x600" in (text(browser, "grabber-format") or ""), 20, what="800x600 shown")
        click(browser, "act-grabber-signal-on")
        wait_until(lambda: picture_width() == 800, 30, what="a frame of 800x600 shown")
        browser.save_screenshot(str(tmp_path / "grabber-page-800.png"))
    finally:
        grabber.close()
        server.stop()


@pytest.mark.interop
@pytest.mark.timeout(180)
def test_hwsim_grabber_reaches_the_source_inside_the_running_service(gateway_factory, tmp_path):
    """`dicom-gateway run` with [capture] on hw-sim's grabber: `hw-sim grabber` (another process)
    switches the source's resolution; the service's capture goes on at the new size."""
    import subprocess
    import sys

    from peers import wait_until

    folder = tmp_path / "grab"
    gw = gateway_factory({"capture": {"enabled": True, "grabber": {"kind": "sim", "sim_dir": str(folder)}}})

    def hw_sim(*args):
        return subprocess.run([sys.executable, "-m", "hwsim.cli", "grabber", "--grabber-dir", str(folder), *args],
                              capture_output=True, text=True, timeout=60)

    wait_until(lambda: "frames sent 0" not in hw_sim("status").stdout and (folder / "grabber.json").exists(),
               30, what="the service's grabber reading the source")
    assert gw.cli("capture").returncode == 0
    switched = hw_sim("resolution", "800x600")
    assert switched.returncode == 0 and "800x600" in switched.stdout, switched.stderr
    wait_until(lambda: "no driver connected" not in hw_sim("status").stdout, 30, what="the driver back on the stream")
    still = gw.cli("capture")
    assert still.returncode == 0, still.stdout + still.stderr
    assert "Traceback" not in gw.log
    # The still made after the switch has the new size (its UID is the one the command names).
    import re

    import pydicom
    uids = set(re.findall(r"\b\d+(?:\.\d+){4,}\b", still.stdout))
    sizes = []
    for path in gw.buffer.rglob("*"):
        if path.is_file():
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - the index and other files of the buffer
                continue
            if ds.get("SOPInstanceUID") in uids:
                sizes.append((ds.Rows, ds.Columns))
    assert sizes == [(600, 800)], (uids, sizes)
    refused = hw_sim("resolution", "99x99")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
