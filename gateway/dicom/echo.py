"""Verification (C-ECHO), as SCP on the listener and as SCU for `dicom-gateway echo DEST`."""

from __future__ import annotations

from gateway.dicom import status
from gateway.dicom.storage_requestor import VERIFICATION, RequestRefused, StorageRequestor

_SYNTAXES = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]


def handle_echo(event) -> int:
    """The listener's C-ECHO handler: always Success."""
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
