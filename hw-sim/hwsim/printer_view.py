"""What both simulated printers (serial_imager.SerialFilmImager, usb_printer.SimulatedUsbPrinter)
share for being seen and driven from outside: the device view of the simulated box's page
(gateway/status/views.py: view_state / view_actions / view_act / view_subscribe / view_film) and
a control folder for `hw-sim printer ...`, the same mechanism as hwsim/media.py and hwsim/panel.py:

  <sim_dir>/printer.json   {"printer": view_name, "model"}: written when watching starts
  <sim_dir>/commands/      `hw-sim printer jam` drops one JSON command ({"verb": action}); the
                           watcher applies it and writes results/<same name> ({"ok", "error",
                           "state"}), then deletes the command

Actions (ACTIONS): "jam" (film jam until "unjam"), "unjam", "out-of-film" (the supply is empty
until "load"), "load" (a full supply again: the films the simulator started with), "status"
(nothing changes; the CLI's way to read the state).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from hwsim import control_folder
from hwsim.control_folder import POLL_S, SimError, serve_pending, write_json as _write_json

log = logging.getLogger("hwsim.printer")

ACTIONS = ("jam", "unjam", "out-of-film", "load", "status")




class PrinterView:
    """Mixin: the class provides ``model`` (str), ``status_text() -> str`` ("NORMAL" or the faults,
    as the device reports them), ``films_left() -> int | None`` (None: endless), ``printed_count()``,
    ``last_png() -> bytes | None``, ``set_jammed(bool)``, ``set_out_of_film(bool)`` and calls
    ``_init_view()`` in its __init__ and ``_view_changed()`` after each change it makes itself."""

    view_kind = "printer"
    view_name = "printer"
    model = "printer"

    def _init_view(self) -> None:
        self._view_listeners: list[Callable[[], None]] = []
        self._control_stop = threading.Event()
        self._control_thread: threading.Thread | None = None

    # -- the page's view -----------------------------------------------------------------------
    def view_state(self) -> dict[str, Any]:
        """{"model", "status" (e.g. "NORMAL", "FILM JAM"), "films_left" (None: endless), "printed"}."""
        return {"model": self.model, "status": self.status_text(), "films_left": self.films_left(),
                "printed": self.printed_count()}

    def view_actions(self) -> list[str]:
        """The actions view_act takes (the page draws a button each; "status" is the CLI's)."""
        return [a for a in ACTIONS if a != "status"]

    def view_act(self, action: str, args: Mapping[str, Any] | None = None) -> str:
        """Do `action` (ACTIONS); returns "printer: <status>". ValueError for another action."""
        if action == "jam":
            self.set_jammed(True)
        elif action == "unjam":
            self.set_jammed(False)
        elif action == "out-of-film":
            self.set_out_of_film(True)
        elif action == "load":
            self.set_out_of_film(False)
        elif action != "status":
            raise ValueError(f"printer: unknown action {action!r} (one of {', '.join(ACTIONS)})")
        if action != "status":
            log.info("simulated printer: %s", action)
            self._view_changed()
        return f"{self.view_name}: {self.status_text()}"

    def view_subscribe(self, listener: Callable[[], None]) -> None:
        """listener() after every change of view_state(), from the thread that made it."""
        self._view_listeners.append(listener)

    def view_film(self) -> bytes | None:
        """The last film printed, as PNG; None before the first."""
        return self.last_png()

    def _view_changed(self) -> None:
        for listener in list(self._view_listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001 - a page's listener must not break the printer
                log.exception("hw-sim printer: a listener failed")

    # -- the control folder --------------------------------------------------------------------
    def watch_control(self, folder: str | os.PathLike) -> None:
        """Publish printer.json in `folder` and apply the commands dropped in folder/commands."""
        folder = Path(folder)
        control_folder.prepare(folder)
        _write_json(folder / "printer.json", {"printer": self.view_name, "model": self.model})
        self._control_stop.clear()
        self._control_thread = threading.Thread(target=self._watch, args=(folder,), name="hwsim-printer",
                                                daemon=True)
        self._control_thread.start()

    def stop_control(self) -> None:
        """Stop watching the control folder."""
        self._control_stop.set()
        if self._control_thread is not None:
            self._control_thread.join(5)
            self._control_thread = None

    def _watch(self, folder: Path) -> None:
        while not self._control_stop.wait(POLL_S):
            serve_pending(folder, lambda command: self.view_act(str(command.get("verb", ""))), self.view_state,
                          (ValueError, OSError, AttributeError))


def send(folder: Path, command: dict, timeout: float = 10.0) -> dict:
    """`hw-sim printer`'s side: drop `command` in folder/commands, wait for the result; the
    printer's view_state. SimError when refused or when nobody picks it up within `timeout` s."""
    folder = Path(folder)
    if not (folder / "printer.json").exists():
        raise SimError(f"no simulated printer in {folder} (is the service running with print.printer.kind "
                       f"serial-sim or usb-sim and this print.printer.sim_dir?)")
    return control_folder.send(folder, command, timeout,
                               f"is the service running with a *-sim printer and print.printer.sim_dir {folder}?")
