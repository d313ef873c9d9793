"""The ``panel`` family in the device registry (drivers/registry.py), and its real kind ``linux``.

A factory ``(cfg, resolve) -> FrontPanel`` (drivers/panel/interface.py): ``cfg`` is the [panel]
table (read by attribute; drivers/ never imports gateway/): ``leds`` (logical name -> sysfs LED
name), ``leds_root``, ``buttons`` (logical name -> key code), ``input_device``, ``display``
("hd44780-i2c" | "serlcd" | "none"), ``columns``, ``i2c_bus``, ``i2c_address``, ``serial_port``,
``serial_baud``; ``resolve`` turns a config path into an absolute one (hw-sim's folder).

Kind ``linux``: /sys/class/leds, gpio-keys through evdev, and the configured display.  One kind
for the whole panel, the parts chosen by keys, because a box mixes them freely.  hw-sim's ``sim``
comes from its entry point (hwsim/panel.py), never from here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.panel.buttons_evdev import EvdevButtons
from drivers.panel.front_panel import NoDisplay, Panel
from drivers.panel.lcd_hd44780 import Hd44780I2c
from drivers.panel.lcd_serial import SerLcd
from drivers.panel.leds_sysfs import SysfsLeds

DISPLAYS = ("hd44780-i2c", "serlcd", "none")


def display_for(cfg: Any, bus_factory: Callable[[int], Any] | None = None) -> Any:
    """The display ``cfg.display`` names; ``bus_factory`` replaces smbus2 (hw-sim).  ValueError
    for an unknown display."""
    if cfg.display == "hd44780-i2c":
        extra = {"bus_factory": bus_factory} if bus_factory is not None else {}
        return Hd44780I2c(cfg.i2c_bus, cfg.i2c_address, cfg.columns, **extra)
    if cfg.display == "serlcd":
        return SerLcd(cfg.serial_port, cfg.serial_baud, cfg.columns)
    if cfg.display == "none":
        return NoDisplay(cfg.columns)
    raise ValueError(f"panel display {cfg.display!r} is not one of {', '.join(DISPLAYS)}")


def linux_panel(cfg: Any, resolve: Callable[[str], Path]) -> Panel:
    """Kind ``linux``: sysfs LEDs under ``cfg.leds_root``, evdev buttons on ``cfg.input_device``,
    the display ``cfg.display``."""
    return Panel(SysfsLeds(cfg.leds, cfg.leds_root), display_for(cfg),
                 EvdevButtons(cfg.input_device, cfg.buttons))


def register(registry) -> None:
    """drivers/registry.py calls this the first time the panel family is asked about."""
    registry.register("panel", "linux", linux_panel)
