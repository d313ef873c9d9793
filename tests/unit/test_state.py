"""The service's state snapshot for `dicom-gateway status` (issue 14 item 11)."""

from __future__ import annotations

from gateway.events import Event, EventBus
from gateway.state import StateObserver, read_snapshot, snapshot_path


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
        bus.publish("destination-down", target="pacs", reason="no association")
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
