"""Query/Retrieve SCU against a PACS (PS3.4 Annex C): C-FIND at the PATIENT, STUDY, SERIES and IMAGE
levels, C-MOVE to an AE title the PACS knows, C-GET with the instances coming back on the same
association; C-CANCEL on request. Used by `dicom-gateway query` / `retrieve` (gateway/cli_query.py).

Information models: Study Root (C.6.2) by default, Patient Root (C.6.1) when asked, and always for
the PATIENT level (it exists only there). Queries are hierarchical (C.4.1.2.1, no relational
extended negotiation): the unique keys of every level above the one asked must be given with a
single value, and `identifier` refuses a query without them, naming the key.

Timers (the seed conformance statement's, `[qr_scu]`): `association_s` bounds the TCP connect and
the A-ASSOCIATE exchange, `inactivity_s` the wait for each response (every pending response
restarts it: pynetdicom's DIMSE timeout is per message), `session_s` the whole association: when it
expires the association is aborted and the operation reported as such.

Retrieved instances go into the buffer like received ones: a C-MOVE's arrive at the running
service's STORE SCP from the PACS (calling AE: whatever title the PACS uses); a C-GET's C-STORE
sub-operations arrive here and `RetrievedStore` hands each to the same StoreSCP.store (intake
checks, duplicate policy, fsync and index commit before the Success response), recorded as coming
from the PACS's AE title. Routing never sends an instance back to the AE title it came from
(gateway/routing.py), so a retrieved study is not forwarded back to the PACS that holds it.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.valuerep import validate_value
from pynetdicom import AE, build_role, evt
from pynetdicom.pdu_primitives import A_ABORT, A_P_ABORT

from gateway.dicom import status
from gateway.dicom.net import pynetdicom_patches, receive_spool
from gateway.dicom.net.association_failure import aborted_by_peer, rejected, why_no_association
from gateway.dicom.net.pynetdicom_patches import accepted_context, dataset_file
from gateway.dicom.sop_classes import ACCEPTED_TRANSFER_SYNTAXES, VERIFICATION
from gateway.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, normalise_ae

log = logging.getLogger("gateway.dicom.qr_scu")

# PS3.4 Annex B / C.6: the SOP classes of the two information models, per DIMSE service.
STUDY_ROOT = {"FIND": "1.2.840.10008.5.1.4.1.2.2.1", "MOVE": "1.2.840.10008.5.1.4.1.2.2.2",
              "GET": "1.2.840.10008.5.1.4.1.2.2.3"}
PATIENT_ROOT = {"FIND": "1.2.840.10008.5.1.4.1.2.1.1", "MOVE": "1.2.840.10008.5.1.4.1.2.1.2",
                "GET": "1.2.840.10008.5.1.4.1.2.1.3"}
MODELS = {"study": STUDY_ROOT, "patient": PATIENT_ROOT}
# The seed statement's syntax is Implicit VR LE, which every Q/R SCP takes; Explicit VR LE is
# offered too and keeps the VRs as the PACS knows them. An identifier is small: nothing compressed.
QR_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")
MEDIUM = 0  # PS3.7 9.1.2.1.6 Priority MEDIUM (pynetdicom's default is LOW)
# One context for the Q/R SOP class; the rest of PS3.8's 128 for the storage contexts of a C-GET.
MAX_GET_STORAGE_CLASSES = 127

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
UNIQUE_KEY = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID",
              "IMAGE": "SOPInstanceUID"}
# Return keys asked for at each level (zero length: universal matching), the seed statement's keys
# (Table "Keys" of its Q/R SCU section) and what a table needs to pick the next step.
RETURN_KEYS = {
    "PATIENT": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                "NumberOfPatientRelatedStudies"),
    "STUDY": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
              "AccessionNumber", "StudyID", "ReferringPhysicianName", "StudyDescription", "ModalitiesInStudy",
              "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "StudyInstanceUID"),
    "SERIES": ("Modality", "SeriesNumber", "BodyPartExamined", "SeriesDescription",
               "NumberOfSeriesRelatedInstances", "StudyInstanceUID", "SeriesInstanceUID"),
    "IMAGE": ("InstanceNumber", "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"),
}

_PENDING = (0xFF00, 0xFF01)
_UID = re.compile(r"(?=.{1,64}$)[0-9]+(\.[0-9]+)*")  # PS3.5 9.1
# PS3.4 C.4.1.1.4 (FIND), C.4.2.1.5 (MOVE), C.4.3.1.4 (GET) and PS3.7 C general statuses, in words.
STATUS_WORDS = {
    0x0000: "success",
    0x0122: "SOP class not supported",
    0x0124: "refused: not authorized",
    0xA700: "refused: out of resources",
    0xA701: "refused: out of resources, unable to calculate number of matches",
    0xA702: "refused: out of resources, unable to perform sub-operations",
    0xA801: "refused: move destination unknown",
    0xA900: "identifier does not match SOP class",
    0xB000: "sub-operations complete, one or more failures or warnings",
    0xFE00: "cancelled",
}


def status_words(code: int) -> str:
    """A Q/R response status in words: "0xA801 (refused: move destination unknown)"."""
    words = STATUS_WORDS.get(code)
    if words is None:
        words = "unable to process" if code & 0xF000 == 0xC000 else "failed"
    return f"0x{code:04X} ({words})"


class QrError(Exception):
    """The operation failed as a whole: no connection, association rejected (its reason in words),
    the SOP class not accepted, a failure status, no response within the inactivity timer, the
    session timer expired, a bad query. One line naming the PACS and why. `status`: the PACS's
    final failure status when that was the reason (the command line adds a hint for some), else
    None."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Interrupted(QrError):
    """A Cancel request (Ctrl-C) ended the work with nothing to report: before the association was
    established (the A-ASSOCIATE-RQ unanswered: the wait is cut and the association aborted, not
    left to the association timer), or, for a Cancel made with `at_once` (a lookup), whenever it
    came. `established`: whether an association was up when it came."""

    def __init__(self, peer: "QrPeer", established: bool):
        when = "after" if established else "before"
        super().__init__(f"interrupted {when} the association with {peer.where} was established")
        self.established = established


class MissingKey(ValueError):
    """A hierarchical query lacks the unique key of a level above (PS3.4 C.4.1.2.1): `key` (the
    keyword), `level` asked, `above` (the level the key names). The message says which; the
    command line names its own option for the key."""

    def __init__(self, level: str, key: str, above: str):
        super().__init__(f"{_article(level)} {level} query needs {key} with one value (the {above.lower()} "
                         "it is in)")
        self.level, self.key, self.above = level, key, above


def _article(word: str) -> str:
    return "an" if word[:1] in "AEIOU" else "a"


@dataclass(frozen=True)
class QrPeer:
    """The PACS asked: its AE title, host, port; our calling AE title; the timers in seconds."""

    ae_title: str
    host: str
    port: int
    calling_ae: str
    association_s: float = 30.0
    inactivity_s: float = 90.0
    session_s: float = 3600.0

    @property
    def where(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


# -- the identifier ----------------------------------------------------------------------------------

def keyword_of(name: str) -> str:
    """A key as the command line spells it: a keyword ("PatientName") or a tag ("0010,0010",
    "(0010,0010)", "00100010"). Returns the keyword; ValueError naming the key when it is none."""
    text = name.strip()
    if tag_for_keyword(text) is not None:
        return text
    digits = text.strip("()").replace(",", "")
    if len(digits) == 8:
        try:
            kw = keyword_for_tag(Tag(int(digits, 16)))
        except ValueError:
            kw = ""
        if kw:
            return kw
    raise ValueError(f"{name!r} is not a DICOM keyword or tag (e.g. PatientName, 0010,0010)")


def _charset_for(values: Iterable[str]) -> str | None:
    """The Specific Character Set a request needs for these values: None for ASCII only, else
    ISO_IR 100 (Latin-1) when every value fits it, else ISO_IR 192 (UTF-8)."""
    text = "".join(values)
    if text.isascii():
        return None
    try:
        text.encode("latin-1")
        return "ISO_IR 100"
    except UnicodeEncodeError:
        return "ISO_IR 192"


def identifier(level: str, keys: dict[str, str], model: str = "study") -> Dataset:
    """The C-FIND / C-MOVE / C-GET identifier (PS3.4 C.4.1.2.1): Query/Retrieve Level, the given
    keys (keyword -> value; "" = return key) and the level's return keys. A value outside ASCII
    adds the Specific Character Set it needs (PS3.5 6.1). Raises ValueError (one line) for a level
    the model lacks or a sequence key, and MissingKey (a ValueError) for a missing unique key of a
    level above (hierarchical query: single value matching on Patient ID (Patient Root), Study and
    Series Instance UID)."""
    if level not in LEVELS:
        raise ValueError(f"level {level!r}: one of {', '.join(LEVELS)}")
    if level == "PATIENT" and model != "patient":
        raise ValueError("the PATIENT level exists only in the Patient Root model (--patient-root)")
    above = LEVELS[:LEVELS.index(level)]
    if model == "study":
        above = tuple(lv for lv in above if lv != "PATIENT")
    for lv in above:
        key = UNIQUE_KEY[lv]
        value = keys.get(key, "")
        if not value or any(c in value for c in "*?\\"):
            raise MissingKey(level, key, lv)
    ds = Dataset()
    charset = keys.get("SpecificCharacterSet") or _charset_for(keys.values())
    if charset:
        ds.SpecificCharacterSet = charset
    ds.QueryRetrieveLevel = level
    for kw in RETURN_KEYS[level]:
        setattr(ds, kw, "")
    for kw, value in keys.items():
        if kw == "SpecificCharacterSet":
            continue
        tag = tag_for_keyword(kw)
        if tag is None:
            raise ValueError(f"{kw!r} is not a DICOM keyword")
        if dictionary_VR(tag) == "SQ":
            raise ValueError(f"{kw}: sequence matching is not offered by this command")
        if dictionary_VR(tag) == "UI" and value and not all(_UID.fullmatch(v) for v in value.split("\\")):
            # Refused here, by name: pydicom would only warn (on the terminal) and send it.
            raise ValueError(f"{kw}: {value!r} is not a UID (digits and dots, at most 64 characters; "
                             "several separated by \\)")
        # pydicom only warns of a value its VR does not allow (too long, not a date), on the
        # terminal with its source path, and sends it (and not even that once a reading mode of
        # IGNORE is set, configure_pydicom): refused here in one line instead, each of several
        # values (backslash-separated) on its own.
        for part in str(value).split("\\"):
            try:
                validate_value(dictionary_VR(tag), part, pydicom_config.RAISE)
            except ValueError as exc:
                raise ValueError(f"{kw}: {exc}".rstrip(".")) from None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                setattr(ds, kw, value)
            except UserWarning as exc:
                raise ValueError(f"{kw}: {exc}".rstrip(".")) from None
    return ds


def retrieve_identifier(level: str, keys: dict[str, str]) -> Dataset:
    """The C-MOVE / C-GET identifier (PS3.4 C.4.2.2.1, C.4.3.2.1): the Query/Retrieve Level and
    the unique keys only (of that level and the levels above), no return keys: an SCP may take an
    empty key as universal matching and move more than was asked (Orthanc's C-GET did)."""
    if level not in LEVELS:
        raise ValueError(f"level {level!r}: one of {', '.join(LEVELS)}")
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for lv in LEVELS[:LEVELS.index(level) + 1]:
        key = UNIQUE_KEY[lv]
        if keys.get(key):
            setattr(ds, key, keys[key])
    if not keys.get(UNIQUE_KEY[level]):
        raise ValueError(f"a {level} retrieve needs {UNIQUE_KEY[level]}")
    return ds


# -- cancel ------------------------------------------------------------------------------------------

class Cancel:
    """Asked from another thread or a signal handler: the first request sends C-CANCEL for the
    operation in progress (PS3.7 9.3.2.3 / 9.3.3.3 / 9.3.4.3; the SCP then ends it with status
    FE00 and the counts so far); a second request aborts the association. Before an operation is
    under way a request only marks it, and the operation sends C-CANCEL as soon as it starts.
    While the association is being set up nothing is on the wire to cancel: a request cuts the
    wait for the A-ASSOCIATE-AC at once (the association is aborted) and the session raises
    Interrupted. `at_once`: every request aborts (a lookup, whose matches are not worth keeping),
    and the operation raises Interrupted."""

    def __init__(self, at_once: bool = False) -> None:
        self._lock = threading.Lock()
        self.at_once = at_once
        self.requested = 0
        self._target: tuple | None = None  # (assoc, msg_id, context_id)
        self._sent = False
        self._connecting = None  # the association being set up, from EVT_REQUESTED
        self.cut_setup = False  # a request cut the association set-up

    @property
    def announced(self) -> bool:
        """A request now acts on an operation under way (C-CANCEL, or the abort of a second one),
        which the command says at once; otherwise (set-up, `at_once`) the command says what
        happened when the operation has ended."""
        return not self.at_once and self._target is not None

    def request(self) -> None:
        # Counted here, at once (two Ctrl-C in quick succession are two requests: the second
        # aborts); acted on from a thread of its own: a signal handler runs in the main thread,
        # which may be inside pynetdicom's send path, or hold self._lock, at that instant.
        self.requested += 1
        threading.Thread(target=self._act, name="qr-cancel", daemon=True).start()

    @property
    def aborted(self) -> bool:
        """A second request came: the association is (or is being) aborted."""
        return self.requested >= 2

    def _act(self) -> None:
        with self._lock:
            target, sent, connecting = self._target, self._sent, self._connecting
            if target is None:
                if connecting is not None:
                    self.cut_setup = True
                    # The requesting thread waits up to association_s for the A-ASSOCIATE-AC on
                    # the DUL's queue (pynetdicom 3.0 acse.py:460): None there is its "ACSE
                    # timeout", after which it aborts the association itself (A-ABORT, socket
                    # closed, DUL thread ended), so nothing is left for the interpreter to join.
                    pynetdicom_patches.end_association_wait(connecting)
                return
            assoc, msg_id, cx_id = target
            if not sent:
                self._sent = True
        if self.requested >= 2 or sent or self.at_once:
            assoc.abort()
            # The operation's thread waits for the next response up to the inactivity timer; an
            # abort we send ourselves puts nothing in its queue: it is woken here instead.
            pynetdicom_patches.wake_response_waiter(assoc)
            return
        try:
            assoc.send_c_cancel(msg_id, cx_id)
        except RuntimeError:  # the association already ended
            pass

    def _setting_up(self, event) -> None:
        """EVT_REQUESTED: the A-ASSOCIATE-RQ is on its way, the association not yet up."""
        with self._lock:
            self._connecting = event.assoc
            pending = self.requested
        if pending:
            self._act()

    def _set_up(self) -> None:
        with self._lock:
            self._connecting = None

    def _attach(self, assoc, msg_id: int, cx_id: int) -> None:
        with self._lock:
            self._target, self._sent = (assoc, msg_id, cx_id), False
            pending = self.requested
        if pending:
            self._act()

    def _detach(self) -> None:
        with self._lock:
            self._target = None


# -- results -----------------------------------------------------------------------------------------

@dataclass
class FindResult:
    """The matches (each response's identifier, decoded by pydicom with its Specific Character
    Set), the final status, and whether it was cancelled."""

    matches: list[Dataset] = field(default_factory=list)
    status: int = 0
    cancelled: bool = False


@dataclass
class RetrieveResult:
    """A C-MOVE or C-GET's final counts (PS3.4 C.4.2.1.5 / C.4.3.1.4: Number of Completed, Failed,
    Warning and Remaining Sub-operations), its final status, the Failed SOP Instance UID List, and
    whether it was cancelled. Several operations (one per study) add up with `add`."""

    status: int = 0
    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int = 0
    failed_uids: list[str] = field(default_factory=list)
    cancelled: bool = False
    # Cancelled before any response gave counts: what the PACS had sent is not known (it may
    # have stored some at the destination already).
    unreported: bool = False

    def add(self, other: "RetrieveResult") -> None:
        self.completed += other.completed
        self.failed += other.failed
        self.warning += other.warning
        self.remaining += other.remaining
        self.failed_uids += other.failed_uids
        self.cancelled = self.cancelled or other.cancelled
        self.unreported = self.unreported or other.unreported
        if other.status != 0x0000 and self.status == 0x0000:
            self.status = other.status

    @property
    def ok(self) -> bool:
        return self.status == 0x0000 and not self.failed and not self.cancelled


Progress = Callable[[RetrieveResult], None]


# -- associations ------------------------------------------------------------------------------------

def _peer_aborted(peer: QrPeer, answered: bool) -> str:
    """The PACS sent an A-ABORT (or dropped the connection). Before any answer the usual reason is
    a calling AE title it does not know: Orthanc accepts the association and aborts at the first
    request; others abort the A-ASSOCIATE-RQ itself."""
    if answered:
        return f"{peer.where}: the PACS aborted the association"
    return (f"{peer.where}: the PACS aborted the association (it may not accept calling AE title "
            f"{peer.calling_ae}: check the PACS's list of known modalities)")


def _why_no_association(assoc, peer: QrPeer, peer_aborted: bool = False) -> str:
    if (peer_aborted or aborted_by_peer(assoc)) and rejected(assoc) is None:
        return _peer_aborted(peer, answered=False)
    return why_no_association(assoc, peer.where, peer.host, peer.port, peer.association_s)


def storage_contexts(n_classes: int) -> list[list[str]]:
    """The transfer syntax lists proposed per storage SOP class on a C-GET association. The PACS
    accepts one syntax per context, and sends an instance stored in a syntax no context accepted
    transcoded (Orthanc sent an RLE image as Explicit VR LE): so, while PS3.8's 128 contexts
    allow, one context for the uncompressed syntaxes and one for each other syntax the buffer
    stores, and the bytes arrive as the PACS holds them; with more classes one context each
    with every syntax."""
    uncompressed = [str(ts) for ts in ACCEPTED_TRANSFER_SYNTAXES[:2]]
    others = [[str(ts)] for ts in ACCEPTED_TRANSFER_SYNTAXES[2:]]
    if n_classes * (1 + len(others)) <= MAX_GET_STORAGE_CLASSES:
        return [uncompressed] + others
    return [[str(ts) for ts in ACCEPTED_TRANSFER_SYNTAXES]]


class _Session:
    """One association to the PACS, with the session timer running: past `session_s` it is
    aborted (seed statement: "a timeout closes the connection")."""

    def __init__(self, peer: QrPeer, sop_class: str, storage: Iterable[str] = (), store_handler=None,
                 cancel: Cancel | None = None):
        self.peer = peer
        self.peer_aborted = False
        self.sop_class = sop_class
        ae = AE(ae_title=peer.calling_ae)
        ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
        ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
        ae.acse_timeout = ae.connection_timeout = peer.association_s
        ae.dimse_timeout = ae.network_timeout = peer.inactivity_s
        ae.add_requested_context(sop_class, list(QR_SYNTAXES))
        roles = []
        storage = list(storage)
        for uid in storage:
            for syntaxes in storage_contexts(len(storage)):
                ae.add_requested_context(uid, syntaxes)
            # PS3.4 C.4.3.1: the requestor of a C-GET is the Storage SCP of its sub-operations.
            roles.append(build_role(uid, scp_role=True))
        handlers = [(evt.EVT_C_STORE, store_handler)] if store_handler is not None else []
        handlers.append((evt.EVT_ACSE_RECV, self._on_acse))
        if cancel is not None:
            handlers.append((evt.EVT_REQUESTED, cancel._setting_up))
        self.expired = False
        try:
            self.assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, ext_neg=roles or None,
                                      evt_handlers=handlers)
        finally:
            if cancel is not None:
                cancel._set_up()
        if cancel is not None and (cancel.cut_setup or (cancel.at_once and cancel.requested)):
            if self.assoc.is_established:  # the A-ASSOCIATE-AC won the race with the request
                self.assoc.abort()
            raise Interrupted(peer, established=not cancel.cut_setup)
        if not self.assoc.is_established:
            raise QrError(_why_no_association(self.assoc, peer, self.peer_aborted))
        try:
            self.context_id = accepted_context(self.assoc, sop_class).context_id
        except ValueError:
            self.assoc.abort()
            raise QrError(f"{peer.where} does not accept {sop_class} (the Q/R SOP class asked)") from None
        self._timer = threading.Timer(peer.session_s, self._expire)
        self._timer.daemon = True
        self._timer.start()
        self._msg_id = 0

    def _on_acse(self, event) -> None:
        # EVT_ACSE_RECV: an A-ABORT (or A-P-ABORT: the connection dropped) from the PACS's side;
        # one we send ourselves never comes through here.
        if isinstance(event.primitive, (A_ABORT, A_P_ABORT)):
            self.peer_aborted = True

    def _expire(self) -> None:
        self.expired = True
        self.assoc.abort()

    def next_msg_id(self) -> int:
        self._msg_id += 1
        return self._msg_id

    def lost(self, what: str, answered: bool = False) -> QrError:
        """The error for a response that never came (pynetdicom yields an empty status);
        `answered`: some response of the association came before."""
        if not self.peer_aborted and self.assoc.is_alive():
            # The reactor thread files the PACS's A-ABORT (EVT_ACSE_RECV) just after the state
            # machine woke us: let it, it ends at once after an abort.
            self.assoc.join(1.0)
        if self.peer_aborted or self.assoc.acse.is_aborted():
            return QrError(_peer_aborted(self.peer, answered))
        if self.expired:
            return QrError(f"{self.peer.where}: {what} stopped: the session timer "
                           f"({self.peer.session_s:g} s) expired and the association was aborted")
        return QrError(f"{self.peer.where}: no {what} response within {self.peer.inactivity_s:g} s "
                       "(association lost or the inactivity timer expired)")

    def close(self, clean: bool) -> None:
        self._timer.cancel()
        if self.assoc.is_established:
            if clean:
                self.assoc.release()
            else:
                self.assoc.abort()

    def __enter__(self) -> "_Session":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(clean=exc_type is None)


def find(peer: QrPeer, ident: Dataset, model: str = "study", max_results: int = 1000,
         cancel: Cancel | None = None, on_match: Callable[[Dataset], None] | None = None) -> FindResult:
    """C-FIND `ident` (see `identifier`) on the PACS in the `model` ("study" or "patient");
    every pending response's identifier, in the PACS's order. Zero matches is a good answer.

    Raises QrError for: no association (with the rejection reason in words), the model not
    accepted, a failure status (in words, e.g. "0xA900 (identifier does not match SOP class)"),
    no response within the inactivity timer, the session timer, more than `max_results` matches
    (the query is cancelled first). A cancel gives the matches so far with `cancelled` set."""
    result = FindResult()
    uid = MODELS[model]["FIND"]
    answered = False
    with _Session(peer, uid, cancel=cancel) as session:
        msg_id = session.next_msg_id()
        if cancel is not None:
            cancel._attach(session.assoc, msg_id, session.context_id)
        try:
            responses = session.assoc.send_c_find(ident, uid, msg_id=msg_id, priority=MEDIUM)
            for rsp, match in responses:
                if not rsp:
                    if cancel is not None and cancel.at_once and cancel.requested:
                        raise Interrupted(peer, established=True)
                    if cancel is not None and cancel.aborted:
                        result.cancelled = True  # the matches so far
                        break
                    raise session.lost("C-FIND", answered)
                answered = True
                code = int(rsp.Status)
                if code in _PENDING:
                    if match is None:
                        continue
                    if len(result.matches) >= max_results:
                        session.assoc.send_c_cancel(msg_id, session.context_id)
                        _drain(responses)
                        raise QrError(f"{peer.where} has more than {max_results} matches "
                                      "(qr_scu.max_results): narrow the keys")
                    result.matches.append(match)
                    if on_match is not None:
                        on_match(match)
                    continue
                result.status = code
                break
        finally:
            if cancel is not None:
                cancel._detach()
    if result.status == 0xFE00:
        result.cancelled = True
    elif result.status != 0x0000 and not result.cancelled:
        raise QrError(f"{peer.where}: C-FIND failed, status {status_words(result.status)}", result.status)
    return result


def _drain(responses) -> None:
    """Read what is left of an operation's responses (after a C-CANCEL), up to the final one."""
    for rsp, _ in responses:
        if not rsp or int(rsp.Status) not in _PENDING:
            return


def _counts(rsp: Dataset, into: RetrieveResult) -> bool:
    """Copy the response's sub-operation counts; whether it had any."""
    found = False
    for kw, attr in (("NumberOfCompletedSuboperations", "completed"), ("NumberOfFailedSuboperations", "failed"),
                     ("NumberOfWarningSuboperations", "warning"),
                     ("NumberOfRemainingSuboperations", "remaining")):
        value = rsp.get(kw)
        if value is not None:
            setattr(into, attr, int(value))
            found = True
    return found


def _run_retrieve(session: _Session, responses, what: str, msg_id: int, cancel: Cancel | None,
                  progress: Progress | None) -> RetrieveResult:
    result = RetrieveResult()
    reported = False
    if cancel is not None:
        cancel._attach(session.assoc, msg_id, session.context_id)
    try:
        for rsp, ident in responses:
            if not rsp:
                if cancel is not None and cancel.aborted:
                    result.cancelled = True
                    break
                raise session.lost(what, reported)
            code = int(rsp.Status)
            result.remaining = 0
            reported = _counts(rsp, result) or reported
            if code in _PENDING:
                if progress is not None:
                    progress(result)
                continue
            result.status = code
            if ident is not None and "FailedSOPInstanceUIDList" in ident:
                value = ident.FailedSOPInstanceUIDList  # UI, one value (a str) or several
                values = [value] if isinstance(value, str) else list(value or [])
                result.failed_uids = [str(v) for v in values if str(v)]
            break
    finally:
        if cancel is not None:
            cancel._detach()
    if result.status == 0xFE00 or (cancel is not None and cancel.requested and result.status != 0x0000):
        # Asked to stop: the counts so far are the result, whatever the PACS answered to the
        # C-CANCEL (some, Orthanc 1.10 among them, do not honour it and end with C000).
        result.cancelled = True
    elif result.status not in (0x0000, 0xB000) and not (result.completed or result.failed or result.warning):
        raise QrError(f"{session.peer.where}: {what} failed, status {status_words(result.status)}",
                      result.status)
    # A failure after sub-operations (A702 when every one failed) is a result: its counts and
    # Failed SOP Instance UID List say what happened to each instance.
    result.unreported = result.cancelled and not reported
    return result


def move(peer: QrPeer, idents: list[Dataset], move_ae: str, model: str = "study",
         cancel: Cancel | None = None, progress: Progress | None = None) -> RetrieveResult:
    """C-MOVE each identifier in turn on one association, telling the PACS to send to `move_ae`
    (PS3.4 C.4.2); the counts of all added up. `progress` sees each pending response's counts.
    A cancel stops after the operation in progress (its final response gives the counts).

    Raises QrError like `find`, and for a final failure status with no sub-operation done, e.g.
    "0xA801 (refused: move destination unknown)"; a failure after sub-operations (A702) is
    returned with its counts (`ok` false)."""
    uid = MODELS[model]["MOVE"]
    total = RetrieveResult()
    with _Session(peer, uid, cancel=cancel) as session:
        for ident in idents:
            msg_id = session.next_msg_id()
            responses = session.assoc.send_c_move(ident, move_ae, uid, msg_id=msg_id, priority=MEDIUM)
            total.add(_run_retrieve(session, responses, "C-MOVE", msg_id, cancel, progress))
            if total.cancelled:
                break
    return total


def get(peer: QrPeer, idents: list[Dataset], sop_classes: Iterable[str], store: "RetrievedStore",
        model: str = "study", cancel: Cancel | None = None, progress: Progress | None = None) -> RetrieveResult:
    """C-GET each identifier in turn on one association (PS3.4 C.4.3), proposing each of
    `sop_classes` (at most MAX_GET_STORAGE_CLASSES) as Storage with the SCP role (SCP/SCU Role
    Selection, PS3.7 D.3.3.4) and every transfer syntax the buffer stores as received; each
    C-STORE sub-operation goes to `store`. Returns and raises like `move`."""
    classes = sorted(set(sop_classes))
    if len(classes) > MAX_GET_STORAGE_CLASSES:
        raise QrError(f"{len(classes)} SOP classes in one C-GET: more than one association carries "
                      f"({MAX_GET_STORAGE_CLASSES}); retrieve series by series")
    uid = MODELS[model]["GET"]
    total = RetrieveResult()
    with _Session(peer, uid, classes, store.handle, cancel) as session:
        for ident in idents:
            msg_id = session.next_msg_id()
            responses = session.assoc.send_c_get(ident, uid, msg_id=msg_id, priority=MEDIUM)
            total.add(_run_retrieve(session, responses, "C-GET", msg_id, cancel, progress))
            if total.cancelled:
                break
    return total


class RetrievedStore:
    """The C-STORE sub-operations of a C-GET, taken into the buffer by `store_scp.store` (a
    StoreSCP over the buffer: the intake's checks, the duplicate policy, fsync and index commit
    before the response says Success), recorded as received from `source_ae` (the PACS's AE title:
    a C-GET's association is ours, so its requestor title would name this box). Counts what it
    stored and refused, for the report."""

    def __init__(self, store_scp, source_ae: str):
        self.store_scp = store_scp
        self.source_ae = normalise_ae(source_ae)
        self.stored = 0
        self.refused = 0

    def handle(self, event):
        """pynetdicom's EVT_C_STORE on the C-GET association (needs STORE_RECV_CHUNKED_DATASET,
        set by gateway.dicom.net.listener.configure_pynetdicom): the same steps as
        StoreSCP.handle_store, with the PACS as the source."""
        req = event.request
        sop_class, sop_uid = str(req.AffectedSOPClassUID), str(req.AffectedSOPInstanceUID)
        path = Path(event.dataset_path)
        if sop_class != str(event.context.abstract_syntax) or sop_class == VERIFICATION:
            path.unlink(missing_ok=True)
            self.refused += 1
            return status.response(status.SOP_CLASS_NOT_SUPPORTED,
                                   f"SOP class {sop_class} sent on the context of {event.context.abstract_syntax}")
        spool = dataset_file(req)
        synced = spool.start_finish if isinstance(spool, receive_spool.SpoolFile) else None
        code, comment = self.store_scp.store(path, self.source_ae, sop_class, sop_uid, synced)
        if code == status.SUCCESS:
            self.stored += 1
        else:
            self.refused += 1
        return status.response(code, comment)
