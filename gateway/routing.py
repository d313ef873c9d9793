"""Which destinations an instance goes to: the config's routes, matched on the source, modality and
SOP class. No routes configured means every enabled destination.

A route's `source` list matches the rendered source ("AE:CT1", "MEDIA:USB-2", "CAPTURE:grabber0")
against shell-style patterns, case-sensitively (AE titles are case-sensitive, PS3.5 AE VR), so one
route can send every imported medium to an archive ("MEDIA:*") whatever the stick's label. A
route's `calling_ae` list matches a network source (AE:<title>) by its title; a route that names
calling AEs never matches a medium or a capture device (they have no AE title). A route's `match`
tests indexed attributes by keyword against shell-style patterns.

An instance is never routed back to the AE title it came from: a destination whose `ae_title` is
the network source's title is left out whatever the routes say. The case that needs it is
Query/Retrieve: a study retrieved from the PACS (C-MOVE to this box, or C-GET by
`dicom-gateway retrieve`) arrives from the PACS's AE title, and sending it back would only load the PACS
with what it holds. A peer that sends under another title than the one it is reached by is not
recognised: give the route `source`/`calling_ae` criteria for it."""

from __future__ import annotations

from fnmatch import fnmatchcase

from gateway.buffer.source import Source
from gateway.config import Config
from gateway.config.routes import ROUTE_ATTRIBUTES
from gateway.part10.attributes import InstanceAttributes


def _matches(match: dict[str, list[str]], attrs: InstanceAttributes) -> bool:
    """every keyword's value (as indexed, after coercion) matches one of its shell-style
    patterns, case-sensitively (a CS like Modality is upper case by definition, PS3.5 6.2)."""
    return all(any(fnmatchcase(getattr(attrs, ROUTE_ATTRIBUTES[key]), p) for p in patterns)
               for key, patterns in match.items())


class Router:
    def __init__(self, config: Config):
        self._enabled = [name for name, d in config.destinations.items() if d.enabled]
        self._routes = config.routes
        self._titles = {name: d.ae_title for name, d in config.destinations.items()}

    def __call__(self, attrs: InstanceAttributes, source: Source) -> list[str]:
        if not self._routes:
            return self._not_back(list(self._enabled), source)
        chosen: list[str] = []
        # An AE title's trailing padding is not part of the name a config spells.
        rendered = f"{source.kind.value}:{source.name.strip()}"
        for route in self._routes:
            if route.source and not any(fnmatchcase(rendered, p) for p in route.source):
                continue
            if route.calling_ae and not (source.is_ae and source.name.strip() in route.calling_ae):
                continue
            if route.modality and attrs.modality not in route.modality:
                continue
            if route.sop_class and attrs.sop_class not in route.sop_class:
                continue
            if route.match and not _matches(route.match, attrs):
                continue
            for name in route.to:
                if name in self._enabled and name not in chosen:
                    chosen.append(name)
        return self._not_back(chosen, source)

    # Never back to the sender.
    def _not_back(self, names: list[str], source: Source) -> list[str]:
        """`names` without the destinations whose AE title is the source's (a network source)."""
        if not source.is_ae:
            return names
        sender = source.name.strip()
        return [n for n in names if self._titles[n] != sender]
