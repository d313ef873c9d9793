"""Logging: stderr always (systemd captures it, and it is the only output off systemd), plus
journald with structured fields when running under systemd.

Log lines name SOP Instance UIDs, AE titles and job IDs, never patient names or IDs.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import traceback

# What a full or failing disk under the buffer raises: expected on a box, and it lasts.
EXPECTED_BUFFER_ERRORS = (OSError, sqlite3.OperationalError)


class FaultLog:
    """A worker's view of a lasting fault (a full disk): one ERROR line when it starts, one when it
    changes, one INFO line when it is over; never a traceback every retry."""

    def __init__(self, logger: logging.Logger, who: str):
        self.logger, self.who = logger, who
        self.fault: str | None = None

    def failed(self, exc: BaseException, retry_s: float) -> None:
        fault = f"{type(exc).__name__}: {exc}"
        if self.fault is None:
            self.logger.error("%s: the buffer cannot be used (%s); retrying every %.0f s", self.who, fault, retry_s)
        elif fault != self.fault:
            self.logger.error("%s: the buffer still cannot be used, now: %s", self.who, fault)
        self.fault = fault

    def ok(self) -> None:
        if self.fault is not None:
            self.logger.info("%s: the buffer is usable again (was: %s)", self.who, self.fault)
            self.fault = None


def _under_systemd() -> bool:
    return bool(os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"))


def _thread_died(args) -> None:
    """threading.excepthook: a thread that dies of an exception logs one ERROR line (where it
    died, not the whole traceback), so a monitor and the tests can find it; Python's default
    would print a traceback to stderr only."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    where = ""
    frames = traceback.extract_tb(args.exc_traceback) if args.exc_traceback is not None else []
    if frames:
        last = frames[-1]
        where = f" at {os.path.basename(last.filename)}:{last.lineno} in {last.name}"
    logging.getLogger("gateway.threads").error("thread %s died: %s: %s%s", name, args.exc_type.__name__,
                                               args.exc_value, where)


class OneLine(logging.Filter):
    """Folds a library's logged traceback into one line (the exception's type and message).
    pynetdicom logs the input errors it handles, and pydicom each pixel decoder that fails before
    another one succeeds, with a traceback: an operator needs one line, and a traceback in this
    box's log should mean a fault of ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exc = record.exc_info[1]
            if exc is not None and record.getMessage().strip() in ("", str(exc)):
                record.msg, record.args = f"{type(exc).__name__}: {exc}", None
            elif exc is not None:
                record.msg, record.args = f"{record.getMessage()} ({type(exc).__name__}: {exc})", None
            record.exc_info, record.exc_text = None, None
        return True


class ConnectFailures(logging.Filter):
    """Drops pynetdicom's two ERROR lines for a peer that does not answer ("Association request
    failed: unable to connect to remote", "TCP Initialisation Error: ..."): the worklist and MPPS
    SCUs say that failure themselves in one line, once and again when it changes, and a RIS down
    for a night would otherwise be two ERROR lines at every retry."""

    PREFIXES = ("Association request failed: unable to connect", "TCP Initialisation Error")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.PREFIXES)


def setup(level: str = "INFO", journald: str = "auto") -> None:
    threading.excepthook = _thread_died
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    use_journal = journald == "on" or (journald == "auto" and _under_systemd())
    handler: logging.Handler | None = None
    if use_journal:
        try:
            from systemd.journal import JournalHandler  # type: ignore[import-not-found]

            handler = JournalHandler(SYSLOG_IDENTIFIER="dicom-gateway")
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            root.addHandler(handler)
        except ImportError:
            handler = None
    if handler is None or not _under_systemd():
        # Off systemd JournalHandler drops messages silently: keep stderr. Under systemd stderr
        # would reach the journal a second time, without the structured fields.
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(stderr)
    # pynetdicom logs every PDU at INFO; its warnings and errors are what an operator needs.
    logging.getLogger("pynetdicom").setLevel(max(logging.WARNING, root.level))
    transport = logging.getLogger("pynetdicom.transport")
    if not any(isinstance(f, ConnectFailures) for f in transport.filters):
        transport.addFilter(ConnectFailures())
    pydicom_log = logging.getLogger("pydicom")
    if not any(isinstance(f, OneLine) for f in pydicom_log.filters):
        pydicom_log.addFilter(OneLine())
