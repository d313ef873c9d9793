"""The ``pedal`` family in the device registry (drivers/registry.py), and its real kind ``evdev``.

A factory ``(cfg, resolve) -> Pedal`` (drivers/pedal/interface.py): ``cfg`` is the
[capture.pedal] table (read by attribute; drivers/ never imports gateway/): ``device`` (the input
device node), ``key_code``; ``resolve`` turns a config path into an absolute one (hw-sim's
folder, ``sim_dir``).  The pedal is returned closed: start() opens it.

Kind ``evdev``: drivers/pedal/evdev_pedal.py on the device node.  hw-sim's ``sim`` comes from
its entry point (hwsim/pedal.py), never from here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.pedal.evdev_pedal import EvdevPedal


def evdev_pedal(cfg: Any, resolve: Callable[[str], Path]) -> EvdevPedal:
    """Kind ``evdev``: key ``cfg.key_code`` on the input device ``cfg.device``, grabbed."""
    return EvdevPedal(cfg.device, cfg.key_code)


def register(registry) -> None:
    """drivers/registry.py calls this the first time the pedal family is asked about."""
    registry.register("pedal", "evdev", evdev_pedal)
