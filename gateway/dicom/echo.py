"""Verification (C-ECHO), as SCP on the listener and as SCU for `dicom-gateway echo DEST`."""

from __future__ import annotations

import logging

from pynetdicom import evt

from gateway.dicom import status
from gateway.dicom.net.service_role import SupportedContext
from gateway.dicom.net.storage_requestor import RequestRefused, StorageRequestor
from gateway.dicom.sop_classes import VERIFICATION

log = logging.getLogger("gateway.dicom.listener")

_SYNTAXES = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]


class VerificationSCP:
    """The Verification SCP as a service role of the listener (PS3.4 A.4). Its context takes
    pynetdicom's default transfer syntaxes, and the fast path answers C-ECHO too."""

    @staticmethod
    def contexts() -> list[SupportedContext]:
        return [SupportedContext(VERIFICATION, fast_path=True)]

    @staticmethod
    def handlers() -> list[tuple]:
        return [(evt.EVT_C_ECHO, handle_echo)]

    @staticmethod
    def called_titles() -> list[str]:
        return []


def handle_echo(event) -> int:
    """C-ECHO, on the Verification context only (PS3.7 9.1.5.1.2): pynetdicom picks the service
    by the command's SOP class, so an echo on a print or storage context would pass otherwise.
    The fast path answers the same (0211)."""
    abstract = str(event.context.abstract_syntax)
    if abstract != VERIFICATION:
        log.warning("refused C-ECHO from %s on presentation context %d (%s): 0x0211",
                    event.assoc.requestor.ae_title, event.context.context_id, abstract)
        return 0x0211
    return status.SUCCESS


def echo(local_ae: str, ae_title: str, host: str, port: int, timeout: float) -> tuple[bool, str]:
    """C-ECHO a peer as `local_ae`. Returns (ok, one line saying what happened, in words: why a
    peer refused, e.g. "calling AE title not recognised", or why no connection was made)."""
    where = f"{ae_title}@{host}:{port}"
    try:
        assoc = StorageRequestor.connect(host, port, local_ae, ae_title, [(VERIFICATION, _SYNTAXES)],
                                         16384, timeout, timeout)
    except RequestRefused as exc:
        if exc.result is not None:
            return False, f"association rejected by {where} (calling AE {local_ae}): {exc}"
        return False, f"no association with {where}: {exc}"
    try:
        code = assoc.send_c_echo()
    except ValueError as exc:
        assoc.abort()
        return False, f"{where}: {exc}"
    assoc.release()
    if code is None:
        return False, f"no C-ECHO response from {where} (association lost or timed out)"
    return code == status.SUCCESS, f"C-ECHO {where}: status 0x{code:04X}" + (
        " (Success)" if code == status.SUCCESS else "")
