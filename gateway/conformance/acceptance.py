"""Association acceptance policy (PS3.2 4.2.1.4): the rejections, the presentation contexts
accepted (Table 4.2-4), and the activities of the roles that answer on the listening port: storage
(storage.py), commitment reports, print (print_management.py), retrieve and C-FIND (query_retrieve.py)."""

from __future__ import annotations

from gateway.config import Config
from gateway.dicom.net import acceptor, association_policy, association_request
from gateway.identity import APPLICATION_CONTEXT_NAME

from .contexts import QR_FIND, AcceptedContext
from .print_management import _print_scp
from .query_retrieve import _qr_find_scp, _qr_retrieve_scp
from .storage import _store_scp
from .tables import _table, _ts_names, uid_name


# More SOP classes than this in one group of contexts: the group's row names the SOP class table.
_LIST_LIMIT = 8


# The association rejections (A-ASSOCIATE-RJ result / source / reason, PS3.8 9.3.4).
_REJECTIONS = [
    ("Called AE title is not this AE's title (or the title of a service on this port); empty",
     association_policy.REJECT_CALLED_AE, "called-AE-title-not-recognized"),
    ("Calling AE title is not a configured peer (unless `ae.accept_unknown_callers`); empty",
     association_policy.REJECT_CALLING_AE, "calling-AE-title-not-recognized"),
    ("Calling AE title is a configured peer whose `host` is given, and the connection comes from "
     "another address", association_policy.REJECT_CALLING_AE, "calling-AE-title-not-recognized"),
    ("Protocol version without bit 0", association_request.REJECT_PROTOCOL_VERSION,
     "protocol-version-not-supported"),
    (f"Application context name other than {APPLICATION_CONTEXT_NAME}",
     association_request.REJECT_APPLICATION_CONTEXT, "application-context-name-not-supported"),
    ("A-ASSOCIATE-RQ longer than 64 KB", acceptor.REJECT_TOO_LARGE, "no-reason-given"),
    ("`ae.max_associations` associations already established", association_policy.REJECT_LOCAL_LIMIT,
     "local-limit-exceeded"),
]


def _acceptance(out: list[str], config: Config, contexts: list[AcceptedContext]) -> None:
    reserve = config.buffer.reserve_mb
    out += ["##### 4.2.1.4 Association acceptance policy", "",
            "An association request is rejected when:", ""]
    out += _table(["Condition", "Result / Source / Reason"],
                  [(cond, f"{r} / {s} / {why} {label}") for cond, (r, s, why), label in _REJECTIONS])
    out += ["AE titles are read as DCMTK and Orthanc read them: up to the first NUL byte, leading and "
            "trailing spaces removed, on both receive paths. A refusal by policy is always an "
            "A-ASSOCIATE-RJ with its reason, never a bare A-ABORT. `peers.*.host`, when given, restricts "
            "that peer to the address (or the addresses its host name resolves to, looked up at most once "
            "a minute).", "",
            "Table 4.2-4 Presentation contexts accepted (the gateway is SCP unless said otherwise). The "
            "acceptor picks the first transfer syntax of the list that the requestor also proposes.", ""]
    rows = []
    for group in _groups(contexts):
        first = group[0]
        if len(group) > _LIST_LIMIT:
            abstract = f"every storage SOP class of Table 4.2-2 ({len(group)})"
        else:
            abstract = "<br>".join(f"{uid_name(c.abstract_syntax)} {c.abstract_syntax}" for c in group)
        rows.append((abstract, _ts_names(first.transfer_syntaxes), _role(first), _extended(first)))
    out += _table(["Abstract syntax", "Transfer syntaxes", "Role", "Extended negotiation"], rows)
    out += ["A context not in this table is rejected (result 3, abstract syntax not supported, or 4, "
            "transfer syntaxes not supported). SCP/SCU role selection proposed for a context whose "
            "extended negotiation is None is ignored (the gateway stays SCP). Print contexts are accepted "
            "only with `[print] enabled = "
            f"true` (configurable, default {str(config.print.enabled).lower()}).", ""]
    _store_scp(out, reserve, config)
    out += ["###### Activity: receive storage commitment reports", "",
            "The listener accepts Storage Commitment Push Model with both roles of SCP/SCU role selection, "
            "so that a PACS may send the N-EVENT-REPORT on a new association; a report on the forwarding "
            "association is accepted too. Every report is answered 0000; reports for unknown or closed "
            "transactions are logged and ignored.", ""]
    _print_scp(out, config)
    _qr_retrieve_scp(out, config)
    _qr_find_scp(out, config)


def _groups(contexts: list[AcceptedContext]) -> list[list[AcceptedContext]]:
    """Contexts of one service with the same transfer syntaxes and roles, in listener order."""
    groups: dict[tuple, list[AcceptedContext]] = {}
    for c in contexts:
        groups.setdefault((c.service, c.transfer_syntaxes, c.scu_role, c.scp_role), []).append(c)
    return list(groups.values())


def _role(c: AcceptedContext) -> str:
    if c.service == "Storage Commitment":
        return "SCU (receives N-EVENT-REPORT)"
    return "SCP"


def _extended(c: AcceptedContext) -> str:
    if c.service == QR_FIND:
        return ("SOP Class Extended Negotiation: relational-queries refused, combined date-time matching "
                "accepted (`qr_find.combined_datetime`), fuzzy matching and timezone adjustment refused")
    if c.scu_role is None and c.scp_role is None:
        return "None"
    said = [f"requestor as SCU {'accepted' if c.scu_role else 'refused'}",
            f"requestor as SCP {'accepted' if c.scp_role else 'refused'}"]
    return "SCP/SCU Role Selection: " + ", ".join(said)
