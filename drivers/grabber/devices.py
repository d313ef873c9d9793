"""The ``grabber`` family in the device registry (drivers/registry.py), and its real kind ``v4l2``.

A factory ``(name, cfg, resolve) -> Grabber`` (drivers/grabber/interface.py), as the media
family's: ``name`` is the grabber's name in logs, events and the /sim/ page ("grabber"); ``cfg``
is the [capture.grabber] table (read by attribute; drivers/ never imports gateway/): ``device``,
``width``, ``height``, ``fps``, ``pixel_format``, ``analog``, ``signal_timeout_s``; ``resolve``
turns a config path into an absolute one (hw-sim's folder, ``sim_dir``).  The grabber is
returned closed: the capture service opens it.

Kind ``v4l2``: drivers/grabber/v4l2.py on the device node.  hw-sim's ``sim`` comes from its entry
point (hwsim/grabber.py: the same driver on a simulated frame source), never from here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.grabber.v4l2 import V4l2Grabber


def v4l2_grabber(name: str, cfg: Any, resolve: Callable[[str], Path]) -> V4l2Grabber:
    """Kind ``v4l2``: the V4L2 node ``cfg.device``, asked for ``cfg.width`` x ``cfg.height`` at
    ``cfg.fps`` in ``cfg.pixel_format``."""
    return V4l2Grabber(name, cfg.device, cfg.width, cfg.height, cfg.fps, cfg.pixel_format, cfg.analog,
                       open_timeout_s=cfg.signal_timeout_s)


def register(registry) -> None:
    """drivers/registry.py calls this the first time the grabber family is asked about."""
    registry.register("grabber", "v4l2", v4l2_grabber)
