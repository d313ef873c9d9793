"""The Print Management SCP's activity (PS3.2 4.2.1.4, PS3.4 H): the objects served, the printer
profile's checks, and its response statuses (Table 4.2-7) keyed by the print code's constants (not
discovered: a new status needs a line in _PRINT_WHEN by hand)."""

from __future__ import annotations

from pynetdicom.status import PRINT_JOB_MANAGEMENT_SERVICE_CLASS_STATUS

from gateway.config import Config
from gateway.dicom.print_scp import SPOOL_FULL
from gateway.print import validate

from .tables import _hex, _meaning, _table


# The Print SCP's statuses besides 0000 (print/validate.py, print_scp.py).
_PRINT_WHEN = {
    validate.NO_SUCH_ATTRIBUTE: "attribute not defined for the operation",
    validate.INVALID_VALUE: "value not allowed by the standard or the printer profile (e.g. an unsupported "
                            "film size)",
    validate.MISSING_ATTRIBUTE: "type 1 attribute missing",
    validate.OUT_OF_RANGE: "Number of Copies above the profile's maximum: the maximum is used",
    validate.MEMORY_NOT_SUPPORTED: "Memory Allocation requested: ignored",
    0xB602: "N-ACTION on a film session whose boxes hold no image",
    0xB603: "N-ACTION on a film box whose boxes hold no image",
    validate.DEMAGNIFIED: "Requested Image Size larger than the box: demagnified to fit",
    validate.DENSITY_CLAMPED: "Min/Max Density outside the printer's range: clamped",
    validate.CROPPED: "image larger than its box, CROP requested: cropped",
    validate.DECIMATED: "image larger than its box: decimated to fit",
    0xC600: "N-ACTION on a film session with no film box",
    SPOOL_FULL: "the print spool is full",
    validate.IMAGE_TOO_LARGE: "image larger than its box and FAIL requested",
    0xC605: "the spool could not be written",
    0x0112: "no such instance (a UID this association did not create; an unknown Printer or Print Job)",
    0x0117: "Requested (or N-CREATE's Affected) SOP Instance UID absent, empty or not a UID",
    0x0118: "Requested/Affected SOP Class UID absent, empty, or not a print SOP class",
    0x0123: "N-ACTION without an Action Type ID, or not 1",
    0x0113: "N-EVENT-REPORT (from a client) without an Event Type ID",
    0x0124: "the calling peer has `may_print = false`",
    0x0211: "an operation the SOP class does not have (e.g. N-SET of a Printer)",
}


def _print_scp(out: list[str], config: Config) -> None:
    p = config.print
    out += ["###### Activity: print films (Print Management SCP, PS3.4 H)", "",
            "Served on the same port, under `print.ae_title` when set (configurable, default "
            f"{p.ae_title or 'none'}; config/gateway.toml sets `EDGEPRINT`) as well as the gateway's title. "
            "Objects: Film Session (N-CREATE, N-SET, N-ACTION, N-DELETE), Film Box (N-CREATE, N-SET, "
            "N-ACTION, N-DELETE), Grayscale and Color Image Box (N-SET; 8 and 12 bit MONOCHROME1/2, RGB), "
            "Presentation LUT (N-CREATE, N-DELETE), Annotation Box (N-SET), Printer (N-GET; N-EVENT-REPORT on "
            "status change), Print Job (N-GET; N-EVENT-REPORT PENDING, PRINTING, DONE, FAILURE), Printer "
            "Configuration Retrieval (N-GET). Objects live for the association.", "",
            "Every attribute is checked against the printer profile in the config `[print]`: film sizes "
            f"(default {', '.join(p.film_sizes)}), medium types (default {', '.join(p.medium_types)}), "
            f"destinations (default {', '.join(p.destinations)}), display formats, orientations, "
            "magnification and smoothing types, densities, trim, requested image size, configuration "
            "information. An N-ACTION is answered only after its films are written to the durable spool. "
            "Printer status (NORMAL, WARNING, FAILURE, with Printer Status Info such as FILM JAM, SUPPLY "
            "EMPTY, RECEIVER FULL) comes from the attached device.", "",
            "Every request is answered with a status, whatever its command set lacks (only a request "
            "without a Message ID, which no response could name, ends the association with A-ABORT). A "
            "Warning response to N-CREATE carries the Affected SOP Instance UID of the created instance. "
            "Printer and Print Job N-EVENT-REPORTs may cross a request of the client's: the request is "
            "served and the report's response matched by its Message ID whenever it comes. A Printer "
            "report is sent to a client only when the printer's state differs from what that client was "
            "last told or could read when it connected. Films print exactly once on printers that report "
            "a supply counter, and at most once otherwise unless an operator reprints.", "",
            "Table 4.2-7 Print Management response statuses (besides 0000)", ""]
    out += _table(["Status", "Meaning", "When"],
                  [(_hex(c), _meaning(c, PRINT_JOB_MANAGEMENT_SERVICE_CLASS_STATUS), when)
                   for c, when in sorted(_PRINT_WHEN.items())])
