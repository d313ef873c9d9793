"""The front panel as a whole (gateway/panel/panel.py): the states issue 9 names (ready, receiving,
PACS down with backlog, printer jammed, media writing / done / failed, disk low, error
acknowledged), every button in every state, short and long, at 16 and 20 columns. Time is a fake
clock: a long press is 1.2 s of it, not of sleep."""

from __future__ import annotations

import pytest

from gateway import event_kinds as K
from gateway.commands import CommandResult, Commands
from gateway.events import Event
from gateway import config
from gateway.config.panel import PanelSection
from gateway.panel import Panel, StudyChoice, recent_studies
from gateway.panel.display import encode_a00
from gateway.panel.leds import FAST, FLICKER, OFF, ON, SLOW


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Recorder:
    """Stands for gateway.commands.Commands: records the calls, answers like it."""

    def __init__(self, refuse: str = "", raises: Exception | None = None):
        self.calls: list[tuple] = []
        self.refuse, self.raises = refuse, raises

    def export(self, study_uids, drive=None, copies=1):
        self.calls.append(("export", tuple(study_uids), drive))
        return self._answer("export", "1 media queued for drive " + str(drive))

    def eject(self, drive):
        self.calls.append(("eject", drive))
        return self._answer("eject", f"drive {drive}: medium released")

    def _answer(self, verb, summary):
        if self.raises:
            raise self.raises
        return CommandResult(verb, refused=self.refuse) if self.refuse else CommandResult(verb, summary=summary)


STUDIES = [StudyChoice("1.2.3", "PID42", "Yamada^Tarou=山田^太郎=やまだ^たろう", "20261129", "CT"),
           StudyChoice("1.2.4", "PID7", "Müller^Jürgen", "20261128", "MR")]


def make(width=16, drives=("cd",), printer=True, studies=STUDIES, capture=None, commands=None, **settings):
    clock = Clock()
    panel = Panel(commands or Recorder(), drives=drives, printer=printer, studies=lambda: list(studies),
                  capture=capture, settings=PanelSection(columns=width, **settings), clock=clock)
    return panel, clock


def feed(panel, clock, *payloads):
    for p in payloads:
        panel.apply(Event(p.KIND, p.as_dict(), clock.t, p))


def tap(panel, clock, button, hold=0.1):
    panel.button_down(button)
    clock.t += hold
    panel.tick()
    panel.button_up(button)


def hold(panel, clock, button):
    tap(panel, clock, button, hold=1.2)


def lines(panel):
    one, two = panel.lines()
    assert len(one) == len(two) == panel.settings.columns
    encode_a00(one + two)  # only what the ROM shows
    return one.rstrip(), two.rstrip()


TICK = K.QueueDepths(counts=())
DOWN = K.DestinationDown(target="pacs", reason="connection refused", retry_in=30)
BACKLOG = K.QueueDepths(counts=(("forward", "pacs", "queued", 12),))
JAM = K.PrinterStatusChanged(status="FAILURE", info="FILM JAM")
INSERTED = K.MediaInserted(drive="cd", medium="cd", blank=True)
STARTED = K.ExportStarted(job_id=4, drive="cd", profile="STD-GEN-CD", studies=2, instances=90, part=1, of=2)
WRITTEN = K.ExportWritten(job_id=4, drive="cd", volume_id="DICOM_J4", files=93, bytes=1, studies=2, instances=90,
                          part=1, of=2)
VERIFIED = K.ExportVerified(job_id=4, drive="cd", volume_id="DICOM_J4", studies=2, instances=90, part=1, of=2)
FAILED = K.ExportFailed(job_id=4, drive="cd", reason="read-back mismatch", state="queued", attempt=1, studies=2,
                        instances=90)
LOW = K.DiskSpace(free_bytes=10, total_bytes=1000, reserve_bytes=100)


# -- the states ---------------------------------------------------------------------------------------
def test_starting_then_ready():
    panel, clock = make()
    assert lines(panel) == ("STARTING", "QUEUE 0   DEAD 0")
    assert panel.leds()["power"] is SLOW
    feed(panel, clock, TICK, K.DestinationUp(target="pacs"))
    assert lines(panel) == ("READY", "QUEUE 0   DEAD 0")
    assert {k: v.name for k, v in panel.leds().items()} == {
        "power": "on", "network": "on", "activity": "off", "backlog": "off", "media": "off", "printer": "off",
        "error": "off"}


def test_receiving():
    panel, clock = make()
    feed(panel, clock, TICK, K.Received(sop_uid="1.9", calling_ae="CT1", source="AE:CT1", outcome="stored"))
    assert lines(panel)[0] == "RECEIVING" and panel.leds()["activity"] is FLICKER
    clock.t += 3
    assert lines(panel)[0] == "READY" and panel.leds()["activity"] is OFF


def test_pacs_down_with_backlog():
    panel, clock = make()
    feed(panel, clock, TICK, DOWN, BACKLOG)
    assert lines(panel) == ("PACS DOWN", "QUEUE 12  DEAD 0")
    assert (panel.leds()["network"], panel.leds()["backlog"], panel.leds()["error"]) == (SLOW, SLOW, OFF)
    feed(panel, clock, K.DestinationUp(target="pacs"))
    assert lines(panel)[0] == "READY" and panel.leds()["backlog"] is ON


def test_printer_jammed_then_acknowledged_then_cleared():
    panel, clock = make()
    feed(panel, clock, TICK, JAM)
    assert lines(panel) == ("!PRINTER FAULT", "FILM JAM")
    assert (panel.leds()["printer"], panel.leds()["error"]) == (FAST, FAST)
    tap(panel, clock, "ack")
    assert lines(panel)[0] == "READY"                      # acknowledged: the pages are back
    assert (panel.leds()["printer"], panel.leds()["error"]) == (FAST, ON)
    hold(panel, clock, "next")
    hold(panel, clock, "next")
    hold(panel, clock, "next")
    assert lines(panel) == ("PRINTER  FAILURE", "FILM JAM")
    feed(panel, clock, K.PrinterStatusChanged(status="NORMAL", info="NORMAL"))
    assert panel.leds()["error"] is OFF and panel.leds()["printer"] is OFF


def test_media_writing_verifying_done():
    panel, clock = make(width=20)
    feed(panel, clock, TICK, INSERTED)
    hold(panel, clock, "next")
    hold(panel, clock, "next")                             # status -> studies -> media
    assert lines(panel) == ("CD          CD BLANK", "")
    feed(panel, clock, STARTED)
    assert lines(panel) == ("CD                CD", "WRITING 1/2") and panel.leds()["media"] is SLOW
    feed(panel, clock, K.ExportProgress(job_id=4, drive="cd", done_bytes=0, total_bytes=0))   # mastering
    assert lines(panel)[1] == "WRITING 1/2"
    feed(panel, clock, K.ExportProgress(job_id=4, drive="cd", done_bytes=450, total_bytes=1000))
    assert lines(panel)[1] == "WRITING 1/2 45%"
    feed(panel, clock, K.ExportProgress(job_id=4, drive="cd", done_bytes=1000, total_bytes=1000))
    assert lines(panel)[1] == "WRITING 1/2 100%"
    feed(panel, clock, WRITTEN)
    assert lines(panel)[1] == "VERIFYING"
    feed(panel, clock, VERIFIED)
    assert lines(panel)[1] == "VERIFIED" and panel.leds()["media"] is ON and panel.leds()["error"] is OFF


def test_a_drive_is_empty_once_watched_not_before():
    panel, clock = make(width=20)
    feed(panel, clock, TICK)
    hold(panel, clock, "next")
    hold(panel, clock, "next")                             # status -> studies -> media
    assert lines(panel)[0] == "CD                 ?"       # nothing heard from the drive yet
    feed(panel, clock, K.MediaWatching(drive="cd"))
    assert lines(panel)[0] == "CD             EMPTY"
    panel, clock = make(width=20)                          # a disc in at start: its insert stands
    feed(panel, clock, TICK, INSERTED, K.MediaWatching(drive="cd"))
    hold(panel, clock, "next")
    hold(panel, clock, "next")
    assert lines(panel)[0] == "CD          CD BLANK"


def test_a_blank_disc_with_nothing_for_it_says_so_whole_on_16_columns():
    panel, clock = make(width=16)
    feed(panel, clock, TICK, INSERTED, K.MediaNothingToExport(drive="cd", reason="no study matches a rule"))
    hold(panel, clock, "next")
    hold(panel, clock, "next")
    assert lines(panel) == ("CD      CD BLANK", "NOTHING TO WRITE")


def test_the_capture_page_shows_the_patient_id_the_signal_and_what_was_taken():
    asked = []
    panel, clock = make(capture=lambda long: asked.append(long) or CommandResult("capture", summary="still stored"))
    feed(panel, clock, TICK)
    hold(panel, clock, "next")                             # status -> capture (first when there is a grabber)
    assert lines(panel) == ("NO PATIENT", "NO VIDEO YET")
    feed(panel, clock, K.CaptureSignal(device="grabber", state="up", width=640, height=480, fps=30.0),
         K.ProcedureSelected(key="K1", patient_id="PID-7", scheduled=True))
    assert lines(panel) == ("ID PID-7", "READY")
    feed(panel, clock, K.CaptureStored(device="grabber", what="still", sop_uid="1.2", procedure="K1",
                                       scheduled=True),
         K.CaptureClipStarted(device="grabber", seconds=10.0, procedure="K1"))
    assert lines(panel) == ("ID PID-7", "RECORDING     #1")
    feed(panel, clock, K.CaptureSignal(device="grabber", state="lost"))
    assert lines(panel) == ("ID PID-7", "NO SIGNAL     #1")
    feed(panel, clock, K.ProcedureSelected(key="U1", patient_id="UNSCHED20261129-001", scheduled=False),
         K.CaptureSignal(device="grabber", state="up", width=640, height=480, fps=30.0))
    # A Patient ID longer than the line is cut with a mark, never silently.
    assert lines(panel) == ("UNSCHED20261129>", "UNSCHEDULED")
    tap(panel, clock, "capture")
    assert lines(panel) == ("STILL STORED", "UNSCHED20261129>") and asked == [False]


def test_without_a_grabber_there_is_no_capture_page():
    panel, clock = make()
    feed(panel, clock, TICK)
    hold(panel, clock, "next")
    assert lines(panel)[0] != "NO PATIENT"


def test_media_failed():
    panel, clock = make()
    feed(panel, clock, TICK, INSERTED, STARTED, FAILED)
    assert lines(panel) == ("!EXPORT FAILED", "cd: read-back mi")
    assert (panel.leds()["media"], panel.leds()["error"]) == (FAST, SLOW)   # momentary: already over
    tap(panel, clock, "ack")
    assert panel.leds()["error"] is OFF and panel.leds()["media"] is FAST   # until the disc is out
    feed(panel, clock, K.MediaRemoved(drive="cd"))
    assert panel.leds()["media"] is OFF


def test_disk_low():
    panel, clock = make()
    feed(panel, clock, TICK, LOW)
    assert lines(panel) == ("!DISK LOW", "free space is un")
    assert (panel.leds()["power"], panel.leds()["error"]) == (FAST, FAST)
    tap(panel, clock, "ack")
    assert lines(panel)[0] == "DISK LOW" and panel.leds()["error"] is ON
    feed(panel, clock, LOW)                                  # the next tick is no news
    assert panel.leds()["error"] is ON
    feed(panel, clock, K.DiskSpace(free_bytes=500, total_bytes=1000, reserve_bytes=100))
    assert lines(panel)[0] == "READY" and panel.leds()["error"] is OFF and panel.leds()["power"] is ON


def test_several_alarms_walked_and_acknowledged_at_once():
    panel, clock = make()
    feed(panel, clock, TICK, JAM, K.DeadLettered(target="pacs", sop_uid="1.2", reason="0xA700"))
    assert lines(panel)[0] == "!JOB GIVEN U 1/2"          # 16 columns: the title is cut, not the count
    tap(panel, clock, "next")
    assert lines(panel)[0] == "!PRINTER FAU 2/2"
    tap(panel, clock, "previous")
    assert lines(panel)[0] == "!JOB GIVEN U 1/2"
    hold(panel, clock, "ack")
    assert panel.alarms.unacknowledged() == [] and lines(panel)[0] == "READY"
    assert panel.leds()["error"] is ON                        # the jam stands


# -- every button in every state -------------------------------------------------------------------------
def test_export_needs_a_study_on_the_display_and_a_long_press():
    rec = Recorder()
    panel, clock = make(width=20, commands=rec)
    feed(panel, clock, TICK)
    tap(panel, clock, "export")                              # from status: go to the studies
    assert lines(panel) == ("Yamada Tarou", "PID42      CT 261129")
    tap(panel, clock, "export")
    assert lines(panel) == ("HOLD EXPORT", "to write cd") and rec.calls == []
    clock.t += 5                                              # the message goes by itself
    tap(panel, clock, "next")
    assert lines(panel) == ("Müller Jürgen", "PID7       MR 261128")
    hold(panel, clock, "export")
    assert rec.calls == [("export", ("1.2.4",), "cd")]
    assert lines(panel) == ("EXPORT OK", "1 media queued for d")


def test_export_in_alarm_view_is_refused_and_eject_capture_still_work():
    rec = Recorder()
    asked = []
    panel, clock = make(commands=rec, capture=lambda long: asked.append(long) or CommandResult(
        "capture", summary="clip stored" if long else "frame 1 stored"))
    feed(panel, clock, TICK, FAILED)
    for how in (tap, hold):
        how(panel, clock, "export")
        assert lines(panel) == ("ACK ALARM FIRST", "then choose stud")
    hold(panel, clock, "eject")
    assert rec.calls == [("eject", "cd")] and lines(panel) == ("EJECT OK", "drive cd: medium")
    tap(panel, clock, "capture")
    assert lines(panel) == ("STILL STORED", "")
    hold(panel, clock, "capture")                            # long: a clip
    assert lines(panel) == ("RECORDING CLIP", "") and asked == [False, True]
    clock.t += 5
    assert lines(panel)[0] == "!EXPORT FAILED"               # back to the alarm when the message ends


def test_no_studies_no_drive_no_grabber():
    panel, clock = make(drives=(), studies=[], printer=False)
    feed(panel, clock, TICK)
    hold(panel, clock, "export")
    assert lines(panel) == ("NO STUDIES", "to export")
    tap(panel, clock, "eject")
    assert lines(panel) == ("NO MEDIA DRIVE", "")
    hold(panel, clock, "capture")
    assert lines(panel) == ("NO GRABBER", "capture is off")
    tap(panel, clock, "ack")                                 # dismisses the message
    assert lines(panel)[0] == "READY"
    tap(panel, clock, "ack")
    assert lines(panel) == ("NO NEW ALARMS", "0 standing")
    tap(panel, clock, "next")                                # only the status page: stays there
    assert lines(panel)[0] == "READY"


def test_refusals_and_failures_are_shown_not_raised():
    panel, clock = make(commands=Recorder(refuse="eject: drive cd is writing or verifying its medium; it ejects"))
    tap(panel, clock, "eject")
    assert lines(panel) == ("EJECT REFUSED", "drive cd is writ")
    panel, clock = make(commands=Recorder(raises=RuntimeError("index locked")),
                        capture=lambda long: (_ for _ in ()).throw(OSError("no signal")))
    tap(panel, clock, "eject")
    assert lines(panel) == ("EJECT FAILED", "index locked")
    tap(panel, clock, "capture")
    assert lines(panel) == ("CAPTURE FAILED", "no signal")


def test_eject_with_the_real_commands_facade_refuses_an_unknown_drive():
    commands = Commands(None, None, wake=lambda: None, drives={})
    panel, clock = make(commands=commands)
    tap(panel, clock, "eject")
    assert lines(panel) == ("EJECT REFUSED", "unknown drive 'c")


def test_eject_targets_the_drive_on_the_media_screen():
    rec = Recorder()
    panel, clock = make(drives=("cd", "usb"), commands=rec)
    hold(panel, clock, "next")
    hold(panel, clock, "next")
    tap(panel, clock, "next")                                # media: cd -> usb
    tap(panel, clock, "eject")
    tap(panel, clock, "previous")
    tap(panel, clock, "previous")                            # back to the study list
    tap(panel, clock, "eject")                               # not on a media screen: the first drive
    assert rec.calls == [("eject", "usb"), ("eject", "cd")]


def test_the_chosen_study_stays_chosen_when_a_newer_one_arrives():
    studies = list(STUDIES)
    rec = Recorder()
    panel, clock = make(commands=rec, studies=studies)
    tap(panel, clock, "next")
    tap(panel, clock, "next")                                # on Müller
    studies.insert(0, StudyChoice("1.2.9", "PID1", "New^Patient", "20261129", "US"))
    tap(panel, clock, "next")
    tap(panel, clock, "previous")
    hold(panel, clock, "export")
    assert rec.calls == [("export", ("1.2.4",), "cd")]


@pytest.mark.parametrize("width, one, two", [(16, "ID PID42", "1/2    CT 261129"), (20, "ID PID42", "1/2        CT 261129")])
def test_names_hidden_by_setting(width, one, two):
    panel, clock = make(width=width, show_patient_name=False)
    tap(panel, clock, "export")
    assert lines(panel) == (one, two)


def test_kanji_only_name_shows_the_id():
    panel, clock = make(studies=[StudyChoice("1.5", "PID5", "=山田^太郎", "20261129", "CT")])
    tap(panel, clock, "export")
    assert lines(panel) == ("ID PID5", "1/1    CT 261129")


@pytest.mark.parametrize("override, problem", [
    ("panel.columns=24", "panel.columns: Input should be 16 or 20 (got 24)"),
    ("panel.long_press_s=0.1", "panel.long_press_s: Input should be greater than or equal to 0.3 (got 0.1)"),
    ("panel.message_s=0", "panel.message_s: Input should be greater than or equal to 1 (got 0)"),
    ('panel.show_patient_name="no"', "panel.show_patient_name: Input should be a valid boolean (got 'no')"),
    ('panel.colour="red"', "panel.colour: unknown key"),
])
def test_the_panel_config_is_strict(override, problem):
    with pytest.raises(config.ConfigError) as caught:
        config.load(None, [override])
    assert caught.value.problems == [problem]


def test_the_panel_config_defaults():
    assert config.load(None, []).config.panel == PanelSection(columns=16, long_press_s=1.0, message_s=4.0,
                                                               show_patient_name=True, kind="sim")


def test_an_unknown_button_is_one_precise_line():
    panel, _ = make()
    with pytest.raises(ValueError, match="unknown panel button 'menu'"):
        panel.button_down("menu")


# -- the whole matrix: each button, short and long, in each state -----------------------------------------
def _state(name):
    rec = Recorder()
    panel, clock = make(commands=rec)
    feed(panel, clock, TICK, INSERTED)
    if name == "studies":
        tap(panel, clock, "export")
    elif name == "media":
        hold(panel, clock, "next"), hold(panel, clock, "next")
    elif name == "printer":
        hold(panel, clock, "previous")
    elif name == "alarm":
        feed(panel, clock, FAILED)
    elif name == "message":
        tap(panel, clock, "capture")
    return panel, clock, rec


STATE_LINE = {"status": "READY", "studies": "Yamada Tarou", "media": "CD      CD BLANK",
              "printer": "PRINTER        ?", "alarm": "!EXPORT FAILED", "message": "NO GRABBER"}
STUDY, SECOND, MEDIA, PRINTER, READY = "Yamada Tarou", "Müller Jürgen", "CD      CD BLANK", "PRINTER        ?", "READY"
ALARM = "!EXPORT FAILED"
# (state, button, long) -> line 1 after the press; the states in order status, studies, media, printer, alarm, message
MATRIX = {
    ("export", False): (STUDY, "HOLD EXPORT", STUDY, STUDY, "ACK ALARM FIRST", STUDY),
    ("export", True): (STUDY, "EXPORT OK", STUDY, STUDY, "ACK ALARM FIRST", STUDY),
    ("eject", False): ("EJECT OK",) * 6,
    ("eject", True): ("EJECT OK",) * 6,
    ("capture", False): ("NO GRABBER",) * 6,
    ("capture", True): ("NO GRABBER",) * 6,
    ("next", False): (STUDY, SECOND, PRINTER, READY, ALARM, STUDY),
    ("next", True): (STUDY, MEDIA, PRINTER, READY, ALARM, STUDY),
    ("previous", False): (PRINTER, READY, SECOND, MEDIA, ALARM, PRINTER),
    ("previous", True): (PRINTER, READY, STUDY, MEDIA, ALARM, PRINTER),
    ("ack", False): ("NO NEW ALARMS",) * 4 + (READY, READY),
    ("ack", True): ("NO NEW ALARMS",) * 4 + (READY, READY),
}
STATES = ("status", "studies", "media", "printer", "alarm", "message")


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("button, long", list(MATRIX))
def test_every_button_in_every_state(state, button, long):
    panel, clock, rec = _state(state)
    assert lines(panel)[0] == STATE_LINE[state]
    (hold if long else tap)(panel, clock, button)
    assert lines(panel)[0] == MATRIX[button, long][STATES.index(state)]
    calls = {"eject": [("eject", "cd")], "export": [("export", ("1.2.3",), "cd")] if state == "studies" and long else []}
    assert rec.calls == calls.get(button, [])
    if state == "alarm" and button == "ack":
        assert panel.alarms.all() == []            # momentary: acknowledged, gone


def test_fed_from_the_real_event_bus():
    from gateway.events import EventBus
    from gateway.panel.facts import FOLDED

    bus = EventBus()
    sub = bus.subscribe(kinds=FOLDED)                 # every folded kind is in the catalogue
    panel, clock = make()
    bus.publish(TICK)
    bus.publish(DOWN)
    bus.publish(BACKLOG)
    bus.publish(K.CommitmentRefused(target="pacs", reason="x"))   # not folded: not delivered
    while not sub.empty():
        panel.apply(sub.get_nowait())
    assert lines(panel) == ("PACS DOWN", "QUEUE 12  DEAD 0")


def test_an_ack_that_ends_a_message_acknowledges_nothing():
    panel, clock = make()
    feed(panel, clock, TICK, JAM)
    tap(panel, clock, "eject")                        # its answer covers the alarm
    assert lines(panel)[0] == "EJECT OK"
    tap(panel, clock, "ack")
    assert lines(panel)[0] == "!PRINTER FAULT" and len(panel.alarms.unacknowledged()) == 1
    tap(panel, clock, "ack")
    assert panel.alarms.unacknowledged() == [] and panel.leds()["error"] is ON


def test_a_full_disk_refusing_every_image_is_acknowledged_once():
    panel, clock = make()
    feed(panel, clock, TICK, K.DiskFull(detail="ENOSPC"))
    assert lines(panel) == ("!DISK FULL", "images are refus")
    tap(panel, clock, "ack")
    feed(panel, clock, K.DiskFull(detail="ENOSPC"), K.DiskFull(detail="ENOSPC"))
    assert panel.alarms.unacknowledged() == [] and panel.leds()["error"] is ON
    assert lines(panel)[0] == "DISK FULL"


def test_a_config_problem_is_a_standing_alarm_that_ack_steadies():
    panel, clock = make()
    problem = K.ConfigProblem(key="status_http.port", detail="cannot listen on 127.0.0.1:8080")
    feed(panel, clock, TICK, problem)
    assert lines(panel) == ("!CONFIG PROBLEM", "status_http.port")
    assert panel.leds()["error"] is FAST
    tap(panel, clock, "ack")
    assert lines(panel)[0] == "READY" and panel.leds()["error"] is ON   # standing: acknowledged, kept
    feed(panel, clock, problem)                       # the same key again: not news
    assert panel.alarms.unacknowledged() == [] and panel.leds()["error"] is ON
    feed(panel, clock, K.ConfigProblem(key="panel", detail="no display at 0x27"))
    assert lines(panel) == ("!CONFIG PROBLEM", "panel: no displa")


# -- the study list from a real buffer -----------------------------------------------------------------
def test_recent_studies_from_the_buffers_index(tmp_path):
    import shutil

    import pydicom
    from datasets import make_ct

    from gateway.buffer.ingest import Buffer
    from gateway.part10.attributes import read_attributes

    buf = Buffer(tmp_path / "buf", 0, "replace", lambda attrs, calling: [])
    names = [("PID-A", "Müller^Jürgen", "ISO_IR 100", "CT"), ("PID-B", "Yamada^Tarou=山田^太郎=やまだ^たろう",
                                                           "\\ISO 2022 IR 87", "MR")]
    uids = []
    for i, (pid, name, charset, modality) in enumerate(names):
        path = tmp_path / f"in{i}.dcm"
        ds = make_ct(path, patient_id=pid)
        ds.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
        ds.PatientName, ds.Modality, ds.StudyDate = name, modality, f"2026112{i}"
        ds.save_as(path, enforce_file_format=True)
        uids.append(str(ds.StudyInstanceUID))
        tmp = buf.files.new_incoming_path()
        shutil.copyfile(path, tmp)
        buf.ingest(tmp, read_attributes(path), "MOD")
        assert str(pydicom.dcmread(path).PatientName) == name
    offered = recent_studies(buf.index)
    assert [(s.study_uid, s.patient_id, s.patient_name, s.study_date, s.modality) for s in offered] == [
        (uids[1], "PID-B", names[1][1], "20261121", "MR"), (uids[0], "PID-A", names[0][1], "20261120", "CT")]
    assert recent_studies(buf.index, limit=1) == offered[:1]
    panel, clock = make(width=20, studies=offered)
    tap(panel, clock, "export")
    assert lines(panel) == ("Yamada Tarou", "PID-B      MR 261121")


def test_blinking_by_the_clock_without_sleeping():
    panel, clock = make()
    feed(panel, clock, TICK, JAM)
    clock.t = 2000.0
    seen = []
    for _ in range(8):                       # 4 Hz: 125 ms on, 125 ms off
        seen.append((panel.lit()["error"], panel.lit()["power"], panel.lit()["network"]))
        clock.t += 0.125
    assert [e for e, _, _ in seen] == [True, False] * 4
    assert all(p for _, p, _ in seen) and not any(n for _, _, n in seen)   # steady on, off


def test_a_patient_id_that_does_not_fit_beside_the_study_is_shown_whole():
    # 16 columns: "HWSIM-1 CT 260101" is 17; the ID must not become "HWSIM-" (another patient's ID).
    panel, clock = make(studies=[StudyChoice("1.6", "HWSIM-1", "HWSIM^SAMPLE", "20260101", "CT")])
    tap(panel, clock, "export")
    assert lines(panel)[1] == "HWSIM-1"


@pytest.mark.parametrize("refusal, shown", [
    ("capture: no signal on grabber: nothing captured", "NO SIGNAL"),
    ("capture: no frame from grabber for 1.2 s (signal lost?): nothing captured", "NO SIGNAL"),
    ("capture: a clip is being recorded on grabber; it ends in 7 s", "CLIP RECORDING"),
    ("capture: the buffer is full: free space 3 MB is below the reserve 256 MB", "BUFFER FULL"),
    ("capture: no procedure chosen (3 in the worklist): choose one", "CHOOSE PATIENT"),
    ("capture: something nobody foresaw happened", "something nobod>"),
])
def test_a_refused_capture_is_said_in_the_displays_words(refusal, shown):
    panel, clock = make(capture=lambda long: CommandResult("capture", refused=refusal))
    tap(panel, clock, "capture")
    assert lines(panel) == ("CAPTURE REFUSED", shown)
