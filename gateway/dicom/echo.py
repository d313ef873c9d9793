"""Verification (C-ECHO), as SCP on the listener and as SCU for `dicom-gateway echo DEST`."""

from __future__ import annotations

from pynetdicom import AE

from gateway.dicom import status
from gateway.dicom.sop_classes import VERIFICATION


def handle_echo(event) -> int:
    return status.SUCCESS


def echo(local_ae: str, ae_title: str, host: str, port: int, timeout: float) -> tuple[bool, str]:
    """C-ECHO a peer. Returns (ok, human-readable outcome)."""
    ae = AE(ae_title=local_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(host, port, ae_title=ae_title)
    if not assoc.is_established:
        if assoc.is_rejected:
            return False, f"association rejected by {ae_title}@{host}:{port}"
        return False, f"no association with {ae_title}@{host}:{port} (refused, aborted or timed out)"
    try:
        rsp = assoc.send_c_echo()
    finally:
        assoc.release()
    code = rsp.get("Status") if rsp else None
    if code is None:
        return False, f"no C-ECHO response from {ae_title}@{host}:{port}"
    return code == status.SUCCESS, f"C-ECHO {ae_title}@{host}:{port}: status 0x{code:04X}"
