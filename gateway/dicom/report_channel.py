"""SCP-initiated N-EVENT-REPORTs on an association whose client keeps sending requests.

PS3.4 H.4 lets a Print SCP report a Printer or Print Job event at any time, and with the default
asynchronous operations window of PS3.7 (one outstanding operation *each way*) the client may
have its own request in flight at that moment: the report and, say, an N-DELETE cross on the
wire.  pynetdicom 3.0's Association.send_n_event_report cannot live with that: it pauses the
association's reactor and takes the *next* DIMSE message off the association's one queue as the
report's response.  When that message is the client's N-DELETE, pynetdicom logs "invalid
N-DELETE response", aborts, and the client sees its spool fail although the job is queued.

ReportChannel puts a demultiplexer in place of that queue (pynetdicom_patches P11,
demultiplex_responses):

- a *response* (it carries Message ID Being Responded To) goes to the report that waits for it,
  matched by that ID -- the SCP side of a print association sends no other requests, so every
  response is one of ours; one that matches nothing (answered after we gave up) is dropped;
- everything else (the client's requests, pynetdicom's (None, None) wake-ups) goes on to the
  reactor, which keeps serving requests while a report waits.

The reactor is never paused for a report, and each outgoing message is queued whole (a lock
around pynetdicom's send_msg, P12 whole_messages), so a report's fragments never land between
those of a response the reactor is sending: a receiver builds each message from consecutive
fragments.

ReportSender is the per-association thread in front of a ReportChannel: whoever has a report to
send (the Print SCP, told by the print spooler) queues it and returns at once; the sender sends
them one after the other, in order, and drops none (an unbounded queue; its length is bounded by
the status changes of one association's jobs and of the printer).

What this module decides is the PS3.4 H.4 / PS3.7 10.1.1 side: which Message ID a report gets,
which response answers which report, when to give up (association gone, the client releasing,
the DIMSE timeout).  The pynetdicom internals it needs are entries of
gateway/dicom/net/pynetdicom_patches.py, each with a version-pinned test: P11
demultiplex_responses (DIMSEServiceProvider.msg_queue and the DUL's (None, None) on close), P12
whole_messages (send_msg under a lock), R7 send_message, R8 accepted_context
(Association._get_valid_context), R9 release_requested (the DUL's queued A-RELEASE-RQ), R10
encode_dataset (pynetdicom.dsutils.encode).  pynetdicom is pinned <3.1 for them.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.dimse_primitives import N_EVENT_REPORT

from gateway.dicom.net.pynetdicom_patches import (accepted_context, demultiplex_responses, encode_dataset,
                                                  release_requested, send_message, whole_messages)

log = logging.getLogger("gateway.dicom.report_channel")


class NoResponse(Exception):
    """The client did not answer the report: association gone, releasing, or DIMSE timeout."""


class ReportChannel:
    """Send N-EVENT-REPORT requests on an accepted association and match their responses by
    Message ID Being Responded To, whatever the client sends in between (PS3.7 10.1.1,
    PS3.4 H.4).  ``install`` must run before the client can send P-DATA (EVT_REQUESTED)."""

    def __init__(self, assoc):
        self.assoc = assoc
        self._ids = itertools.cycle(range(1, 0x10000))
        self._lock = threading.Lock()
        self._waiting: dict[int, list] = {}  # Message ID -> [Event, response or None]

    @classmethod
    def install(cls, assoc) -> "ReportChannel":
        channel = cls(assoc)
        # Responses (all ours: the SCP side sends no other requests) come to _deliver; the
        # (None, None) of a closed connection wakes every waiting report.
        demultiplex_responses(assoc, channel._deliver, channel._wake_all)
        whole_messages(assoc)
        return channel

    # -- sending ---------------------------------------------------------------------------------
    def send_event_report(self, info: Dataset | None, event_type: int, class_uid: str,
                          instance_uid: str, meta_uid: str | None = None,
                          timeout: float | None = None) -> N_EVENT_REPORT:
        """Send one N-EVENT-REPORT (PS3.7 10.1.1.1) and return the client's response primitive.

        Raises NoResponse when the association ends, the client asks to release (PS3.8 7.2: it
        sends no more P-DATA after its A-RELEASE-RQ) or `timeout` (default: the association's
        DIMSE timeout) passes; RuntimeError/ValueError as pynetdicom for no context / unencodable
        information."""
        assoc = self.assoc
        if not assoc.is_established:
            raise RuntimeError("the association is not established")
        if release_requested(assoc):  # it would never answer (PS3.8 7.2)
            raise NoResponse("the client is releasing the association")
        context = accepted_context(assoc, meta_uid or class_uid)
        req = N_EVENT_REPORT()
        req.MessageID = msg_id = next(self._ids)
        req.AffectedSOPClassUID = UID(class_uid)
        req.AffectedSOPInstanceUID = UID(instance_uid)
        req.EventTypeID = event_type
        if info is not None:
            raw = encode_dataset(info, context)
            if raw is None:
                raise ValueError("cannot encode the Event Information")
            req.EventInformation = BytesIO(raw)
        slot = [threading.Event(), None]
        with self._lock:
            self._waiting[msg_id] = slot
        try:
            send_message(assoc, req, context.context_id)
            limit = timeout if timeout is not None else assoc.dimse_timeout
            deadline = None if limit is None else time.monotonic() + limit
            while not slot[0].wait(0.05):
                if not assoc.is_established:
                    raise NoResponse("the association ended")
                if release_requested(assoc):
                    raise NoResponse("the client is releasing the association")
                if deadline is not None and time.monotonic() > deadline:
                    raise NoResponse(f"no response within {limit:g} s")
            if slot[1] is None:
                raise NoResponse("the association ended")
            return slot[1]
        finally:
            with self._lock:
                self._waiting.pop(msg_id, None)

    # -- receiving (called on the DUL's thread) -----------------------------------------------------
    def _deliver(self, rsp) -> None:
        msg_id = rsp.MessageIDBeingRespondedTo
        with self._lock:
            slot = self._waiting.get(msg_id)
        if slot is None or not isinstance(rsp, N_EVENT_REPORT):
            log.warning("%s response to message %s matches no request of ours; dropped",
                        type(rsp).__name__.replace("_", "-"), msg_id)
            return
        slot[1] = rsp
        slot[0].set()

    def _wake_all(self) -> None:
        with self._lock:
            slots = list(self._waiting.values())
        for slot in slots:
            slot[0].set()


class ReportSender:
    """One association's outgoing N-EVENT-REPORTs (PS3.7 10.1.1), sent in order from its own
    thread (named `thread_name`, started with the first report) through `channel`.

    `put` never blocks and never drops: the caller may be a worker that must not wait for a slow
    client.  A report the client does not answer (NoResponse) is logged and the next one goes
    out; `close` (or the association ending) ends the thread after the reports queued before it.
    `peer` names the client in the log lines, written to `logger`."""

    def __init__(self, assoc, channel: ReportChannel | None, peer: str,
                 logger: logging.Logger = log, thread_name: str = "print-event-report"):
        self.assoc, self.channel, self.peer = assoc, channel, peer
        self.log, self.thread_name = logger, thread_name
        self._outbox: queue.Queue = queue.Queue()  # unbounded: a report is never dropped
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def put(self, what: str, info: Dataset | None, event_type: int, class_uid: str,
            instance_uid: str, meta_uid: str | None = None) -> None:
        """Queue one report: `what` names it in the log ("Printer", "Print Job"); the rest as
        ReportChannel.send_event_report."""
        self._outbox.put((what, info, event_type, class_uid, instance_uid, meta_uid))
        with self._lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
                self.thread.start()

    def close(self) -> None:
        """No more reports: the thread ends once it reaches this point of the queue."""
        self._outbox.put(None)

    def _run(self) -> None:
        while True:
            report = self._outbox.get()
            if report is None or not self.assoc.is_established:
                return
            what, info, event_type, cls, uid, meta = report
            if self.channel is None:  # not set up at EVT_REQUESTED: no safe way to send
                self.log.warning("N-EVENT-REPORT %s to %s not sent: no report channel", what, self.peer)
                continue
            try:
                rsp = self.channel.send_event_report(info, event_type, cls, uid, meta_uid=meta)
                code = rsp.Status
                self.log.info("N-EVENT-REPORT %s type %d to %s: %s", what, event_type, self.peer,
                              "no status" if code is None else f"0x{code:04X}")
            except NoResponse as exc:
                self.log.info("N-EVENT-REPORT %s type %d to %s not answered: %s", what, event_type,
                              self.peer, exc)
            except (RuntimeError, ValueError) as exc:
                self.log.info("N-EVENT-REPORT %s to %s not sent: %s", what, self.peer, exc)
                time.sleep(0.1)
