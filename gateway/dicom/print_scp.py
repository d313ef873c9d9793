"""Print SCP: Basic Grayscale / Color Print Management Meta SOP classes, Presentation LUT, Basic
Annotation Box, Print Job and Printer Configuration Retrieval (PS3.4 Annex H), on the listener's port.

This module is the DIMSE adapter of the print domain, and only that:

- DIMSE dispatch: each N-CREATE / N-SET / N-GET / N-ACTION / N-DELETE is looked up in one table
  keyed by (operation, SOP Class UID) and mapped onto gateway.print.session.PrintSession (one per
  association, dropped on release and abort); a pair not in the table is answered 0211 (0118 for
  an N-CREATE of a class that is no print context).  An N-ACTION hands the films to the durable
  spool (gateway.print.store) and is answered only after they are committed.
- The data sets a client reads (Printer, Printer Configuration, Print Job, the created Film Box,
  the reports' Event Information) are built by gateway.print.attributes.
- Reports: PrintSCP is a gateway.print.reports.PrintJobListener (app.py registers it with
  PrintService.add_listener).  Printer status changes and Print Job progress (PS3.4 H.4.2.2.4
  Printer, H.4.2.1.4 Print Job) are queued, never dropped, on the association's
  gateway.dicom.report_channel.ReportSender, whose thread sends them through a ReportChannel: the
  spooler never waits for a client.  A printer state is reported to a client only when it differs
  from the last one that client was told (or could have read with N-GET when it connected).
- The request guard that answers what pynetdicom would drop and the quiet message dumps are in
  gateway.dicom.print_dimse_guard; the pynetdicom internals they and the report channel reach
  are entries of gateway.dicom.net.pynetdicom_patches (P9-P12, R7-R10).

pynetdicom 3.0.4 and N-CREATE warnings: its N-CREATE service copies the Affected SOP Instance UID
from the handler's data set into the response only for Success, so a Warning (B605, 0116, B600)
went out without the UID of the instance just created and DCMTK's dcmprscu gave up.  The handler
may return a status *Dataset* instead of an int, and pynetdicom copies every element of it that
the response primitive has onto the response (ServiceClass.validate_status); so the status
Dataset here always carries AffectedSOPInstanceUID.  No pynetdicom code is patched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import evt

from gateway.config import Config
from gateway.dicom.print_dimse_guard import RequestGuard, quiet_message_dumps
from gateway.dicom.report_channel import ReportChannel, ReportSender
from gateway.dicom.net.pynetdicom_patches import request_primitive
from gateway.dicom.net.service_role import SupportedContext
from gateway.event_kinds import PrintSpooled
from gateway.print import attributes
from gateway.print import session as S
from gateway.print.profile import PrintSection
from gateway.print.session import PrintSession
from gateway.print.store import SpoolFull
from gateway.print.validate import Checked, PrintFailure

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
# Event Type IDs: Printer (PS3.4 H.4.2.2.4.1), Print Job (PS3.4 H.4.2.1.4.1).
PRINTER_EVENTS = {"NORMAL": 1, "WARNING": 2, "FAILURE": 3}
PRINT_JOB_EVENTS = {"PENDING": 1, "PRINTING": 2, "DONE": 3, "FAILURE": 4}
SPOOL_FULL = 0xC601

# The DIMSE-N operations of the dispatch table's keys.
N_CREATE, N_SET, N_GET, N_ACTION, N_DELETE = "N-CREATE", "N-SET", "N-GET", "N-ACTION", "N-DELETE"


def _status(code: int, comment: str = "", uid: str | None = None, tags=None, with_tags=False) -> Dataset:
    """A status Dataset for pynetdicom's response: Status, Error Comment (64 chars at most),
    Affected SOP Instance UID, Attribute Identifier List (PS3.7 C)."""
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment.replace("\\", "/")[:64]
    if uid:
        ds.AffectedSOPInstanceUID = uid
    if with_tags and tags:
        ds.AttributeIdentifierList = list(tags)
    return ds


class _NoSuchInstance(Exception):
    """An N-GET of an instance that does not exist: 0112 with this comment."""


class _Client:
    """One association's print state and its outgoing N-EVENT-REPORTs."""

    def __init__(self, assoc, profile: PrintSection, channel: ReportChannel | None,
                 printer_state: tuple[str, str]):
        self.assoc = assoc
        self.session = PrintSession(profile, assoc.requestor.ae_title.strip())
        self.reports = ReportSender(assoc, channel, self.session.calling_ae, logger=log)
        self.jobs: dict[str, str] = {}  # Print Job UID -> last status reported
        # What this client knows of the printer: the state when it connected (an N-GET would
        # have shown it), then the last state reported to it.
        self.printer_state = printer_state

    def accepted(self, uid: str) -> bool:
        return any(cx.abstract_syntax == uid for cx in self.assoc.accepted_contexts)

    def meta(self) -> str | None:
        for uid in (S.GRAYSCALE_META, S.COLOR_META):
            if self.accepted(uid):
                return uid
        return None


class PrintSCP:
    """The Print Management SCP (PS3.4 Annex H) behind the listener's port, for `service`'s printer.

    Wiring: `contexts()`, `handlers()` and `called_titles()` go to the listener; the SCP is a
    PrintJobListener (on_job_status, on_printer_status) that the service must be told of."""

    def __init__(self, service: PrintService, config: Config):
        self.config = config
        self.profile: PrintSection = service.profile
        self.store = service.store
        self.events = service.events
        self.monitor = service.monitor
        self._clients: dict[int, _Client] = {}
        self._channels: dict[int, ReportChannel] = {}
        self._lock = threading.Lock()
        # Spooling a job and queueing its PENDING report vs. queueing the spooler's later reports
        # for it: one at a time, so PENDING is queued first and none is dropped.
        self._job_lock = threading.Lock()
        self._routes: dict[tuple[str, str], Callable] = self._dispatch_table()

    def _dispatch_table(self) -> dict[tuple[str, str], Callable]:
        """(operation, SOP Class UID) -> handler.  The handlers' arguments by operation:
        N-CREATE (client, event, attributes, asked uid) -> (uid, Checked, reply Dataset);
        N-SET (client, uid, modifications, class) -> Checked; N-GET (uid) -> Dataset;
        N-ACTION (client, class, uid, event) -> (status, reply); N-DELETE (client, uid) -> None."""
        return {
            (N_CREATE, S.FILM_SESSION): self._create_film_session,
            (N_CREATE, S.FILM_BOX): self._create_film_box,
            (N_CREATE, S.PRESENTATION_LUT): self._create_presentation_lut,
            (N_SET, S.FILM_SESSION): lambda c, uid, ds, cls: c.session.set_film_session(uid, ds),
            (N_SET, S.FILM_BOX): lambda c, uid, ds, cls: c.session.set_film_box(uid, ds),
            (N_SET, S.GRAYSCALE_IMAGE_BOX): lambda c, uid, ds, cls: c.session.set_image_box(uid, ds, cls),
            (N_SET, S.COLOR_IMAGE_BOX): lambda c, uid, ds, cls: c.session.set_image_box(uid, ds, cls),
            (N_SET, S.ANNOTATION_BOX): lambda c, uid, ds, cls: c.session.set_annotation(uid, ds),
            (N_GET, S.PRINTER): self._get_printer,
            (N_GET, S.PRINTER_CONFIGURATION): self._get_printer_configuration,
            (N_GET, S.PRINT_JOB): self._get_print_job,
            (N_ACTION, S.FILM_SESSION): self._print,
            (N_ACTION, S.FILM_BOX): self._print,
            (N_DELETE, S.FILM_SESSION): lambda c, uid: c.session.delete_film_session(uid),
            (N_DELETE, S.FILM_BOX): lambda c, uid: c.session.delete_film_box(uid),
            (N_DELETE, S.PRESENTATION_LUT): lambda c, uid: c.session.delete_presentation_lut(uid),
        }

    # -- the service role (gateway/dicom/net/service_role.py) ----------------------------------------
    def contexts(self) -> list[SupportedContext]:
        """The print meta SOP classes and their SOP classes (PS3.4 H.6), SCU role for the peer."""
        return [SupportedContext(uid, tuple(TRANSFER_SYNTAXES), True, False) for uid in PRINT_CONTEXTS]

    def called_titles(self) -> list[str]:
        return [self.profile.ae_title] if self.profile.ae_title else []

    def handlers(self) -> list[tuple]:
        """pynetdicom (event, handler) pairs for the listener's AE."""
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
        proposed = request_primitive(assoc).presentation_context_definition_list or []
        if not any(str(cx.abstract_syntax) in PRINT_CONTEXTS for cx in proposed):
            return
        channel = ReportChannel.install(assoc)
        RequestGuard.install(assoc, PRINT_SOP_CLASSES)
        quiet_message_dumps(assoc)
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
            c.reports.close()
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

    @staticmethod
    def _answer(checked: Checked, uid: str | None = None) -> Dataset:
        """Success or the first warning (the others are logged), as a status Dataset."""
        return _status(checked.status, checked.warnings[0][1] if checked.warnings else "", uid=uid)

    # -- N-CREATE (PS3.4 H.4.1.1.1 Film Session, H.4.1.2.1 Film Box, H.4.9.1.1 Presentation LUT) ----
    def on_n_create(self, event):
        req = event.request
        cls = str(req.AffectedSOPClassUID)
        asked_uid = str(req.AffectedSOPInstanceUID) if req.AffectedSOPInstanceUID else None
        ds = event.attribute_list if req.AttributeList is not None else Dataset()
        client = self._client(event.assoc)
        if not self._may_print(event.assoc):
            return _status(0x0124, f"{client.session.calling_ae} may not print"), None
        create = self._routes.get((N_CREATE, cls))
        if create is None:
            return _status(0x0118 if cls not in PRINT_CONTEXTS else 0x0211,
                           f"N-CREATE of {cls} not supported"), None
        try:
            uid, checked, reply = create(client, event, ds, asked_uid)
        except PrintFailure as exc:
            return self._fail(f"N-CREATE {cls}", exc, event.assoc), None
        for code, text in checked.warnings:
            log.info("N-CREATE %s from %s: warning 0x%04X %s", cls, client.session.calling_ae, code, text)
        if checked.status == 0 and asked_uid is None:
            reply.AffectedSOPInstanceUID = uid  # where pynetdicom looks for it on Success
        return self._answer(checked, uid), reply

    def _create_film_session(self, client: _Client, event, ds: Dataset, asked: str | None):
        uid, checked = client.session.create_film_session(ds, asked)
        return uid, checked, Dataset()

    def _create_film_box(self, client: _Client, event, ds: Dataset, asked: str | None):
        colour = event.context.abstract_syntax == S.COLOR_META
        film, checked = client.session.create_film_box(ds, colour, client.accepted(S.ANNOTATION_BOX), asked)
        return film.uid, checked, attributes.film_box(film, ds)

    def _create_presentation_lut(self, client: _Client, event, ds: Dataset, asked: str | None):
        uid, checked = client.session.create_presentation_lut(ds, asked)
        return uid, checked, Dataset()

    # -- N-SET (PS3.4 H.4.1.1.2, H.4.1.2.2, H.4.1.3.1, H.4.1.4.1, H.4.3.1) ---------------------------
    def on_n_set(self, event):
        req = event.request
        cls, uid = str(req.RequestedSOPClassUID), str(req.RequestedSOPInstanceUID)
        ds = event.modification_list if req.ModificationList is not None else Dataset()
        client = self._client(event.assoc)
        set_ = self._routes.get((N_SET, cls))
        if set_ is None:
            return _status(0x0211, f"N-SET of {cls} not supported"), None
        try:
            checked = set_(client, uid, ds, cls)
        except PrintFailure as exc:
            return self._fail(f"N-SET {cls}", exc, event.assoc, with_tags=True), None
        except (ValueError, TypeError, AttributeError) as exc:
            # A value pydicom could not even decode (e.g. a malformed number string).
            return _status(0x0106, f"cannot decode: {exc}"), None
        for code, text in checked.warnings:
            log.info("N-SET %s from %s: warning 0x%04X %s", cls, client.session.calling_ae, code, text)
        return self._answer(checked), Dataset()

    # -- N-GET (PS3.4 H.4.2.2.2 Printer, H.4.2.3.1 Printer Configuration, H.4.2.1.2 Print Job) -------
    def on_n_get(self, event):
        req = event.request
        cls, uid = str(req.RequestedSOPClassUID), str(req.RequestedSOPInstanceUID)
        wanted = req.AttributeIdentifierList or []
        if isinstance(wanted, int):  # one tag: pynetdicom hands back a bare BaseTag, not a list
            wanted = [wanted]
        wanted = [int(t) for t in wanted]
        get = self._routes.get((N_GET, cls))
        if get is None:
            return _status(0x0211, f"N-GET of {cls} not supported"), None
        try:
            ds = get(uid)
        except _NoSuchInstance as exc:
            return _status(0x0112, str(exc)), None
        if wanted:
            out = Dataset()
            for tag in wanted:
                if tag in ds:
                    out[tag] = ds[tag]
            ds = out
        return 0x0000, ds

    def _get_printer(self, uid: str) -> Dataset:
        if uid != S.PRINTER_INSTANCE:
            raise _NoSuchInstance("the Printer instance is 1.2.840.10008.5.1.1.17")
        return attributes.printer(self.profile, self.monitor.current)

    def _get_printer_configuration(self, uid: str) -> Dataset:
        if uid != S.PRINTER_CONFIGURATION_INSTANCE:
            raise _NoSuchInstance("no such Printer Configuration instance")
        return attributes.printer_configuration(self.profile)

    def _get_print_job(self, uid: str) -> Dataset:
        job = self.store.print_job(uid)
        if job is None:
            raise _NoSuchInstance(f"no Print Job {uid}")
        return attributes.print_job(job)

    # -- N-ACTION (PS3.4 H.4.1.1.4 Film Session, H.4.1.2.4 Film Box: Print) ---------------------------
    def on_n_action(self, event):
        req = event.request
        cls, uid = str(req.RequestedSOPClassUID), str(req.RequestedSOPInstanceUID)
        client = self._client(event.assoc)
        action = self._routes.get((N_ACTION, cls))
        if action is None:
            return _status(0x0211, f"N-ACTION of {cls} not supported"), None
        if req.ActionTypeID != 1:
            return _status(0x0123, f"no action type {req.ActionTypeID}"), None
        return action(client, cls, uid, event)

    def _print(self, client: _Client, cls: str, uid: str, event):
        """Spool the films of Film Session / Film Box `uid` (committed before the answer), answer
        with the new Print Job's UID; PENDING is its first report."""
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
                self._send_job(client, job_uid, "PENDING", "QUEUED")
        for f in films:
            f.printed = True
        log.info("print job %s from %s: %d film(s) spooled", job_uid, client.session.calling_ae, len(films))
        self.events.publish(PrintSpooled(uid=job_uid, films=len(films), calling_ae=client.session.calling_ae))
        return _status(warning, "empty page" if warning else ""), attributes.print_job_reference(job_uid)

    # -- N-DELETE (PS3.4 H.4.1.1.3 Film Session, H.4.1.2.3 Film Box, H.4.9.1.3 Presentation LUT) ----
    def on_n_delete(self, event):
        req = event.request
        cls, uid = str(req.RequestedSOPClassUID), str(req.RequestedSOPInstanceUID)
        client = self._client(event.assoc)
        delete = self._routes.get((N_DELETE, cls))
        if delete is None:
            return _status(0x0211, f"N-DELETE of {cls} not supported")
        try:
            delete(client, uid)
        except PrintFailure as exc:
            return self._fail(f"N-DELETE {cls}", exc, event.assoc)
        return 0x0000

    # -- N-EVENT-REPORT: the PrintJobListener side (gateway.print.reports) ---------------------------
    def on_printer_status(self, status: str, info: str) -> None:
        """The printer changed: each print client not yet told of this state gets an N-EVENT-REPORT
        of the Printer (PS3.4 H.4.2.2.4). Queued on its ReportSender, never sent from here."""
        with self._lock:
            clients = list(self._clients.values())
        state = (status, info)
        for c in clients:
            meta = c.meta()
            if meta is None or c.printer_state == state:
                continue
            c.printer_state = state
            c.reports.put("Printer", attributes.printer_event_information(status, info, self.profile.name),
                          PRINTER_EVENTS[status], S.PRINTER, S.PRINTER_INSTANCE, meta)

    def on_job_status(self, uid: str, status: str, info: str) -> None:
        """Print Job `uid` changed: the client that spooled it gets an N-EVENT-REPORT of the Print
        Job (PS3.4 H.4.2.1.4) if it accepted the Print Job SOP class. Queued, never sent from here."""
        with self._job_lock:
            with self._lock:
                clients = [c for c in self._clients.values() if uid in c.jobs]
            for c in clients:
                if c.jobs.get(uid) == status or not c.accepted(S.PRINT_JOB):
                    continue
                c.jobs[uid] = status
                self._send_job(c, uid, status, info)

    def _send_job(self, client: _Client, uid: str, status: str, info: str) -> None:
        client.reports.put("Print Job", attributes.print_job_event_information(info, self.profile.name),
                           PRINT_JOB_EVENTS[status], S.PRINT_JOB, uid, S.PRINT_JOB)
