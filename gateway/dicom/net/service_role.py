"""What a service role brings to the listening port: the presentation contexts it accepts and the
pynetdicom handlers that serve them.

Each role (Verification, Storage, Storage Commitment reports, Print, and next Query/Retrieve and
Worklist) describes itself through `ServiceRole`, and the listener builds its AE from the list it is
given, so a new role is one more entry in app.py's list, not a third way of binding a service
(before: storage contexts hard-coded in the listener, print's passed as tuples beside them). The
same table feeds pynetdicom's server and the fast storage path: a context marked `fast_path` is
one the fast path (net/acceptor.py, net/storage_acceptor.py) also serves, and an association that
proposes only such contexts never reaches pynetdicom.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass(frozen=True)
class SupportedContext:
    """One presentation context the listener accepts (PS3.8 9.3.2.2, 7.1.1.13 for the roles).

    transfer_syntaxes: the UIDs accepted, in order of preference; None means pynetdicom's defaults
    (Implicit VR LE, Explicit VR LE, Deflated Explicit VR LE, Explicit VR BE).
    scu_role / scp_role: the SCP/SCU Role Selection answer (None: not negotiated; the requestor is
    the SCU). fast_path: the fast storage path serves this context too."""

    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...] | None = None
    scu_role: bool | None = None
    scp_role: bool | None = None
    fast_path: bool = False


class ServiceRole(Protocol):
    """A service behind the listening port."""

    def contexts(self) -> Sequence[SupportedContext]:
        """The presentation contexts this role accepts."""

    def handlers(self) -> Sequence[tuple]:
        """pynetdicom (event, handler) pairs, bound on every association the listener serves."""

    def called_titles(self) -> Sequence[str]:
        """AE titles besides ae.title that this role answers to (e.g. a separate print AE)."""
