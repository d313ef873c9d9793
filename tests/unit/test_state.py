"""The service's state snapshot for `dicom-gateway status` (issue 14 item 11)."""

from __future__ import annotations

from gateway.event_kinds import (DeadLettered, DestinationDown, DiskFull, DiskSpace, Forwarded,
                                 InstancesEvicted, PrinterStatusChanged, QueueDepths, Received,
                                 StoreRefused)
from gateway.events import Event, EventBus
from gateway.state import StateObserver, backlog, read_snapshot, snapshot_path


def test_reachability_and_printer_follow_events(tmp_path):
    obs = StateObserver(EventBus(), tmp_path, ["pacs", "archive"], printer="film")
    assert obs.state["destinations"]["pacs"]["reachable"] is None  # not tried yet
    assert obs.apply(Event("destination-down", {"target": "pacs", "reason": "refused"}, at=10.0))
    # Still down for the same reason: nothing new to write (an SD card is not a log).
    assert not obs.apply(Event("destination-still-down", {"target": "pacs", "reason": "refused"}, at=20.0))
    assert obs.state["destinations"]["pacs"] == {"reachable": False, "since": 10.0, "reason": "refused",
                                                 "last_forwarded": None}
    assert obs.apply(Event("forwarded", {"target": "pacs", "count": 3}, at=30.0))
    assert obs.state["destinations"]["pacs"] == {"reachable": True, "since": 30.0, "reason": "",
                                                 "last_forwarded": 30.0}
    assert obs.apply(Event("printer-status-changed", {"status": "FAILURE", "info": "SUPPLY EMPTY"}, at=40.0))
    assert obs.state["printer"]["status"] == "FAILURE" and obs.state["printer"]["since"] == 40.0
    assert not obs.apply(Event("received", {"sop_uid": "1.2"}))


def test_snapshot_is_written_by_the_running_observer_and_read_back(tmp_path):
    bus = EventBus()
    obs = StateObserver(bus, tmp_path, ["pacs"])
    obs.start()
    try:
        bus.publish(DestinationDown(target="pacs", reason="no association", retry_in=5.0))
        from peers import wait_until

        wait_until(lambda: (read_snapshot(tmp_path) or {}).get("destinations", {}).get("pacs", {})
                   .get("reachable") is False, 10, what="the snapshot to show pacs down")
    finally:
        obs.stop()
    assert not list(tmp_path.glob("*.tmp"))


def test_an_unreadable_snapshot_reads_as_none(tmp_path):
    assert read_snapshot(tmp_path) is None
    snapshot_path(tmp_path).write_text("{not json")
    assert read_snapshot(tmp_path) is None
    snapshot_path(tmp_path).write_text("[1, 2]")
    assert read_snapshot(tmp_path) is None


# -- the snapshot folded from the catalogue's payloads (issue 7 item 3) -----------------------------


def _ev(payload, at):
    return Event(payload.KIND, payload.as_dict(), at=at, payload=payload)


def test_the_fold_gives_the_expected_snapshot(tmp_path):
    obs = StateObserver(EventBus(), tmp_path, ["pacs", "archive"], printer="film")
    assert obs.get_status()["queues"] is None and backlog(obs.get_status()) is None  # not counted yet
    events = [
        _ev(Received(sop_uid="1.2.3", calling_ae="CT1", source="AE:CT1", outcome="stored",
                     routes=("pacs", "archive")), 1.0),
        _ev(Received(sop_uid="1.2.4", calling_ae="USB1", source="MEDIA:USB1", outcome="stored"), 2.0),
        _ev(StoreRefused(sop_uid="1.2.5", calling_ae="CT1", source="AE:CT1", reason="disk full",
                         refusal="disk-full"), 3.0),
        _ev(DiskFull(detail="reserve 100 MB"), 3.0),
        _ev(DestinationDown(target="archive", reason="connection refused", retry_in=2.0), 4.0),
        _ev(Forwarded(target="pacs", count=2), 5.0),
        _ev(DeadLettered(target="pacs", sop_uid="1.2.6", reason="0xA900"), 6.0),
        _ev(QueueDepths(counts=(("forward", "archive", "queued", 2), ("forward", "archive", "in_flight", 1),
                                ("forward", "pacs", "dead", 1), ("print", "film", "committing", 0),
                                ("print", "film", "queued", 3))), 7.0),
        _ev(DiskSpace(free_bytes=50 * 2**20, total_bytes=2**30, reserve_bytes=100 * 2**20), 8.0),
        _ev(InstancesEvicted(reason="reserve", instances=4, bytes=80 * 2**20, free_bytes=130 * 2**20), 9.0),
        _ev(PrinterStatusChanged(status="WARNING", info="FILM LOW"), 10.0),
    ]
    for ev in events:
        obs.apply(ev)
    s = obs.get_status()
    assert s["destinations"] == {
        "pacs": {"reachable": True, "since": 5.0, "reason": "", "last_forwarded": 5.0},
        "archive": {"reachable": False, "since": 4.0, "reason": "connection refused", "last_forwarded": None},
    }
    assert s["printer"] == {"name": "film", "status": "WARNING", "info": "FILM LOW", "since": 10.0}
    assert s["queues"] == {
        "forward": {"archive": {"queued": 2, "in_flight": 1, "committing": 0, "dead": 0},
                    "pacs": {"queued": 0, "in_flight": 0, "committing": 0, "dead": 1}},
        "print": {"film": {"queued": 3, "in_flight": 0, "committing": 0, "dead": 0}},
    }
    assert s["queues_at"] == 7.0
    assert backlog(s) == (6, 1)
    assert s["disk"] == {"free_bytes": 130 * 2**20, "total_bytes": 2**30, "reserve_bytes": 100 * 2**20,
                         "below_reserve": False, "at": 9.0, "last_full": 3.0,
                         "last_full_detail": "reserve 100 MB"}
    assert s["last_received"] == {"at": 2.0, "source": "MEDIA:USB1"}
    assert s["last_forwarded"] == {"at": 5.0, "target": "pacs"}
    assert s["counts"] == {"received": 2, "refused": 1, "forwarded": 2, "dead_lettered": 1}
    # A later count replaces the earlier one: a queue emptied disappears.
    obs.apply(_ev(QueueDepths(counts=(("print", "film", "queued", 1),)), 11.0))
    assert obs.get_status(["queues"]) == {"queues": {"print": {"film": {"queued": 1, "in_flight": 0,
                                                                         "committing": 0, "dead": 0}}}}
    assert backlog(obs.get_status()) == (1, 0)
    # get_status hands out a copy: a reader cannot change the snapshot.
    obs.get_status()["destinations"]["pacs"]["reachable"] = False
    assert obs.get_status()["destinations"]["pacs"]["reachable"] is True


def test_counts_are_written_at_sync_and_reachability_at_once(tmp_path):
    bus = EventBus()
    obs = StateObserver(bus, tmp_path, ["pacs"])
    obs.start()
    try:
        bus.publish(QueueDepths(counts=(("forward", "pacs", "queued", 5),)))
        assert obs.sync()
        assert read_snapshot(tmp_path)["queues"] == {"forward": {"pacs": {"queued": 5, "in_flight": 0,
                                                                           "committing": 0, "dead": 0}}}
        bus.publish(Received(sop_uid="1.2", calling_ae="CT1", source="AE:CT1", outcome="stored"))
        bus.publish(DestinationDown(target="pacs", reason="refused", retry_in=1.0))
        from peers import wait_until

        wait_until(lambda: read_snapshot(tmp_path)["destinations"]["pacs"]["reachable"] is False, 10,
                   what="pacs down in the snapshot, without a sync")
        assert obs.sync()
        snap = read_snapshot(tmp_path)
        assert snap["counts"]["received"] == 1 and snap["last_received"]["source"] == "AE:CT1"
    finally:
        obs.stop()


def test_sync_folds_in_the_callers_thread_when_not_started(tmp_path):
    bus = EventBus()
    obs = StateObserver(bus, tmp_path, ["pacs"])
    bus.publish(Forwarded(target="pacs", count=1))
    assert obs.sync()
    assert read_snapshot(tmp_path)["destinations"]["pacs"]["reachable"] is True


def test_a_drive_shows_what_the_box_does_with_its_medium(tmp_path):
    """The front panel's "busy": inserted, writing, verifying, verified or failed, folded from the
    media service's and the exporter's events."""
    from gateway.event_kinds import ExportFailed, ExportStarted, ExportVerified, ExportWritten, MediaInserted

    obs = StateObserver(EventBus(), tmp_path, [], drives=["cd"])
    seen = []
    for ev in (MediaInserted(drive="cd", medium="cd", blank=True),
               ExportStarted(job_id=4, drive="cd", profile="STD-GEN-CD", studies=1, instances=3, part=1, of=2),
               ExportWritten(job_id=4, drive="cd", volume_id="DICOM_J4", files=6, bytes=1000, studies=1,
                             instances=3),
               ExportFailed(job_id=4, drive="cd", reason="read-back mismatch", state="queued", attempt=1,
                            studies=1, instances=3),
               ExportStarted(job_id=4, drive="cd", profile="STD-GEN-CD", studies=1, instances=3),
               ExportVerified(job_id=4, drive="cd", volume_id="DICOM_J4", studies=1, instances=3)):
        obs.apply(_ev(ev, 1.0))
        cd = obs.get_status(["media"])["media"]["cd"]
        seen.append((cd["busy"], cd["last"]))
    assert seen == [(None, ""), ("writing", "writing export job 4 (part 1 of 2)"),
                    ("verifying", "verifying DICOM_J4"), (None, "export job 4 failed: read-back mismatch"),
                    ("writing", "writing export job 4"), (None, "export job 4 verified as DICOM_J4")]


def test_a_drive_is_empty_once_its_service_watches_it(tmp_path):
    from gateway.event_kinds import MediaInserted, MediaWatching

    obs = StateObserver(EventBus(), tmp_path, [], drives=["cd", "usb"])
    for ev in (MediaWatching(drive="cd"), MediaInserted(drive="usb", medium="usb", blank=False),
               MediaWatching(drive="usb")):
        obs.apply(_ev(ev, 1.0))
    media = obs.get_status(["media"])["media"]
    assert (media["cd"]["present"], media["usb"]["present"], media["usb"]["medium"]) == (False, True, "usb")


def test_a_drive_being_written_shows_its_bytes_until_the_medium_is_settled(tmp_path):
    """export --wait's bar and the panel's media progress read media.<drive>.progress."""
    from gateway.event_kinds import ExportProgress, ExportStarted, ExportVerified, ExportWritten, MediaRemoved

    obs = StateObserver(EventBus(), tmp_path, [], drives=["cd"])
    seen = []
    for ev in (ExportStarted(job_id=4, drive="cd", profile="STD-GEN-CD", studies=1, instances=3),
               ExportProgress(job_id=4, drive="cd", done_bytes=10, total_bytes=40),
               ExportWritten(job_id=4, drive="cd", volume_id="DICOM_J4", files=6, bytes=40, studies=1,
                             instances=3),
               ExportVerified(job_id=4, drive="cd", volume_id="DICOM_J4", studies=1, instances=3),
               ExportStarted(job_id=5, drive="cd", profile="STD-GEN-CD", studies=1, instances=3),
               ExportProgress(job_id=5, drive="cd", done_bytes=20, total_bytes=40),
               MediaRemoved(drive="cd")):
        assert obs.apply(_ev(ev, 2.0)) is True  # written at once
        p = obs.get_status(["media"])["media"]["cd"]["progress"]
        seen.append(None if p is None else (p["job_id"], p["done_bytes"], p["total_bytes"]))
    assert seen == [(4, 0, 0), (4, 10, 40), (4, 10, 40), None, (5, 0, 0), (5, 20, 40), None]


def test_associations_are_counted_and_the_last_refusal_kept(tmp_path):
    from gateway.event_kinds import AssociationClosed, AssociationOpened, AssociationRefused

    obs = StateObserver(EventBus(), tmp_path, ["pacs"])
    obs.apply(_ev(AssociationOpened(calling_ae="CT1", called_ae="EDGE", peer="10.0.0.5", path="storage"), 1.0))
    obs.apply(_ev(AssociationOpened(calling_ae="PRN", called_ae="EDGE", peer="10.0.0.6", path="pynetdicom"), 2.0))
    obs.apply(_ev(AssociationRefused(calling_ae="WHO", called_ae="EDGE", peer="10.0.0.9", result=1, source=1,
                                     diagnostic=3, reason="calling AE title not recognised"), 3.0))
    obs.apply(_ev(AssociationClosed(calling_ae="CT1", called_ae="EDGE", peer="10.0.0.5", path="storage",
                                    how="released", seconds=2.0), 4.0))
    # A close whose opening this observer never saw: no negative count.
    for _ in range(3):
        obs.apply(_ev(AssociationClosed(calling_ae="X", called_ae="EDGE", peer="10.0.0.7", path="storage",
                                        how="aborted", seconds=0.1), 5.0))
    a = obs.get_status(["associations"])["associations"]
    assert (a["open"], a["accepted"], a["refused"]) == (0, 2, 1)
    assert a["last_refused"] == {"at": 3.0, "calling_ae": "WHO", "called_ae": "EDGE", "peer": "10.0.0.9",
                                 "reason": "calling AE title not recognised", "result": 1, "source": 1,
                                 "diagnostic": 3}


def test_config_problems_are_kept_the_last_ten_and_written_at_once(tmp_path):
    from gateway.event_kinds import ConfigProblem
    from gateway.state import CONFIG_PROBLEMS_KEPT

    obs = StateObserver(EventBus(), tmp_path, ["pacs"])
    assert obs.get_status()["config_problems"] == []
    # Written at once: a start that went wrong is what the operator looks at next.
    assert obs.apply(_ev(ConfigProblem(key="panel", detail="no display at 0x27"), 1.0)) is True
    for i in range(CONFIG_PROBLEMS_KEPT + 2):
        obs.apply(_ev(ConfigProblem(key="status_http.port", detail=f"try {i}"), 2.0 + i))
    problems = obs.get_status(["config_problems"])["config_problems"]
    assert len(problems) == CONFIG_PROBLEMS_KEPT == 10
    assert problems[0] == {"key": "status_http.port", "detail": "try 2", "at": 4.0}   # the oldest ones went
    assert problems[-1] == {"key": "status_http.port", "detail": "try 11", "at": 13.0}


def test_an_import_that_skipped_files_is_not_called_failed(tmp_path):
    """A medium read and imported with a file skipped (a text file beside the DICOM ones) is
    "imported, not every file"; only a medium that could not be read or imported is "failed"."""
    from gateway.event_kinds import MediaImportDone

    obs = StateObserver(EventBus(), tmp_path, [], drives=["usb"])
    seen = []
    for ev in (MediaImportDone(drive="usb", ok=True, import_id=1, detail="2 files: 2 imported"),
               MediaImportDone(drive="usb", ok=False, import_id=2, detail="3 files: 2 imported, 1 skipped"),
               MediaImportDone(drive="usb", ok=False, import_id=0, detail="drive usb: no medium", read=False)):
        obs.apply(_ev(ev, 3.0))
        seen.append(obs.get_status(["media"])["media"]["usb"]["last"])
    assert seen == ["imported: 2 files: 2 imported", "imported, not every file: 3 files: 2 imported, 1 skipped",
                    "import failed: drive usb: no medium"]


def test_capture_and_worklist_are_folded_without_patient_names(tmp_path):
    from gateway.event_kinds import (CaptureClipStarted, CaptureFailed, CaptureSignal, CaptureStored,
                                     ProcedureSelected, WorklistFailed, WorklistRefreshed)

    obs = StateObserver(EventBus(), tmp_path, [])
    for ev in (WorklistRefreshed(items=3, source="cache", at=50.0),
               ProcedureSelected(key="SPS1|ACC1|1.2.3", patient_id="PID1", scheduled=True, how="auto"),
               CaptureSignal(device="grabber", state="up", width=640, height=480, fps=30.0),
               CaptureClipStarted(device="grabber", seconds=5.0, procedure="SPS1|ACC1|1.2.3"),
               CaptureSignal(device="grabber", state="lost"),
               CaptureStored(device="grabber", what="clip", sop_uid="1.2.9", procedure="SPS1|ACC1|1.2.3",
                             scheduled=True, frames=40, dropped=2, note="the signal was lost after 1.3 s"),
               CaptureFailed(device="grabber", what="still", reason="no signal on grabber: nothing captured"),
               WorklistFailed(reason="association rejected", using_cache_from=50.0)):
        obs.apply(_ev(ev, 100.0))
    s = obs.get_status(["capture", "worklist"])
    cap, wl = s["capture"], s["worklist"]
    assert (cap["signal"], cap["width"], cap["recording"], cap["stored"]) == ("lost", 0, None, 1)
    assert cap["last"]["frames"] == 40 and cap["last"]["dropped"] == 2 and "signal" in cap["last"]["note"]
    assert cap["last_failed"]["reason"].startswith("no signal")
    assert (wl["items"], wl["source"], wl["current"]["patient_id"], wl["current"]["how"]) == (3, "cache", "PID1", "auto")
    assert wl["failed"]["reason"] == "association rejected" and wl["failed"]["using_cache_from"] == 50.0
