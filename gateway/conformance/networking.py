"""Section 4 of the statement (PS3.2 Networking) around its two policies: the implementation model
(4.1), the SOP classes (4.2.1.1), the general association policies (4.2.1.2), timers (4.2.1.5),
network interfaces (4.3) and configuration (4.4); and sections 6 (character sets) and 7 (security),
which say how both the network and the media side treat text and callers. Initiation (4.2.1.3) and
acceptance (4.2.1.4) are initiation.py and acceptance.py."""

from __future__ import annotations

from pydicom._uid_dict import UID_dictionary
from pydicom.charset import python_encoding

from gateway.config import Config, TimersSection
from gateway.dicom import status
from gateway.dicom.mpps_scu import MPPS_SOP_CLASS
from gateway.dicom.print_scp import PRINT_CONTEXTS, PRINT_SOP_CLASSES
from gateway.dicom.sop_classes import NON_PATIENT_STORAGE, STORAGE_COMMITMENT_PUSH, VERIFICATION
from gateway.dicom.store_scp import UNRECOGNIZED_OPERATION
from gateway.dicom.worklist_scu import MWL_FIND
from gateway.identity import APPLICATION_CONTEXT_NAME, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

from .acceptance import _acceptance
from .contexts import QR_FIND, AcceptedContext
from .initiation import _initiation
from .tables import _hex, _retired, _table, uid_name


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
