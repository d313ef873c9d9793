"""Print SCP: Basic Grayscale / Color Print Management Meta SOP classes, Presentation LUT, Basic
Annotation Box, Print Job and Printer Configuration Retrieval, on the listener's port.

DIMSE messages are mapped onto gateway.print.session.PrintSession (one per association, dropped
on release and abort); an N-ACTION hands the films to the durable spool (gateway.print.spooler)
and is answered only after they are committed.  Printer status changes and Print Job progress go
back to the clients as N-EVENT-REPORTs (PS3.4 H.4.2.2.4 Printer, H.4.2.1.4 Print Job), sent from a
per-association thread through a ReportChannel, which matches each report's response by Message ID
while the association's reactor keeps serving the client's requests: the client may send one of
its own at the same moment (PS3.7 default operations window; see report_channel).  A printer
state is reported to a client only when it differs from the last one that client was told (or
could have read with N-GET when it connected).

Every request gets a response with a status (PS3.7 10.1.3): pynetdicom drops an N-* request that
lacks a mandatory command element without answering ("unexpected N-SET service message") and
aborts on a SOP class it does not know, so _RequestGuard answers those here first (0118 no such
SOP class, 0117 invalid object instance, 0123 no such action type, 0113 no such event type).

pynetdicom 3.0.4 and N-CREATE warnings: its N-CREATE service copies the Affected SOP Instance UID
from the handler's data set into the response only for Success, so a Warning (B605, 0116, B600)
went out without the UID of the instance just created and DCMTK's dcmprscu gave up.  The handler
may return a status *Dataset* instead of an int, and pynetdicom copies every element of it that
the response primitive has onto the response (ServiceClass.validate_status); so the status
Dataset here always carries AffectedSOPInstanceUID.  No pynetdicom code is patched.
"""

from __future__ import annotations

import datetime
import logging
import queue
import re
import threading
import time
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import evt
from pynetdicom.dimse_primitives import N_ACTION, N_CREATE, N_DELETE, N_EVENT_REPORT, N_GET, N_SET

from gateway.config import Config
from gateway.dicom.report_channel import NoResponse, ReportChannel
from gateway.print import session as S
from gateway.print.profile import PrintSection
from gateway.print.session import PrintSession
from gateway.print.spooler import SpoolFull
from gateway.print.validate import PrintFailure

if TYPE_CHECKING:
    from gateway.print.service import PrintService

log = logging.getLogger("gateway.dicom.print_scp")

TRANSFER_SYNTAXES = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian]
PRINT_CONTEXTS = [S.GRAYSCALE_META, S.COLOR_META, S.PRESENTATION_LUT, S.ANNOTATION_BOX, S.PRINT_JOB,
                  S.PRINTER_CONFIGURATION]
# The SOP classes a request on a print context may name (PS3.4 H.3).
PRINT_SOP_CLASSES = frozenset({S.FILM_SESSION, S.FILM_BOX, S.GRAYSCALE_IMAGE_BOX, S.COLOR_IMAGE_BOX,
                               S.ANNOTATION_BOX, S.PRESENTATION_LUT, S.PRINTER, S.PRINT_JOB,
                               S.PRINTER_CONFIGURATION})
PRINTER_EVENTS = {"NORMAL": 1, "WARNING": 2, "FAILURE": 3}
PRINT_JOB_EVENTS = {"PENDING": 1, "PRINTING": 2, "DONE": 3, "FAILURE": 4}
SPOOL_FULL = 0xC601
_UID_CHARS = re.compile(r"[0-9.]+")


def _status(code: int, comment: str = "", uid: str | None = None, tags=None, with_tags=False) -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment.replace("\\", "/")[:64]
    if uid:
        ds.AffectedSOPInstanceUID = uid
    if with_tags and tags:
        ds.AttributeIdentifierList = list(tags)
    return ds


class _Client:
    """One association's print state and its outgoing N-EVENT-REPORT queue."""

    def __init__(self, assoc, profile: PrintSection, channel: ReportChannel | None,
                 printer_state: tuple[str, str]):
        self.assoc = assoc
        self.channel = channel
        self.session = PrintSession(profile, assoc.requestor.ae_title.strip())
        self.jobs: dict[str, str] = {}  # Print Job UID -> last status reported
        # What this client knows of the printer: the state when it connected (an N-GET would
        # have shown it), then the last state reported to it.
        self.printer_state = printer_state
        self.outbox: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None

    def accepted(self, uid: str) -> bool:
        return any(cx.abstract_syntax == uid for cx in self.assoc.accepted_contexts)

    def meta(self) -> str | None:
        for uid in (S.GRAYSCALE_META, S.COLOR_META):
            if self.accepted(uid):
                return uid
        return None


class PrintSCP:
    """The Print Management SCP (PS3.4 Annex H) behind the listener's port."""

    def __init__(self, service: PrintService, config: Config):
        self.config = config
        self.profile: PrintSection = service.profile
        self.store = service.store
        self.events = service.events
        self.monitor = service.monitor
        self._clients: dict[int, _Client] = {}
        self._channels: dict[int, ReportChannel] = {}
        self._lock = threading.Lock()
        # Spooling a job and queueing its PENDING report vs. dispatching the spooler's later
        # reports for it: one at a time, so PENDING is queued first and none is dropped.
        self._job_lock = threading.Lock()

    # -- wiring --------------------------------------------------------------------------------
    def contexts(self) -> list[tuple]:
        return [(uid, TRANSFER_SYNTAXES, True, False) for uid in PRINT_CONTEXTS]

    def called_titles(self) -> list[str]:
        return [self.profile.ae_title] if self.profile.ae_title else []

    def handlers(self) -> list[tuple]:
        return [(evt.EVT_N_CREATE, self.on_n_create), (evt.EVT_N_SET, self.on_n_set),
                (evt.EVT_N_GET, self.on_n_get), (evt.EVT_N_ACTION, self.on_n_action),
                (evt.EVT_N_DELETE, self.on_n_delete), (evt.EVT_REQUESTED, self._requested),
                (evt.EVT_ACCEPTED, self._accepted),
                (evt.EVT_RELEASED, self._closed),
                (evt.EVT_ABORTED, self._closed), (evt.EVT_CONN_CLOSE, self._closed)]

    def _requested(self, event) -> None:
        """A-ASSOCIATE-RQ received, AC not yet sent: the client cannot send P-DATA yet, so this is
        the moment to put the report channel and the request guard in place."""
        assoc = event.assoc
        proposed = assoc.requestor.primitive.presentation_context_definition_list or []
        if not any(str(cx.abstract_syntax) in PRINT_CONTEXTS for cx in proposed):
            return
        channel = ReportChannel.install(assoc)
        _RequestGuard.install(assoc)
        _guard_message_dumps(assoc)
        with self._lock:
            self._channels[id(assoc)] = channel

    def _accepted(self, event) -> None:
        """A client that only reads the Printer (N-GET) is told of its changes too (PS3.4 H.4.2.2.4)."""
        with self._lock:
            ours = id(event.assoc) in self._channels
        if ours:
            self._client(event.assoc)

    def _client(self, assoc) -> _Client:
        with self._lock:
            c = self._clients.get(id(assoc))
            if c is None:
                c = self._clients[id(assoc)] = _Client(assoc, self.profile, self._channels.get(id(assoc)),
                                                       tuple(self.monitor.current))
            return c

    def _closed(self, event) -> None:
        with self._lock:
            c = self._clients.pop(id(event.assoc), None)
            self._channels.pop(id(event.assoc), None)
        if c is not None:
            c.session.clear()
            c.outbox.put(None)
            log.debug("print objects of %s dropped", c.session.calling_ae)

    @property
    def open_sessions(self) -> int:
        with self._lock:
            return len(self._clients)

    def _may_print(self, assoc) -> bool:
        peer = self.config.peer_by_ae(assoc.requestor.ae_title)
        return peer.may_print if peer is not None else self.config.ae.accept_unknown_callers

    def _fail(self, what: str, exc: PrintFailure, assoc, with_tags=False) -> Dataset:
        log.warning("%s from %s refused with 0x%04X: %s", what, assoc.requestor.ae_title.strip(),
                    exc.status, exc.comment)
        return _status(exc.status, exc.comment, tags=exc.tags, with_tags=with_tags)

    # -- N-CREATE ----------------------------------------------------------------------------------
    def on_n_create(self, event):
        req = event.request
        cls = str(req.AffectedSOPClassUID)
        asked_uid = str(req.AffectedSOPInstanceUID) if req.AffectedSOPInstanceUID else None
        ds = event.attribute_list if req.AttributeList is not None else Dataset()
        client = self._client(event.assoc)
        if not self._may_print(event.assoc):
            return _status(0x0124, f"{client.session.calling_ae} may not print"), None
        try:
            if cls == S.FILM_SESSION:
                uid, checked = client.session.create_film_session(ds, asked_uid)
                reply = Dataset()
            elif cls == S.FILM_BOX:
                colour = event.context.abstract_syntax == S.COLOR_META
                film, checked = client.session.create_film_box(ds, colour, client.accepted(S.ANNOTATION_BOX),
                                                               asked_uid)
                uid, reply = film.uid, self._film_box_reply(film, ds)
            elif cls == S.PRESENTATION_LUT:
                uid, checked = client.session.create_presentation_lut(ds, asked_uid)
                reply = Dataset()
            else:
                return _status(0x0118 if cls not in PRINT_CONTEXTS else 0x0211,
                               f"N-CREATE of {cls} not supported"), None
        except PrintFailure as exc:
            return self._fail(f"N-CREATE {cls}", exc, event.assoc), None
        for code, text in checked.warnings:
            log.info("N-CREATE %s from %s: warning 0x%04X %s", cls, client.session.calling_ae, code, text)
        status = _status(checked.status, checked.warnings[0][1] if checked.warnings else "", uid=uid)
        if checked.status == 0 and asked_uid is None:
            reply.AffectedSOPInstanceUID = uid  # where pynetdicom looks for it on Success
        return status, reply

    def _film_box_reply(self, film: S.FilmBox, ds: Dataset) -> Dataset:
        v = film.values
        out = Dataset()
        out.ImageDisplayFormat = v["display_format"]
        out.FilmOrientation = v["orientation"]
        out.FilmSizeID = v["film_size"]
        out.MagnificationType = v["magnification"]
        if v.get("smoothing"):
            out.SmoothingType = v["smoothing"]
        out.BorderDensity = v["border_density"]
        out.EmptyImageDensity = v["empty_density"]
        out.MinDensity = v["min_density"]
        out.MaxDensity = v["max_density"]
        out.Trim = "YES" if v["trim"] else "NO"
        if v.get("configuration"):
            out.ConfigurationInformation = v["configuration"]
        if v.get("annotation_format"):
            out.AnnotationDisplayFormatID = v["annotation_format"]
        out.Illumination = int(v["illumination"])
        out.ReflectedAmbientLight = int(v["ambient"])
        out.RequestedResolutionID = v["resolution"]
        ref = Dataset()
        ref.ReferencedSOPClassUID = S.FILM_SESSION
        ref.ReferencedSOPInstanceUID = v["film_session_uid"]
        out.ReferencedFilmSessionSequence = [ref]
        if "ReferencedPresentationLUTSequence" in ds:
            out.ReferencedPresentationLUTSequence = ds.ReferencedPresentationLUTSequence
        out.ReferencedImageBoxSequence = [_ref(b.sop_class, b.uid) for b in film.image_boxes]
        if film.annotations:
            out.ReferencedBasicAnnotationBoxSequence = [_ref(S.ANNOTATION_BOX, a.uid) for a in film.annotations]
        return out

    # -- N-SET -----------------------------------------------------------------------------------
    def on_n_set(self, event):
        req = event.request
        cls, uid = str(req.RequestedSOPClassUID), str(req.RequestedSOPInstanceUID)
        ds = event.modification_list if req.ModificationList is not None else Dataset()
        client = self._client(event.assoc)
        try:
            if cls == S.FILM_SESSION:
                checked = client.session.set_film_session(uid, ds)
            elif cls == S.FILM_BOX:
                checked = client.session.set_film_box(uid, ds)
            elif cls in (S.GRAYSCALE_IMAGE_BOX, S.COLOR_IMAGE_BOX):
                checked = client.session.set_image_box(uid, ds, cls)
            elif cls == S.ANNOTATION_BOX:
                checked = client.session.set_annotation(uid, ds)
            else:
                return _status(0x0211, f"N-SET of {cls} not supported"), None
        except PrintFailure as exc:
            return self._fail(f"N-SET {cls}", exc, event.assoc, with_tags=True), None
        except (ValueError, TypeError, AttributeError) as exc:
            # A value pydicom could not even decode (e.g. a malformed number string).
            return _status(0x0106, f"cannot decode: {exc}"), None
        for code, text in checked.warnings:
            log.info("N-SET %s from %s: warning 0x%04X %s", cls, client.session.calling_ae, code, text)
        return _status(checked.status, checked.warnings[0][1] if checked.warnings else ""), Dataset()

    # -- N-GET ----------------------------------------------------------------------------------
    def on_n_get(self, event):
        req = event.request
        cls, uid = str(req.RequestedSOPClassUID), str(req.RequestedSOPInstanceUID)
        wanted = req.AttributeIdentifierList or []
        if isinstance(wanted, int):  # one tag: pynetdicom hands back a bare BaseTag, not a list
            wanted = [wanted]
        wanted = [int(t) for t in wanted]
        if cls == S.PRINTER:
            if uid != S.PRINTER_INSTANCE:
                return _status(0x0112, "the Printer instance is 1.2.840.10008.5.1.1.17"), None
            ds = self._printer_attributes()
        elif cls == S.PRINTER_CONFIGURATION:
            if uid != S.PRINTER_CONFIGURATION_INSTANCE:
                return _status(0x0112, "no such Printer Configuration instance"), None
            ds = self._printer_configuration()
        elif cls == S.PRINT_JOB:
            job = self.store.print_job(uid)
            if job is None:
                return _status(0x0112, f"no Print Job {uid}"), None
            ds = self._print_job_attributes(job)
        else:
            return _status(0x0211, f"N-GET of {cls} not supported"), None
        if wanted:
            out = Dataset()
            for tag in wanted:
                if tag in ds:
                    out[tag] = ds[tag]
            ds = out
        return 0x0000, ds

    def _printer_attributes(self) -> Dataset:
        p = self.profile
        status, info = self.monitor.current
        ds = Dataset()
        ds.PrinterStatus = status
        ds.PrinterStatusInfo = info
        ds.PrinterName = p.name
        ds.Manufacturer = p.manufacturer
        ds.ManufacturerModelName = p.model_name
        ds.DeviceSerialNumber = p.serial_number
        ds.SoftwareVersions = p.software_version
        if p.calibration_date:
            ds.DateOfLastCalibration = p.calibration_date
        return ds

    def _printer_configuration(self) -> Dataset:
        p = self.profile
        item = Dataset()
        item.SoftwareVersions = p.software_version
        item.Manufacturer = p.manufacturer
        item.ManufacturerModelName = p.model_name
        item.DeviceSerialNumber = p.serial_number
        item.PrinterResolutionID = "STANDARD"
        item.DefaultPrinterResolutionID = "STANDARD"
        item.MaximumMemoryAllocation = 0
        item.MinDensity = p.min_density
        item.MaxDensity = p.max_density
        item.PrinterPixelSpacing = [25.4 / p.printer.dpi, 25.4 / p.printer.dpi]
        ds = Dataset()
        ds.PrinterConfigurationSequence = [item]
        return ds

    def _print_job_attributes(self, job: dict) -> Dataset:
        ds = Dataset()
        ds.ExecutionStatus = job["status"]
        ds.ExecutionStatusInfo = job["info"]
        created = datetime.datetime.fromtimestamp(job["created"])
        ds.CreationDate = created.strftime("%Y%m%d")
        ds.CreationTime = created.strftime("%H%M%S")
        ds.PrintPriority = job["priority"]
        ds.PrinterName = job["printer"]
        ds.Originator = job["calling_ae"]
        return ds

    # -- N-ACTION ---------------------------------------------------------------------------------
    def on_n_action(self, event):
        req = event.request
        cls, uid = str(req.RequestedSOPClassUID), str(req.RequestedSOPInstanceUID)
        client = self._client(event.assoc)
        if cls not in (S.FILM_SESSION, S.FILM_BOX):
            return _status(0x0211, f"N-ACTION of {cls} not supported"), None
        if req.ActionTypeID != 1:
            return _status(0x0123, f"no action type {req.ActionTypeID}"), None
        try:
            films, warning = client.session.films_to_print(cls, uid)
            described = [client.session.film_description(f) for f in films]
        except PrintFailure as exc:
            return self._fail(f"N-ACTION {cls}", exc, event.assoc), None
        job_uid = generate_uid()
        priority = described[0][0]["priority"] if described else "MED"
        with self._job_lock:
            try:
                self.store.spool(job_uid, described, client.session.calling_ae, priority,
                                 self.profile.max_queued_films)
            except SpoolFull as exc:
                return _status(SPOOL_FULL, str(exc)), None
            except OSError as exc:
                log.error("print job from %s cannot be spooled: %s", client.session.calling_ae, exc)
                return _status(0xC605, f"cannot spool the films: {exc.strerror or exc}"), None
            # The spooler reports PRINTING / DONE / FAILURE; PENDING is this moment. The sender
            # thread sends it only once the reactor is idle, i.e. after this N-ACTION's response.
            client.jobs[job_uid] = "PENDING"
            if client.accepted(S.PRINT_JOB):
                self._send(client, self._job_event(job_uid, "PENDING", "QUEUED"))
        for f in films:
            f.printed = True
        log.info("print job %s from %s: %d film(s) spooled", job_uid, client.session.calling_ae, len(films))
        self.events.publish("print-spooled", uid=job_uid, films=len(films),
                            calling_ae=client.session.calling_ae)
        reply = Dataset()
        item = Dataset()
        item.ReferencedSOPClassUID = S.PRINT_JOB
        item.ReferencedSOPInstanceUID = job_uid
        reply.ReferencedPrintJobSequencePullStoredPrint = [item]  # (2100,0500)
        return _status(warning, "empty page" if warning else ""), reply

    # -- N-DELETE ---------------------------------------------------------------------------------
    def on_n_delete(self, event):
        req = event.request
        cls, uid = str(req.RequestedSOPClassUID), str(req.RequestedSOPInstanceUID)
        client = self._client(event.assoc)
        try:
            if cls == S.FILM_SESSION:
                client.session.delete_film_session(uid)
            elif cls == S.FILM_BOX:
                client.session.delete_film_box(uid)
            elif cls == S.PRESENTATION_LUT:
                client.session.delete_presentation_lut(uid)
            else:
                return _status(0x0211, f"N-DELETE of {cls} not supported")
        except PrintFailure as exc:
            return self._fail(f"N-DELETE {cls}", exc, event.assoc)
        return 0x0000

    # -- N-EVENT-REPORT ---------------------------------------------------------------------------
    def on_printer_status(self, status: str, info: str) -> None:
        """PrintJobListener: the printer changed; each print client not yet told of this state gets
        an N-EVENT-REPORT of the Printer (PS3.4 H.4.2.2.4). Queued, never sent from here."""
        with self._lock:
            clients = list(self._clients.values())
        state = (status, info)
        for c in clients:
            meta = c.meta()
            if meta is None or c.printer_state == state:
                continue
            c.printer_state = state
            self._send(c, self._printer_event(*state, meta))

    def on_job_status(self, uid: str, status: str, info: str) -> None:
        """PrintJobListener: Print Job `uid` changed; the client that spooled it gets an
        N-EVENT-REPORT of the Print Job (PS3.4 H.4.2.1.4) if it accepted the Print Job SOP class.
        Queued, never sent from here."""
        with self._job_lock:
            with self._lock:
                clients = [c for c in self._clients.values() if uid in c.jobs]
            for c in clients:
                if c.jobs.get(uid) == status or not c.accepted(S.PRINT_JOB):
                    continue
                c.jobs[uid] = status
                self._send(c, self._job_event(uid, status, info))

    def _job_event(self, uid: str, status: str, info_text: str):
        info = Dataset()
        info.ExecutionStatusInfo = info_text
        info.PrinterName = self.profile.name
        return info, PRINT_JOB_EVENTS[status], S.PRINT_JOB, uid, S.PRINT_JOB

    def _printer_event(self, status: str, info_text: str, meta: str):
        info = None
        if status != "NORMAL":
            info = Dataset()
            info.PrinterStatusInfo = info_text
            info.PrinterName = self.profile.name
        return info, PRINTER_EVENTS[status], S.PRINTER, S.PRINTER_INSTANCE, meta

    def _send(self, client: _Client, report) -> None:
        client.outbox.put(report)
        if client.thread is None:
            client.thread = threading.Thread(target=self._sender, args=(client,),
                                             name="print-event-report", daemon=True)
            client.thread.start()

    def _sender(self, client: _Client) -> None:
        while True:
            report = client.outbox.get()
            if report is None or not client.assoc.is_established:
                return
            info, event_type, cls, uid, meta = report
            what = "Printer" if cls == S.PRINTER else "Print Job"
            if client.channel is None:  # not set up at EVT_REQUESTED: no safe way to send
                log.warning("N-EVENT-REPORT %s to %s not sent: no report channel", what,
                            client.session.calling_ae)
                continue
            try:
                rsp = client.channel.send_event_report(info, event_type, cls, uid, meta_uid=meta)
                code = rsp.Status
                log.info("N-EVENT-REPORT %s type %d to %s: %s", what, event_type,
                         client.session.calling_ae, "no status" if code is None else f"0x{code:04X}")
            except NoResponse as exc:
                log.info("N-EVENT-REPORT %s type %d to %s not answered: %s", what, event_type,
                         client.session.calling_ae, exc)
            except (RuntimeError, ValueError) as exc:
                log.info("N-EVENT-REPORT %s to %s not sent: %s", what, client.session.calling_ae, exc)
                time.sleep(0.1)


def _ref(sop_class: str, uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = uid
    return item


def _valid_uid(value) -> bool:
    # Loose on purpose (digits and dots, at most 64): the listener tolerates odd-but-parsable
    # UIDs (ENFORCE_UID_CONFORMANCE off), and a client's own session UID must keep working.
    text = str(value) if value is not None else ""
    return 0 < len(text) <= 64 and _UID_CHARS.fullmatch(text) is not None


class _RequestGuard:
    """Answers the DIMSE-N requests pynetdicom would leave unanswered or abort on (PS3.7 10.1.3:
    every request gets a response with a status), before pynetdicom's service class sees them.

    Runs on the association's reactor thread, in the order the requests came, in place of
    Association._serve_request (a per-instance attribute: nothing of pynetdicom is patched)."""

    def __init__(self, assoc, serve):
        self.assoc, self.serve = assoc, serve

    @classmethod
    def install(cls, assoc) -> None:
        assoc._serve_request = cls(assoc, assoc._serve_request)

    def __call__(self, msg, context_id) -> None:
        if not isinstance(msg, _N_REQUESTS) or msg.MessageIDBeingRespondedTo is not None:
            self.serve(msg, context_id)
            return
        if msg.MessageID is None:
            # A response must name the request's Message ID: there is nothing to answer, and
            # waiting would hang the client; a protocol error ends the association (PS3.8 9.2).
            log.warning("%s without a Message ID from %s: aborting the association",
                        msg.msg_type, self.assoc.requestor.ae_title.strip())
            self.assoc.abort()
            return
        problem = _request_problem(msg)
        if problem is None:
            self.serve(msg, context_id)
            return
        code, comment = problem
        rsp = type(msg)()
        rsp.MessageIDBeingRespondedTo = msg.MessageID
        rsp.Status = code
        rsp.ErrorComment = comment[:64]
        cls_uid, inst_uid = _request_uids(msg)
        if _valid_uid(cls_uid):
            rsp.AffectedSOPClassUID = cls_uid
        if _valid_uid(inst_uid):
            rsp.AffectedSOPInstanceUID = inst_uid
        if isinstance(msg, N_ACTION) and msg.ActionTypeID is not None:
            rsp.ActionTypeID = msg.ActionTypeID
        if isinstance(msg, N_EVENT_REPORT) and msg.EventTypeID is not None:
            rsp.EventTypeID = msg.EventTypeID
        log.warning("%s from %s refused with 0x%04X: %s", msg.msg_type,
                    self.assoc.requestor.ae_title.strip(), code, comment)
        self.assoc.dimse.send_msg(rsp, context_id)


_N_REQUESTS = (N_CREATE, N_SET, N_GET, N_ACTION, N_DELETE, N_EVENT_REPORT)


def _guard_message_dumps(assoc) -> None:
    """pynetdicom's default EVT_DIMSE_RECV/SENT handlers format every message for its debug log,
    even when that log is off, and fail on a command set that lacks a mandatory element (an ERROR
    and a traceback per malformed request, though _RequestGuard answers it).  Run them only when
    their log is wanted, and turn a failure into one debug line."""
    from pynetdicom import _handlers

    dump_log = logging.getLogger("pynetdicom")
    for event, standard in ((evt.EVT_DIMSE_RECV, _handlers.standard_dimse_recv_handler),
                            (evt.EVT_DIMSE_SENT, _handlers.standard_dimse_sent_handler)):
        if not any(bound[0] is standard for bound in assoc.get_handlers(event)):
            continue  # LOG_HANDLER_LEVEL is not "standard"

        def dump(ev, standard=standard):
            if not dump_log.isEnabledFor(logging.DEBUG):
                return
            try:
                standard(ev)
            except Exception as exc:  # noqa: BLE001 - a log dump must not log a traceback
                log.debug("message not dumped (%s: %s)", type(exc).__name__, exc)

        assoc.unbind(event, standard)
        assoc.bind(event, dump)


def _request_uids(msg) -> tuple:
    if isinstance(msg, (N_CREATE, N_EVENT_REPORT)):
        return msg.AffectedSOPClassUID, msg.AffectedSOPInstanceUID
    return msg.RequestedSOPClassUID, msg.RequestedSOPInstanceUID


def _request_problem(msg) -> tuple[int, str] | None:
    """(status, comment) for a request that cannot be served as sent, else None."""
    name = "Affected" if isinstance(msg, (N_CREATE, N_EVENT_REPORT)) else "Requested"
    cls_uid, inst_uid = _request_uids(msg)
    if cls_uid is None or not str(cls_uid):
        return 0x0118, f"no {name} SOP Class UID"
    if not _valid_uid(cls_uid) or str(cls_uid) not in PRINT_SOP_CLASSES:
        return 0x0118, f"no such SOP class on a print association: {str(cls_uid)[:24]}"
    if isinstance(msg, N_CREATE):
        # Optional here (PS3.7 10.1.5.1.4): absent or empty means the SCP assigns it.
        if inst_uid is not None and str(inst_uid) and not _valid_uid(inst_uid):
            return 0x0117, "Affected SOP Instance UID is not a valid UID"
    elif inst_uid is None or not str(inst_uid):
        return 0x0117, f"no {name} SOP Instance UID"
    elif not _valid_uid(inst_uid):
        return 0x0117, f"{name} SOP Instance UID is not a valid UID"
    if isinstance(msg, N_ACTION) and msg.ActionTypeID is None:
        return 0x0123, "no Action Type ID"
    if isinstance(msg, N_EVENT_REPORT) and msg.EventTypeID is None:
        return 0x0113, "no Event Type ID"
    return None
