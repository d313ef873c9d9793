"""The panel drivers (drivers/panel/) against what the hardware would see.

- LEDs: a fake /sys/class/leds tree laid out here (the driver's root is a parameter), read back as
  the kernel would act on it.
- Buttons: ``struct input_event`` records packed here with ``struct`` (not with evdev, the code
  under test decodes with evdev) into a FIFO that the driver reads in raw mode.  A real evdev node
  needs /dev/uinput, which this machine does not have.
- HD44780: RPLCD's real byte stream on the simulated PCF8574 + HD44780 of hw-sim (hwsim/panel.py),
  which decodes it into the characters on the glass; that decoder is tested on its own, on a
  hand-written datasheet sequence, in test_hwsim_panel.py.
- SerLCD: pyserial's loop:// port; the bytes read back are decoded here by the command set.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from pathlib import Path

import pytest

from drivers import registry
from drivers.panel.buttons_evdev import EV_KEY, EvdevButtons, to_monotonic
from drivers.panel.front_panel import NoDisplay, Panel
from drivers.panel.interface import BLINK_FAST, ButtonEvent, FrontPanel, LedPattern, PanelError, as_pattern, fit
from drivers.panel.lcd_hd44780 import Hd44780I2c
from drivers.panel.lcd_serial import SerLcd
from drivers.panel.leds_sysfs import SysfsLeds
from hwsim.panel import Hd44780

LEDS = {"power": "panel:green:power", "error": "panel:red:error"}


def _sysfs(root: Path, names=LEDS.values(), triggers="none rfkill-any [mmc0] timer heartbeat", max_b="255"):
    for name in names:
        led = root / name
        led.mkdir(parents=True)
        (led / "brightness").write_text("0")
        (led / "max_brightness").write_text(max_b)
        (led / "trigger").write_text(triggers)
        # The kernel adds these as the timer trigger is set; a plain file tree has them from the start.
        (led / "delay_on").write_text("500")
        (led / "delay_off").write_text("500")
    return root


def _read(root: Path, led: str, leaf: str) -> str:
    return (root / LEDS[led] / leaf).read_text()


# -- patterns ---------------------------------------------------------------------------------------

class _LogicPattern:  # the shape of gateway/panel/leds.py's Pattern
    def __init__(self, on_ms, off_ms):
        self.name, self.on_ms, self.off_ms = "flicker", on_ms, off_ms


def test_patterns_by_name_or_by_delays():
    assert as_pattern("blink-fast") == BLINK_FAST == LedPattern(125, 125)
    assert as_pattern(_LogicPattern(50, 150)) == LedPattern(50, 150)
    assert as_pattern("on").steady is True and as_pattern("off").steady is False
    for bad in ("blinky", _LogicPattern(0, 0), _LogicPattern(-1, 5), _LogicPattern(70_000, 1), 3):
        with pytest.raises(ValueError) as exc:
            as_pattern(bad)
        assert "\n" not in str(exc.value)


def test_fit_cuts_pads_and_blanks_control_characters():
    assert fit("READY\x01x\ty", 16) == "READY x y       "
    assert fit("x" * 30, 20) == "x" * 20


# -- sysfs LEDs -------------------------------------------------------------------------------------

def test_steady_and_blinking_leds_are_written_as_the_led_class_wants(tmp_path):
    root = _sysfs(tmp_path)
    leds = SysfsLeds(LEDS, root)
    leds.start()
    leds.set_led("power", "on")
    assert _read(root, "power", "trigger") == "none" and _read(root, "power", "brightness") == "255"
    leds.set_led("error", "blink-fast")
    assert _read(root, "error", "trigger") == "timer"
    assert (_read(root, "error", "delay_on"), _read(root, "error", "delay_off")) == ("125", "125")
    leds.set_led("error", _LogicPattern(50, 150))
    assert (_read(root, "error", "delay_on"), _read(root, "error", "delay_off")) == ("50", "150")
    leds.set_led("error", "off")
    assert _read(root, "error", "trigger") == "none" and _read(root, "error", "brightness") == "0"
    leds.stop()
    assert _read(root, "power", "brightness") == "0"


def test_an_unchanged_pattern_is_not_written_again(tmp_path):
    """A rewrite would restart the kernel's blink phase: a visible stutter on every refresh."""
    root = _sysfs(tmp_path)
    leds = SysfsLeds(LEDS, root)
    leds.start()
    leds.set_led("error", "blink-slow")
    (root / LEDS["error"] / "delay_on").write_text("marker")
    leds.set_led("error", "blink-slow")
    assert _read(root, "error", "delay_on") == "marker"
    leds.set_led("error", "blink-fast")
    assert _read(root, "error", "delay_on") == "125"


def test_led_problems_are_one_line_naming_the_led(tmp_path):
    root = _sysfs(tmp_path, names=["panel:green:power"])
    with pytest.raises(PanelError) as exc:
        SysfsLeds(LEDS, root).start()
    msg = str(exc.value)
    assert "LED error" in msg and "panel:red:error" in msg and "panel:green:power" in msg and "\n" not in msg

    no_timer = _sysfs(tmp_path / "b", triggers="[none] heartbeat")
    with pytest.raises(PanelError, match="no 'timer' trigger"):
        SysfsLeds(LEDS, no_timer).start()

    leds = SysfsLeds(LEDS, _sysfs(tmp_path / "c"))
    leds.start()
    with pytest.raises(ValueError, match="unknown LED 'busy'"):
        leds.set_led("busy", "on")
    # A sysfs file the kernel refuses (here: a directory where brightness should be; root ignores
    # file modes, so EACCES cannot be made here).
    (tmp_path / "c" / LEDS["power"] / "brightness").unlink()
    (tmp_path / "c" / LEDS["power"] / "brightness").mkdir()
    with pytest.raises(PanelError) as exc:
        leds.set_led("power", "on")
    assert "LED power" in str(exc.value) and "brightness" in str(exc.value) and "\n" not in str(exc.value)
    # Once the file is back, the same pattern is written: a failed write is not remembered as shown.
    (tmp_path / "c" / LEDS["power"] / "brightness").rmdir()
    (tmp_path / "c" / LEDS["power"] / "brightness").write_text("0")
    leds.set_led("power", "on")
    assert (tmp_path / "c" / LEDS["power"] / "brightness").read_text() == "255"


# -- evdev buttons ----------------------------------------------------------------------------------

INPUT_EVENT = struct.Struct("@llHHi")  # struct input_event: timeval, type, code, value


def _record(type_, code, value, t=None):
    t = time.time() if t is None else t
    return INPUT_EVENT.pack(int(t), int((t % 1) * 1e6), type_, code, value)


class _Collector:
    def __init__(self):
        self.events: list[ButtonEvent] = []
        self.cond = threading.Condition()

    def __call__(self, event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, n, timeout=10.0):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.events) >= n, timeout), self.events
        return self.events


def test_key_records_from_a_fifo_become_button_edges(tmp_path):
    fifo = tmp_path / "keys"
    os.mkfifo(fifo)
    buttons = EvdevButtons(str(fifo), {"export": 59, "ack": 64}, raw=True)
    got = _Collector()
    buttons.start(got)
    fd = os.open(fifo, os.O_WRONLY)
    try:
        os.write(fd, _record(EV_KEY, 59, 1) + _record(0, 0, 0)          # export down, SYN_REPORT
                 + _record(EV_KEY, 59, 2)                                # autorepeat: not an edge
                 + _record(EV_KEY, 30, 1) + _record(EV_KEY, 30, 0)       # KEY_A: not configured
                 + _record(EV_KEY, 59, 0) + _record(EV_KEY, 64, 1))      # export up, ack down
        events = got.wait_for(3)
    finally:
        os.close(fd)
        buttons.stop()
    assert [(e.name, e.pressed) for e in events] == [("export", True), ("export", False), ("ack", True)]
    assert events[0].at <= events[1].at <= events[2].at <= time.monotonic()
    assert buttons._thread is None


def test_event_stamps_move_from_the_realtime_clock_to_the_monotonic_one():
    # 100.5 s realtime, while realtime is 200 and monotonic 50: the edge was 99.5 s ago.
    assert to_monotonic(100, 500_000, now_mono=50.0, now_real=200.0) == pytest.approx(-49.5)
    # A stamp "from the future" (the clock was set back) is now, never later.
    assert to_monotonic(300, 0, now_mono=50.0, now_real=200.0) == 50.0


def test_button_device_problems_are_one_line(tmp_path):
    with pytest.raises(PanelError) as exc:
        EvdevButtons(str(tmp_path / "nothing"), {"ack": 64}, raw=True).start(lambda e: None)
    assert "nothing" in str(exc.value) and "\n" not in str(exc.value)
    not_input = tmp_path / "plain"
    not_input.write_bytes(b"")
    with pytest.raises(PanelError) as exc:  # an evdev node is asked for its keys: a file has none
        EvdevButtons(str(not_input), {"ack": 64}).start(lambda e: None)
    assert "plain" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="share one key code"):
        EvdevButtons("/dev/null", {"ack": 64, "next": 64})
    with pytest.raises(ValueError, match="1-767"):
        EvdevButtons("/dev/null", {"ack": 0x300})


# -- HD44780 on I2C ---------------------------------------------------------------------------------

class _Counting(Hd44780):
    """The simulated display, counting the characters (data writes) it latches."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.data_writes = 0

    def _data(self, value):
        self.data_writes += 1
        super()._data(value)


@pytest.mark.parametrize("columns", [16, 20])
def test_rplcd_bytes_show_both_lines_on_the_glass(columns):
    glass = Hd44780(columns, 0x27)
    lcd = Hd44780I2c(1, 0x27, columns, bus_factory=glass)
    lcd.start()
    lcd.show("READY 3 queued", "PACS down 12")
    assert glass.lines() == [fit("READY 3 queued", columns), fit("PACS down 12", columns)]
    assert glass.backlight and glass.display_on
    lcd.show("x" * 40, "")
    assert glass.lines() == ["x" * columns, " " * columns]
    lcd.stop()
    assert glass.lines() == [" " * columns] * 2 and not glass.backlight


def test_the_rom_a00_glyphs_reach_the_glass():
    glass = Hd44780(16, 0x27)
    lcd = Hd44780I2c(bus_factory=glass)
    lcd.start()
    lcd.show("ﾔﾏﾀﾞ ﾀﾛｳ", "¥500 →Ж")  # katakana, the ROM's yen and arrow; Ж has no glyph: blank
    assert glass.lines() == ["ﾔﾏﾀﾞ ﾀﾛｳ        ", "¥500 →          "]


def test_only_changed_characters_cross_the_bus():
    glass = _Counting(16, 0x27)
    lcd = Hd44780I2c(bus_factory=glass)
    lcd.start()
    lcd.show("QUEUE 10", "")
    glass.data_writes = 0
    lcd.show("QUEUE 11", "")
    assert glass.data_writes == 1 and glass.lines()[0].startswith("QUEUE 11")


def test_display_problems_are_one_line():
    with pytest.raises(PanelError) as exc:  # nothing answers at 0x27: the backpack is at 0x3F
        Hd44780I2c(1, 0x27, bus_factory=Hd44780(16, 0x3F)).start()
    assert "0x27" in str(exc.value) and "i2cdetect" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(PanelError, match="no /dev/i2c-31"):  # the real smbus2 on a bus that is not there
        Hd44780I2c(31).start()
    with pytest.raises(ValueError):
        Hd44780I2c(columns=24)
    with pytest.raises(ValueError):
        Hd44780I2c(address=0x78)


# -- SerLCD ----------------------------------------------------------------------------------------

def _serlcd_glass(data: bytes, columns: int) -> list[str]:
    """The SerLCD command set, decoded: 0xFE + HD44780 instruction, else a character (ASCII here)."""
    ddram = [0x20] * 0x80
    addr, i = 0, 0
    while i < len(data):
        b = data[i]
        if b == 0xFE:
            cmd = data[i + 1]
            if cmd == 0x01:
                ddram, addr = [0x20] * 0x80, 0
            elif cmd & 0x80:
                addr = cmd & 0x7F
            i += 2
            continue
        assert b != 0x7C, "a settings prefix in the text"
        ddram[addr] = b
        addr += 1
        i += 1
    return [bytes(ddram[base:base + columns]).decode("ascii") for base in (0x00, 0x40)]


def test_serlcd_rows_are_addressed_and_unchanged_rows_not_resent():
    lcd = SerLcd("loop://", columns=20)
    lcd.start()
    lcd.show("READY | 3 queued", "PACS down")
    sent = lcd.port.read(lcd.port.in_waiting)
    assert sent[:2] == b"\xfe\x01" and b"\xfe\x80" in sent and b"\xfe\xc0" in sent
    assert _serlcd_glass(sent, 20) == [fit("READY   3 queued", 20), fit("PACS down", 20)]
    lcd.show("READY | 3 queued", "PACS up")
    again = lcd.port.read(lcd.port.in_waiting)
    assert again == b"\xfe\xc0" + fit("PACS up", 20).encode()
    lcd.stop()


def test_serlcd_port_problems_are_one_line():
    with pytest.raises(PanelError) as exc:
        SerLcd("/dev/ttyNOPE9").start()
    assert "/dev/ttyNOPE9" in str(exc.value) and "\n" not in str(exc.value)


# -- the panel as one object, and its kinds -----------------------------------------------------------

class _Cfg:
    leds = LEDS
    buttons = {"ack": 64}
    display = "none"
    columns = 20
    i2c_bus, i2c_address = 1, 0x27
    serial_port, serial_baud = "/dev/serial0", 9600

    def __init__(self, root: Path, device: str):
        self.leds_root = str(root)
        self.input_device = device


def test_linux_kind_builds_the_parts_and_a_failing_part_stops_the_started_ones(tmp_path):
    assert {"linux", "sim"} <= set(registry.kinds("panel"))
    root = _sysfs(tmp_path / "leds")
    panel = registry.create("panel", "linux", _Cfg(root, str(tmp_path / "no-keys")), lambda p: tmp_path / p)
    assert isinstance(panel, Panel) and isinstance(panel, FrontPanel) and isinstance(panel.display, NoDisplay)
    assert (panel.columns, panel.charset) == (20, "ascii")
    (root / LEDS["power"] / "brightness").write_text("255")  # left lit by a previous run
    with pytest.raises(PanelError, match="no-keys"):
        panel.start(lambda e: None)
    # The LEDs had started before the buttons failed: they were stopped, i.e. turned off.
    assert _read(root, "power", "brightness") == "0"
