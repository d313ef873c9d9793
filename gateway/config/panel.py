"""`[panel]`: the front panel (issue 9): what it shows and how buttons are read (item 2, the logic in
gateway/panel/), and which LEDs, buttons and display the box has (item 3, drivers/panel/).

    [panel]
    enabled = true                # false: no front panel at all (a box in a rack)
    long_press_s = 1.0            # how long a button is held for a long press (export needs one)
    message_s = 4.0               # how long a command's answer stays on the display
    show_patient_name = true      # the study screens show the patient's name beside the ID (the
                                  #  radiographer confirms the patient with two identifiers before
                                  #  writing a disc; false for a box in a public place)
    kind = "sim"                  # linux (drivers/panel) | sim (hw-sim: the same drivers on fakes)
    display = "hd44780-i2c"       # hd44780-i2c | serlcd | none
    columns = 16                  # 16 | 20 characters a line, two lines (HD44780 16x2 / 20x2)
    i2c_bus = 1                   # /dev/i2c-1
    i2c_address = 0x27            # the PCF8574 backpack (0x3F for a PCF8574A)
    serial_port = "/dev/serial0"  # display = "serlcd" (SparkFun SerLCD command set)
    serial_baud = 9600
    leds_root = "/sys/class/leds"
    input_device = "/dev/input/by-path/platform-gpio-keys-event"
    sim_dir = "hw-sim/panel"      # kind sim: the fake sysfs tree, FIFO and control folder
    sim_long_press_s = 3.0        # kind sim: how long `hw-sim panel press --long` holds a button

    [panel.leds]                  # logical LED -> the sysfs LED (the device tree's label)
    power = "panel:green:power"
    [panel.buttons]               # logical button -> key code (the device tree's linux,code)
    export = 59                   # KEY_F1

A `[panel.leds]` or `[panel.buttons]` table replaces the default map as a whole, and names
exactly the logic's LEDs / buttons (a missing or an extra name is an error naming it).  `kind` is any kind
of the device registry's ``panel`` family, checked as `media.drives.*.kind` is.  This module
imports the registry (drivers/, a floor below) and config/base only.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from gateway.config.base import DeviceKind, FloatRange, IntRange, Section

# Logical names: the panel logic's (gateway/panel/leds.py LEDS, buttons.py BUTTONS), every one of
# them required in a [panel.leds] / [panel.buttons] table and no other.  Repeated here because
# config sits below the panel's floor; tests/unit/test_panel_runner.py keeps the two lists equal.
DEFAULT_LEDS = {
    "power": "panel:green:power",
    "network": "panel:green:network",
    "activity": "panel:green:activity",
    "backlog": "panel:amber:backlog",
    "media": "panel:green:media",
    "printer": "panel:amber:printer",
    "error": "panel:red:error",
}
# KEY_F1..KEY_F6 (linux/input-event-codes.h): keys no console program acts on without a modifier.
DEFAULT_BUTTONS = {"export": 59, "eject": 60, "capture": 61, "next": 62, "previous": 63, "ack": 64}

_LOGICAL_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# A sysfs LED name is a directory name: "devicename:color:function" by convention, never a path.
_SYSFS_RE = re.compile(r"^[A-Za-z0-9_:.+-]{1,64}$")
KEY_MAX = 0x2FF  # linux/input-event-codes.h
BAUDS = (2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200)  # what a SerLCD can be set to

_PanelKind = DeviceKind("panel")


def _logic_names(table: str, given: dict, logic: dict, what: str) -> list[str]:
    """The names of `table` against the logic's (the keys of `logic`): each one missing and each
    one the logic does not know, named.  The logic drives every LED and reads every button it names,
    so a box without one maps it anyway (an unlit LED label, an unused key code) rather than having
    the service find out at run time."""
    known = ", ".join(logic)
    return ([f"{table}: {name!r} is missing (the panel logic's {table}: {known})"
             for name in logic if name not in given]
            + [f"{table}.{name}: not {what} the panel logic knows ({known})"
               for name in given if name not in logic and _LOGICAL_RE.match(name)])


class PanelSection(Section):
    """The panel's parts.  ``leds``: logical LED -> sysfs LED name under ``leds_root`` (1-16 of
    them, names unique).  ``buttons``: logical button -> EV_KEY code 1-767 on ``input_device``
    (1-16, codes unique).  ``display``: an HD44780 on I2C (``i2c_bus``, 7-bit ``i2c_address``
    0x03-0x77), a SerLCD on ``serial_port`` at ``serial_baud``, or none.  ``sim_dir`` (relative
    to the state directory) and ``sim_long_press_s`` are for kind sim only.  ``long_press_s``,
    ``message_s`` and ``show_patient_name`` are the logic's (gateway/panel/panel.py)."""
    # A box without a panel (a gateway in a rack) runs none: no thread, no device opened.
    enabled: bool = True
    # Under 0.3 s a firm short press becomes long; over 5 s nobody holds a button.
    long_press_s: FloatRange(ge=0.3, le=5) = 1.0
    message_s: FloatRange(ge=1, le=60) = 4.0
    show_patient_name: bool = True
    kind: _PanelKind = "sim"
    display: Literal["hd44780-i2c", "serlcd", "none"] = "hd44780-i2c"
    columns: Literal[16, 20] = 16
    leds: Annotated[dict[str, str], Field(min_length=1, max_length=16)] = DEFAULT_LEDS
    leds_root: str = "/sys/class/leds"
    buttons: Annotated[dict[str, IntRange(1, KEY_MAX)], Field(min_length=1, max_length=16)] = DEFAULT_BUTTONS
    input_device: str = "/dev/input/by-path/platform-gpio-keys-event"
    i2c_bus: IntRange(0, 31) = 1
    i2c_address: IntRange(0x03, 0x77) = 0x27
    serial_port: str = "/dev/serial0"
    serial_baud: Literal[BAUDS] = 9600
    sim_dir: str = "hw-sim/panel"
    sim_long_press_s: FloatRange(gt=0, le=30) = 3.0

    @model_validator(mode="after")
    def _consistent(self) -> "PanelSection":
        problems = []
        for table, names in (("leds", self.leds), ("buttons", self.buttons)):
            for name in names:
                if not _LOGICAL_RE.match(name):
                    problems.append(f"{table}.{name}: a panel name is 1-32 of a-z, 0-9, '-', '_', "
                                    f"starting with a letter")
        problems += _logic_names("leds", self.leds, DEFAULT_LEDS, "an LED")
        problems += _logic_names("buttons", self.buttons, DEFAULT_BUTTONS, "a button")
        seen: dict[str, str] = {}
        for name, device in self.leds.items():
            if not _SYSFS_RE.match(device) or device in (".", ".."):
                problems.append(f"leds.{name}: {device!r} is not a sysfs LED name (1-64 of letters, digits, "
                                f"':', '.', '_', '+', '-'; e.g. \"panel:green:power\")")
            elif device in seen:
                problems.append(f"leds.{name}: {device!r} is also leds.{seen[device]}")
            seen.setdefault(device, name)
        codes: dict[int, str] = {}
        for name, code in self.buttons.items():
            if code in codes:
                problems.append(f"buttons.{name}: key code {code} is also buttons.{codes[code]}")
            codes.setdefault(code, name)
        for key in ("leds_root", "input_device"):
            if not getattr(self, key).startswith("/"):
                problems.append(f"{key}: {getattr(self, key)!r} must be an absolute path")
        if self.display == "serlcd" and not (self.serial_port.startswith("/dev/") or "://" in self.serial_port):
            problems.append(f"serial_port: {self.serial_port!r} is neither a device under /dev/ nor a "
                            f"pyserial URL")
        if self.kind == "sim" and self.display == "serlcd":
            problems.append("display: the sim panel simulates an hd44780-i2c display (or none), not serlcd")
        if problems:
            raise ValueError("; ".join(problems))
        return self
