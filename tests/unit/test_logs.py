"""Logging: journald with structured fields when asked; stderr kept off systemd (JournalHandler
drops messages silently without a journal, ../shared/PEERS.md)."""

from __future__ import annotations

import logging
import os

import pytest

from gateway import logs


def _journal():
    try:
        from systemd import journal
    except ImportError:
        msg = "needs systemd-python (built from libsystemd-dev with pkg-config)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return journal


def test_journald_handler_gets_structured_fields_and_stderr_stays(monkeypatch):
    journal = _journal()
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    logs.setup("INFO", "on")
    root = logging.getLogger()
    try:
        kinds = {type(h).__name__ for h in root.handlers}
        assert kinds == {"JournalHandler", "StreamHandler"}
        jh = next(h for h in root.handlers if isinstance(h, journal.JournalHandler))
        sent = []
        jh.send = lambda MESSAGE, **fields: sent.append((MESSAGE, fields))  # no journald here
        logging.getLogger("gateway.dicom.store_scp").warning(
            "C-STORE %s refused", "1.2.3", extra={"sop_instance_uid": "1.2.3", "dimse_status": "0xA900"})
        (msg, fields), = sent
        assert "C-STORE 1.2.3 refused" in msg
        assert fields["sop_instance_uid"] == "1.2.3" and fields["dimse_status"] == "0xA900"
        assert fields["SYSLOG_IDENTIFIER"] == "dicom-gateway"
    finally:
        root.handlers.clear()


def test_under_systemd_auto_uses_only_the_journal(monkeypatch):
    _journal()
    monkeypatch.setenv("INVOCATION_ID", "x")
    logs.setup("INFO", "auto")
    root = logging.getLogger()
    try:
        assert [type(h).__name__ for h in root.handlers] == ["JournalHandler"]
    finally:
        root.handlers.clear()


def test_off_uses_stderr():
    logs.setup("DEBUG", "off")
    root = logging.getLogger()
    try:
        assert [type(h).__name__ for h in root.handlers] == ["StreamHandler"]
        assert logging.getLogger("pynetdicom").level == logging.WARNING
    finally:
        root.handlers.clear()


def test_a_library_traceback_is_one_line(capsys):
    """pydicom logs each pixel decoder that failed (LOGGER.exception) even when another one then
    decodes the frame: one line for the operator, no traceback."""
    logs.setup("INFO", "off")
    root = logging.getLogger()
    try:
        try:
            raise RuntimeError("libjpeg: unsupported marker")
        except RuntimeError as exc:
            logging.getLogger("pydicom").exception(exc)
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.count("\n") == 1, err
        assert "ERROR pydicom: RuntimeError: libjpeg: unsupported marker" in err
    finally:
        root.handlers.clear()


def test_a_peer_that_does_not_answer_is_not_two_pynetdicom_errors_each_retry(capsys):
    """The worklist and MPPS SCUs say an unreachable SCP themselves; pynetdicom's own pair of
    ERROR lines for it is dropped, its other errors stay."""
    from pynetdicom import AE

    logs.setup("INFO", "off")
    root = logging.getLogger()
    try:
        ae = AE(ae_title="EDGE")
        ae.acse_timeout = ae.network_timeout = 2
        ae.add_requested_context("1.2.840.10008.1.1")
        import socket
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        assoc = ae.associate("127.0.0.1", port)
        assert not assoc.is_established
        logging.getLogger("pynetdicom.transport").error("Some other transport error")
        err = capsys.readouterr().err
        assert "unable to connect" not in err and "TCP Initialisation Error" not in err, err
        assert "Some other transport error" in err
    finally:
        root.handlers.clear()
