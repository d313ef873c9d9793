"""Query/Retrieve both ways (PS3.2 4.2.1.3 and 4.2.1.4, PS3.4 C): the retrieve SCP (C-MOVE,
C-GET from the buffer; Table 4.2-8), the C-FIND SCP over the buffer (Tables 4.2-10, 4.2-11), and the
Q/R SCU of `dicom-gateway query` / `retrieve`, each read from the module's own tables."""

from __future__ import annotations

from pynetdicom.status import QR_MOVE_SERVICE_CLASS_STATUS as QR_STATUS

from gateway.buffer import query as qr_query
from gateway.buffer import retrieve_select
from gateway.config import Config
from gateway.dicom import qr_retrieve_scp as qr_retrieve
from gateway.dicom.qr_find_scp import FIND_MODELS, STATUSES as QR_FIND_STATUSES

from .tables import _hex, _meaning, _table, _ts_names, _value, uid_name


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


def _qr_find_scp(out: list[str], config: Config) -> None:
    q = config.qr_find
    models = ", ".join(f"{uid_name(uid)} (levels {'/'.join(qr_query.MODELS[uid])})" for uid in FIND_MODELS)
    out += ["###### Activity: answer queries (Query/Retrieve C-FIND SCP, PS3.4 C)", "",
            f"Information models: {models}. Only peers with `peers.*.may_query = true` may query (an "
            "unknown caller, when `ae.accept_unknown_callers` admits it, may too). Search method: baseline "
            "hierarchical (PS3.4 C.4.1.2.1): the unique key of every level above the query level must be "
            "given with one value; relational queries are not supported. Keys of the levels above are matched "
            "and returned too. Keys of a level below the query level (Modality at STUDY level, say), which "
            "PS3.4 C.4.1.2.1 does not have the SCU send, are not refused: they do not restrict the match, "
            "are returned zero length, and the pendings are FF01 (optional keys not supported, PS3.4 "
            "C.4.1.1.4); the log line of the query names them (keyword and tag, no values). One exception "
            "many workstations rely on: Modality (0008,0060) at STUDY level matches as Modalities in Study "
            "would (studies with a series of that modality, list of values and wildcards alike), still "
            "returned zero length with FF01.", "",
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
