"""The front panel running (gateway/panel/runner.py): events in, LEDs and lines out on a fake
FrontPanel; button edges from another thread; a failing and a slow driver; the config's names."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from drivers.panel.interface import ButtonEvent, PanelError
from gateway import config
from gateway import event_kinds as K
from gateway.config.panel import DEFAULT_BUTTONS, DEFAULT_LEDS, PanelSection
from gateway.events import EventBus
from gateway.panel.buttons import BUTTONS
from gateway.panel.leds import LEDS
from gateway.panel.runner import PanelRunner


def wait_for(cond, what: str, limit: float = 15.0):
    """Poll `cond` until true; the limit is a hang guard, not a timing assertion."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


class FakeFront:
    """A FrontPanel recording what it is told. fail: parts that raise PanelError ("display" or an
    LED name). gate: when set to an Event, show() blocks until it is set (a slow I2C display);
    led_gate the same for set_led()."""

    columns = 16
    charset = "hd44780-a00"

    def __init__(self):
        self.leds: dict[str, str] = {}
        self.led_calls: list[tuple[str, str]] = []
        self.shown: list[tuple[str, str]] = []
        self.fail: set[str] = set()
        self.gate: threading.Event | None = None
        self.on_button = None
        self.stopped = False
        self.in_show = threading.Event()
        self.led_gate: threading.Event | None = None
        self.in_led = threading.Event()

    def start(self, on_button):
        self.on_button = on_button

    def set_led(self, name, pattern):
        self.in_led.set()
        if self.led_gate is not None:
            self.led_gate.wait()
        if name in self.fail:
            raise PanelError(f"LED {name}: /sys/class/leds/panel:{name} is not there")
        self.leds[name] = pattern.name
        self.led_calls.append((name, pattern.name))

    def show(self, line1, line2):
        self.in_show.set()
        if self.gate is not None:
            self.gate.wait()
        if "display" in self.fail:
            raise PanelError("display: nothing answers at I2C address 0x27 on /dev/i2c-1")
        self.shown.append((line1, line2))

    @property
    def lines(self):
        return self.shown[-1] if self.shown else None

    def stop(self):
        self.stopped = True


class Result:
    def __init__(self, summary="", refused=""):
        self.summary, self.refused = summary, refused


class FakeCommands:
    """Records each verb and the thread it was called on."""

    def __init__(self):
        self.calls: list[tuple[str, tuple, str]] = []

    def export(self, study_uids, drive=None, copies=1):
        self.calls.append(("export", (list(study_uids), drive), threading.current_thread().name))
        return Result("1 job queued")

    def eject(self, drive):
        self.calls.append(("eject", (drive,), threading.current_thread().name))
        return Result("ejected")


class FakeIndex:
    """The buffer's index as recent_studies reads it: one study."""

    def query(self, sql, params=()):
        return [{"study_uid": "1.2.3", "patient_id": "PID1", "patient_name": "Doe^Jane",
                 "study_date": "20260101", "modalities": "CT"}]


@pytest.fixture
def rig():
    bus, front, commands = EventBus(), FakeFront(), FakeCommands()
    runners = []

    def make(**kw):
        settings = kw.pop("settings", PanelSection(long_press_s=0.3, message_s=1.0))
        r = PanelRunner(bus, front, commands, FakeIndex(), settings, drives=["cd"], **kw)
        r.start()
        runners.append(r)
        return r

    yield bus, front, commands, make
    for r in runners:
        r.stop(timeout=2)


def _ready(bus):
    bus.publish(K.QueueDepths(counts=()))


def test_events_in_leds_and_lines_out_only_what_changed(rig):
    bus, front, _, make = rig
    make()
    wait_for(lambda: front.lines and front.lines[0].startswith("STARTING"), "the starting screen")
    assert front.leds["power"] == "slow"
    _ready(bus)
    wait_for(lambda: front.lines[0].startswith("READY"), "READY")
    assert front.leds["power"] == "on" and front.lines[1] == "QUEUE 0   DEAD 0"
    shows, power_writes = len(front.shown), [c for c in front.led_calls if c[0] == "power"]
    _ready(bus)  # nothing changes: nothing is sent
    bus.publish(K.DestinationDown(target="pacs", reason="refused", retry_in=5.0))
    wait_for(lambda: front.leds.get("network") == "slow", "the network LED blinking for pacs down")
    wait_for(lambda: front.lines[0].startswith("PACS DOWN"), "PACS DOWN on line 1")
    assert [c for c in front.led_calls if c[0] == "power"] == power_writes
    assert len(front.shown) == shows + 1


def test_activity_flickers_then_goes_dark_by_the_logic_s_own_clock(rig):
    bus, front, _, make = rig
    make()
    _ready(bus)
    bus.publish(K.Received(sop_uid="1.2", calling_ae="CT", source="AE:CT", outcome="stored"))
    wait_for(lambda: front.leds.get("activity") == "flicker", "the activity LED flickering")
    # No further event: only the runner's due time turns it off (leds.ACTIVITY_S later).
    wait_for(lambda: front.leds.get("activity") == "off", "the activity LED dark again")


def test_button_edges_from_the_driver_s_thread_act_on_the_runner_s_thread(rig):
    bus, front, commands, make = rig
    make()
    _ready(bus)

    def edge(name, pressed):
        t = threading.Thread(target=front.on_button, args=(ButtonEvent(name, pressed, time.monotonic()),),
                             name="driver-reader")
        t.start()
        t.join()

    edge("export", True)
    edge("export", False)  # short: go to the studies
    wait_for(lambda: front.lines and front.lines[0].startswith("Doe Jane"), "the study screen")
    edge("export", True)  # held: the long press fires on the runner's tick, still held
    wait_for(lambda: commands.calls, "the export command")
    assert commands.calls == [("export", (["1.2.3"], "cd"), "panel")]
    wait_for(lambda: front.lines[0].startswith("EXPORT OK"), "the command's answer")
    edge("export", False)  # the release of a long press does nothing more
    # The answer expires message_s later with no event at all: the runner woke for it.
    wait_for(lambda: front.lines[0].startswith("Doe Jane"), "the study screen again")
    assert len(commands.calls) == 1


def test_a_long_hold_queued_behind_a_slow_display_is_still_long(rig):
    bus, front, commands, make = rig
    make()
    _ready(bus)
    front.on_button(ButtonEvent("export", True, time.monotonic()))
    front.on_button(ButtonEvent("export", False, time.monotonic()))
    wait_for(lambda: front.lines and front.lines[0].startswith("Doe Jane"), "the study screen")
    front.led_gate = threading.Event()
    front.in_led.clear()
    bus.publish(K.DestinationDown(target="pacs", reason="refused", retry_in=5.0))  # an LED write, held up
    wait_for(front.in_led.is_set, "the runner inside the LED driver")
    # Both edges of a hold of 2 s (kernel stamps) arrive while the runner is held up; it sees them
    # one after the other, and must still measure the hold from the stamps, not from its own reading.
    now = time.monotonic()
    front.on_button(ButtonEvent("export", True, now - 2.0))
    front.on_button(ButtonEvent("export", False, now))
    front.led_gate.set()
    wait_for(lambda: commands.calls, "the export of a long press")
    assert commands.calls[0][0] == "export"


def test_a_failing_part_is_one_warning_and_the_panel_s_alarm(rig, caplog):
    bus, front, _, make = rig
    front.fail = {"network"}
    caplog.set_level(logging.INFO, logger="gateway.panel")
    r = make()
    _ready(bus)
    for _ in range(3):
        bus.publish(K.DestinationDown(target="pacs", reason="refused", retry_in=5.0))
        bus.publish(K.DestinationUp(target="pacs"))
    wait_for(lambda: front.leds.get("error") == "fast", "the error LED showing the fault")
    wait_for(lambda: front.lines[0].startswith("!PANEL FAULT"), "the fault on the display")
    warnings = [rec for rec in caplog.records if rec.levelno == logging.WARNING]
    assert len(warnings) == 1 and "LED network failed" in warnings[0].getMessage(), warnings
    assert r.is_alive()
    front.fail = set()
    bus.publish(K.DestinationDown(target="pacs", reason="refused", retry_in=5.0))
    wait_for(lambda: front.leds.get("network") == "slow", "the LED written once it works")
    # Cleared before anyone acknowledged it: ISA-18.2 keeps it, blinking slowly.
    wait_for(lambda: front.leds.get("error") == "slow", "the alarm returned to normal")
    assert any("LED network works again" in rec.getMessage() for rec in caplog.records)


def test_a_slow_display_never_blocks_publish(rig):
    bus, front, _, make = rig
    front.gate = threading.Event()
    r = make()
    wait_for(front.in_show.is_set, "the runner inside the display")
    for i in range(5000):  # far more than the runner's queue holds
        bus.publish(K.Received(sop_uid=f"1.2.{i}", calling_ae="CT", source="AE:CT", outcome="stored"))
    # Every publish returned while the display still holds the runner: it lost its oldest events.
    assert not front.gate.is_set() and r._sub.dropped > 0
    front.gate.set()
    _ready(bus)
    wait_for(lambda: front.lines and front.lines[0].startswith(("RECEIVING", "READY")), "the panel caught up")


def test_a_config_problem_is_an_alarm(rig):
    bus, front, _, make = rig
    make()
    _ready(bus)
    bus.publish(K.ConfigProblem(key="status_http.port", detail="cannot listen on 127.0.0.1:8080"))
    wait_for(lambda: front.lines and front.lines[0].startswith("!CONFIG PROBLEM"), "the alarm on line 1")
    assert front.lines[1].startswith("status_http.port")
    assert front.leds["error"] == "fast"


def test_stop_ends_the_thread_and_the_hardware_even_when_stuck(rig, caplog):
    bus, front, _, make = rig
    r = make()
    wait_for(lambda: front.shown, "a first draw")
    r.stop()
    assert not r.is_alive() and front.stopped
    stuck, other = FakeFront(), EventBus()
    stuck.gate = threading.Event()
    s = PanelRunner(other, stuck, FakeCommands(), None)
    s.start()
    wait_for(stuck.in_show.is_set, "the runner inside the display")
    s.stop(timeout=0.2)
    assert not stuck.stopped and "stuck" in caplog.text
    stuck.gate.set()


def test_a_panel_that_cannot_start_gives_its_subscription_back():
    class Absent(FakeFront):
        def start(self, on_button):
            raise PanelError("LED power: /sys/class/leds/panel:green:power is not there")

    bus = EventBus()
    r = PanelRunner(bus, Absent(), FakeCommands(), None)
    with pytest.raises(PanelError):
        r.start()
    assert not bus._subs and not r.is_alive()


# -- the config's names are the logic's --------------------------------------------------------

def test_config_defaults_name_exactly_the_logic_s_leds_and_buttons():
    assert tuple(DEFAULT_LEDS) == LEDS and tuple(DEFAULT_BUTTONS) == BUTTONS


def _problems(overrides):
    try:
        config.load(None, overrides)
    except config.ConfigError as exc:
        return exc.problems
    return []


def test_a_missing_or_extra_led_or_button_is_a_config_error_naming_it():
    leds = {**DEFAULT_LEDS}
    del leds["media"]
    leds["fan"] = "panel:green:fan"
    table = "{" + ", ".join(f'{k}="{v}"' for k, v in leds.items()) + "}"
    (problem,) = _problems([f"panel.leds={table}"])
    assert "leds: 'media' is missing" in problem and "leds.fan: not an LED the panel logic knows" in problem
    (problem,) = _problems(["panel.buttons={export=59, eject=60, capture=61, next=62, previous=63}"])
    assert "buttons: 'ack' is missing" in problem


def test_check_config_names_a_missing_button(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    bad = tmp_path / "bad.toml"
    bad.write_text("[panel.buttons]\nexport = 59\neject = 60\ncapture = 61\nnext = 62\nprevious = 63\n")
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", "--config", str(bad)],
                       capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 2 and "'ack' is missing" in r.stderr, r.stderr
