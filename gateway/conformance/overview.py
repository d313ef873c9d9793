"""Sections 1 to 3 of the statement (PS3.2): the overview's tables of network and media
services, the table of contents, and the introduction."""

from __future__ import annotations

from gateway.dicom.sop_classes import STORAGE_COMMITMENT_PUSH, VERIFICATION
from gateway.dicom.worklist_scu import MWL_FIND
from gateway.media.profiles import PROFILES

from .contexts import QR_FIND, AcceptedContext
from .tables import _table, uid_name


# The services of the overview table, in order: (name, UID, SCU, SCP).
_SPECIAL_ROWS = {
    VERIFICATION: ("Yes", "Yes"),
    STORAGE_COMMITMENT_PUSH: ("Yes", "No"),
}


def _overview(out: list[str], contexts: list[AcceptedContext], storage: list[AcceptedContext]) -> None:
    out += ["## 1 Overview", "",
            "The gateway receives images from modalities (Storage SCP), keeps them durably in a buffer and "
            "forwards them to PACS (Storage SCU, with Storage Commitment), prints films for modalities "
            "(Print Management SCP), and writes and reads removable media (FSC, FSR). One application "
            "entity on one TCP port serves every network service.", "",
            "Table 1-1 Network services", ""]
    rows = [(uid_name(VERIFICATION), VERIFICATION, *_SPECIAL_ROWS[VERIFICATION]),
            (f"Storage: {len(storage)} SOP classes (Table 4.2-2), plus private ones from "
             "`[storage] extra_sop_classes`", "see Table 4.2-2", "Yes", "Yes"),
            (uid_name(STORAGE_COMMITMENT_PUSH), STORAGE_COMMITMENT_PUSH, *_SPECIAL_ROWS[STORAGE_COMMITMENT_PUSH]),
            (uid_name(MWL_FIND), MWL_FIND, "Yes", "No")]
    rows += [(uid_name(c.abstract_syntax), c.abstract_syntax, "No", "Yes")
             for c in contexts if c.service in ("Print", "Query/Retrieve")]
    # the C-FIND SCP
    rows += [(uid_name(c.abstract_syntax), c.abstract_syntax, "No", "Yes")
             for c in contexts if c.service == QR_FIND]
    out += _table(["SOP Class", "UID", "SCU", "SCP"], rows)
    out += ["Table 1-2 Media services", ""]
    out += _table(["Media Storage Application Profile", "Write Files (FSC)", "Read Files (FSR)"],
                  [(name, "Yes", "Yes") for name in PROFILES])


_SECTIONS = [
    ("1", "Overview"), ("2", "Table of contents"), ("3", "Introduction"), ("4", "Networking"),
    ("4.1", "Implementation model"), ("4.2", "AE specifications"), ("4.3", "Network interfaces"),
    ("4.4", "Configuration"), ("5", "Media interchange"), ("6", "Support of character sets"),
    ("7", "Security"),
]


def _contents(out: list[str]) -> None:
    out += ["## 2 Table of contents", ""]
    out += [f"{'  ' * number.count('.')}- {number} {title}" for number, title in _SECTIONS]
    out.append("")


def _introduction(out: list[str]) -> None:
    out += ["## 3 Introduction", "",
            "### 3.1 Audience and remarks", "",
            "For integrators connecting modalities, PACS, printers and media to the gateway. The statement "
            "covers what the code in this repository does and is tested to do; "
            "`tests/interop/test_conformance_contexts.py` proposes every presentation context of Table "
            "4.2-4 to a running gateway with pynetdicom and checks that exactly these are accepted. "
            "Query/Retrieve: the C-FIND SCP answers queries over the buffer (Activity: answer queries); "
            "C-MOVE and C-GET retrieve from it (Activity: retrieve from the buffer).", "",
            "### 3.2 Definitions and references", "",
            "DICOM PS3.2 (conformance), PS3.4 (service classes: B Storage, J Storage Commitment, H Print "
            "Management), PS3.7 (DIMSE, status codes Annex C), PS3.8 (upper layer), PS3.10 (media "
            "storage and file format), PS3.11 (application profiles), PS3.5 (character sets). "
            "AE: Application Entity; FSC/FSR: File-set Creator/Reader; SCU/SCP: Service Class "
            "User/Provider.", ""]
