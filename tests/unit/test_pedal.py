"""The foot pedal: hw-sim's pedal (hwsim/pedal.py) writing input_event records into a FIFO, read by
the real driver (drivers/pedal/evdev_pedal.py, the panel's EvdevButtons decoding through
python-evdev), decided by gateway/capture/pedal.py's PedalTrigger into capture(long) calls; the
[capture.pedal] config.  No wall-clock assertions: every wait is bounded and waits for an outcome."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from peers import wait_until
from pydantic import ValidationError

from drivers import registry
from drivers.pedal.evdev_pedal import EvdevPedal
from drivers.pedal.interface import PedalError
from gateway.capture.pedal import PedalTrigger
from gateway.config.capture import CaptureSection, PedalSection
from hwsim import cli
from hwsim.pedal import SimPedal

KEY_A = 30  # a key that is not the pedal's


@dataclass
class Result:
    """What Commands.capture answers, as much as the trigger reads."""

    refused: str = ""
    ok: bool = True


class Captures:
    """The injected capture(long): records each call and the thread it ran on."""

    def __init__(self, answer: Result | None = None):
        self.calls: list[bool] = []
        self.threads: set[str] = set()
        self.answer = answer or Result()
        self.lock = threading.Lock()

    def __call__(self, long: bool) -> Result:
        with self.lock:
            self.calls.append(long)
            self.threads.add(threading.current_thread().name)
        return self.answer


def _cfg(tmp_path: Path, **kw) -> PedalSection:
    return PedalSection(enabled=True, kind="sim", sim_dir=str(tmp_path / "pedal"), long_press_s=0.3,
                        sim_long_press_s=1.0, **kw)


@pytest.fixture
def pedal(tmp_path):
    """A started PedalTrigger on hw-sim's pedal (from the registry, as the app builds it) and its
    Captures; stopped at the end even when the test fails."""
    made = []

    def make(answer: Result | None = None, **kw):
        cfg = _cfg(tmp_path, **kw)
        device = registry.create("pedal", "sim", cfg, Path)
        assert isinstance(device, SimPedal)
        captures = Captures(answer)
        trigger = PedalTrigger(device, captures, cfg.long_press_s)
        made.append(trigger)
        trigger.start()
        return trigger, device.simulator, captures

    yield make
    for trigger in made:
        trigger.stop()


def _pedal_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.is_alive()
            and t.name in ("pedal-input", "capture-pedal", "hwsim-pedal", "hwsim-pedal-release")]


def test_a_tap_is_a_still_and_a_hold_is_one_clip(pedal):
    trigger, sim, captures = pedal()
    sim.press()
    wait_until(lambda: captures.calls == [False], 10, what="a still from the tap")
    sim.press(long=True)
    wait_until(lambda: captures.calls == [False, True], 10, what="a clip from the hold")
    # The release after the hold asks for nothing more: a tap after it is the next call.
    wait_until(lambda: not sim.state()["edges"][-1]["pressed"], 10, what="the hold's release")
    sim.press()
    wait_until(lambda: len(captures.calls) == 3, 10, what="the next tap")
    assert captures.calls == [False, True, False]
    # Never on the driver's reader thread: the trigger's own.
    assert captures.threads == {"capture-pedal"}


def test_another_key_on_the_device_is_ignored(pedal):
    trigger, sim, captures = pedal()
    sim.key(True, code=KEY_A)
    sim.key(False, code=KEY_A)
    sim.press()
    wait_until(lambda: captures.calls, 10, what="the pedal's tap")
    # Read after KEY_A from the same FIFO and decided in order: once the hold's clip is asked
    # for, every edge before it was decided (a KEY_A taken for the pedal would be a still more).
    sim.press(long=True)
    wait_until(lambda: True in captures.calls, 10, what="the pedal's hold")
    assert captures.calls == [False, True]


def test_a_refusal_is_logged_once_while_it_repeats(pedal, caplog):
    caplog.set_level(logging.INFO, logger="gateway.capture.pedal")
    trigger, sim, captures = pedal(Result(refused="capture: a clip is recording", ok=False))
    for n in (1, 2, 3):
        sim.press()
        wait_until(lambda n=n: len(captures.calls) == n, 10, what=f"tap {n}")
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusals == ["foot pedal: still refused: capture: a clip is recording"]


def test_a_device_that_does_not_exist_is_one_line_naming_it(tmp_path):
    missing = str(tmp_path / "by-id" / "usb-foot-switch-event-kbd")
    for raw in (False, True):  # evdev.InputDevice on the box; the FIFO path hw-sim uses
        with pytest.raises(PedalError) as err:
            EvdevPedal(missing, 48, raw=raw).start(lambda ev: None)
        msg = str(err.value)
        assert "\n" not in msg and missing in msg and msg.startswith("pedal input device"), msg
    # Through the trigger and the registry's real kind: the same line, and nothing left running.
    trigger = PedalTrigger(registry.create("pedal", "evdev", _cfg(tmp_path, device=missing), Path),
                           Captures(), 0.3)
    with pytest.raises(PedalError, match="No such file"):
        trigger.start()
    assert not trigger.is_alive() and _pedal_threads() == []


def test_stop_leaves_no_thread(pedal):
    trigger, sim, captures = pedal()
    sim.press(long=True)  # stopped while the simulator's release timer is pending
    wait_until(lambda: captures.calls == [True], 10, what="the clip")
    sim.press()
    trigger.stop()
    assert not trigger.is_alive()
    wait_until(lambda: _pedal_threads() == [], 10, what="every pedal thread ended")


def test_hwsim_pedal_cli_presses_through_the_control_folder(pedal, tmp_path, capsys):
    trigger, sim, captures = pedal()
    folder = str(tmp_path / "pedal")
    assert cli.main(["pedal", "--pedal-dir", folder, "press"]) == 0
    wait_until(lambda: captures.calls == [False], 10, what="a still from `hw-sim pedal press`")
    assert cli.main(["pedal", "--pedal-dir", folder, "press", "--long"]) == 0
    wait_until(lambda: captures.calls == [False, True], 10, what="a clip from `hw-sim pedal press --long`")
    out = capsys.readouterr().out
    assert "pedal pressed\n" in out and "pedal pressed (held 1 s)" in out
    wait_until(lambda: len(sim.edges) == 4, 10, what="both presses released")
    assert cli.main(["pedal", "--pedal-dir", folder, "show"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("pedal: key code 48; last edges (newest first): released ") and \
        shown.count("pressed ") == 2 and shown.count("released ") == 2, shown
    assert cli.main(["pedal", "--pedal-dir", str(tmp_path / "nowhere"), "press"]) == 1
    assert "no simulated pedal in" in capsys.readouterr().err


def test_config_is_strict_and_bounded():
    assert PedalSection().enabled is False and PedalSection().key_code == 48
    for bad in ({"key_code": 0}, {"key_code": 0x300}, {"long_press_s": 0.1}, {"long_press_s": 9.0},
                {"key_code": "48"}, {"device": " "}, {"mode": "hold"}, {"kind": "usb-hid"},
                {"long_press_s": 2.0, "sim_long_press_s": 1.5}):
        with pytest.raises(ValidationError):
            PedalSection(**bad)
    with pytest.raises(ValidationError, match="needs \\[capture\\] enabled"):
        CaptureSection(pedal={"enabled": True})
    assert CaptureSection(enabled=True, pedal={"enabled": True, "kind": "evdev"}).pedal.kind == "evdev"
