"""hw-sim's panel (hwsim/panel.py): the HD44780 it simulates, and the whole simulated panel under the
real drivers, driven by `hw-sim panel` through its control folder."""

from __future__ import annotations

import threading
import time

import pytest

from drivers import registry
from gateway.config.panel import PanelSection
from hwsim import cli
from hwsim.panel import Hd44780, SimError, led_pattern, send

# -- the HD44780 decoder on its own: a sequence written from the datasheet, not by RPLCD ---------------

E, RS, BL = 0x04, 0x01, 0x08


def _pulse(glass: Hd44780, nibble: int, rs: bool) -> None:
    """One nibble on a PCF8574 backpack: data on P7..P4, E high then low (the latch edge)."""
    base = (nibble << 4) | BL | (RS if rs else 0)
    for value in (base, base | E, base):
        glass.write_byte(0x27, value)


def _byte(glass: Hd44780, value: int, rs: bool = False) -> None:
    _pulse(glass, value >> 4, rs)
    _pulse(glass, value & 0x0F, rs)


def test_the_decoder_follows_the_datasheet_init_and_addressing():
    glass = Hd44780(16, 0x27)
    # HD44780U p. 46, "initializing by instruction", 4-bit: three 8-bit function sets, then 4-bit.
    for _ in range(3):
        _pulse(glass, 0x3, False)
    _pulse(glass, 0x2, False)
    assert not glass.eight_bit
    for instruction in (0x28, 0x0C, 0x01, 0x06):  # 2 lines; display on; clear; increment
        _byte(glass, instruction)
    for ch in b"Hi":
        _byte(glass, ch, rs=True)
    _byte(glass, 0xC0)                           # DDRAM 0x40: line 2
    for ch in b"\x5c\xb1":                      # ROM A00: yen sign, katakana A
        _byte(glass, ch, rs=True)
    assert glass.lines() == ["Hi" + " " * 14, "¥ｱ" + " " * 14]
    _byte(glass, 0x08)                           # display off: the glass is blank, DDRAM kept
    assert glass.lines() == [" " * 16] * 2
    _byte(glass, 0x0C)
    assert glass.lines()[0].startswith("Hi")
    with pytest.raises(OSError):                 # nobody at 0x3F: no acknowledge
        glass.write_byte(0x3F, 0)


# -- the simulated panel under the real drivers --------------------------------------------------------

class _Edges:
    def __init__(self):
        self.events = []
        self.cond = threading.Condition()
        self.answer = lambda event: None  # what the service would do at an edge

    def __call__(self, event):
        self.answer(event)
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, n):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.events) >= n, 10), self.events
        return self.events


@pytest.fixture
def sim(tmp_path):
    cfg = PanelSection(kind="sim", columns=20, sim_long_press_s=0.05)
    panel = registry.create("panel", "sim", cfg, lambda p: tmp_path / p)
    edges = _Edges()
    panel.start(edges)
    yield panel, edges, tmp_path / cfg.sim_dir
    panel.stop()


def test_what_the_drivers_write_is_what_the_simulator_shows(sim):
    panel, _, folder = sim
    assert (panel.columns, panel.charset) == (20, "hd44780-a00")
    panel.show("READY  3 queued", "ﾔﾏﾀﾞ ﾀﾛｳ CT")
    panel.set_led("power", "on")
    panel.set_led("error", "blink-fast")
    state = panel.simulator.state()
    assert state["display"]["lines"] == ["READY  3 queued     ", "ﾔﾏﾀﾞ ﾀﾛｳ CT         "]
    assert state["leds"]["power"]["pattern"] == "on"
    assert state["leds"]["error"] == {"device": "panel:red:error", "pattern": "blink-fast", "on_ms": 125,
                                      "off_ms": 125}
    assert state["leds"]["media"]["pattern"] == "off"
    assert led_pattern(folder / "leds" / "panel:red:error").on_ms == 125


def test_hwsim_panel_press_reaches_the_panel_as_button_edges(sim, capsys):
    panel, edges, folder = sim
    # --settle 0: nothing serves the panel here, so nothing will change after the release.
    assert cli.main(["panel", "--panel-dir", str(folder), "press", "ack", "--settle", "0"]) == 0
    assert capsys.readouterr().out.startswith("pressed ack")
    assert cli.main(["panel", "--panel-dir", str(folder), "press", "export", "--long", "--settle", "0"]) == 0
    # --long holds the button [panel] sim_long_press_s (0.05 here), a short press SHORT_PRESS_S.
    assert [t.interval for t in panel.simulator._timers][-1] == 0.05
    events = edges.wait_for(4)
    assert sorted((e.name, e.pressed) for e in events) == [("ack", False), ("ack", True),
                                                          ("export", False), ("export", True)]
    # Each release follows its own press.
    for name in ("ack", "export"):
        down, up = [e for e in events if e.name == name]
        assert down.pressed and not up.pressed and down.at <= up.at
    assert [e["button"] for e in panel.simulator.state()["edges"]][:1] == ["ack"]


def test_press_prints_the_answer_once_written_not_a_screen_half_written(sim, capsys, monkeypatch):
    # The driver writes a screen a character at a time; the service here answers the release with
    # a screen written slowly (2 ms a bus write, about half a second), as a loaded box may.
    panel, edges, folder = sim
    panel.show("READY", "QUEUE 0")
    glass = panel.simulator.display
    write = glass.write_byte

    def slow_write(address, value):
        time.sleep(0.002)
        write(address, value)

    def answer(event):
        if event.name == "next" and not event.pressed:
            monkeypatch.setattr(glass, "write_byte", slow_write)
            threading.Thread(target=panel.show, args=("CompressedSample", "ID 1234 CT 9704")).start()

    edges.answer = answer
    assert cli.main(["panel", "--panel-dir", str(folder), "press", "next", "--settle", "10"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2:4] == ["|CompressedSample    |", "|ID 1234 CT 9704     |"], out


def test_hwsim_panel_show_prints_the_glass_and_the_leds(sim, capsys):
    panel, _, folder = sim
    panel.show("PACS down", "12 waiting")
    panel.set_led("network", "blink-slow")
    assert cli.main(["panel", "--panel-dir", str(folder), "show"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "|PACS down           |" and out[2] == "|12 waiting          |"
    assert "network: blink-slow" in out[4]


def test_refusals_are_one_line(sim, tmp_path, capsys):
    _, _, folder = sim
    assert cli.main(["panel", "--panel-dir", str(folder), "press", "reboot"]) == 1
    err = capsys.readouterr().err
    assert "unknown button 'reboot'" in err and err.count("\n") == 1
    assert cli.main(["panel", "--panel-dir", str(tmp_path / "elsewhere"), "show"]) == 1
    err = capsys.readouterr().err
    assert "no simulated panel" in err and err.count("\n") == 1
    with pytest.raises(SimError, match="unknown command"):
        send(folder, {"verb": "explode"})


@pytest.mark.parametrize("argv, named", [
    (["panel", "press"], "the following arguments are required: button"),
    (["printer", "explode"], "invalid choice: 'explode'"),
    (["media", "insert", "floppy"], "invalid choice: 'floppy'"),
    ([], "the following arguments are required: device"),
])
def test_a_bad_command_line_is_one_line_and_exit_2(argv, named, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and named in err and err.count("\n") == 1 and "--help)" in err, err


def test_a_listener_hears_the_display_and_the_buttons(sim):
    panel, edges, _ = sim
    seen = []
    panel.simulator.subscribe(seen.append)
    panel.show("EXPORT", "")
    assert any(s["display"]["lines"][0].startswith("EXPORT") for s in seen)
    panel.simulator.button("next", True)
    edges.wait_for(1)
    assert seen[-1]["edges"][-1]["button"] == "next"


def test_the_sim_does_not_simulate_a_serial_display(tmp_path):
    with pytest.raises(ValueError, match="serlcd"):
        PanelSection(kind="sim", display="serlcd")
