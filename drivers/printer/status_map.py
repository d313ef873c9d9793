"""Device status -> DICOM Printer Status (2110,0010) and Printer Status Info (2110,0020).

Defined terms from PS3.3 C.13.9.1.  Printer Status Info holds one term, so when several faults
are present the one an operator must clear first wins: a printer that is offline or open cannot
be trusted to report the rest, and a jam must be cleared before supply or receiver matter.
"""

from __future__ import annotations

from drivers.printer.interface import DeviceStatus

NORMAL, WARNING, FAILURE = "NORMAL", "WARNING", "FAILURE"

_FAILURES = (
    ("online", False, "PRINTER OFFLINE"),
    ("cover_open", True, "COVER OPEN"),
    ("film_jam", True, "FILM JAM"),
    ("supply_empty", True, "SUPPLY EMPTY"),
    ("receiver_full", True, "RECEIVER FULL"),
    ("error", True, "CHECK PRINTER"),
)


def dicom_printer_status(status: DeviceStatus | None) -> tuple[str, str]:
    """(Printer Status, Printer Status Info); None (no answer at all) is PRINTER DOWN."""
    if status is None:
        return FAILURE, "PRINTER DOWN"
    for attr, bad, info in _FAILURES:
        if getattr(status, attr) == bad:
            return FAILURE, info
    if status.supply_low:
        return WARNING, "SUPPLY LOW"
    return NORMAL, "NORMAL"
