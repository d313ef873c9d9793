"""Devices by kind: the one place a config's `kind` becomes a device.

Each device family (``printer``, ``printer-language``, ``media``, ``panel``, ``grabber`` and ``pedal``)
maps a kind name to a factory.  The config names the kind (``print.printer.kind = "serial-sim"``)
and the feature asks ``create(family, kind, ...)``; what the factory takes and returns is the
family's contract (drivers/printer/devices.py for the printer families, drivers/media/devices.py
for media).  A new device family or kind is a new registration here, never another if/elif in the
feature.

Kinds come from two places:

- **drivers/ itself.**  Each family's built-in module (``_BUILTIN``) has ``register(registry)``,
  called the first time the family is asked about.  Real hardware is always there, installed or run
  from a checkout.
- **The entry-point group ``dicom_gateway.devices``.**  Each entry point is named
  ``<family>.<kind>`` and points at the factory (``"printer.serial-sim" =
  "hwsim.devices:serial_sim_printer"``).  This is how hw-sim brings its simulators (pyproject.toml),
  so production code never imports a simulator, and a third package could add a device the same
  way.  Entry points are loaded lazily: listing kinds (config validation) imports nothing, and
  ``create`` imports only the kind it builds.

The same factory met twice (an entry point declared by two distributions with the same value: the
test suite's stand-in for a venv installed before the group existed) is one kind; two different
factories for one kind are a packaging error and say so.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

GROUP = "dicom_gateway.devices"

# family -> the drivers/ module whose register(registry) adds the family's real kinds.
_BUILTIN = {
    "printer": "drivers.printer.devices",
    "printer-language": "drivers.printer.devices",
    "media": "drivers.media.devices",
    "panel": "drivers.panel.devices",
    "grabber": "drivers.grabber.devices",
    "pedal": "drivers.pedal.devices",
}


class UnknownKind(LookupError):
    """A kind that nothing registered; the message lists the known ones."""


class RegistryError(RuntimeError):
    """A kind registered twice with different factories, or an entry point that does not load."""


class Registry:
    """family -> kind -> factory (or the entry point that names it, until first use)."""

    def __init__(self, group: str | None = GROUP, builtin: dict[str, str] | None = None):
        self.group = group
        self.builtin = dict(_BUILTIN if builtin is None else builtin)
        self._factories: dict[str, dict[str, Callable[..., Any] | EntryPoint]] = {}
        # Where each registration came from, to name both sides of a conflict.
        self._origin: dict[tuple[str, str], str] = {}
        self._loaded_builtin: set[str] = set()
        self._scanned = False
        # Config validation and service start-up may ask from different threads.
        self._lock = threading.RLock()

    # -- registering ---------------------------------------------------------------------------
    def register(self, family: str, kind: str, factory: Callable[..., Any], origin: str | None = None) -> None:
        """Make `kind` of `family` mean `factory`; the same factory again is a no-op."""
        self._add(family, kind, factory, origin or _name_of(factory))

    def _add(self, family: str, kind: str, factory: Callable[..., Any] | EntryPoint, origin: str) -> None:
        if not family or not kind:
            raise ValueError(f"a device registration needs a family and a kind (got {family!r}, {kind!r})")
        with self._lock:
            known = self._factories.setdefault(family, {})
            before = known.get(kind)
            if before is not None and not _same(before, factory):
                raise RegistryError(f"device kind {family}.{kind} is registered twice: by "
                                    f"{self._origin[(family, kind)]} and by {origin}")
            if before is None or isinstance(before, EntryPoint) and not isinstance(factory, EntryPoint):
                known[kind] = factory
                self._origin[(family, kind)] = origin

    # -- asking --------------------------------------------------------------------------------
    def kinds(self, family: str) -> list[str]:
        """The kind names of `family`, sorted; nothing is imported for an entry-point kind."""
        self._discover(family)
        with self._lock:
            return sorted(self._factories.get(family, {}))

    def factory(self, family: str, kind: str) -> Callable[..., Any]:
        """The factory for `kind` (an entry point is loaded now); UnknownKind lists the known ones."""
        self._discover(family)
        with self._lock:
            found = self._factories.get(family, {}).get(kind)
            if found is None:
                raise UnknownKind(unknown_kind_message(family, kind, self.kinds(family)))
            if isinstance(found, EntryPoint):
                try:
                    loaded = found.load()
                except Exception as exc:  # noqa: BLE001 - any import failure: name the entry point
                    raise RegistryError(f"device kind {family}.{kind} ({found.value}, entry point of "
                                        f"{_dist_name(found)}) does not load: {exc}") from exc
                if not callable(loaded):
                    raise RegistryError(f"device kind {family}.{kind}: {found.value} is not callable")
                self._factories[family][kind] = found = loaded
            return found

    def create(self, family: str, kind: str, *args: Any, **kwargs: Any) -> Any:
        """Build a `kind` device of `family`: the factory called with the family's arguments."""
        return self.factory(family, kind)(*args, **kwargs)

    # -- discovery -----------------------------------------------------------------------------
    def _discover(self, family: str) -> None:
        with self._lock:
            module = self.builtin.get(family)
            if module is not None and module not in self._loaded_builtin:
                # Marked first: a built-in module that asks the registry while registering
                # must not recurse into itself.
                self._loaded_builtin.add(module)
                importlib.import_module(module).register(self)
            if not self._scanned and self.group:
                self._scanned = True
                for ep in entry_points(group=self.group):
                    fam, dot, kind = ep.name.partition(".")
                    if not dot:
                        raise RegistryError(f"entry point {ep.name!r} = {ep.value!r} in group {self.group} "
                                            f"({_dist_name(ep)}): the name must be <family>.<kind>")
                    self._add(fam, kind, ep, f"entry point {ep.value} ({_dist_name(ep)})")
                # Families whose built-ins were not asked for yet still get them on first use.


def _same(a: Any, b: Any) -> bool:
    """One factory, whether seen as an entry point (by its value) or as the loaded object."""
    if a is b:
        return True
    va = a.value if isinstance(a, EntryPoint) else _name_of(a)
    vb = b.value if isinstance(b, EntryPoint) else _name_of(b)
    return va == vb


def _name_of(factory: Any) -> str:
    """'module:qualname', the form an entry point's value has."""
    return f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', repr(factory))}"


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"distribution {dist.name}" if dist is not None else "no distribution"


def unknown_kind_message(family: str, kind: str, known: list[str]) -> str:
    """One line: what was asked, what exists, and where kinds come from."""
    return (f"{family} kind {kind!r} is not one of {', '.join(known) or '(none)'} (kinds come from "
            f"drivers/ and the installed packages' {GROUP!r} entry points)")


# The process-wide registry every feature asks.
REGISTRY = Registry()
register = REGISTRY.register
kinds = REGISTRY.kinds
create = REGISTRY.create
