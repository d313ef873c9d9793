"""Device views: what a simulated device shows on the simulated box's page (/sim/), and the
controls it offers there.

A device offers a view by having these attributes (duck-typed: nothing here imports a device, and
only hw-sim's simulators implement it; a real device never does, so a real box has no /sim/ at all):

  view_name: str            unique on the page, a URL path segment ("panel", "cd", "printer")
  view_kind: str            how the page draws it: "panel", "printer", "drive", "grabber"
  view_state() -> dict      plain JSON: what the device shows now (the kind's page code reads it)
  view_actions() -> list    the action names view_act takes
  view_action_args: dict    optional: action -> the argument names it takes (an action not in it
                            takes none); any other argument is refused before view_act is called
  view_act(action, args) -> str
                            do one action; returns a one-line outcome; ValueError (one line) for
                            an unknown action or bad arguments
  view_subscribe(fn)        call fn() after every change of view_state(), from any thread
  view_film() -> bytes|None optional: the last printed film as PNG (a printer), the last frame
                            sent as PNG (a frame grabber)

The app hands the StatusServer the device objects it built (the printer connection, the media
drives, the panel); a device object may carry its simulator as ``.simulator`` (hw-sim's factories
put it there), so ``find_views`` looks at the object first, then at that attribute, each time it
is asked: a printer simulator only exists once the print service has started its connection.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from gateway.state import WAITING_STATES

log = logging.getLogger("gateway.status")

ACTION_ARG_LIMIT = 64  # characters of one action argument: a button or a medium name, no more


@runtime_checkable
class DeviceView(Protocol):
    """What a device offers the /sim/ page (the module docstring gives each member's contract)."""

    view_name: str
    view_kind: str

    def view_state(self) -> dict[str, Any]: ...

    def view_actions(self) -> list[str]: ...

    def view_act(self, action: str, args: dict[str, Any]) -> str: ...

    def view_subscribe(self, listener: Callable[[], None]) -> None: ...


def view_of(device: Any) -> DeviceView | None:
    """The view `device` offers: the object itself or its ``simulator`` attribute; None for a device
    without one (every real device)."""
    for candidate in (device, getattr(device, "simulator", None)):
        if candidate is not None and isinstance(candidate, DeviceView):
            return candidate
    return None


class SimViews:
    """The views among the devices `devices()` returns (called at each look, so that simulators
    started late appear), one change signal for all of them, and their states cached between
    changes: a page open for hours reads no LED file or disc image unless something changed.

    ``version`` counts changes; ``add_listener(fn)``: fn() after each change, from the notifying
    device's thread (it must not block). Thread-safe."""

    def __init__(self, devices: Callable[[], Iterable[Any]]):
        self._devices = devices
        self._subscribed: set[int] = set()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._cache: tuple[int, list[dict[str, Any]]] | None = None
        self.version = 0

    def current(self) -> dict[str, DeviceView]:
        """view_name -> view, in the order the devices came; subscribes to views seen first now."""
        out: dict[str, DeviceView] = {}
        fresh = False
        for device in self._devices():
            v = view_of(device)
            if v is None or v.view_name in out:
                continue
            out[v.view_name] = v
            with self._lock:
                fresh = id(v) not in self._subscribed
                self._subscribed.add(id(v))
            if fresh:
                v.view_subscribe(self.changed)
                self.changed()  # a view that appeared is a change of the page
        return out

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call listener() after every change from now on."""
        self._listeners.append(listener)

    def changed(self) -> None:
        """A view's state changed (each view's view_subscribe calls this)."""
        with self._lock:
            self.version += 1
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001 - a closed page's loop must not break a simulator
                log.debug("sim page: a change listener failed", exc_info=True)

    def states(self) -> list[dict[str, Any]]:
        """[{"name", "kind", "actions", "state", "film"}] per view, read again only after a change.
        "film": the view offers view_film. A view whose state cannot be read shows {"error": line}."""
        views = self.current()
        with self._lock:
            if self._cache is not None and self._cache[0] == self.version:
                return self._cache[1]
            version = self.version
        out = []
        for name, v in views.items():
            try:
                state = v.view_state()
            except (OSError, ValueError) as exc:
                state = {"error": str(exc)}
            out.append({"name": name, "kind": v.view_kind, "actions": list(v.view_actions()), "state": state,
                        "film": callable(getattr(v, "view_film", None))})
        with self._lock:
            self._cache = (version, out)
        return out

    def act(self, name: str, action: str, args: dict[str, Any]) -> str:
        """Run `action` on the view `name`; LookupError for an unknown view, ValueError (one line)
        for an action or arguments the view refuses. Returns the view's one-line outcome."""
        view = self.current().get(name)
        if view is None:
            raise LookupError(f"no simulated device {name!r}")
        if action not in view.view_actions():
            raise ValueError(f"{name}: no action {action!r} (one of {', '.join(view.view_actions())})")
        takes = tuple(getattr(view, "view_action_args", {}).get(action, ()))
        for key, value in args.items():
            if key not in takes:
                raise ValueError(f"{name} {action}: unknown argument {key!r} "
                                 f"({'it takes ' + ', '.join(takes) if takes else 'it takes none'})")
            if not isinstance(value, (str, bool, int)) or len(str(value)) > ACTION_ARG_LIMIT:
                raise ValueError(f"{name} {action}: argument {key!r} must be a short string, number or flag")
        try:
            return view.view_act(action, args)
        finally:
            self.changed()  # even a refused action may have changed what the device shows

    def film(self, name: str) -> bytes | None:
        """The view's last film as PNG; None when it has none or offers none; LookupError: no view."""
        view = self.current().get(name)
        if view is None:
            raise LookupError(f"no simulated device {name!r}")
        fn = getattr(view, "view_film", None)
        return fn() if callable(fn) else None


def queue_summary(document: dict[str, Any]) -> list[dict[str, Any]]:
    """[{"kind", "target", "waiting", "dead"}] from the status document's "queues" (gateway/status/
    view.py; as last counted, every few seconds), sorted by kind and target: the page's queue table.
    "waiting" is every job not dead (queued, in flight, committing)."""
    rows = []
    for kind, targets in sorted((document.get("queues") or {}).items()):
        for target, states in sorted(targets.items()):
            waiting = sum(int(states.get(st) or 0) for st in WAITING_STATES)
            rows.append({"kind": kind, "target": target, "waiting": waiting, "dead": int(states.get("dead") or 0)})
    return rows


def page_state(views: SimViews, document: dict[str, Any]) -> dict[str, Any]:
    """/sim/state and each /sim/events message: {"views": views.states(), "queue":
    queue_summary(document), "printer": the document's printer (what the gateway's print service
    last saw; None without printing)}."""
    return {"views": views.states(), "queue": queue_summary(document), "printer": document.get("printer")}
