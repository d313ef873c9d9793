"""The presentation contexts the listener accepts (PS3.2 4.2, Table 4.2-4), read back from the
listener's own pynetdicom AE built from the very service roles app.py wires: the table the fast path
and pynetdicom's server both negotiate with, so the statement cannot name a context the service does
not accept."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from gateway.config import Config
from gateway.dicom.commitment import CommitmentSCU
from gateway.dicom.echo import VerificationSCP
from gateway.dicom.net.listener import Listener
from gateway.dicom.print_scp import PrintSCP
from gateway.dicom.qr_find_scp import QueryFindSCP
from gateway.dicom.qr_retrieve_scp import QRRetrieveSCP
from gateway.dicom.store_scp import StoreSCP
from gateway.events import EventBus

# The service name of the C-FIND SCP's contexts (the C-FIND SCP over the buffer,
# gateway/dicom/qr_find_scp.py, gateway/buffer/query.py).
QR_FIND = "Query/Retrieve FIND"


@dataclass(frozen=True)
class AcceptedContext:
    """One presentation context the listener accepts, as negotiated (PS3.8 9.3.3.2).

    abstract_syntax: SOP Class UID; transfer_syntaxes: UIDs in the acceptor's order of preference;
    scu_role / scp_role: the SCP/SCU Role Selection answer (PS3.7 D.3.3.4; None: not negotiated);
    service: the role that serves it ("Verification", "Storage", "Storage Commitment", "Print")."""

    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]
    scu_role: bool | None
    scp_role: bool | None
    service: str


def listener_roles(config: Config) -> list[tuple[str, object]]:
    """The service roles behind the listening port, as app.py wires them, with their names.

    Built without a buffer, printer or spool: a role's contexts() depends on the config only, and
    describing the service must not open (or lock) what a running one holds. Print is included
    whether or not `[print] enabled`, since the statement says what each setting turns on."""
    # StoreSCP keeps the buffer for store(), never called here.
    store = StoreSCP(config, None, EventBus())  # type: ignore[arg-type]
    printing = PrintSCP(SimpleNamespace(profile=config.print, store=None, events=None, monitor=None),
                        config)  # type: ignore[arg-type]
    return [("Verification", VerificationSCP()), ("Storage", store),
            ("Storage Commitment", CommitmentSCU(None, None, lambda name: None)),  # type: ignore[arg-type]
            ("Print", printing),
            # Q/R retrieve SCP (its storage contexts keep the name "Storage": first wins)
            ("Query/Retrieve", QRRetrieveSCP(config, None)),  # type: ignore[arg-type]
            # the C-FIND SCP (its index is used by on_find only, never here)
            (QR_FIND, QueryFindSCP(config, None, None))]


def accepted_contexts(config: Config | None = None) -> list[AcceptedContext]:
    """Every presentation context the listener accepts for `config` (default: the schema's
    defaults), in the listener's order, read back from the listener's own pynetdicom AE (the
    table both receive paths negotiate with). Print contexts are accepted only with
    `[print] enabled = true`; they are listed regardless."""
    config = config or Config()
    roles = listener_roles(config)
    service_of: dict[str, str] = {}
    for name, role in roles:
        for c in role.contexts():
            # A role may re-add another's contexts (the retrieve SCP's storage role answers for
            # C-GET): the service is the one that first offered it.
            service_of.setdefault(c.abstract_syntax, name)
    listener = Listener(config, [role for _, role in roles])
    return [AcceptedContext(str(cx.abstract_syntax), tuple(str(t) for t in cx.transfer_syntax),
                            cx.scu_role, cx.scp_role, service_of[str(cx.abstract_syntax)])
            for cx in listener.ae.supported_contexts]
