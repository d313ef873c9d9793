"""The simulated box's views (gateway/status/views.py) on hw-sim's simulators, `hw-sim printer`, and
the status server's /sim/ routes: served on loopback with a view only, actions as JSON POSTs, changes
pushed on /sim/events. The whole service in a real browser is tests/interop/test_sim_page.py."""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from drivers import registry
from drivers.printer.interface import Printer, PrintJob
from drivers.printer.raster import RasterLanguage
from drivers.printer.transport_serial import SerialTransport
from gateway.config.panel import PanelSection
from gateway.config.status_http import StatusHttpSection
from gateway.events import EventBus
from gateway.status.metrics import new_registry
from gateway.status.server import StatusServer
from gateway.status.views import SimViews, page_state, queue_summary, view_of
from hwsim import cli
from hwsim.media import SimulatedOpticalDrive, SimulatedUsbPort
from hwsim.serial_imager import SerialFilmImager
from hwsim.usb_printer import SimulatedUsbPrinter
from peers import require


class _Count:
    """A view listener: counts calls, wakes a waiter."""

    def __init__(self):
        self.n = 0
        self.cond = threading.Condition()

    def __call__(self):
        with self.cond:
            self.n += 1
            self.cond.notify_all()

    def wait_above(self, n):
        with self.cond:
            assert self.cond.wait_for(lambda: self.n > n, 10), "no change reported"


# -- the printers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: SerialFilmImager(films=50), lambda: SimulatedUsbPrinter(films=50)],
                         ids=["serial", "usb"])
def test_a_printer_view_jams_runs_out_and_is_loaded(make):
    printer = make()
    assert view_of(printer) is printer
    heard = _Count()
    printer.view_subscribe(heard)
    assert printer.view_state()["status"] == "NORMAL"
    assert printer.view_state()["films_left"] == 50
    assert printer.view_act("jam", {}) == "printer: FILM JAM"
    assert heard.n == 1
    assert printer.view_act("unjam", {}) == "printer: NORMAL"
    out = printer.view_act("out-of-film", {})
    assert out in ("printer: SUPPLY EMPTY", "printer: OUT OF FILM")
    assert printer.view_act("load", {}) == "printer: NORMAL"
    assert printer.view_state()["films_left"] == 50
    assert heard.n == 4
    assert printer.view_film() is None  # nothing printed yet


def test_the_serial_imager_reports_the_jam_in_its_status_bits():
    printer = SerialFilmImager()
    printer.view_act("jam", {})
    assert printer.status_bits() & 0x01  # FILM_JAM: what the real driver reads over DRF/1
    printer.view_act("out-of-film", {})
    assert printer.status_bits() & 0x02
    assert printer.view_state()["status"] == "FILM JAM, SUPPLY EMPTY"


def test_a_bad_printer_action_is_one_line():
    with pytest.raises(ValueError) as exc:
        SerialFilmImager().view_act("explode", {})
    assert "\n" not in str(exc.value) and "explode" in str(exc.value)


def test_hwsim_printer_cli_goes_through_the_control_folder(tmp_path, capsys):
    printer = SerialFilmImager(films=70)
    printer.watch_control(tmp_path / "printer")
    try:
        folder = str(tmp_path / "printer")
        assert cli.main(["printer", "--printer-dir", folder, "jam"]) == 0
        assert capsys.readouterr().out == "printer (DRF/1 serial film imager): FILM JAM; films left 70; printed 0\n"
        assert printer.jammed
        assert cli.main(["printer", "--printer-dir", folder, "unjam"]) == 0
        assert not printer.jammed
        assert cli.main(["printer", "--printer-dir", folder, "status"]) == 0
        assert "NORMAL" in capsys.readouterr().out
    finally:
        printer.stop_control()
    assert cli.main(["printer", "--printer-dir", str(tmp_path / "nowhere"), "jam"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hw-sim: no simulated printer in") and err.count("\n") == 1


# -- the drives ---------------------------------------------------------------------------------------

def test_an_optical_drive_view_inserts_and_pulls(tmp_path):
    sim = SimulatedOpticalDrive("cd", tmp_path / "cd")
    sim.start()
    try:
        heard = _Count()
        sim.view_subscribe(heard)
        assert (sim.view_name, sim.view_kind, sim.view_state()["medium"]) == ("cd", "drive", None)
        assert sim.view_act("insert", {"medium": "cd", "data": False}) == "cd: cd blank"
        assert heard.n >= 1
        assert sim.view_state()["medium"] == {"kind": "cd", "blank": True}
        with pytest.raises(ValueError, match="already holds a disc"):
            sim.view_act("insert", {"medium": "dvd"})
        assert sim.view_act("pull", {}) == "cd: empty"
        with pytest.raises(ValueError) as exc:
            sim.view_act("pull", {})
        assert str(exc.value) == "drive cd has no medium to pull"
        with pytest.raises(ValueError, match="unknown action 'burn'"):
            sim.view_act("burn", {})
    finally:
        sim.stop()


def test_a_usb_port_view_plugs_in_the_sample_study(tmp_path):
    require("mkfs.vfat", "dosfstools")
    require("mcopy", "mtools")
    sim = SimulatedUsbPort("usb", tmp_path / "usb", stick_bytes=40 * 1024 * 1024)
    sim.start()
    try:
        assert sim.view_act("insert", {"data": True}) == "usb: usb with data"
        assert (tmp_path / "usb" / "sample-study" / "DICOMDIR").is_file()
        assert sim.view_state()["medium"]["blank"] is False
    finally:
        sim.stop()


def test_an_optical_drive_view_masters_a_dvd_with_the_sample_study(tmp_path):
    require("xorriso", "xorriso")
    sim = SimulatedOpticalDrive("cd", tmp_path / "cd")
    sim.start()
    try:
        assert sim.view_act("insert", {"medium": "dvd", "data": True}) == "cd: dvd with data"
        assert sim.view_state()["medium"] == {"kind": "dvd", "blank": False}
    finally:
        sim.stop()


# -- the panel ----------------------------------------------------------------------------------------

def test_the_panel_view_presses_buttons_and_shows_the_glass(tmp_path):
    cfg = PanelSection(kind="sim", columns=16, sim_long_press_s=0.05)
    panel = registry.create("panel", "sim", cfg, lambda p: tmp_path / p)
    panel.start(lambda ev: None)
    try:
        view = view_of(panel)
        assert view is panel.simulator and view.view_kind == "panel"
        heard = _Count()
        view.view_subscribe(heard)
        panel.show("HELLO", "WORLD")
        assert view.view_state()["display"]["lines"] == ["HELLO           ", "WORLD           "]
        seen = heard.n
        assert view.view_act("press", {"button": "ack", "long": True}) == "pressed ack (long)"
        heard.wait_above(seen)
        assert view.view_state()["edges"][-1]["button"] == "ack"
        with pytest.raises(ValueError) as exc:
            view.view_act("press", {"button": "nope"})
        assert str(exc.value).startswith("unknown button 'nope'") and "\n" not in str(exc.value)
        with pytest.raises(ValueError, match="unknown action 'twist'"):
            view.view_act("twist", {})
        views = SimViews(lambda: [panel])
        with pytest.raises(ValueError) as exc:
            views.act("panel", "press", {"button": "ack", "lon": True})
        assert str(exc.value) == "panel press: unknown argument 'lon' (it takes button, long)"
        assert views.act("panel", "up", {"button": "ack"}) == "ack released"
    finally:
        panel.stop()


# -- assembly -----------------------------------------------------------------------------------------

def test_views_are_found_on_devices_or_their_simulator_and_cached_between_changes():
    class Connection:  # what a printer connection looks like to the app: a simulator attribute
        simulator = None

    conn, real = Connection(), object()
    views = SimViews(lambda: [conn, real])
    assert views.current() == {}
    conn.simulator = printer = SerialFilmImager()
    calls = []
    original = printer.view_state
    printer.view_state = lambda: calls.append(1) or original()
    assert [v["name"] for v in views.states()] == ["printer"]
    views.states()
    assert len(calls) == 1  # nothing changed: the cached state
    printer.view_act("jam", {})
    assert views.states()[0]["state"]["status"] == "FILM JAM"
    assert len(calls) == 2


def test_the_queue_summary_reads_the_status_documents_queues():
    doc = {"queues": {"forward": {"pacs": {"queued": 2, "in_flight": 1, "committing": 0, "dead": 3}},
                      "export": {"cd": {"queued": 1, "in_flight": 0, "committing": 0, "dead": 0}}},
           "printer": {"status": "NORMAL"}}
    assert queue_summary(doc) == [{"kind": "export", "target": "cd", "waiting": 1, "dead": 0},
                                  {"kind": "forward", "target": "pacs", "waiting": 3, "dead": 3}]
    assert queue_summary({"queues": None}) == []
    assert page_state(SimViews(list), doc)["printer"] == {"status": "NORMAL"}


# -- the server's /sim/ routes ------------------------------------------------------------------------

def _snapshot():
    return {"pid": 1, "started": 1.0, "queues": None, "destinations": {}, "printer": None, "media": {},
            "disk": {}, "counts": {"received": 0, "refused": 0, "forwarded": 0, "dead_lettered": 0},
            "last_received": {"at": None, "source": ""}, "last_forwarded": {"at": None, "target": ""}}


def _section(**keys):
    # port 0 (a free port) is for tests only: the config bounds status_http.port to 1-65535.
    return StatusHttpSection.model_construct(**{"enabled": True, "bind": "127.0.0.1", "port": 0, "token": "",
                                                "sse_max_clients": 4, **keys})


@pytest.fixture
def serve():
    servers = []

    def make(devices, **keys):
        registry_, _ = new_registry(EventBus(), _snapshot)
        server = StatusServer(_section(**keys), _snapshot, registry_, lambda: None, devices=devices)
        server.start()
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.stop()


def _call(url, body=None, content_type="application/json"):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": content_type} if body is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as rsp:
            return rsp.status, rsp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_sim_routes_act_and_show(serve):
    printer = SerialFilmImager()
    s = serve(lambda: [printer])
    assert s.sim_url() == s.url + "sim/"
    status, page = _call(s.url + "sim/")
    assert status == 200 and b"EventSource(\"/sim/events\")" in page
    assert _call(s.url + "sim/act/printer/jam", {}) == (200, b"printer: FILM JAM\n")
    status, body = _call(s.url + "sim/state")
    doc = json.loads(body)
    assert doc["views"][0]["state"]["status"] == "FILM JAM"
    assert doc["views"][0]["actions"] == ["jam", "unjam", "out-of-film", "load"]
    assert _call(s.url + "sim/act/printer/explode", {}) == (
        400, b"400: printer: no action 'explode' (one of jam, unjam, out-of-film, load)\n")
    assert _call(s.url + "sim/act/plotter/jam", {})[0] == 404
    # An argument the action does not take is named, not ignored.
    assert _call(s.url + "sim/act/printer/load", {"films": 5}) == (
        400, b"400: printer load: unknown argument 'films' (it takes none)\n")
    assert _call(s.url + "sim/film/printer")[0] == 404  # nothing printed yet
    # A form from another web site cannot send JSON without a preflight: anything else is refused.
    assert _call(s.url + "sim/act/printer/unjam", {}, content_type="text/plain")[0] == 415
    assert printer.jammed


def test_a_film_printed_through_the_real_driver_is_pushed_and_served(serve):
    imager = SerialFilmImager()
    url = imager.start_tcp()
    heard = _Count()
    imager.view_subscribe(heard)
    s = serve(lambda: [imager])
    film = np.arange(120 * 90, dtype=np.uint32).reshape(120, 90).astype(np.uint8)
    printer = Printer(SerialTransport(url), RasterLanguage(status_timeout=5, print_timeout=10))
    try:
        assert printer.print_film(PrintJob(film, 50)).ready
    finally:
        printer.close()
        imager.stop()
    heard.wait_above(0)  # the print itself told the page, not a poll
    assert json.loads(_call(s.url + "sim/state")[1])["views"][0]["state"]["printed"] == 1
    status, png = _call(s.url + "sim/film/printer")
    assert status == 200
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), film)


def test_sim_events_push_a_simulators_change(serve):
    printer = SerialFilmImager()
    s = serve(lambda: [printer])
    with urllib.request.urlopen(s.url + "sim/events", timeout=10) as stream:
        def next_event():
            lines = []
            while (line := stream.readline().decode()) != "\n":
                lines.append(line)
            return json.loads(next(ln for ln in lines if ln.startswith("data: "))[6:])

        assert next_event()["views"][0]["state"]["status"] == "NORMAL"
        printer.view_act("jam", {})  # as the control folder would: not through the server
        assert next_event()["views"][0]["state"]["status"] == "FILM JAM"


def test_no_sim_routes_without_a_view(serve):
    s = serve(lambda: [object()])
    assert s.sim_url() is None
    for path in ("sim/", "sim/state", "sim/events"):
        assert _call(s.url + path)[0] == 404
    assert _call(s.url + "sim/act/printer/jam", {})[0] == 404


def test_no_sim_routes_off_loopback():
    printer = SerialFilmImager()
    registry_, _ = new_registry(EventBus(), _snapshot)
    # Not started: binding a non-loopback address is not the test's business; the decision is
    # made when the server is built, from status_http.bind.
    server = StatusServer(_section(bind="192.0.2.10", token="x" * 24), _snapshot, registry_, lambda: None,
                          devices=lambda: [printer])
    assert server.sim is None
    server.port = 8080
    assert server.sim_url() is None
