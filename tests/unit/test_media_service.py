"""The media service (gateway/media/service.py) on hw-sim's simulated drives, in-process: the real
drivers (OpticalDrive on a disc image, UsbDisk on a FAT image through mtools) and the drives' own
simulated udev sources deliver the insertions, as under `make run`, and the real exporters
(gateway/media/export.py) take the jobs."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from datasets import make_ct
from peers import require

from hwsim.media import SimulatedOpticalDrive, SimulatedUsbPort

from gateway.buffer.ingest import Buffer
from gateway.buffer.intake import Intake
from gateway.buffer.source import Source
from gateway.config import Config
from gateway.dicom.sop_classes import storage_sop_classes
from gateway.event_kinds import (MediaExportQueued, MediaFault, MediaImportDone, MediaImportFinished,
                                 MediaImportQueued, MediaInserted, MediaNothingToExport, MediaRemoved)
from gateway.events import EventBus
from gateway.media import service as service_module
from gateway.media.service import STAGING, MediaService
from gateway.part10.attributes import configure_pydicom
from gateway.routing import Router
from gateway.state import StateObserver

WAIT_S = 30.0


def test_the_appliance_builds_drives_exporters_and_the_service_and_its_health_counts_them(tmp_path):
    """gateway/app.py: drives from the registry (family media), an exporter per drive, the service
    started before READY and stopped before the buffer closes; healthy() (the watchdog) sees a
    dead drive worker."""
    require("xorriso", "xorriso")
    require("mkfs.vfat", "dosfstools")
    import tomli_w
    from peers import free_port

    from gateway import config as config_mod
    from gateway.app import Gateway

    cfg = tmp_path / "gateway.toml"
    cfg.write_text(tomli_w.dumps({
        "ae": {"port": free_port()}, "buffer": {"path": str(tmp_path / "buf"), "reserve_mb": 0},
        "media": {"drives": {"cd": {"kind": "optical-sim", "sim_dir": "sim"},
                             "usb": {"kind": "usb-sim", "sim_dir": "sim", "sim_usb_mb": 40}},
                  "export_rules": [{"name": "new"}]}}))
    gw = Gateway(config_mod.load(cfg, []))
    seen = gw.events.subscribe(maxsize=1000)
    try:
        gw.start()
        assert sorted(gw.drives) == sorted(gw.exporters) == ["cd", "usb"]
        assert (tmp_path / "sim" / "cd" / "drive.json").is_file()  # the simulator runs in the service
        assert gw.healthy()
        gw.drives["cd"].simulator.insert("cd", None)
        deadline = time.monotonic() + WAIT_S
        got = None
        while got is None and time.monotonic() < deadline:
            try:
                p = seen.get(timeout=0.5).payload
            except Exception:  # noqa: BLE001 - queue.Empty
                continue
            got = p if isinstance(p, MediaNothingToExport) else None
        assert got is not None and got.drive == "cd" and got.reason == "rule new: no study matches"
        gw.state.sync()
        assert gw.state.get_status(["media"])["media"]["cd"]["blank"] is True
        # A drive's worker gone: the watchdog is not petted any more.
        worker = gw.media._workers["usb"]
        worker.inbox.put(service_module._STOP)
        worker.thread.join(5)
        assert not gw.healthy()
    finally:
        gw.stop()
    assert not any(e.is_alive() for e in gw.exporters.values())


class ExporterProbe:
    """Counts the service's wake-ups of a drive's exporter."""

    def __init__(self):
        self.woken = 0

    def medium_changed(self) -> None:
        self.woken += 1


class Rig:
    def __init__(self, tmp_path, rules: list[dict], stable_s_ago: float = 120.0):
        for tool, pkg in (("xorriso", "xorriso"), ("mkfs.vfat", "dosfstools"), ("mcopy", "mtools")):
            require(tool, pkg)
        configure_pydicom()
        self.tmp = tmp_path
        self.config = Config.model_validate({
            "destinations": {"pacs": {"ae_title": "PACS", "port": 11122}},
            "media": {"drives": {"cd": {"kind": "optical-sim"}, "usb": {"kind": "usb-sim"}},
                      "export_rules": rules}})
        self.buffer = Buffer(tmp_path / "buffer", 0, "replace", Router(self.config))
        self.events = EventBus()
        self.seen = self.events.subscribe(maxsize=10000)
        self.intake = Intake(self.config, self.buffer, self.events, storage_sop_classes())
        self.cd_sim = SimulatedOpticalDrive("cd", tmp_path / "sim" / "cd")
        self.usb_sim = SimulatedUsbPort("usb", tmp_path / "sim" / "usb", stick_bytes=40_000_000)
        self.drives = {"cd": self.cd_sim.drive(60), "usb": self.usb_sim.drive(60)}
        self.exporters = {"cd": ExporterProbe(), "usb": ExporterProbe()}
        self.state = StateObserver(self.events, tmp_path / "buffer", [], None, list(self.drives))
        self.service = MediaService(self.config.media, self.buffer, self.intake, self.events, self.drives,
                                    self.exporters, staging_root=tmp_path / "buffer" / STAGING)
        self.stable_s_ago = stable_s_ago
        self.payloads: list = []

    def store(self, study_uid: str, n: int = 1, ago: float | None = None) -> list[str]:
        uids = []
        for i in range(n):
            src = self.tmp / f"in-{study_uid}-{i}.dcm"
            ds = make_ct(src, study_uid=study_uid, number=i + 1)
            incoming = self.buffer.files.new_incoming_path()
            shutil.copyfile(src, incoming)
            assert self.intake.take(incoming, Source.ae("CT1"), str(ds.SOPClassUID), str(ds.SOPInstanceUID)).ok
            uids.append(str(ds.SOPInstanceUID))
        at = time.time() - (self.stable_s_ago if ago is None else ago)
        with self.buffer.index.tx() as cur:
            cur.execute("UPDATE instances SET received_at = ?", (at,))
        return uids

    def wait_for(self, kind: type, timeout: float = WAIT_S, **match):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.payloads:
                if isinstance(p, kind) and all(getattr(p, k) == v for k, v in match.items()):
                    return p
            try:
                self.payloads.append(self.seen.get(timeout=0.2).payload)
            except Exception:  # noqa: BLE001 - queue.Empty: look again
                pass
        raise AssertionError(f"no {kind.__name__} {match} within {timeout} s; saw {self.payloads}")

    def drain(self, settle: float = 0.5) -> list:
        time.sleep(settle)
        while not self.seen.empty():
            self.payloads.append(self.seen.get_nowait().payload)
        return self.payloads

    def jobs(self, kind: str = "export") -> list[tuple[str, str, str]]:
        return [(r["kind"], r["target"], r["state"]) for r in self.buffer.index.query(
            "SELECT * FROM jobs WHERE kind = ? ORDER BY id", (kind,))]

    def close(self) -> None:
        self.service.stop()
        self.buffer.close()


@pytest.fixture
def rig_factory(tmp_path):
    made = []

    def make(rules=None, **kw) -> Rig:
        rig = Rig(tmp_path, [{"name": "new"}] if rules is None else rules, **kw)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()


def test_a_blank_disc_gets_the_stable_studies_queued_marked_and_the_exporter_woken(rig_factory):
    rig = rig_factory([{"name": "new", "copies": 2}])
    rig.store("1.2.826.0.1.1", n=2)
    rig.service.start()
    rig.cd_sim.insert("cd", None)

    queued = rig.wait_for(MediaExportQueued, drive="cd")
    assert queued.rule == "new" and queued.study_uids == ("1.2.826.0.1.1",) and queued.copies == 2
    inserted = rig.wait_for(MediaInserted, drive="cd")
    assert inserted.medium == "cd" and inserted.blank and not inserted.read_only
    assert rig.jobs() == [("export", "cd", "queued")] * 2
    assert sorted(r["job_id"] for r in rig.buffer.index.query("SELECT * FROM media_exports WHERE marks = 1")) \
        == sorted(queued.jobs)
    deadline = time.monotonic() + 5
    while rig.exporters["cd"].woken < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rig.exporters["cd"].woken == 1 and rig.exporters["usb"].woken == 0

    # The study is marked: a second blank medium (the stick) gets nothing, and says why.
    rig.usb_sim.insert("usb", None)
    nothing = rig.wait_for(MediaNothingToExport, drive="usb")
    assert nothing.reason == "rule new: no study matches"
    assert len(rig.jobs()) == 2
    rig.state.sync()
    media = rig.state.get_status(["media"])["media"]
    assert media["cd"]["present"] and media["cd"]["blank"] and media["cd"]["busy"] == "queued-export"
    assert media["usb"]["present"] and media["usb"]["medium"] == "usb" and media["usb"]["busy"] is None

    rig.cd_sim.pull()
    rig.wait_for(MediaRemoved, drive="cd")
    rig.state.sync()
    assert rig.state.get_status(["media"])["media"]["cd"]["present"] is False
    assert rig.exporters["cd"].woken == 2


def test_a_blank_medium_goes_to_the_export_already_waiting_not_to_the_rules(rig_factory, caplog):
    # An operator queued a study for the stick before any stick came; another study is new. The
    # first blank stick is the operator's job's; the rule waits for the next blank one.
    from gateway.media.export import ExportRequest, enqueue_export
    from gateway.media.rules import record_export

    rig = rig_factory()
    rig.store("1.2.826.0.1.1")
    rig.store("1.2.826.0.1.2")
    (waiting,) = enqueue_export(rig.buffer.queue, ExportRequest(("1.2.826.0.1.1",), "usb"))
    record_export(rig.buffer.index, ("1.2.826.0.1.1",), (waiting,), True)  # as Commands.export does
    rig.service.start()
    with caplog.at_level("INFO", logger="gateway.media"):
        rig.usb_sim.insert("usb", None)
        rig.wait_for(MediaInserted, drive="usb")
        deadline = time.monotonic() + 5
        while rig.exporters["usb"].woken < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert rig.exporters["usb"].woken == 1
    assert rig.jobs() == [("export", "usb", "queued")]  # the operator's job only: no rule job
    assert not [p for p in rig.drain() if isinstance(p, (MediaExportQueued, MediaNothingToExport))]
    assert "drive usb: blank usb: for the export already waiting" in caplog.text
    # Once that job is done, the next blank medium is the rules'.
    rig.buffer.queue.complete([waiting])
    rig.usb_sim.pull()
    rig.wait_for(MediaRemoved, drive="usb")
    rig.usb_sim.insert("usb", None)
    queued = rig.wait_for(MediaExportQueued, drive="usb")
    assert queued.study_uids == ("1.2.826.0.1.2",)


def test_a_study_still_arriving_is_left_and_the_medium_alone(rig_factory):
    rig = rig_factory([{"name": "new", "stable_s": 300}])
    rig.store("1.2.826.0.1.2", ago=10)
    rig.service.start()
    rig.cd_sim.insert("dvd", None)
    nothing = rig.wait_for(MediaNothingToExport, drive="cd")
    assert nothing.reason.startswith("rule new: 1 studies still arriving (stable in 29")
    assert nothing.reason.endswith(" s: tried again then if the medium is still in)")
    assert rig.jobs() == []


def test_the_rules_are_tried_again_once_the_study_is_stable_while_the_medium_stays(rig_factory):
    rig = rig_factory([{"name": "new", "stable_s": 3}])
    rig.store("1.2.826.0.1.7", ago=0)
    rig.service.start()
    rig.cd_sim.insert("cd", None)
    assert "still arriving" in rig.wait_for(MediaNothingToExport, drive="cd").reason
    assert rig.wait_for(MediaExportQueued, drive="cd", timeout=15).study_uids == ("1.2.826.0.1.7",)


def test_a_recheck_is_void_once_the_medium_is_pulled(rig_factory):
    rig = rig_factory([{"name": "new", "stable_s": 2}])
    rig.store("1.2.826.0.1.8", ago=0)
    content = rig.tmp / "disc-content"
    content.mkdir()
    make_ct(content / "IM1", study_uid="1.2.826.0.1.9")
    rig.service.start()
    rig.cd_sim.insert("cd", None)
    rig.wait_for(MediaNothingToExport, drive="cd")
    # Another disc, with data, before the first one's studies are stable: imported once, never
    # taken for the blank one the re-check was for.
    rig.cd_sim.pull()
    rig.cd_sim.insert("cd", content)
    rig.wait_for(MediaImportDone, drive="cd")
    time.sleep(4)
    seen = rig.drain()
    assert sum(isinstance(p, MediaImportQueued) for p in seen) == 1
    assert not any(isinstance(p, (MediaExportQueued, MediaFault)) for p in seen)
    assert rig.jobs() == []


def test_no_rule_for_the_drive_and_an_unmarked_rule(rig_factory):
    rig = rig_factory([{"name": "disc-only", "drive": "cd", "mark_exported": False}])
    rig.store("1.2.826.0.1.3")
    rig.service.start()
    rig.usb_sim.insert("usb", None)
    assert rig.wait_for(MediaNothingToExport, drive="usb").reason == "no export rule is for this drive"
    rig.cd_sim.insert("cd", None)
    first = rig.wait_for(MediaExportQueued, drive="cd")
    rig.buffer.queue.complete(list(first.jobs))  # written (the exporter here is a probe)
    rig.cd_sim.pull()
    rig.wait_for(MediaRemoved, drive="cd")
    rig.payloads.clear()
    # Not marked: the next blank disc gets the same study again.
    rig.cd_sim.insert("cd", None)
    assert rig.wait_for(MediaExportQueued, drive="cd").study_uids == ("1.2.826.0.1.3",)
    assert rig.jobs() == [("export", "cd", "done"), ("export", "cd", "queued")]


def test_a_stick_with_dicom_is_imported_on_the_drive_thread_and_the_staging_removed(rig_factory, monkeypatch):
    rig = rig_factory()
    folder = rig.tmp / "stick-content" / "SCANS"
    folder.mkdir(parents=True)
    a = make_ct(folder / "A.DCM", study_uid="1.2.826.0.1.4", number=1)
    b = make_ct(folder / "B.DCM", study_uid="1.2.826.0.1.4", number=2)
    threads = []
    real = service_module.import_tree

    def spy(*args, **kw):
        threads.append(threading.current_thread().name)
        return real(*args, **kw)

    monkeypatch.setattr(service_module, "import_tree", spy)
    rig.service.start()
    rig.usb_sim.insert("usb", rig.tmp / "stick-content")

    assert rig.wait_for(MediaImportQueued, drive="usb").label == "usb"
    finished = rig.wait_for(MediaImportFinished, label="usb")
    assert (finished.imported, finished.skipped, finished.failed) == (2, 0, 0)
    done = rig.wait_for(MediaImportDone, drive="usb")
    assert done.ok and done.import_id == finished.import_id
    assert threads == ["media-usb"]
    rows = {r["sop_uid"]: r["calling_ae"] for r in rig.buffer.index.query("SELECT sop_uid, calling_ae FROM instances")}
    assert rows == {str(a.SOPInstanceUID): "MEDIA:usb", str(b.SOPInstanceUID): "MEDIA:usb"}
    assert rig.jobs("forward") == [("forward", "pacs", "queued")] * 2
    assert not any((rig.tmp / "buffer" / STAGING).iterdir())
    assert not any(isinstance(p, MediaNothingToExport) for p in rig.drain())


def test_a_driver_fault_is_one_event_and_the_drive_stays_served(rig_factory):
    rig = rig_factory()
    rig.store("1.2.826.0.1.5")
    rig.service.start()
    # A stick with no FAT file system: UsbDisk.medium() raises MediaError.
    rig.usb_sim.image.write_bytes(b"\0" * 65536)
    rig.usb_sim.events.feed("add", rig.usb_sim.uevent())
    fault = rig.wait_for(MediaFault, drive="usb")
    assert fault.action == "inspect" and "drive usb" in fault.detail and "\n" not in fault.detail
    assert rig.service.is_alive()
    rig.usb_sim.pull()
    rig.wait_for(MediaRemoved, drive="usb")
    rig.usb_sim.insert("usb", None)
    assert rig.wait_for(MediaExportQueued, drive="usb").study_uids == ("1.2.826.0.1.5",)


def test_an_unexpected_error_in_a_handler_is_one_line_and_the_worker_lives(rig_factory, monkeypatch, caplog):
    rig = rig_factory()
    rig.store("1.2.826.0.1.6")
    calls = []

    def broken(*args, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("surprise")
        return real(*args, **kw)

    real = service_module.decide
    monkeypatch.setattr(service_module, "decide", broken)
    rig.service.start()
    rig.cd_sim.insert("cd", None)
    rig.wait_for(MediaInserted, drive="cd")
    deadline = time.monotonic() + 5
    while "not handled" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    line = [r for r in caplog.records if "not handled" in r.getMessage()]
    assert line and line[0].getMessage() == "drive cd: inserted not handled: KeyError: 'surprise'"
    assert line[0].exc_info is None and rig.service.is_alive()
    rig.cd_sim.pull()
    rig.cd_sim.insert("cd", None)
    assert rig.wait_for(MediaExportQueued, drive="cd").study_uids == ("1.2.826.0.1.6",)


def test_an_operators_import_is_done_by_the_drives_worker_as_on_insertion(rig_factory, monkeypatch):
    """request_import / Commands.import_medium (`dicom-gateway import DRIVE`): a stick put in
    without a uevent (as if its import had to be repeated) is read by the drive's own worker,
    through the same _import, as MEDIA:usb; no medium or a blank one is refused with the reason."""
    from hwsim.media import make_fat_image

    from gateway.commands import Commands

    rig = rig_factory()
    threads = []
    real = service_module.import_tree

    def spy(*args, **kw):
        threads.append(threading.current_thread().name)
        return real(*args, **kw)

    monkeypatch.setattr(service_module, "import_tree", spy)
    rig.service.start()
    cmds = Commands(rig.buffer.queue, rig.config, drives=rig.drives, exporters=rig.exporters,
                    busy=rig.service.busy, request_import=rig.service.request_import)

    r = cmds.import_medium("usb")
    assert r.refused == "import: drive usb has no medium" and not r.usage and not r.ok
    rig.usb_sim.insert("usb", None)  # a blank stick (its insertion goes to the export rules)
    rig.wait_for(MediaNothingToExport, drive="usb")
    r = cmds.import_medium("usb")
    assert r.refused == "import: the usb in drive usb is blank: nothing to import"
    rig.usb_sim.pull()
    rig.wait_for(MediaRemoved, drive="usb")

    folder = rig.tmp / "stick-content" / "SCANS"
    folder.mkdir(parents=True)
    uids = {str(make_ct(folder / f"IM{i}", study_uid="1.2.826.0.1.5", number=i).SOPInstanceUID) for i in (1, 2)}
    make_fat_image(rig.usb_sim.image, rig.usb_sim.stick_bytes, rig.tmp / "stick-content")  # no uevent
    time.sleep(0.3)
    assert not any(isinstance(p, MediaImportQueued) for p in rig.drain(0))  # nothing imported by itself

    r = cmds.import_medium("usb")
    assert r.ok and not r.refused, r
    done = rig.wait_for(MediaImportDone, drive="usb")
    assert r.lines() == [f"import {done.import_id} of drive usb as MEDIA:usb: 2 files: 2 imported, 0 duplicate,"
                         " 0 skipped, 0 failed; 0 flagged",
                         f"the report: dicom-gateway imports {done.import_id}"]
    assert threads == ["media-usb"]
    rows = {r["sop_uid"]: r["calling_ae"] for r in rig.buffer.index.query("SELECT sop_uid, calling_ae FROM instances")}
    assert rows == dict.fromkeys(uids, "MEDIA:usb")
    assert not any((rig.tmp / "buffer" / STAGING).iterdir())

    # Again: the same medium read again, its files now duplicates (the buffer's policy decides).
    r = cmds.import_medium("usb")
    assert not r.refused and r.results[0].message.startswith(f"import {done.import_id + 1} of drive usb")
