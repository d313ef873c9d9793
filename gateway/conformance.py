"""The DICOM Conformance Statement (PS3.2), rendered from the tables the code itself uses.

What is generated and from where, so that the statement cannot drift from the code:

- the presentation contexts the listener accepts: the listener's own pynetdicom AE
  (`Listener(config, roles).ae.supported_contexts`), built from the very service roles app.py
  wires (VerificationSCP, StoreSCP, CommitmentSCU, PrintSCP), the table the fast path and
  pynetdicom's server both negotiate with;
- the storage SOP classes: StoreSCP's contexts (sop_classes.storage_sop_classes), names from
  pydicom's UID dictionary (retired ones marked), or pynetdicom's for the few pydicom lacks;
- the contexts the forwarder and `echo` propose: store_scu.FALLBACK, MAX_CONTEXTS, echo._SYNTAXES;
- the statuses: store_scp.STATUS_OF (the intake's refusals as C-STORE statuses), print's status
  constants (print/validate.py, print_scp.py), the forwarder's retry rule
  (status.is_transient_store_failure), commitment.FAILURE_REASONS; meanings from pynetdicom's
  PS3.7 Annex C tables;
- the association rejections: the (result, source, reason) constants of the policy and the
  request check;
- timers, limits, titles: the config schema's defaults (gateway/config/), said as "configurable,
  default X";
- media: media/profiles.PROFILES and media/export.PROFILE_FOR;
- character sets: pydicom's table of the Specific Character Set terms it decodes.

The prose between the tables says what each behaviour is. A refusal the intake gains
(store_scp.STATUS_OF) or a timer `[timers]` gains without a sentence here makes `render` raise
KeyError naming it, so tests/unit/test_conformance.py fails until the sentence is written. The
print statuses and the rejection conditions are keyed by the code's constants but not discovered:
a new one needs a line here by hand.

Used by `dicom-gateway conformance [--output FILE]`; the committed CONFORMANCE.md is its output for
the default config (tests/unit/test_conformance.py compares them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from types import SimpleNamespace

from pydicom._uid_dict import UID_dictionary
from pydicom.charset import python_encoding
from pynetdicom.sop_class import _STORAGE_CLASSES
from pynetdicom.status import (
    QR_MOVE_SERVICE_CLASS_STATUS as QR_STATUS,
    GENERAL_STATUS,
    PRINT_JOB_MANAGEMENT_SERVICE_CLASS_STATUS,
    STORAGE_SERVICE_CLASS_STATUS,
)

from gateway.buffer.intake import Refusal
from gateway.config import Config, DestinationSection, TimersSection
from gateway.dicom import status
from gateway.dicom.commitment import FAILURE_REASONS, CommitmentSCU
from gateway.dicom.echo import _SYNTAXES as ECHO_SYNTAXES
from gateway.dicom.echo import VerificationSCP
from gateway.dicom.net import acceptor, association_policy, association_request
from gateway.dicom.net.listener import Listener
from gateway.buffer import retrieve_select
from gateway.dicom import qr_retrieve_scp as qr_retrieve
from gateway.dicom.qr_retrieve_scp import QRRetrieveSCP
from gateway.dicom.print_scp import PRINT_CONTEXTS, PRINT_SOP_CLASSES, SPOOL_FULL, PrintSCP
from gateway.dicom.sop_classes import NON_PATIENT_STORAGE, STORAGE_COMMITMENT_PUSH, VERIFICATION
from gateway.dicom.store_scp import STATUS_OF, UNRECOGNIZED_OPERATION, StoreSCP
from gateway.dicom.store_scu import FALLBACK, MAX_CONTEXTS
from gateway.dicom.mpps_scu import MPPS_SOP_CLASS, MPPS_SYNTAXES, PERMANENT
from gateway.dicom.worklist_scu import MWL_FIND, MWL_SYNTAXES, WorklistQuery
from gateway.events import EventBus
from gateway.identity import APPLICATION_CONTEXT_NAME, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from gateway.media.export import PROFILE_FOR
from gateway.media.profiles import PROFILES
from gateway.print import validate
# the C-FIND SCP over the buffer
from gateway.buffer import query as qr_query
from gateway.dicom.qr_find_scp import FIND_MODELS, STATUSES as QR_FIND_STATUSES, QueryFindSCP

PRODUCT = "DICOM edge gateway"
GENERATED_BY = "dicom-gateway conformance --output CONFORMANCE.md"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
# More SOP classes than this in one group of contexts: the group's row names the SOP class table.
_LIST_LIMIT = 8


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


def uid_name(uid: str) -> str:
    """The standard name of a UID (PS3.6 Annex A): pydicom's dictionary, "(Retired)" appended for a
    retired one; pynetdicom's name for a storage class pydicom does not know yet; else the UID."""
    entry = UID_dictionary.get(uid)
    if entry:
        name, _kind, _info, retired, *_ = entry
        return f"{name} (Retired)" if retired == "Retired" and "Retired" not in name else name
    for keyword, value in _STORAGE_CLASSES.items():
        # StoreSCP registers the classes pynetdicom lacks under made-up keywords: not names.
        if value == uid and not keyword.startswith("EdgeStorage_"):
            return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", keyword)
    return uid


def _retired(uid: str) -> bool:
    entry = UID_dictionary.get(uid)
    return bool(entry) and entry[3] == "Retired"


def _ts_names(uids: Iterable[str]) -> str:
    return "<br>".join(f"{uid_name(u)} {u}" for u in uids)


def _hex(code: int) -> str:
    return f"{code:04X}"


# Codes whose PS3.7 meaning is a range's ("Cannot Understand" for every Cxxx): what this gateway
# means by them, after the seed statement.
_OWN_MEANING = {
    status.OUT_OF_RESOURCES_DIRECTORY: "Failure: Refused: Out of Resources (directory error)",
    status.DATABASE_ERROR: "Failure: Cannot Understand (database error)",
}


def _meaning(code: int, table: dict) -> str:
    if code in _OWN_MEANING:
        return _OWN_MEANING[code]
    category, text = table.get(code) or GENERAL_STATUS.get(code) or ("", "")
    return f"{category}: {text}" if text else category


def _value(v) -> str:
    """A config default as the TOML file spells it."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _ranges(codes: Iterable[int]) -> str:
    """0xA700..0xA7FF, 0x0110 -> "A700–A7FF, 0110"."""
    out, run = [], []
    for c in sorted(codes):
        if run and c != run[-1] + 1:
            out.append(run)
            run = []
        run.append(c)
    if run:
        out.append(run)
    return ", ".join(_hex(r[0]) if len(r) == 1 else f"{_hex(r[0])}–{_hex(r[-1])}" for r in out)


def _table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


# -- what each thing the code does means, in words; keyed by the code's own names --------------------

# Why the Storage SCP answers each refusal of the intake (store_scp.STATUS_OF).
_REFUSAL_WHEN = {
    Refusal.NOT_STORAGE_CLASS: "Affected SOP Class is not an accepted storage class, or is not the abstract "
                               "syntax of the presentation context",
    Refusal.NOT_AUTHORIZED: "the calling peer has `may_store = false`",
    Refusal.UNREADABLE: "the data set cannot be parsed, or is truncated inside an element",
    Refusal.MISMATCH: "SOP Instance/Class UID differs from the command; Study, Series or SOP Instance UID "
                      "missing or not a valid UID",
    Refusal.DISK_FULL: "free space would fall below `buffer.reserve_mb` (configurable, default {reserve}) and no "
                       "delivered instance is left to evict, or the disk is full; nothing is kept",
    Refusal.WRITE_FAILED: "the buffer cannot be written (I/O error)",
    Refusal.INDEX_ERROR: "the index transaction failed",
    Refusal.COERCION_FAILED: "a `[[coercion]]` rule of the calling peer cannot be applied (deflated transfer "
                             "syntax, a value its VR or the Specific Character Set cannot hold); nothing is kept",
}

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

# What each timer of [timers] bounds (TimersSection's fields).
_TIMER_MEANING = {
    "association_s": "forwarder: from TCP connect to A-ASSOCIATE-AC (seed: 30 s); a timeout closes the "
                     "connection and the destination backs off",
    "inactivity_s": "both directions: no PDU on an established association (DIMSE and network timeout; "
                    "seed: 180 s, reset at each message); the association is aborted",
    "session_s": "both directions: an association older than this is aborted (listener) or a batch stops "
                 "and continues on a new association (forwarder) (seed: 60 min)",
    "handshake_s": "listener: a connection must complete association negotiation within this time, so "
                   "stalled or half-open connections cannot hold association slots",
    "stop_drain_s": "on SIGTERM, an object being received or sent gets this long to finish; then the "
                    "association is aborted (the sender sends it again)",
}

# The services of the overview table, in order: (name, UID, SCU, SCP).
_SPECIAL_ROWS = {
    VERIFICATION: ("Yes", "Yes"),
    STORAGE_COMMITMENT_PUSH: ("Yes", "No"),
}


# -- rendering ----------------------------------------------------------------------------------------

def _version() -> str:
    try:
        return metadata.version("dicom-gateway")
    except metadata.PackageNotFoundError:
        return "unknown"


def render(config: Config | None = None) -> str:
    """The statement as Markdown, for `config` (default: the schema's defaults, which is what the
    committed CONFORMANCE.md shows). Raises KeyError naming a status, rejection or timer of the
    code that has no sentence here yet (see the module's docstring)."""
    config = config or Config()
    contexts = accepted_contexts(config)
    storage = sorted((c for c in contexts if c.service == "Storage"), key=lambda c: uid_name(c.abstract_syntax))
    out: list[str] = []
    add = out.append
    add(f"# DICOM Conformance Statement — {PRODUCT} {_version()}")
    add("")
    add(f"Generated from the code by `{GENERATED_BY}` (gateway/conformance.py): edit the code or the "
        "generator, never this file. Layout after PS3.2 (2024). Values that are configurable are given "
        "with the default of the config schema (gateway/config/), as \"configurable, default X\".")
    add("")
    _overview(out, contexts, storage)
    _contents(out)
    _introduction(out)
    _networking(out, config, contexts, storage)
    _media(out, config)
    _charsets(out)
    _security(out, config)
    return "\n".join(out).rstrip("\n") + "\n"


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


def _networking(out: list[str], config: Config, contexts: list[AcceptedContext],
                storage: list[AcceptedContext]) -> None:
    ae = config.ae
    out += ["## 4 Networking", "", "### 4.1 Implementation model", "",
            "#### 4.1.1 Application data flow", "",
            f"One application entity (title configurable, default `{ae.title}`) on one TCP port "
            f"(configurable, default {ae.port}) serves every role:", "",
            "- **Storage SCP**: a received instance is written to the buffer (a folder of Part-10 files "
            "plus a SQLite index) and acknowledged only after the file is fsynced and renamed into place, "
            "its directory fsynced and the index transaction committed.",
            "- **Forwarder (Storage SCU, Storage Commitment SCU)**: for each configured destination a worker "
            "sends the buffered instances the routing rules assign to it, in study order, and, where "
            "configured, requests storage commitment.",
            "- **Print SCP**: film sessions from modalities are spooled durably and printed on the attached "
            "film printer.",
            "- **Verification SCP and SCU**: answers C-ECHO; `dicom-gateway echo DEST` sends one.",
            "- **Modality Worklist SCU**: asks the configured worklist SCP for the procedures scheduled for "
            "this box, periodically and on demand; the last good worklist is kept in the buffer.",
            "- **Video capture** (with `[capture] enabled`): frames from the frame grabber become Secondary "
            "Capture, VL Endoscopic or multi-frame Secondary Capture objects for the chosen worklist item (or "
            "an unscheduled, flagged identity), stored in the buffer like received instances and forwarded by "
            "the routing rules.",
            "- **Modality Performed Procedure Step SCU** (with `[mpps] enabled`): reports each captured "
            "procedure (IN PROGRESS at its first capture, COMPLETED or DISCONTINUED with its objects).",
            # the C-FIND SCP
            "- **Query/Retrieve C-FIND SCP**: answers Patient Root and Study Root queries over what the "
            "buffer holds, for peers allowed to query.", "",
            "#### 4.1.2 Sequencing of real-world activities", "",
            "An instance is forwarded as soon as it is stored and its destination is reachable; a film is "
            "printed after the N-ACTION that asked for it was answered; storage commitment is requested "
            "after a batch was sent.", "",
            "### 4.2 AE specifications", "",
            f"#### 4.2.1 {ae.title} AE", "",
            "##### 4.2.1.1 SOP classes", "",
            "Table 4.2-1 SOP classes (non-storage)", ""]
    rows = [(uid_name(VERIFICATION), VERIFICATION, "Yes", "Yes"),
            (uid_name(STORAGE_COMMITMENT_PUSH), STORAGE_COMMITMENT_PUSH, "Yes", "No"),
            (uid_name(MWL_FIND), MWL_FIND, "Yes (with `[worklist] enabled`)", "No"),
            (uid_name(MPPS_SOP_CLASS), MPPS_SOP_CLASS, "Yes (with `[mpps] enabled`)", "No")]
    rows += [(uid_name(c.abstract_syntax), c.abstract_syntax, "No", "Yes (with `[print] enabled`)")
             for c in contexts if c.service == "Print"]
    rows += [(f"&nbsp;&nbsp;{uid_name(u)} (in a print meta SOP class)", u, "No", "Yes")
             for u in sorted(PRINT_SOP_CLASSES - set(PRINT_CONTEXTS))]
    rows += [(uid_name(c.abstract_syntax), c.abstract_syntax, "No", "Yes")
             for c in contexts if c.service == QR_FIND]
    out += _table(["SOP Class", "UID", "SCU", "SCP"], rows)
    retired = [c for c in storage if _retired(c.abstract_syntax)]
    out += [f"Table 4.2-2 Storage SOP classes (SCU and SCP; {len(storage)} classes: every storage SOP "
            "class of PS3.6 Annex A, retired ones included, except the non-patient objects listed below; "
            f"the {len(retired)} retired ones follow the current ones)", ""]
    private = set(config.storage.extra_sop_classes)
    out += _table(["SOP Class", "UID"], [
        ("Private (`[storage] extra_sop_classes`)" if c.abstract_syntax in private else uid_name(c.abstract_syntax),
         c.abstract_syntax) for c in storage if c not in retired])
    # Ultrasound machines in service still send the retired classes: they get a table of their own.
    out += _table(["Retired storage SOP class", "UID"],
                  [(UID_dictionary[c.abstract_syntax][0], c.abstract_syntax) for c in retired])
    out += ["Not accepted (their contexts are rejected with reason 3, abstract syntax not supported): "
            "Storage Commitment and Media Storage Directory Storage, which are not sent by C-STORE, and "
            "the non-patient objects, because the buffer indexes instances by study and series: "
            + "; ".join(f"{uid_name(u)} {u}" for u in sorted(NON_PATIENT_STORAGE, key=uid_name)) + ". "
            "Private storage SOP classes are accepted when listed in `[storage] extra_sop_classes` "
            f"(configurable, default {', '.join(config.storage.extra_sop_classes) or 'none'}), with the same "
            "transfer syntaxes.", ""]
    _association_policies(out, config)
    _initiation(out, config)
    _acceptance(out, config, contexts)
    _timers(out, config)
    _interfaces(out, config)
    _configuration(out)


def _association_policies(out: list[str], config: Config) -> None:
    ae = config.ae
    out += ["##### 4.2.1.2 Association policies", "",
            "Table 4.2-3 General association policies", ""]
    out += _table(["Item", "Value"], [
        ("Application context name", APPLICATION_CONTEXT_NAME),
        ("Maximum PDU size received", f"configurable (`ae.max_pdu`), default {ae.max_pdu}"),
        ("Maximum PDU size sent", "the peer's maximum (128 KB when it states none), at most `ae.max_pdu`"),
        ("Number of associations accepted at once",
         f"configurable (`ae.max_associations`), default {ae.max_associations}; only associations that "
         "completed negotiation count"),
        ("Number of associations initiated", "one per destination at a time; destinations in parallel"),
        ("Asynchronous operations window", "not supported (not negotiated): one operation at a time each way"),
        ("Implementation Class UID", IMPLEMENTATION_CLASS_UID),
        ("Implementation Version Name", IMPLEMENTATION_VERSION_NAME),
    ])
    out += ["Associations that propose only Storage and/or Verification are negotiated and served by the "
            "gateway's own upper-layer implementation; associations proposing anything else (print, storage "
            "commitment) by pynetdicom. Both accept the same presentation contexts (Table 4.2-4, read "
            "from one table), apply the same acceptance policy and the same association cap.", "",
            "A protocol error on an association (a PDU of an unexpected type, P-DATA on a presentation "
            "context that was not accepted, A-RELEASE-RQ inside a message, a PDU longer than the negotiated "
            "maximum) is answered with A-ABORT (source: service provider), and a partial data set is deleted. "
            "Every A-ASSOCIATE-RQ is checked item by item against PS3.8 9.3.2 first: a malformed one is "
            "answered with A-ABORT (source 2, reason 6 invalid-PDU-parameter-value, PS3.8 9.2 AA-1); a first "
            "PDU that is not an A-ASSOCIATE-RQ with A-ABORT (reason 2 or 1).", "",
            "An operation must belong to the abstract syntax of the presentation context it arrives on "
            "(PS3.7 9.1.1.1.2): a C-STORE on the Verification context, or a C-ECHO on a storage context, is "
            f"answered {_hex(UNRECOGNIZED_OPERATION)}; a C-STORE of one storage class on the context of "
            f"another {_hex(status.SOP_CLASS_NOT_SUPPORTED)}. Its data set is dropped; the association goes "
            "on.", ""]


def _initiation(out: list[str], config: Config) -> None:
    d = DestinationSection.model_fields
    fallback = " and ".join(uid_name(u) for u in FALLBACK)
    transient = [c for c in range(0x10000) if status.is_transient_store_failure(c)]
    out += ["##### 4.2.1.3 Association initiation policy", "",
            "###### Activity: forward instances to a destination (Storage SCU)", "",
            f"Per destination, a batch of queued instances (`batch_size`, configurable, default "
            f"{d['batch_size'].default}) goes over one association, as many contexts as fit in "
            f"{MAX_CONTEXTS} (one context ID kept for storage commitment). Proposed presentation contexts: "
            f"for each (SOP class, stored transfer syntax) one context with that syntax alone, plus per SOP "
            f"class one context with {fallback}. An instance is sent as stored when its syntax is accepted; "
            "otherwise it is decoded (pydicom with pylibjpeg) and sent uncompressed with the same SOP "
            "Instance UID. C-STORE priority MEDIUM. No extended negotiation.", ""]
    out += _table(["Abstract syntax", "Transfer syntaxes", "Role", "Extended negotiation"], [
        ("every storage SOP class of Table 4.2-2 held in the buffer", "the instance's stored transfer syntax", "SCU",
         "None"),
        ("the same", _ts_names(FALLBACK), "SCU", "None"),
        (f"{uid_name(STORAGE_COMMITMENT_PUSH)} {STORAGE_COMMITMENT_PUSH} (destinations with "
         "`storage_commitment = true`)", _ts_names(FALLBACK), "SCU", "None"),
    ])
    out += ["Table 4.2-5 Forwarder behaviour by C-STORE response status", ""]
    out += _table(["Response", "Behaviour"], [
        ("0000; Warning (0001, 0107, 0116, B000–BFFF)", "sent (warnings logged); next instance"),
        (f"{_ranges(transient)}; no response; association lost",
         "retried with capped exponential backoff "
         f"(`retry_initial_s`, default {_value(d['retry_initial_s'].default)} s; "
         f"`retry_max_s`, default {_value(d['retry_max_s'].default)} s) up to `max_attempts` (default "
         f"{d['max_attempts'].default}), then dead-lettered; the rest of the batch waits"),
        ("any other failure (A9xx, Cxxx, 0122, 0124, …)", "dead-lettered at once with the status and Error Comment"),
        ("association rejected / not established", "the destination backs off; the instances wait without "
                                                    "using up attempts"),
    ])
    out += ["###### Activity: request storage commitment (Storage Commitment Push Model SCU, PS3.4 J)", "",
            f"Per destination, switchable (`storage_commitment`, configurable, default "
            f"{_value(d['storage_commitment'].default)}): after a batch, N-ACTION (Action Type 1) with every instance "
            "sent, on the same association. The transaction is recorded durably before the request leaves. "
            "The N-EVENT-REPORT is accepted on that association or on a new one (4.2.1.4). Instances reported "
            "committed are done; instances reported failed, not mentioned, or whose transaction passes "
            f"`commitment_timeout_s` (configurable, default {_value(d['commitment_timeout_s'].default)} s) are sent "
            "again. Failure Reasons understood:", ""]
    out += _table(["Failure Reason", "Meaning"], [(_hex(c), text) for c, text in FAILURE_REASONS.items()])
    _worklist_activity(out, config)
    _capture_activity(out, config)
    _mpps_activity(out, config)
    _qr_scu_activity(out, config)
    out += ["###### Activity: verify a peer (`dicom-gateway echo DEST`)", "",
            f"One association proposing {uid_name(VERIFICATION)} with "
            f"{_ts_names(ECHO_SYNTAXES).replace('<br>', ' and ')}; "
            "one C-ECHO; the outcome (or the peer's rejection reason) is printed in words.", ""]


def _worklist_activity(out: list[str], config: Config) -> None:
    """The Modality Worklist SCU (gateway/dicom/worklist_scu.py): its keys read from the very
    identifier it sends (a value: a matching key; zero length: a return key)."""
    w = config.worklist
    sample = WorklistQuery(station_ae="AE", date_from="20000101", date_to="20000101", modality="US",
                           patient_id="P").identifier()

    def rows(ds, inside: str = ""):
        for elem in ds:
            if elem.VR == "SQ":
                yield (f"{inside}{elem.keyword}", f"({elem.tag.group:04X},{elem.tag.element:04X})", "sequence", "")
                yield from rows(elem.value[0], inside + "&nbsp;&nbsp;")
                continue
            match = "matching key" if elem.value not in ("", None) else "return key"
            yield (f"{inside}{elem.keyword}", f"({elem.tag.group:04X},{elem.tag.element:04X})", match,
                   _MWL_KEY_VALUE.get(elem.keyword, ""))
    out += ["###### Activity: query the modality worklist (Modality Worklist SCU, PS3.4 K)", "",
            f"With `[worklist] enabled` (configurable, default {_value(w.enabled)}), every `worklist.refresh_s` "
            f"(configurable, default {_value(w.refresh_s)} s) and on `dicom-gateway worklist --refresh`: one "
            f"association to the worklist SCP (`worklist.ae_title`, default `{w.ae_title}`; calling AE title "
            "`worklist.calling_ae`, default the AE title), proposing "
            f"{uid_name(MWL_FIND)} {MWL_FIND} with {_ts_names(MWL_SYNTAXES).replace('<br>', ' and ')}; "
            "one C-FIND, priority MEDIUM. Every pending response (FF00, FF01) is one "
            "item; the worklist is used only when the final response is Success (0000). A failure status, a "
            "cancel, a rejection, no connection, no final response within `worklist.timeout_s` "
            f"(configurable, default {_value(w.timeout_s)} s) or more than `worklist.max_items` "
            f"(default {w.max_items}) items leave the worklist in use unchanged: the last good one, kept in "
            "the buffer across restarts, and reported as such. Zero items is a good answer. Each response's "
            "identifier is kept with its values as received (its Specific Character Set included) and is "
            "the source of the patient and request attributes of the objects captured for it.", "",
            "Table 4.2-8 Modality Worklist C-FIND keys", ""]
    out += _table(["Attribute", "Tag", "Type", "Value sent"], rows(sample))


def _capture_activity(out: list[str], config: Config) -> None:
    """The objects the capture makes (gateway/capture/iod.py, clip_file.py), from its own tables."""
    from gateway.capture import iod

    c = config.capture
    out += ["###### Activity: capture video (objects created, stored and forwarded as Storage SCU)", "",
            f"With `[capture] enabled` (configurable, default {_value(c.enabled)}): `dicom-gateway capture`, "
            "the front panel's capture button (short: a still; long: a clip of `capture.clip_s`) take the "
            "latest frame or record a clip, for the current procedure. The object is written to the buffer "
            "(fsynced) before the operator is told it was captured, then forwarded like a received "
            "instance. Objects created:", ""]
    out += _table(["Object", "SOP Class", "UID"], [
        ("a still", uid_name(iod.SC), str(iod.SC)),
        ("a still when the procedure's modality is ES (`capture.still_sop = \"auto\"`)",
         uid_name(iod.VL_ENDOSCOPIC), str(iod.VL_ENDOSCOPIC)),
        ("a clip (`capture.color = \"rgb\"`)", uid_name(iod.MF_TRUE_COLOR_SC), str(iod.MF_TRUE_COLOR_SC)),
        ("a clip (`capture.color = \"grayscale\"`)", uid_name(iod.MF_GRAYSCALE_BYTE_SC),
         str(iod.MF_GRAYSCALE_BYTE_SC))])
    out += [f"Transfer syntax per `capture.encoding` (configurable, default `{c.encoding}`): "
            + "; ".join(f"`{k}`: {uid_name(str(v))}" for k, v in iod.TRANSFER_SYNTAXES.items())
            + f". JPEG Baseline at `capture.jpeg_quality` (default {c.jpeg_quality}), YBR_FULL_422. "
            "Patient, study and request attributes are copied as the worklist SCP encoded them, with its "
            "Specific Character Set; Study Instance UID and Accession Number from the worklist item; "
            "Request Attributes Sequence filled; SC Equipment Conversion Type DV (analog grabber input) or "
            "DI; Burned In Annotation YES. An unscheduled capture has a generated Patient ID, Issuer of "
            f"Patient ID `{iod.UNSCHEDULED_ISSUER}` and a Patient Comments note. A clip cut by a lost signal "
            "or a video mode change is kept with the frames captured (`capture.on_signal_lost`, default "
            f"`{c.on_signal_lost}`) or discarded; a half-written object never enters the buffer.", ""]


def _mpps_activity(out: list[str], config: Config) -> None:
    """The MPPS SCU (gateway/dicom/mpps_scu.py, gateway/buffer/mpps.py)."""
    m = config.mpps
    out += ["###### Activity: report performed procedure steps (MPPS SCU, PS3.4 F)", "",
            f"With `[mpps] enabled` (configurable, default {_value(m.enabled)}): at the first capture for a "
            "procedure, N-CREATE with PPS status IN PROGRESS; when the operator ends it (`dicom-gateway "
            "capture --end`, or `--discontinue`) or chooses another procedure and captures, N-SET COMPLETED "
            "(or DISCONTINUED) with the Performed Series Sequence of every object captured. Both are queued "
            "durably and sent by a worker over an association of their own to `mpps.ae_title` at "
            "`mpps.host`:`mpps.port`, proposing "
            f"{uid_name(MPPS_SOP_CLASS)} with {' and '.join(uid_name(str(t)) for t in MPPS_SYNTAXES)}. "
            "The N-SET is never sent before its N-CREATE was accepted. Failure statuses are retried with "
            f"backoff up to `mpps.max_attempts` (default {m.max_attempts}), then dead-lettered; "
            f"{', '.join(_hex(s) for s in sorted(PERMANENT))} are dead-lettered at once. A re-sent N-CREATE "
            "answered 0111 (duplicate instance) after a restart counts as accepted. An unreachable SCP uses "
            "no attempt.", ""]



def _qr_scu_activity(out: list[str], config: Config) -> None:
    """The Query/Retrieve SCU (gateway/dicom/qr_scu.py, `dicom-gateway query` / `retrieve`): its
    SOP classes, keys, status handling and timers, read from the module's own tables."""
    from gateway.dicom import qr_scu

    q = config.qr_scu
    out += ["###### Activity: query and retrieve from a PACS (Query/Retrieve SCU, PS3.4 C)", "",
            "On `dicom-gateway query` and `dicom-gateway retrieve`: an association of its own to the PACS "
            "(`qr_scu.destination`, a destination of the config, or `--destination`; calling AE title "
            "`qr_scu.calling_ae`, default the AE title), proposing the one SOP class the operation needs "
            f"with {_ts_names(qr_scu.QR_SYNTAXES).replace('<br>', ' and ')}, priority MEDIUM, no extended "
            "negotiation (queries are hierarchical: the unique keys of the levels above the one asked are "
            "sent with a single value, and a query without them is refused before any association). Study "
            "Root by default; Patient Root with `--patient-root` and for the PATIENT level. A matching key "
            "outside ASCII is sent with Specific Character Set ISO_IR 100 (when Latin-1 holds it) or "
            "ISO_IR 192; responses are decoded with the character set they name.", ""]
    out += _table(["SOP Class", "UID", "Role", "Used by"], [
        (uid_name(model[op]), model[op], "SCU", use)
        for model in (qr_scu.STUDY_ROOT, qr_scu.PATIENT_ROOT)
        for op, use in (("FIND", "`query`; `retrieve` looks up what it retrieves first"),
                        ("MOVE", "`retrieve` (default, `qr_scu.retrieve = \"move\"`)"),
                        ("GET", "`retrieve --get`"))])
    out += ["Retrieve: the identifier carries the Query/Retrieve Level and the unique keys only "
            "(PS3.4 C.4.2.2.1). C-MOVE names `qr_scu.move_destination` (default: this AE title) or `--to`; "
            "the PACS then opens an association to this AE's Storage SCP, and the instances are accepted "
            "like any C-STORE (the PACS's AE title must be a peer that may store). C-GET proposes, for each "
            "SOP class a C-FIND at the IMAGE level lists, the storage SOP class with the SCP role (SCP/SCU "
            "Role Selection, PS3.7 D.3.3.4): one context for the uncompressed transfer syntaxes and one per "
            "other syntax of Table 4.2-4 while 127 contexts allow, else one context with all of them; each "
            "C-STORE sub-operation is answered only after the instance is fsynced and indexed, with the "
            "statuses of Table 4.2-6. Retrieved instances are recorded as received from the PACS's AE title "
            "and are never forwarded back to a destination with that AE title.", "",
            "Keys sent (zero length: return key; `-k KEY=VALUE` adds or sets any other key, not sequences):", ""]
    out += _table(["Level", "Return keys"],
                  [(level, ", ".join(keys)) for level, keys in qr_scu.RETURN_KEYS.items()])
    out += ["Response status handling:", ""]
    out += _table(["Status", "Behaviour"], [
        ("FF00, FF01 (pending)", "a match is listed; for C-MOVE / C-GET the counts are printed"),
        ("0000", "done; exit 0"),
        (qr_scu.status_words(0xB000), "the counts and the Failed SOP Instance UID List are printed; exit 1"),
        ("any failure status after sub-operations were done (e.g. A702 when every one failed)",
         "the same, with the final status in words; exit 1"),
        (qr_scu.status_words(0xFE00), "after Ctrl-C sent C-CANCEL: the counts so far; exit 130 "
                                      "(a second Ctrl-C aborts the association)"),
        ("A700, A701, A702, A801, A900, 0122, 0124, Cxxx and any other, no sub-operation done",
         "one line naming the PACS and the status in words (e.g. "
         f"{qr_scu.status_words(0xA801)}); exit 1"),
        ("no response within the inactivity timer; session timer expired", "the association is aborted; "
                                                                            "one line; exit 1"),
    ])
    out += [f"Timers (`[qr_scu]`, configurable): association `association_s` (default {_value(q.association_s)} s); "
            "inactivity "
            f"`inactivity_s` (default {_value(q.inactivity_s)} s, restarted by each response); session "
            f"`find_session_s` (default {_value(q.find_session_s)} s) and `retrieve_session_s` (default "
            f"{_value(q.retrieve_session_s)} s). More than `max_results` (default {q.max_results}) matches "
            "cancel the query.", ""]




_MWL_KEY_VALUE = {
    "ScheduledStationAETitle": "`worklist.station_ae` (default: the AE title; `*`: any station)",
    "ScheduledProcedureStepStartDate": "today, or the range today − `worklist.days_back` to today + "
                                       "`worklist.days_forward`",
    "Modality": "`worklist.modality` (default: any)",
    "PatientID": "not sent by the periodic query (universal matching)",
}


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


def _store_scp(out: list[str], reserve: int, config: Config) -> None:
    out += ["###### Activity: receive instances (Storage SCP, PS3.4 B)", "",
            "Level 2 (full) storage: the data set is stored byte for byte as received, with a File Meta "
            "Information header (PS3.10 7.1) made from the association (negotiated transfer syntax, the "
            "command's SOP Class and Instance UIDs, the calling AE title as Source Application Entity "
            "Title). Group 0002 elements a sender puts at the start of its data set are dropped (a WARNING "
            "names the SOP Instance UID and the tags). Apart from that and the configured attribute coercion "
            "(below) no element is removed, added or changed; pixel data is never decoded. Success is answered only after the file is fsynced "
            "and indexed. A second copy of a SOP Instance UID with different content replaces the first "
            f"or is discarded (`buffer.duplicate_policy`, configurable, default "
            f"\"{config.buffer.duplicate_policy}\"); an identical copy is acknowledged and not forwarded "
            "again. Error Comment (0000,0902) names the problem.", "",
            "Table 4.2-6 C-STORE response statuses", ""]
    rows = [("0000", "Success", "stored, fsynced and indexed; also an identical re-send of a stored instance")]
    for refusal, code in STATUS_OF.items():
        rows.append((_hex(code), _meaning(code, STORAGE_SERVICE_CLASS_STATUS),
                     _REFUSAL_WHEN[refusal].format(reserve=reserve)))
    rows.append((_hex(UNRECOGNIZED_OPERATION), _meaning(UNRECOGNIZED_OPERATION, GENERAL_STATUS),
                 "C-STORE on the Verification context (or another non-storage context)"))
    rows.append((_hex(status.COERCION_OF_DATA_ELEMENTS), "Warning: Coercion of data elements",
                 "stored, with attributes coerced by a rule with `store_status = \"warning\"` (below)"))
    out += _table(["Status", "Meaning", "When"], sorted(rows, key=lambda r: (r[0] != "0000", r[0])))
    _coercion(out, config)


# -- attribute coercion (gateway/config/coercion.py, gateway/buffer/coercion.py) ----------
def _coercion(out: list[str], config: Config) -> None:
    out += ["###### Attribute coercion (PS3.4 B.4.1.3)", "",
            "The Storage SCP may coerce attributes: `[[coercion]]` rules of the configuration (none by "
            f"default; {len(config.coercion)} in this configuration) set, copy, map (value tables), "
            "delete, add or fix Specific Character Set, fill missing attributes from the cached Modality "
            "Worklist item with the same Accession Number, add an Issuer of Patient ID or prefix the "
            "Patient ID, for the objects of a calling AE title (or a media or capture source). They are "
            "applied before the instance is indexed or forwarded. SOP Class, SOP Instance, Study and "
            "Series Instance UIDs are never coerced. Each coerced instance gets one item in the Original "
            "Attributes Sequence (0400,0561) (PS3.3 C.12.1.1.9): the previous values in the Modified "
            "Attributes Sequence, Reason for the Attribute Modification COERCE, Modifying System the "
            "gateway's AE title, Source of Previous Values the calling AE title. Pixel data and every "
            "element not coerced stay byte for byte as received. Success (0000) is answered for a coerced "
            "instance unless a rule says `store_status = \"warning\"` (B000): legacy modalities, the ones "
            "rules are written for, often treat any non-zero status as a failure and send again. A rule "
            "that cannot be applied to an instance refuses it with 0110: stored uncoerced it would reach "
            "the PACS with the header the rule exists to fix. Rules naming a destination change only the "
            "copy sent to it (Storage SCU), made when the job sends; the stored instance keeps its values.",
            ""]


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


# -- the Q/R retrieve SCP (gateway/dicom/qr_retrieve_scp.py) --------------------------------
# Its statuses besides 0000 and FF00 (Pending), with when each is sent (PS3.4 C.4.2.1.5, C.4.3.1.4).
_RETRIEVE_WHEN = {
    qr_retrieve.NOT_AUTHORIZED: "the calling AE is not a configured peer with `may_query = true`, or its "
                                "`may_retrieve = false` (PS3.7 C.5 Refused: Not Authorized)",
    qr_retrieve.DESTINATION_UNKNOWN: "C-MOVE: the Move Destination is neither a `[destinations.*]` AE title "
                                     "nor a `[peers.*]` AE title that may retrieve, with its host and port",
    retrieve_select.IDENTIFIER_MISMATCH: "no Query/Retrieve Level, a level the model lacks, a Unique Key "
                                         "missing or empty at or above the level, several values above it, "
                                         "a value that is not a UID, a wildcard in Patient ID",
    retrieve_select.TOO_MANY: "more than 65535 instances match (the counts are US); or the index cannot be "
                              "read",
    qr_retrieve.UNABLE_SUBOPS: "every sub-operation failed (destination unreachable or refusing); with the "
                               "Failed SOP Instance UID List",
    qr_retrieve.WARNING: "some sub-operations failed or ended with a warning; with the Failed SOP Instance "
                         "UID List (0008,0058)",
    qr_retrieve.CANCELLED: "a C-CANCEL arrived: sent before the next sub-operation, with Remaining",
    qr_retrieve.CANNOT_UNDERSTAND: "the identifier cannot be decoded",
    qr_retrieve.UNABLE_TO_PROCESS: "a fault of the gateway (logged)",
}

# A701 is the seed's "directory error" for C-STORE (_OWN_MEANING); in Q/R it is PS3.4's own.
_RETRIEVE_MEANING = {retrieve_select.TOO_MANY: "Failure: Refused: Out of Resources, unable to calculate "
                                               "number of matches"}


def _qr_retrieve_scp(out: list[str], config: Config) -> None:
    out += ["###### Activity: retrieve from the buffer (Query/Retrieve C-MOVE and C-GET SCP, PS3.4 C.4.2, "
            "C.4.3)", "",
            "Patient Root and Study Root MOVE and GET, hierarchical retrieve (relational retrieve is not "
            "negotiated): only the Unique Keys count (Patient ID, with Issuer of Patient ID when given under "
            "Patient Root; Study, Series and SOP Instance UIDs); the key of the retrieve level may be a list "
            "of UIDs, the keys above it take one value. Other attributes of the identifier are ignored. "
            "Only peers that may query (`may_query = true`) may retrieve, unless their `may_retrieve = false`. "
            "A C-MOVE's Move Destination must be the AE "
            "title of a `[destinations.*]` (enabled or not) or of a `[peers.*]` that may retrieve "
            "and its `host` and `port` given; the address comes from the config, never from the request. Sub-operations send each stored "
            "file as it is, in its stored transfer syntax; a destination that did not accept that syntax "
            "gets the data set decoded into Explicit or Implicit VR Little Endian with the same SOP Instance "
            "UID (as forwarding does), else that sub-operation fails. C-MOVE sub-operations go on a new "
            f"association from `{config.ae.title}` (the `[timers]` association and inactivity timers apply; "
            "one association per 127 presentation contexts' worth of instances; each C-STORE names the C-MOVE's "
            "AE title and Message ID as Move Originator; a sub-operation whose association is lost under it is "
            "sent once more on a new association); C-GET sub-operations go "
            "back on the requestor's association, on the storage contexts for which it proposed the SCP "
            "role (SCP/SCU Role Selection is accepted both ways on every storage context, Table 4.2-4). A "
            "Pending response follows each sub-operation with the four counts. Sub-operations have the request's "
            "Priority; requests are not scheduled by it. An identifier that matches "
            "nothing is answered 0000 with every count 0. C-CANCEL is honoured before the next "
            "sub-operation. An instance evicted from the buffer after the match counts as a failed "
            "sub-operation.", "",
            "Table 4.2-8 C-MOVE / C-GET response statuses (besides 0000 Success and FF00 Pending)", ""]
    out += _table(["Status", "Meaning", "When"],
                  [(_hex(c), _RETRIEVE_MEANING.get(c) or _meaning(c, QR_STATUS), when)
                   for c, when in sorted(_RETRIEVE_WHEN.items())])
# -- the C-FIND SCP over the buffer (gateway/dicom/qr_find_scp.py, gateway/buffer/query.py) ---
QR_FIND = "Query/Retrieve FIND"


def _qr_find_scp(out: list[str], config: Config) -> None:
    q = config.qr_find
    models = ", ".join(f"{uid_name(uid)} (levels {'/'.join(qr_query.MODELS[uid])})" for uid in FIND_MODELS)
    out += ["###### Activity: answer queries (Query/Retrieve C-FIND SCP, PS3.4 C)", "",
            f"Information models: {models}. Only peers with `peers.*.may_query = true` may query (an "
            "unknown caller, when `ae.accept_unknown_callers` admits it, may too). Search method: baseline "
            "hierarchical (PS3.4 C.4.1.2.1): the unique key of every level above the query level must be "
            "given with one value; relational queries are not supported. Keys of a level below the query "
            "level are refused (A900); keys of the levels above are matched and returned too.", "",
            "Table 4.2-10 C-FIND keys matched and returned (level as in the Patient Root model; in Study "
            "Root the patient's keys are STUDY keys)", ""]
    rows = []
    for kw, key in qr_query._KEYS.items():
        vr = qr_query.dictionary_VR(qr_query.Tag(kw))
        unique = "unique" if qr_query._UNIQUE.get(key.level) == kw else ""
        how = ("return only (derived)" if key.derived and kw != "ModalitiesInStudy" else
               "any series modality, list of values, wildcard" if kw == "ModalitiesInStudy" else
               "single value, list of UIDs" if vr == "UI" else
               "single value, range" if vr in ("DA", "TM") else
               "single value, wildcard" + (", case-insensitive" if vr == "PN" and q.pn_case_insensitive else "")
               if vr in qr_query.WILDCARD_VRS else "single value")
        rows.append((key.level, kw, vr, unique, how))
    out += _table(["Level", "Key", "VR", "Type", "Matching"], rows)
    out += ["Every key matches universally when sent empty (or as \"*\"). Wildcards \"*\" and \"?\" only in "
            "the VRs that allow them (AE, CS, LO, LT, PN, SH, ST, UC, UR, UT); a wildcard in a DA, TM or UI "
            "value, or a malformed range, is refused with A900. Ranges \"a-b\", \"a-\", \"-b\" on DA and TM; a "
            "study without a date matches no date range. StudyDate with StudyTime is one date-time range "
            "only when the SCU negotiated combined date-time matching. Person names match case-insensitively "
            f"(`qr_find.pn_case_insensitive`, configurable, default {str(q.pn_case_insensitive).lower()}), "
            "Unicode case folding, non-ASCII names too; a value without \"=\" matches the whole name or any "
            "one of its component groups (alphabetic, ideographic, phonetic). No attribute the index holds "
            "is in a sequence: a sequence key is returned empty and does not restrict the match. Other keys "
            "are returned zero length and not matched (pendings are then FF01); Retrieve AE Title is the "
            "gateway's AE title, Instance Availability ONLINE. Private keys are not returned.", "",
            "Character sets: the query is decoded with its Specific Character Set (any term of section 6). "
            "Each response is encoded in the character set its study was received in when that can hold "
            "every value of the response (at PATIENT level, the patient's latest study's), else in ISO_IR "
            "192 (UTF-8); Specific Character Set is returned when it is not the default repertoire.", "",
            "Table 4.2-11 C-FIND response statuses (besides pending FF00 / FF01)", ""]
    out += _table(["Status", "When"], [(_hex(c), when) for c, when in sorted(QR_FIND_STATUSES.items())])


def _timers(out: list[str], config: Config) -> None:
    out += ["##### 4.2.1.5 Timers", "", "All configurable in `[timers]`, read at start.", ""]
    rows = [(f"`timers.{name}`", f"{getattr(config.timers, name):g} s", _TIMER_MEANING[name])
            for name in TimersSection.model_fields]
    out += _table(["Timer", "Default", "What it bounds"], rows)


def _interfaces(out: list[str], config: Config) -> None:
    out += ["### 4.3 Network interfaces", "",
            f"TCP/IP over IPv4 (IPv6 not yet tested); bind address `ae.bind` (configurable, default "
            f"{config.ae.bind}). TCP_NODELAY on every DICOM socket (`ae.tcp_nodelay`, configurable, default "
            f"{str(config.ae.tcp_nodelay).lower()}). No TLS yet.", ""]


def _configuration(out: list[str]) -> None:
    out += ["### 4.4 Configuration", "",
            "`/etc/dicom-gateway/gateway.toml` (see `config/gateway.toml`): this AE's title, bind address and "
            "port; peers (AE title, host, port, may_store / may_print); destinations (AE title, host, port, "
            "storage commitment, retries, batch size); routes; private storage SOP classes; buffer location "
            "and reserve; timers; printer profile; media drives. Unknown keys and out-of-range values are "
            "refused by name; `dicom-gateway check-config` lists every problem. Remote AEs must be configured "
            "beforehand (deny by default).", ""]


def _media(out: list[str], config: Config) -> None:
    by_profile: dict[str, list[str]] = {}
    for kind, name in PROFILE_FOR.items():
        by_profile.setdefault(name, []).append(kind.value)
    out += ["## 5 Media interchange", "",
            "### 5.1 Implementation model", "",
            "Export (FSC): studies from the buffer are written, as jobs of the durable queue, to a CD, DVD or "
            "USB stick (`dicom-gateway export`, or the export rules `[[media.export_rules]]` when a blank "
            "medium is inserted), with a DICOMDIR and IHE PDI pages; a medium is good only after it was read "
            "back and compared. Import (FSR): `dicom-gateway import PATH` follows the medium's DICOMDIR (or "
            "reads every file when there is none or it is broken) and takes each instance into the buffer as "
            "a C-STORE would arrive (same storage classes, duplicate policy, routes).", "",
            "### 5.2 AE specifications", "",
            f"One AE (title `{config.ae.title}`), FSC and FSR of the profiles below; the profile follows the "
            "medium. SOP classes on the media: Media Storage Directory Storage "
            f"{MEDIA_STORAGE_DIRECTORY} and every storage SOP class of Table 4.2-2 held in the buffer.", ""]
    rows = []
    for name, prof in PROFILES.items():
        rows.append((name, ", ".join(by_profile.get(name, [])) or "—",
                     _ts_names(sorted(prof.allowed, key=uid_name)), "FSC, FSR"))
    out += _table(["Application profile", "Medium", "Transfer syntaxes written", "Roles"], rows)
    out += ["An instance whose transfer syntax the profile does not allow is converted to Explicit VR Little "
            "Endian (decompressed with pydicom and pylibjpeg; Big Endian swapped; the SOP Instance UID "
            "kept, Lossy Image Compression kept); what cannot be decoded is left out with the reason in "
            "the job's report. The FSR reads any transfer syntax (instances are stored as they are on the "
            "medium). No augmented or private profiles.", ""]


def _charsets(out: list[str]) -> None:
    terms = [t for t in python_encoding if t]
    out += ["## 6 Support of character sets", "",
            "Received and imported data sets are kept byte for byte whatever their Specific Character Set "
            "(0008,0005). The index, the DICOMDIR and the operator views decode text with pydicom, which "
            "supports the default repertoire (ISO-IR 6) and these defined terms (PS3.3 C.12.1.1.2), ISO 2022 "
            "code extensions included:", "",
            ", ".join(f"`{t}`" for t in terms) + ".", ""]


def _security(out: list[str], config: Config) -> None:
    out += ["## 7 Security", "",
            "No secure transport profile yet. Access control: calling AE titles must be configured peers "
            f"(`ae.accept_unknown_callers`, configurable, default {str(config.ae.accept_unknown_callers).lower()}), "
            "optionally bound to a host; per-peer permissions to store and to print. Logs carry SOP Instance "
            "UIDs and AE titles, never patient names or IDs.", ""]
