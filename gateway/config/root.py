"""The whole config file: one field per section, and the checks that span sections (a route naming
an unknown destination, two peers with one AE title, a destination that is the gateway itself)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field, model_validator

from gateway.config.ae import AESection
from gateway.config.base import Section
from gateway.config.buffer import BufferSection
from gateway.config.capture import CaptureSection
from gateway.config.coercion import MAX_RULES, CoercionRule, worklist_problems
from gateway.config.destinations import DestinationSection
from gateway.config.logging import LoggingSection
from gateway.config.media import MediaSection
from gateway.config.mpps import MppsSection
from gateway.config.panel import PanelSection
from gateway.config.peers import PeerSection
from gateway.config.print import PrintSection
from gateway.config.qr_scu import QrScuSection
from gateway.config.routes import RouteSection
from gateway.config.status_http import StatusHttpSection
from gateway.config.storage import StorageSection
from gateway.config.timers import TimersSection
from gateway.config.worklist import WorklistSection
# -- the C-FIND SCP over the buffer -----------------------------------------------------
from gateway.config.qr_find import QrFindSection


class Config(Section):
    ae: AESection = AESection()
    timers: TimersSection = TimersSection()
    peers: dict[str, PeerSection] = {}
    destinations: dict[str, DestinationSection] = {}
    routes: list[RouteSection] = []
    buffer: BufferSection = BufferSection()
    storage: StorageSection = StorageSection()
    logging: LoggingSection = LoggingSection()
    print: PrintSection = PrintSection()
    media: MediaSection = MediaSection()
    status_http: StatusHttpSection = StatusHttpSection()
    panel: PanelSection = PanelSection()
    worklist: WorklistSection = WorklistSection()
    capture: CaptureSection = CaptureSection()
    mpps: MppsSection = MppsSection()
    qr_scu: QrScuSection = QrScuSection()
    # Attribute coercion rules (gateway/config/coercion.py), applied in file order.
    coercion: Annotated[list[CoercionRule], Field(max_length=MAX_RULES)] = []
    # the C-FIND SCP over the buffer (who may query: peers.*.may_query)
    qr_find: QrFindSection = QrFindSection()

    @model_validator(mode="after")
    def _cross_checks(self) -> "Config":
        problems = []
        for i, route in enumerate(self.routes):
            for name in route.to:
                if name not in self.destinations:
                    problems.append(f"routes[{i}].to: unknown destination {name!r}")
        # Two peers with one AE title: which peer's permissions apply would depend on dict order.
        seen: dict[str, str] = {}
        for name, peer in self.peers.items():
            if peer.ae_title in seen:
                problems.append(f"peers.{name}.ae_title: {peer.ae_title!r} is also the AE title of "
                                f"peers.{seen[peer.ae_title]}")
            else:
                seen[peer.ae_title] = name
        for name, dest in self.destinations.items():
            if _is_self(dest, self.ae):
                problems.append(f"destinations.{name}: {dest.host}:{dest.port} is this gateway's own listening "
                                f"address (ae.bind, ae.port): forwarding there would loop")
        # rule names unique (logs and check-config name rules), destinations known
        names: set[str] = set()
        for rule in self.coercion:
            if rule.name in names:
                problems.append(f"coercion.{rule.name}: a second rule of this name")
            names.add(rule.name)
            for dest in rule.destination:
                if dest not in self.destinations:
                    problems.append(f"coercion.{rule.name}.destination: unknown destination {dest!r}")
        problems += worklist_problems(self)
        problems += self.status_http.problems()
        problems += self.qr_scu.problems(self.destinations)
        web = self.status_http
        if web.enabled and web.port == self.ae.port and _same_host(web.bind, self.ae.bind):
            problems.append(f"status_http.port: {web.port} is also the DICOM port (ae.port) on that address")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def peer_by_ae(self, ae_title: str) -> PeerSection | None:
        for peer in self.peers.values():
            if peer.ae_title == ae_title.strip():
                return peer
        return None

    def archive_titles(self) -> frozenset[str]:
        """The AE titles of the destinations: what arrives from them is a copy coming back
        (buffer.ingest.Buffer: it never replaces the stored one; routing.Router: never sent back)."""
        return frozenset(d.ae_title for d in self.destinations.values())


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _same_host(a: str, b: str) -> bool:
    def norm(h: str) -> str:
        h = h.lower()
        if h in _LOOPBACK_NAMES:
            return "loopback"
        try:
            ip = ipaddress.ip_address(h)
        except ValueError:
            return h
        return "loopback" if ip.is_loopback else ("any" if ip.is_unspecified else str(ip))

    na, nb = norm(a), norm(b)
    return na == nb or "any" in (na, nb) and "loopback" in (na, nb)


def _is_self(dest: DestinationSection, ae: AESection) -> bool:
    """A destination at this gateway's own listening address (host and port): whatever AE title it
    names, what answers there is this gateway, so forwards would loop or be refused forever."""
    return dest.port == ae.port and _same_host(dest.host, ae.bind)
