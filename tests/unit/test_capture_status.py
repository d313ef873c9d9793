"""`dicom-gateway status`'s capture lines (operator_views.capture_lines) from a snapshot folded by
the state observer: what the operator at the box reads about the grabber and the procedure."""

from __future__ import annotations

from gateway.config import Config
from gateway.event_kinds import (CaptureFailed, CaptureSignal, CaptureStored, ProcedureSelected, WorklistFailed,
                                 WorklistRefreshed)
from gateway.events import Event, EventBus
from gateway.operator_views import capture_lines
from gateway.state import StateObserver


def _snapshot(tmp_path, *payloads):
    obs = StateObserver(EventBus(), tmp_path, [])
    for i, p in enumerate(payloads):
        obs.apply(Event(p.KIND, p.as_dict(), 1000.0 + i, p))
    return obs.get_status()


def _clock(t):
    return "-" if t is None else f"t{t:g}"


def _config(worklist=True):
    return Config.model_validate({"capture": {"enabled": True}, "worklist": {"enabled": worklist}})


def test_a_capturing_box_says_signal_last_object_and_the_patient_id(tmp_path):
    snap = _snapshot(tmp_path, WorklistRefreshed(items=4, source="scp", at=990.0),
                     ProcedureSelected(key="K1", patient_id="PID7", scheduled=True),
                     CaptureSignal(device="grabber", state="up", width=640, height=480, fps=30.0),
                     CaptureStored(device="grabber", what="clip", sop_uid="1.2", procedure="K1", scheduled=True,
                                   frames=300, dropped=3, note="the signal was lost after 10.0 s"))
    lines = capture_lines(_config(), snap, _clock)
    assert lines == ["capture (sim): signal 640x480 at 30 fps since t1002; 1 objects captured since start",
                     "    last: clip of 300 frames at t1003 (3 frames dropped); the signal was lost after 10.0 s",
                     "    procedure: Patient ID PID7; worklist of 4 items (fetched t990)"]


def test_no_signal_a_failure_and_a_failing_ris_are_said(tmp_path):
    snap = _snapshot(tmp_path, CaptureSignal(device="grabber", state="lost"),
                     CaptureFailed(device="grabber", what="still", reason="no signal on grabber: nothing captured"),
                     ProcedureSelected(key="U1", patient_id="UNSCHED-1", scheduled=False, how="unscheduled"),
                     WorklistFailed(reason="association rejected", using_cache_from=0.0))
    lines = capture_lines(_config(), snap, _clock)
    assert lines[0].startswith("capture (sim): NO SIGNAL since t1000")
    assert lines[1] == "    last failed: still at t1001: no signal on grabber: nothing captured"
    assert lines[2] == ("    procedure: Patient ID UNSCHED-1 (UNSCHEDULED); worklist SCP failing since t1003 "
                        "(association rejected); no worklist: unscheduled captures only")


def test_a_box_that_does_not_capture_prints_nothing_and_a_stopped_one_says_so(tmp_path):
    assert capture_lines(Config.model_validate({}), {}, _clock) == []
    assert capture_lines(_config(), None, _clock) == ["capture (sim): unknown (service not running)"]


def test_a_failing_mpps_scp_is_said_with_the_steps_waiting(tmp_path):
    from gateway.event_kinds import MppsFailed, MppsSent, QueueDepths

    cfg = Config.model_validate({"capture": {"enabled": True}, "mpps": {"enabled": True}})
    snap = _snapshot(tmp_path, MppsSent(mpps_uid="1.2.3", step="create", status="IN PROGRESS"),
                     MppsFailed(mpps_uid="1.2.3", step="set", reason="no association with RIS@127.0.0.1:104",
                                attempt=0),
                     MppsFailed(mpps_uid="1.2.4", step="create", reason="no association with RIS@127.0.0.1:104",
                                attempt=0),
                     QueueDepths(counts=(("mpps", "mpps", "queued", 2),)))
    lines = capture_lines(cfg, snap, _clock)
    assert lines[-1] == "    MPPS to RIS: FAILING since t1001: no association with RIS@127.0.0.1:104; 2 steps waiting"
    snap = _snapshot(tmp_path, MppsFailed(mpps_uid="1.2.3", step="set", reason="x", attempt=1),
                     MppsSent(mpps_uid="1.2.3", step="set", status="COMPLETED"))
    assert capture_lines(cfg, snap, _clock)[-1] == "    MPPS to RIS: last step COMPLETED accepted t1001; 0 steps waiting"
