"""The Modality Worklist SCU against DCMTK's wlmscpfs (issue 10 item 1): each matching key, Latin-1
and Japanese (ISO 2022 IR 87, and IR 13 + IR 87) names decoded right with their bytes kept raw, a
wrong called AE title refused in one line, the cache used while the SCP is down, an empty
worklist replacing the cache, and the operator's verbs over the control socket with the CLI.

The worklist items are made with dump2dcm from dump files written here as bytes (the names in the
encodings PS3.5 H.3.1 / H.3.2 show), served by `wlmscpfs -dfp <dir> <port> -csk` (-csk: return
the file's Specific Character Set; wlmscpfs's default returns none).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest

from gateway import event_kinds as K
from gateway.buffer.worklist import WorklistStore
from gateway.config import Config
from gateway.dicom.worklist_scu import WorklistError, WorklistQuery, find
from gateway.dicom.worklist_service import WorklistService
from gateway.events import EventBus
from tests.peers import ROOT, free_port, kill_group, require, wait_port, wait_until

SCP_AE = "WLSCP"
EMPTY_AE = "EMPTYWL"
TODAY = date.today().strftime("%Y%m%d")
LATER = (date.today() + timedelta(days=5)).strftime("%Y%m%d")

# PS3.5 H.3.1: "Yamada^Tarou=山田^太郎=やまだ^たろう" in ISO 2022 IR 87 (ESC $ B kanji, ESC ( B back).
JP87_NAME = "Yamada^Tarou=山田^太郎=やまだ^たろう"
JP87_BYTES = (b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B")
# PS3.5 H.3.2: half-width katakana (ISO 2022 IR 13 in G1) with kanji, ESC ( J back to JIS romaji.
JP13_NAME = "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"
JP13_BYTES = bytes.fromhex("d4cfc0de5ec0dbb33d1b24423b3345441b284a5e1b244242404f3a1b284a3d1b2442246424"
                           "5e24401b284a5e1b2442243f246d24261b284a")
LATIN_NAME = "Müller^Jürgen"
LATIN_BYTES = LATIN_NAME.encode("latin-1")


def _item(charset: bytes, name: bytes, pid: str, station: str, day: str, modality: str, n: int) -> bytes:
    lines = [
        b"(0008,0005) CS [" + charset + b"]",
        b"(0008,0050) SH [ACC%03d]" % n,
        b"(0008,0090) PN [Referrer^Rita]",
        b"(0010,0010) PN [" + name + b"]",
        b"(0010,0020) LO [" + pid.encode() + b"]",
        b"(0010,0030) DA [19600101]",
        b"(0010,0040) CS [O]",
        b"(0020,000d) UI [1.2.826.0.1.3680043.10.1.%d]" % n,
        b"(0032,1060) LO [Requested %d]" % n,
        b"(0040,1001) SH [RP%03d]" % n,
        b"(0040,0100) SQ (Sequence with undefined length)",
        b"(fffe,e000) na (Item with undefined length)",
        b"(0008,0060) CS [" + modality.encode() + b"]",
        b"(0040,0001) AE [" + station.encode() + b"]",
        b"(0040,0002) DA [" + day.encode() + b"]",
        b"(0040,0003) TM [101500]",
        b"(0040,0007) LO [Step %d]" % n,
        b"(0040,0009) SH [SPS%03d]" % n,
        b"(fffe,e00d) na",
        b"(fffe,e0dd) na",
    ]
    return b"\n".join(lines) + b"\n"


ITEMS = {
    # Patient ID: (charset, name bytes, station, date, modality)
    "PID001": (b"ISO_IR 100", LATIN_BYTES, "EDGE", TODAY, "US"),
    "PIDJP87": (b"\\ISO 2022 IR 87", JP87_BYTES, "EDGE", TODAY, "ES"),
    "PIDJP13": (b"ISO 2022 IR 13\\ISO 2022 IR 87", JP13_BYTES, "EDGE", TODAY, "US"),
    "PID003": (b"ISO_IR 100", b"Other^Station", "OTHER", TODAY, "US"),
    "PID004": (b"ISO_IR 100", b"Later^Day", "EDGE", LATER, "US"),
    "PID005": (b"ISO_IR 100", b"Ct^Patient", "EDGE", TODAY, "CT"),
}


@pytest.fixture(scope="module")
def wl_dir(tmp_path_factory) -> Path:
    require("dump2dcm", "dcmtk")
    root = tmp_path_factory.mktemp("wl")
    db = root / "db"
    for ae in (SCP_AE, EMPTY_AE):
        (db / ae).mkdir(parents=True)
        (db / ae / "lockfile").write_bytes(b"")
    for n, (pid, (charset, name, station, day, modality)) in enumerate(ITEMS.items(), 1):
        dump = root / f"{pid}.dump"
        dump.write_bytes(_item(charset, name, pid, station, day, modality, n))
        subprocess.run(["dump2dcm", "-q", "-g", str(dump), str(db / SCP_AE / f"{pid}.wl")], check=True,
                       capture_output=True, timeout=60)
    return db


class Wlmscpfs:
    """wlmscpfs on 127.0.0.1 and a free port, in its own process group; stop() always."""

    def __init__(self, db: Path, port: int | None = None):
        require("wlmscpfs", "dcmtk")
        self.db, self.port, self.proc = db, port or free_port(), None

    def start(self) -> "Wlmscpfs":
        self.proc = subprocess.Popen(["wlmscpfs", "-dfp", str(self.db), "-csk", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.port, 30, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)
            self.proc = None


@pytest.fixture
def scp(wl_dir):
    s = Wlmscpfs(wl_dir).start()
    try:
        yield s
    finally:
        s.stop()


def _ids(items) -> set[str]:
    return {p.patient_id for p in items}


def _find(scp, **keys):
    return find(SCP_AE, "127.0.0.1", scp.port, "EDGE", WorklistQuery(**keys), timeout=10)


# -- each matching key -----------------------------------------------------------------------------
def test_scheduled_station_ae_title_matches(scp):
    assert _ids(_find(scp, station_ae="EDGE", date_from=TODAY, date_to=TODAY)) == {
        "PID001", "PIDJP87", "PIDJP13", "PID005"}
    assert _ids(_find(scp, station_ae="OTHER", date_from=TODAY, date_to=TODAY)) == {"PID003"}
    assert len(_find(scp, station_ae="*")) == len(ITEMS)


def test_sps_start_date_matches_a_day_and_a_range(scp):
    assert "PID004" not in _ids(_find(scp, station_ae="EDGE", date_from=TODAY, date_to=TODAY))
    assert _ids(_find(scp, station_ae="EDGE", date_from=LATER, date_to=LATER)) == {"PID004"}
    week = WorklistQuery.around(date.today(), 0, 7, station_ae="EDGE")
    assert week.identifier().ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate == f"{TODAY}-" + \
        (date.today() + timedelta(days=7)).strftime("%Y%m%d")
    assert _ids(find(SCP_AE, "127.0.0.1", scp.port, "EDGE", week)) == {"PID001", "PIDJP87", "PIDJP13", "PID004", "PID005"}


def test_modality_matches(scp):
    assert _ids(_find(scp, station_ae="EDGE", date_from=TODAY, date_to=TODAY, modality="US")) == {"PID001", "PIDJP13"}
    assert _ids(_find(scp, modality="ES")) == {"PIDJP87"}


def test_patient_id_matches(scp):
    (p,) = _find(scp, patient_id="PID003")
    assert (p.patient_id, p.station_ae, p.modality) == ("PID003", "OTHER", "US")


# -- what an item becomes ----------------------------------------------------------------------------
def test_latin1_item_decoded_and_its_bytes_kept(scp):
    (p,) = _find(scp, patient_id="PID001")
    assert p.patient_name == LATIN_NAME
    assert LATIN_BYTES in p.identifier
    assert (p.accession_number, p.study_uid, p.description, p.start, p.station_ae) == (
        "ACC001", "1.2.826.0.1.3680043.10.1.1", "Step 1", TODAY + "101500", "EDGE")
    assert p.key == "SPS001|ACC001|1.2.826.0.1.3680043.10.1.1" and p.scheduled
    ds = p.dataset()
    assert ds.SpecificCharacterSet == "ISO_IR 100" and str(ds.PatientName) == LATIN_NAME
    assert ds.RequestedProcedureID == "RP001" and str(ds.ReferringPhysicianName) == "Referrer^Rita"


@pytest.mark.parametrize("pid, name, raw", [("PIDJP87", JP87_NAME, JP87_BYTES), ("PIDJP13", JP13_NAME, JP13_BYTES)])
def test_japanese_name_decoded_and_its_bytes_kept_raw(scp, pid, name, raw):
    (p,) = _find(scp, patient_id=pid)
    assert p.patient_name == name
    # The ISO 2022 escape sequences exactly as the RIS wrote them, not re-encoded.
    assert raw in p.identifier
    assert str(p.dataset().PatientName) == name


# -- refusals ----------------------------------------------------------------------------------------
def test_wrong_called_ae_title_is_refused_in_one_line(scp):
    with pytest.raises(WorklistError) as err:
        find("NOSUCHAE", "127.0.0.1", scp.port, "EDGE", WorklistQuery(), timeout=10)
    text = str(err.value)
    assert "\n" not in text and "NOSUCHAE@127.0.0.1" in text and "called AE title not recognised" in text


def test_more_items_than_max_items_is_a_failed_query(scp):
    with pytest.raises(WorklistError, match=r"answered more than 2 items \(worklist.max_items\)"):
        find(SCP_AE, "127.0.0.1", scp.port, "EDGE", WorklistQuery(station_ae="*"), timeout=10, max_items=2)
    assert len(_find(scp, station_ae="*")) == len(ITEMS)  # the SCP serves on after the abort


def test_nothing_listening_is_one_line():
    with pytest.raises(WorklistError) as err:
        find(SCP_AE, "127.0.0.1", free_port(), "EDGE", WorklistQuery(), timeout=5)
    assert "connection refused" in str(err.value) and "\n" not in str(err.value)


# -- the service: cache while the SCP is down, empty worklist -------------------------------------------
def _config(port: int, ae_title: str = SCP_AE, **worklist) -> Config:
    return Config.model_validate({"worklist": {"enabled": True, "ae_title": ae_title, "port": port,
                                               "timeout_s": 10.0, **worklist}})


def _events(bus: EventBus, sub) -> list:
    out = []
    while not sub.empty():
        out.append(sub.get_nowait())
    return out


def test_cache_used_while_the_scp_is_down_and_says_so(wl_dir, tmp_path):
    scp = Wlmscpfs(wl_dir).start()
    bus = EventBus()
    sub = bus.subscribe(kinds=(K.WORKLIST_REFRESHED, K.WORKLIST_FAILED))
    svc = WorklistService(_config(scp.port), tmp_path, bus)
    try:
        svc.start()
        wait_until(lambda: svc.status()["source"] == "scp", 30, what="the first refresh")
        fetched = svc.status()["fetched_at"]
        assert _ids(svc.items()) == {"PID001", "PIDJP87", "PIDJP13", "PID005"}
        scp.stop()
        outcome = svc.refresh()
        assert not outcome.ok and not outcome.pending and "connection refused" in outcome.reason
        st = svc.status()
        assert (st["source"], st["fetched_at"], st["items"]) == ("cache", fetched, 4)
        assert "connection refused" in st["last_error"] and st["failing_since"] > 0
        failed = [e for e in _events(bus, sub) if e.kind == K.WORKLIST_FAILED]
        assert failed and failed[-1].payload.using_cache_from == fetched
        assert _ids(svc.items()) == {"PID001", "PIDJP87", "PIDJP13", "PID005"}
    finally:
        svc.stop()
        scp.stop()
    # A restart with the SCP still down: the buffer's copy, said to be one.
    bus2 = EventBus()
    sub2 = bus2.subscribe(kinds=(K.WORKLIST_REFRESHED, K.WORKLIST_FAILED))
    again = WorklistService(_config(scp.port), tmp_path, bus2)
    try:
        again.start()
        wait_until(lambda: again.status()["last_error"], 30, what="the failed refresh")
        assert _ids(again.items()) == {"PID001", "PIDJP87", "PIDJP13", "PID005"}
        assert again.status()["source"] == "cache"
        first = _events(bus2, sub2)[0]
        assert (first.kind, first.payload.source, first.payload.at) == (K.WORKLIST_REFRESHED, "cache", fetched)
        # The Japanese item's bytes survived the cache.
        (jp,) = [p for p in again.items() if p.patient_id == "PIDJP87"]
        assert JP87_BYTES in jp.identifier and jp.patient_name == JP87_NAME
    finally:
        again.stop()


def test_an_empty_worklist_is_a_good_answer_and_replaces_the_cache(wl_dir, tmp_path):
    scp = Wlmscpfs(wl_dir).start()
    try:
        full = WorklistService(_config(scp.port), tmp_path, EventBus())
        full.start()
        wait_until(lambda: full.status()["source"] == "scp", 30, what="the first refresh")
        full.stop()
        assert len(WorklistStore(tmp_path).load().items) == 4
        bus = EventBus()
        sub = bus.subscribe(kinds=(K.WORKLIST_REFRESHED,))
        empty = WorklistService(_config(scp.port, EMPTY_AE), tmp_path, bus)
        empty.start()
        try:
            wait_until(lambda: empty.status()["fetched_from"].startswith(EMPTY_AE), 30, what="the empty answer")
            assert empty.items() == () and empty.status()["source"] == "scp" and not empty.status()["last_error"]
            cached = WorklistStore(tmp_path).load()
            assert cached.items == () and cached.source.startswith(EMPTY_AE)
            kinds = [(e.payload.source, e.payload.items) for e in _events(bus, sub)]
            assert ("scp", 0) in kinds
        finally:
            empty.stop()
    finally:
        scp.stop()


def test_a_refused_refresh_never_replaces_the_cache(wl_dir, tmp_path):
    scp = Wlmscpfs(wl_dir).start()
    try:
        good = WorklistService(_config(scp.port), tmp_path, EventBus())
        good.start()
        wait_until(lambda: good.status()["source"] == "scp", 30, what="the first refresh")
        good.stop()
        before = WorklistStore(tmp_path).path.read_bytes()
        # refresh_s 10: on a loaded machine wlmscpfs (one association at a time) may still be
        # finishing the good service's association and the first try end without an answer; the
        # next refresh gets its rejection, which must name the reason.
        wrong = WorklistService(_config(scp.port, "NOSUCHAE", refresh_s=10.0), tmp_path, EventBus())
        wrong.start()
        try:
            wait_until(lambda: "called AE title not recognised" in (wrong.status()["last_error"] or ""), 60,
                       what="the refusal naming the unknown called AE title")
            assert WorklistStore(tmp_path).path.read_bytes() == before
            assert len(wrong.items()) == 4 and wrong.status()["source"] == "cache"
        finally:
            wrong.stop()
    finally:
        scp.stop()


# -- the operator's verbs: control socket and the command line -------------------------------------------
def test_cli_lists_selects_and_refreshes_through_the_control_socket(wl_dir, tmp_path):
    from gateway.buffer import lock as buffer_lock
    from gateway.commands import Commands
    from gateway.control import ControlServer, worklist_verbs
    from tests.peers import write_toml

    scp = Wlmscpfs(wl_dir).start()
    buffer_dir = tmp_path / "buffer"
    buffer_dir.mkdir()
    cfg_path = tmp_path / "gateway.toml"
    write_toml(cfg_path, {"buffer": {"path": str(buffer_dir)},
                          "worklist": {"enabled": True, "ae_title": SCP_AE, "port": scp.port}})
    lock = buffer_lock.acquire(buffer_dir)
    svc = WorklistService(_config(scp.port), buffer_dir, EventBus())
    control = ControlServer(buffer_dir, lock, worklist_verbs(Commands(None, svc.config, wake=lambda: None,
                                                                        worklist=svc)))

    def cli(*args):
        env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'hw-sim'}", "COLUMNS": "160", "PYTHONIOENCODING": "utf-8"}
        return subprocess.run([sys.executable, "-m", "gateway.cli", "worklist", "--config", str(cfg_path), *args],
                              capture_output=True, text=True, encoding="utf-8", env=env, timeout=120)
    try:
        svc.start()
        control.start()
        wait_until(lambda: svc.status()["source"] == "scp", 30, what="the first refresh")
        out = cli("--select", "2")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].startswith("current procedure: 2 of 4: Patient ID ")
        chosen = svc.current.current()
        marked = [ln for ln in lines if ln[4:5] == "*"]
        assert len(marked) == 1 and chosen.patient_id in marked[0]
        assert any(JP87_NAME in ln for ln in lines)  # a UTF-8 terminal shows the whole name
        out = cli("--next")
        assert out.returncode == 0 and svc.current.position() == 3
        out = cli("--select", "9")
        assert out.returncode == 1 and "no item 9: the worklist has items 1 to 4" in out.stderr
        out = cli("--unscheduled")
        assert out.returncode == 0 and f"UNSCHED{TODAY}-001" in out.stdout
        assert not svc.current.current().scheduled
        scp.stop()
        out = cli("--refresh")
        assert out.returncode == 1 and "worklist refresh failed: " in out.stdout
        assert "FROM THE CACHE" in out.stdout and "connection refused" in out.stdout
    finally:
        control.stop()
        svc.stop()
        scp.stop()
        lock.close()
    # No service: the buffer's copy, said to be one.
    out = cli()
    assert out.returncode == 0 and "no service answers" in out.stdout and "(no service running)" in out.stdout
    out = cli("--next")
    assert out.returncode == 1 and "no service runs on this buffer" in out.stderr


# -- a slow SCP: the caller of refresh() is not held past timeout_s ---------------------------------------
def test_a_slow_scp_never_holds_the_caller_past_timeout_s(tmp_path):
    """wlmscpfs cannot be slowed, so a pynetdicom worklist SCP in the test answers five items one
    second apart: every response within timeout_s (2 s), the whole answer well past it."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import ModalityWorklistInformationFind

    release = threading.Event()

    def on_find(event):
        for n in range(5):
            release.wait(1.0)  # never set: one second between responses
            ds = Dataset()
            ds.PatientID = f"SLOW{n}"
            ds.AccessionNumber = f"S{n}"
            sps = Dataset()
            sps.ScheduledProcedureStepID = f"SPS{n}"
            ds.ScheduledProcedureStepSequence = [sps]
            yield 0xFF00, ds

    ae = AE(ae_title="SLOWWL")
    ae.add_supported_context(ModalityWorklistInformationFind)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, on_find)])
    cfg = Config.model_validate({"worklist": {"enabled": True, "ae_title": "SLOWWL", "port": port,
                                              "timeout_s": 2.0, "refresh_s": 3600.0}})
    svc = WorklistService(cfg, tmp_path, EventBus())
    try:
        svc.start()  # the first query starts at once: wait for it, then ask again
        wait_until(lambda: svc.status()["source"] == "scp", 60, what="the first slow answer")
        first = svc.status()["fetched_at"]
        outcome = svc.refresh()
        assert outcome.pending and not outcome.ok
        # The answer still comes, and is used.
        wait_until(lambda: svc.status()["fetched_at"] > first, 60, what="the slow answer after the caller left")
        assert {p.patient_id for p in svc.items()} == {f"SLOW{n}" for n in range(5)}
    finally:
        svc.stop()
        server.shutdown()
