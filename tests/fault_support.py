"""Shared by the fault tests: a background storescu whose acknowledgements can be read, and the
buffer invariants that must hold after any stop (clean, SIGTERM or kill -9)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from pathlib import Path

from dicom_bytes import file_dataset_bytes as dataset_bytes
from peers import require


class StoreSCU:
    """`storescu -v` sending files in one association, in the background.

    stdout ("XMIT: ..." progress) and stderr (the -v log) go to separate files so the lines we
    parse are never interleaved with the progress dots.
    """

    def __init__(self, workdir: Path, port: int, files: list[Path], tag: str):
        exe = require("storescu", "dcmtk")
        self.err_path = workdir / f"storescu-{tag}.log"
        self._out = open(workdir / f"storescu-{tag}.out", "wb")
        self._err = open(self.err_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [exe, "-v", "-aet", "STORESCU", "-aec", "EDGE", "127.0.0.1", str(port), *map(str, files)],
            stdout=self._out, stderr=self._err, start_new_session=True,
        )

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()
        self._err.close()

    @property
    def output(self) -> str:
        return self.err_path.read_text(errors="replace")

    def acknowledged(self) -> list[Path]:
        return acknowledged_files(self.output)


def acknowledged_files(log: str) -> list[Path]:
    """Files storescu -v reports a Success response for.

    storescu sends one file at a time and waits for its response:
        I: Sending file: /path/ct00001.dcm
        I: Converting transfer syntax: ...
        I: Sending Store Request (MsgID 2, CT)
        I: Received Store Response (Success)
    A Warning or failure status prints another text in the parentheses; a lost association prints
    "E: Store SCU Failed ..." and no response line. Only Success counts.
    """
    current: Path | None = None
    acked: list[Path] = []
    for line in log.splitlines():
        if "Sending file: " in line:
            current = Path(line.split("Sending file: ", 1)[1].strip())
        elif "Received Store Response (Success)" in line and current is not None:
            acked.append(current)
            current = None
        elif "Received Store Response" in line:
            current = None
    return acked





def sop_uid_of(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def query(buffer: Path, sql: str, params: tuple = ()) -> list[tuple]:
    db = sqlite3.connect(str(buffer / "index.sqlite"), timeout=30)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def check_buffer(buffer: Path, acked: dict[str, Path], context: str) -> None:
    """Every acknowledged instance is indexed, its file exists with the data set bytes as sent;
    nothing partial or orphaned is left; no index row points at a missing file."""
    integrity = query(buffer, "PRAGMA integrity_check")
    assert integrity == [("ok",)], f"{context}: index damaged: {integrity[:5]}"
    rows = dict(query(buffer, "SELECT sop_uid, path FROM instances"))
    missing = sorted(uid for uid in acked if uid not in rows)
    assert not missing, f"{context}: {len(missing)} acknowledged instances not in the index: {missing[:5]}"
    for uid, original in acked.items():
        stored = buffer / rows[uid]
        assert stored.is_file(), f"{context}: {uid} indexed at {rows[uid]} but the file is missing"
        assert dataset_bytes(stored) == dataset_bytes(original), (
            f"{context}: {uid}: stored data set differs from the one sent ({stored} vs {original})")
    for uid, rel in rows.items():
        assert (buffer / rel).is_file(), f"{context}: index row {uid} points at missing file {rel}"
    leftovers = list((buffer / "incoming").iterdir())
    assert not leftovers, f"{context}: incoming/ not empty after restart: {leftovers[:5]}"
    known = set(rows.values())
    on_disk = {str(p.relative_to(buffer)) for p in (buffer / "objects").rglob("*") if p.is_file()}
    orphans = sorted(on_disk - known)
    assert not orphans, f"{context}: files in objects/ unknown to the index: {orphans[:5]}"


def last_recovery(log: str) -> dict[str, int]:
    """Counts from the last 'buffer ... recovered' line of the gateway log."""
    found = re.findall(r"recovered: (\d+) partial files removed, (\d+) orphan files removed, "
                       r"(\d+) interrupted jobs queued again", log)
    assert found, "no recovery line in the gateway log"
    p, o, r = map(int, found[-1])
    return {"partial": p, "orphans": o, "requeued": r}


def job_states(buffer: Path) -> dict[str, int]:
    return dict(query(buffer, "SELECT state, COUNT(*) FROM jobs GROUP BY state"))


def pending_txns(buffer: Path) -> list[str]:
    return [r[0] for r in query(buffer, "SELECT txn_uid FROM commitments WHERE state = 'pending'")]


def restart(gw) -> None:
    """Start the gateway again on the same port and buffer. A kill -9 may leave the port briefly
    busy; pynetdicom binds with SO_REUSEADDR, so one retry is plenty."""
    try:
        gw.start(timeout=30)
    except RuntimeError:
        time.sleep(1.0)
        gw.start(timeout=30)

