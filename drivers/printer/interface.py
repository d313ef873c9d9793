"""The one printer interface: a transport that moves bytes, a language that makes them.

A transport has ``write(data)`` and ``status()`` (plus ``close()``); a bidirectional one also has
``read(size, timeout)``, which is what a language with a status query or a job reply needs.  All
printer protocol lives in the language, so any language runs over any transport (python-escpos
splits its printers the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class DeviceStatus:
    """What a device says about itself; flags a transport or language cannot see stay False."""
    online: bool = True
    film_jam: bool = False
    supply_empty: bool = False
    supply_low: bool = False
    cover_open: bool = False
    receiver_full: bool = False
    error: bool = False  # a fault the device reports without naming it
    busy: bool = False
    detail: str = ""

    @property
    def ready(self) -> bool:
        """Can take a job now (a low supply still prints)."""
        return self.online and not (self.film_jam or self.supply_empty or self.cover_open
                                    or self.receiver_full or self.error)

    def merged(self, other: "DeviceStatus | None") -> "DeviceStatus":
        """Both views at once: any fault either side sees, online only if both say so."""
        if other is None:
            return self
        values = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "online":
                values[f.name] = a and b
            elif f.name == "detail":
                values[f.name] = "; ".join(x for x in (a, b) if x)
            else:
                values[f.name] = a or b
        return DeviceStatus(**values)


class PrinterError(Exception):
    """The transport failed or the printer did not answer; the job may be retried."""


class PrinterNotReady(PrinterError):
    """The printer reports a fault; ``status`` says which."""

    def __init__(self, status: DeviceStatus, message: str = ""):
        super().__init__(message or f"printer not ready: {status}")
        self.status = status


class PartlyPrinted(PrinterNotReady):
    """Some copies of the film came out, then the printer stopped (e.g. out of film); the other
    ``copies - copies_printed`` are still owed and must be printed, never more."""

    def __init__(self, status: DeviceStatus, copies_printed: int, message: str = ""):
        super().__init__(status, message or f"{copies_printed} copies printed, then: {status}")
        self.copies_printed = copies_printed


@runtime_checkable
class Transport(Protocol):
    def write(self, data: bytes) -> None: ...
    def status(self) -> DeviceStatus: ...
    def close(self) -> None: ...


@runtime_checkable
class ReadableTransport(Transport, Protocol):
    def read(self, size: int, timeout: float) -> bytes:
        """Exactly ``size`` bytes, or PrinterError when ``timeout`` seconds pass first."""


@dataclass(frozen=True)
class PrintJob:
    """A composed film (drive levels, from image.compose) and how to put it on the medium."""
    film: Any  # numpy array rows x cols (uint8/uint16) or rows x cols x 3 uint8
    dpi: float
    copies: int = 1


class PrinterLanguage(Protocol):
    def encode(self, job: PrintJob) -> bytes: ...

    def query_status(self, transport: Transport) -> DeviceStatus | None:
        """Ask the device (None when the language has no way to)."""

    def confirm(self, transport: Transport) -> DeviceStatus | None:
        """After a job is written: wait for the device's verdict.  Raises PrinterNotReady when
        the device says the film was not printed; returns its status after a printed film, or
        None when the language has no verdict to wait for."""


class Printer:
    """A language over a transport: what the print spooler holds per configured printer."""

    def __init__(self, transport: Transport, language: PrinterLanguage):
        self.transport = transport
        self.language = language

    def status(self) -> DeviceStatus:
        return self.transport.status().merged(self.language.query_status(self.transport))

    def print_film(self, job: PrintJob) -> DeviceStatus:
        """Send one film; returns the status after it, raises PrinterNotReady / PrinterError.

        Refuses up front when the printer reports a fault, so a jammed printer is never sent a
        film it would lose; a job is only done when this returns.
        """
        if job.copies < 1:
            raise ValueError(f"Number of Copies {job.copies} must be at least 1")
        before = self.status()
        if not before.ready:
            raise PrinterNotReady(before)
        self.transport.write(self.language.encode(job))
        verdict = self.language.confirm(self.transport)
        # The status after a printed film may already show the next problem (the last sheet
        # used up): that is for the next job, not a failure of this one.
        return self.transport.status().merged(verdict)

    def close(self) -> None:
        self.transport.close()
