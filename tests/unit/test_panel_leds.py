"""Every LED in every state (gateway/panel/leds.py), from real event payloads folded by the panel,
and the alarm states behind the error LED (gateway/panel/alarms.py, ISA-18.2)."""

from __future__ import annotations

import pytest

from gateway import event_kinds as K
from gateway.events import Event
from gateway.panel import leds
from gateway.panel.alarms import Alarms, AlarmState
from gateway.panel.facts import FOLDED, Facts
from gateway.panel.leds import FAST, FLICKER, OFF, ON, SLOW


def ev(payload, at=1000.0):
    return Event(payload.KIND, payload.as_dict(), at, payload)


def fold(*payloads, at=1000.0):
    facts, alarms = Facts(), Alarms()
    for p in payloads:
        facts.apply(ev(p, at), alarms)
    return facts, alarms


TICK = K.QueueDepths(counts=())
GOOD_DISK = K.DiskSpace(free_bytes=10_000, total_bytes=20_000, reserve_bytes=1_000)
LOW_DISK = K.DiskSpace(free_bytes=500, total_bytes=20_000, reserve_bytes=1_000)


def test_power():
    assert leds.power(fold()[0]) is SLOW                                     # starting: no tick yet
    assert leds.power(fold(TICK, GOOD_DISK)[0]) is ON                         # ready
    assert leds.power(fold(TICK, LOW_DISK)[0]) is FAST                        # refusing images
    assert leds.power(fold(TICK, K.DiskFull(detail="ENOSPC"))[0]) is FAST
    assert leds.power(fold(TICK, LOW_DISK, GOOD_DISK)[0]) is ON


def test_network():
    assert leds.network(fold()[0]) is OFF                                      # nothing tried yet
    up = K.DestinationUp(target="pacs")
    down = K.DestinationDown(target="pacs", reason="connection refused", retry_in=10)
    assert leds.network(fold(up)[0]) is ON
    assert leds.network(fold(K.Forwarded(target="pacs", count=2))[0]) is ON
    assert leds.network(fold(up, K.DestinationDown(target="ris", reason="x", retry_in=1))[0]) is SLOW
    assert leds.network(fold(down)[0]) is SLOW
    assert leds.network(fold(down, K.DestinationStillDown(target="pacs", reason="x", retry_in=20))[0]) is SLOW
    assert leds.network(fold(down, up)[0]) is ON


def test_activity_flickers_for_two_seconds_after_an_instance_moved():
    facts, _ = fold(K.Received(sop_uid="1.2", calling_ae="CT", source="AE:CT", outcome="stored"), at=100.0)
    assert leds.activity(facts, 100.5) is FLICKER
    assert leds.activity(facts, 100.0 + leds.ACTIVITY_S) is OFF
    assert leds.activity(fold()[0], 100.0) is OFF
    assert leds.activity(fold(K.Forwarded(target="pacs", count=1), at=50.0)[0], 51.0) is FLICKER
    assert leds.activity(fold(K.Printed(uid="1.3", film=1, preview="p.png"), at=50.0)[0], 51.0) is FLICKER


def test_backlog():
    waiting = K.QueueDepths(counts=(("forward", "pacs", "queued", 12), ("forward", "pacs", "in_flight", 1)))
    dead = K.QueueDepths(counts=(("forward", "pacs", "queued", 3), ("print", "film", "dead", 1)))
    exports = K.QueueDepths(counts=(("export", "cd", "queued", 4),))
    assert leds.backlog(fold(TICK)[0]) is OFF
    facts, _ = fold(waiting)
    assert (facts.waiting, facts.dead, leds.backlog(facts)) == (13, 0, ON)          # draining
    assert leds.backlog(fold(K.DestinationDown(target="pacs", reason="x", retry_in=1), waiting)[0]) is SLOW
    assert leds.backlog(fold(dead)[0]) is FAST                                        # an operator is needed
    facts, _ = fold(exports)
    assert leds.backlog(facts) is OFF and facts.drives["cd"].exports_waiting == 4    # media's, not backlog


def test_media():
    inserted = K.MediaInserted(drive="cd", medium="cd", blank=True)
    assert leds.media(fold()[0]) is OFF
    assert leds.media(fold(inserted)[0]) is ON
    started = K.ExportStarted(job_id=4, drive="cd", profile="STD-GEN-CD", studies=1, instances=9)
    written = K.ExportWritten(job_id=4, drive="cd", volume_id="DICOM_J4", files=12, bytes=1, studies=1, instances=9)
    verified = K.ExportVerified(job_id=4, drive="cd", volume_id="DICOM_J4", studies=1, instances=9)
    failed = K.ExportFailed(job_id=4, drive="cd", reason="read-back mismatch", state="queued", attempt=1,
                            studies=1, instances=9)
    for busy in (K.MediaExportQueued(drive="cd", rule="r", studies=1, study_uids=("1",), copies=1, jobs=(4,)),
                 started, written, K.MediaImportQueued(drive="cd", label="X")):
        assert leds.media(fold(inserted, busy)[0]) is SLOW, busy
    assert leds.media(fold(inserted, started, written, verified)[0]) is ON
    assert leds.media(fold(inserted, started, failed)[0]) is FAST
    assert leds.media(fold(inserted, K.MediaFault(drive="cd", action="inspect", detail="no tray"))[0]) is FAST
    assert leds.media(fold(inserted, K.MediaImportDone(drive="cd", ok=False, detail="unreadable"))[0]) is FAST
    assert leds.media(fold(inserted, started, failed, K.MediaRemoved(drive="cd"))[0]) is OFF


def test_printer():
    assert leds.printer(fold()[0]) is OFF
    assert leds.printer(fold(K.PrinterStatusChanged(status="NORMAL", info="NORMAL"))[0]) is OFF
    job = K.PrintJobStatus(uid="1.4", status="PRINTING", info="", calling_ae="US")
    assert leds.printer(fold(job)[0]) is ON
    assert leds.printer(fold(job, K.PrintJobStatus(uid="1.4", status="DONE", info="", calling_ae="US"))[0]) is OFF
    assert leds.printer(fold(K.PrinterStatusChanged(status="WARNING", info="SUPPLY LOW"))[0]) is SLOW
    assert leds.printer(fold(K.PrinterStatusChanged(status="FAILURE", info="FILM JAM"))[0]) is FAST


def test_error_led_follows_the_alarm_states():
    alarms = Alarms()
    assert leds.error(alarms) is OFF
    alarms.raise_("printer", "PRINTER FAULT", "FILM JAM", 1.0)
    assert leds.error(alarms) is FAST and alarms.get("printer").state is AlarmState.UNACK_ACTIVE
    alarms.acknowledge()
    assert leds.error(alarms) is ON and alarms.get("printer").state is AlarmState.ACK_ACTIVE
    alarms.raise_("printer", "PRINTER FAULT", "FILM JAM", 2.0)       # still the same standing fault
    assert leds.error(alarms) is ON
    alarms.clear("printer")
    assert leds.error(alarms) is OFF and alarms.get("printer") is None
    alarms.raise_("printer", "PRINTER FAULT", "FILM JAM", 3.0)
    alarms.clear("printer")                                           # cleared before anyone looked
    assert leds.error(alarms) is SLOW and alarms.get("printer").state is AlarmState.UNACK_RTN
    assert alarms.acknowledge().key == "printer" and leds.error(alarms) is OFF
    alarms.raise_("dead:pacs", "JOB GIVEN UP", "pacs: 0xA700", 4.0, momentary=True)
    assert leds.error(alarms) is SLOW
    alarms.raise_("dead:pacs", "JOB GIVEN UP", "pacs: 0xA700", 5.0, momentary=True)
    alarms.raise_("disk", "DISK LOW", "", 6.0)
    assert [a.key for a in alarms.unacknowledged()] == ["disk", "dead:pacs"]   # newest first
    assert alarms.acknowledge_all() == 2 and leds.error(alarms) is ON          # the disk stands
    assert alarms.acknowledge() is None and alarms.acknowledge("nothing") is None


def test_which_events_raise_alarms():
    cases = [
        (K.DeadLettered(target="pacs", sop_uid="1.2", reason="0xA700"), "dead:pacs", "pacs: 0xA700"),
        (K.DiskFull(detail="ENOSPC"), "disk", "images are refused: the buffer is full"),
        (LOW_DISK, "disk", "free space is under the reserve: images are refused"),
        (K.BufferWriteError(detail="EIO"), "buffer", "EIO"),
        (K.PrinterStatusChanged(status="FAILURE", info="FILM JAM"), "printer", "FILM JAM"),
        (K.PrintJobStatus(uid="1", status="FAILURE", info="BAD FILM", calling_ae="US"), "print-failed", "BAD FILM"),
        (K.PrintHeld(uid="1", job_id=7, reason="printer lost power"), "print-held", "job 7: printer lost power"),
        (K.ExportFailed(job_id=4, drive="cd", reason="disc full", state="queued", attempt=1, studies=1,
                        instances=2), "export:cd", "cd: disc full"),
        (K.MediaFault(drive="usb", action="import", detail="I/O error"), "media:usb", "usb import: I/O error"),
        (K.MediaImportDone(drive="usb", ok=False, detail="unreadable"), "import:usb", "usb: unreadable"),
    ]
    for payload, key, detail in cases:
        _, alarms = fold(TICK, payload)
        assert [(a.key, a.detail) for a in alarms.all()] == [(key, detail)], payload
    quiet = [K.DestinationDown(target="pacs", reason="x", retry_in=1), K.PrinterStatusChanged(status="WARNING", info="x"),
             K.StoreRefused(sop_uid="1", calling_ae="CT", source="AE:CT", reason="x"), GOOD_DISK,
             K.MediaImportDone(drive="usb", ok=True)]
    for payload in quiet:
        assert fold(payload)[1].all() == [], payload


def test_standing_alarms_clear_when_the_condition_goes():
    facts, alarms = fold(TICK, LOW_DISK)
    alarms.acknowledge()
    facts.apply(ev(GOOD_DISK), alarms)
    assert alarms.all() == []
    _, alarms = fold(K.PrinterStatusChanged(status="FAILURE", info="FILM JAM"))
    alarms.acknowledge()
    Facts().apply(ev(K.PrinterStatusChanged(status="NORMAL", info="NORMAL")), alarms)
    assert alarms.all() == []


def test_led_states_names_every_led_and_the_fold_covers_its_kinds():
    states = leds.led_states(Facts(), Alarms(), 0.0)
    assert tuple(states) == leds.LEDS
    assert set(FOLDED) <= set(K.CATALOGUE)


@pytest.mark.parametrize("pattern, t, lit", [(ON, 0.3, True), (OFF, 0.3, False), (SLOW, 0.2, True), (SLOW, 0.7, False),
                                             (FAST, 0.1, True), (FAST, 0.2, False), (FAST, 0.3, True)])
def test_a_pattern_is_lit_by_its_phase(pattern, t, lit):
    assert pattern.lit(t) is lit
