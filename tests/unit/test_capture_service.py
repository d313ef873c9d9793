"""The capture service on its own (gateway/capture/service.py): a scripted grabber behind the
grabber interface, the real IOD code, the real buffer and intake, a recording MPPS store. What a
still, a clip, a lost signal, a video mode change, a refused verb and a procedure's end do.
The grabber hands out frames stamped with a virtual clock (frame i at i / fps seconds), so how
many frames a clip of N seconds holds does not depend on this machine's speed."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time

import pydicom
import pytest
from capture_pictures import procedure, psnr, ultrasound_frame
from pydicom.uid import SecondaryCaptureImageStorage

from drivers.grabber.interface import FormatChanged, Frame, FrameFormat, GrabberError, SignalLost
from gateway.buffer.ingest import Buffer
from gateway.buffer.intake import Intake
from gateway.capture.iod import Equipment
from gateway.capture.service import CaptureService
from gateway.config import Config
from gateway.event_kinds import CAPTURE_FAILED, CAPTURE_SIGNAL, CAPTURE_STORED, RECEIVED
from gateway.events import EventBus
from gateway.routing import Router

MF_TRUE_COLOR = "1.2.840.10008.5.1.4.1.1.7.4"
FPS = 16.0  # frame times i / 16 are exact binary fractions: a span of 2 s is exactly 2.0


class ScriptedGrabber:
    """Frames of one picture (its counter burned into pixel (0, 0)) at a virtual FPS, as fast as
    they are read (a 1 ms pause each, not to spin); ``lose()`` makes reads raise SignalLost until
    ``restore()``; ``change_to(w, h)`` makes the next read raise FormatChanged."""

    name = "grabber"

    def __init__(self, width=320, height=240, step=1):
        self.step = step  # 2: every other frame of the source never reaches the reader
        self.fmt = FrameFormat(width, height, FPS, "yuyv422", analog=True)
        self.picture = ultrasound_frame(height, width)
        self.index = 0
        self.lost = threading.Event()
        self.frozen = threading.Event()  # no frame and no "no signal" yet: the timeout not reached
        self.changed: tuple[int, int] | None = None
        self.opened = self.closed = 0
        self.fail_open: str = ""

    @property
    def format(self):
        return self.fmt

    def open(self):
        if self.fail_open:
            raise GrabberError(self.fail_open)
        self.opened += 1
        return self.fmt

    def read(self, timeout):
        time.sleep(0.001)
        if self.frozen.is_set():
            time.sleep(timeout)
            raise SignalLost("no frame")
        if self.lost.is_set():
            time.sleep(min(timeout, 0.01))
            raise SignalLost("no frame")
        if self.changed is not None:
            w, h = self.changed
            self.changed = None
            self.fmt = FrameFormat(w, h, FPS, "yuyv422", analog=True)
            self.picture = ultrasound_frame(h, w)
            raise FormatChanged(f"{w}x{h}")
        self.index += self.step
        pixels = self.picture.copy()
        pixels[0, 0] = (self.index % 256, 0, 0)
        return Frame(pixels, self.index, self.index / FPS)

    def close(self):
        self.closed += 1


class Choice:
    """The procedure source: whatever `self.now` is."""

    def __init__(self, p):
        self.now = p

    def current(self):
        return self.now

    def for_capture(self):
        if self.now is None:
            raise LookupError("no procedure chosen")
        return self.now


class RecordingMpps:
    def __init__(self):
        self.calls = []

    def begin(self, procedure, mpps_uid, started, station_ae, modality, *, study_uid=""):
        self.calls.append(("begin", procedure.key, mpps_uid, station_ae, modality, study_uid))
        return 1

    def complete(self, mpps_uid, referenced, ended, discontinued=False):
        self.calls.append(("complete", mpps_uid, list(referenced), discontinued))
        return 2


@pytest.fixture
def rig(tmp_path):
    made = []

    def build(capture: dict | None = None, grabber=None, proc="latin1", mpps=None, reserve=0):
        cfg = Config.model_validate({"capture": {"enabled": True, "encoding": "uncompressed",
                                                 **(capture or {})}})
        buf = Buffer(tmp_path / "buf", reserve, "replace", Router(cfg))
        events = EventBus()
        seen = events.subscribe(maxsize=10000)
        intake = Intake(cfg, buf, events, {str(SecondaryCaptureImageStorage), MF_TRUE_COLOR,
                                           "1.2.840.10008.5.1.4.1.1.7.2", "1.2.840.10008.5.1.4.1.1.77.1.1"})
        g = grabber or ScriptedGrabber()
        if mpps == "store":  # the real MPPS store on this buffer's queue
            from gateway.buffer.mpps import MppsStore
            mpps = MppsStore(buf.queue)
        choice = Choice(procedure(proc) if proc else None)
        svc = CaptureService(cfg.capture, g, choice, intake, buf.files.new_incoming_path, events,
                             equipment=Equipment("Acme", "Box", "1.0"), mpps=mpps, station_ae="EDGE")
        made.append((svc, buf))
        return svc, g, buf, seen, choice

    yield build
    for svc, buf in made:
        svc.stop(5)
        buf.close()


def kinds(sub) -> list:
    out = []
    while True:
        try:
            out.append(sub.get_nowait())
        except queue.Empty:
            return out


def wait_for(pred, what, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def stored_files(buf):
    return sorted(p for p in buf.files.root.rglob("*.dcm"))


def test_a_still_is_the_latest_frame_durable_in_the_buffer(rig):
    svc, g, buf, seen, _ = rig({"encoding": "jpeg-baseline"})
    svc.start()
    wait_for(lambda: svc.status()["signal"] == "up", "the signal")
    out = svc.still()
    assert out.ok, out.line
    assert "patient PID-LAT" in out.line and "Müller" not in out.line
    (path,) = stored_files(buf)
    ds = pydicom.dcmread(path)
    assert ds.SOPInstanceUID == out.sop_uid and ds.SOPClassUID == SecondaryCaptureImageStorage
    assert ds.PatientName == "Müller^Jürgen" and ds.PatientID == "PID-LAT"
    assert psnr(g.picture[1:, 1:], ds.pixel_array[1:, 1:]) >= 40  # pixel (0,0) carries the counter
    evs = kinds(seen)
    received = [e for e in evs if e.kind == RECEIVED]
    assert received and received[0].data["source"] == "CAPTURE:grabber"
    (stored,) = [e for e in evs if e.kind == CAPTURE_STORED]
    assert stored.data["what"] == "still" and stored.data["scheduled"] is True
    assert [e.data["state"] for e in evs if e.kind == CAPTURE_SIGNAL] == ["up"]


def test_without_signal_nothing_is_captured_and_the_verbs_say_why(rig):
    g = ScriptedGrabber()
    g.lost.set()
    svc, _, buf, seen, _ = rig(grabber=g)
    svc.start()
    wait_for(lambda: any(e.kind == CAPTURE_SIGNAL and e.data["state"] == "lost" for e in kinds(seen)), "lost")
    for out in (svc.still(), svc.clip(2.0)):
        assert not out.ok and out.line.startswith("no signal on grabber"), out.line
    assert stored_files(buf) == [] and not list(buf.files.incoming.iterdir())
    assert svc.clip(0.1).line == "a clip lasts 0.5 to 60 s (capture.clip_max_s), not 0.1"
    assert svc.clip(1e6).line.startswith("a clip lasts 0.5 to 60 s")


def test_no_procedure_chosen_is_refused(rig):
    svc, _, buf, _, _ = rig(proc=None)
    svc.start()
    wait_for(lambda: svc.status()["signal"] == "up", "the signal")
    out = svc.still()
    assert not out.ok and out.line == "no procedure chosen" and stored_files(buf) == []


def test_a_clip_holds_its_seconds_of_frames(rig):
    svc, g, buf, seen, _ = rig()
    svc.start()
    wait_for(lambda: svc.status()["signal"] == "up", "the signal")
    assert svc.clip(2.0).ok
    again = svc.clip(2.0)
    assert not again.ok and again.line.startswith("a clip is being recorded on grabber")
    done = svc.wait_clip(60)
    assert done is not None and done.ok, done
    (path,) = stored_files(buf)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == MF_TRUE_COLOR
    stored = [e for e in kinds(seen) if e.kind == CAPTURE_STORED][0].data
    # The frames of 2 s at 16 frames a second of the grabber's clock (both ends counted), kept or dropped.
    assert int(ds.NumberOfFrames) == stored["frames"] and stored["frames"] + stored["dropped"] == 33
    assert stored["note"] == "" and svc.status()["recording"] is None


@pytest.mark.parametrize("policy", ["keep", "discard"])
def test_a_clip_cut_by_signal_loss_is_kept_with_a_note_or_discarded(rig, policy):
    svc, g, buf, seen, _ = rig({"on_signal_lost": policy})
    svc.start()
    wait_for(lambda: svc.status()["signal"] == "up", "the signal")
    assert svc.clip(60.0).ok
    wait_for(lambda: g.index > 40, "some frames recorded")
    g.lost.set()
    done = svc.wait_clip(60)
    evs = kinds(seen)
    if policy == "keep":
        assert done.ok and "the signal was lost after" in done.line
        (path,) = stored_files(buf)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert int(ds.NumberOfFrames) > 0
        # It plays at the source's rate (16 a second: 62.5 ms or more with frames dropped), not
        # stretched by the time between its last frame and its close.
        assert float(ds.FrameTime) >= 62.4
        assert [e for e in evs if e.kind == CAPTURE_STORED][0].data["note"].startswith("the signal was lost")
    else:
        assert not done.ok and "discarded: the signal was lost" in done.line
        assert stored_files(buf) == []
        assert [e for e in evs if e.kind == CAPTURE_FAILED][0].data["what"] == "clip"
    assert not list(buf.files.incoming.iterdir())  # no spool, no part file left behind
    g.lost.clear()
    wait_for(lambda: svc.status()["signal"] == "up", "the signal back")
    assert svc.still().ok  # the service goes on


def test_a_video_mode_change_closes_the_clip_and_the_next_is_the_new_size(rig):
    svc, g, buf, _, _ = rig()
    svc.start()
    wait_for(lambda: svc.status()["signal"] == "up", "the signal")
    assert svc.clip(60.0).ok
    wait_for(lambda: g.index > 20, "some frames recorded")
    g.changed = (352, 288)
    done = svc.wait_clip(60)
    assert done.ok and "the video mode changed" in done.line
    wait_for(lambda: svc.status()["format"]["width"] == 352, "the new format")
    out = svc.still()
    assert out.ok
    sizes = sorted((int(pydicom.dcmread(p, stop_before_pixels=True).Columns)) for p in stored_files(buf))
    assert sizes == [320, 352]


def test_a_grabber_that_cannot_open_is_one_line_and_the_service_waits(rig):
    g = ScriptedGrabber()
    g.fail_open = "/dev/video0: no such device"
    svc, _, buf, _, _ = rig(grabber=g)
    svc.start()
    wait_for(lambda: svc.status()["last"].startswith("grabber: /dev/video0"), "the failure")
    assert svc.alive and svc.status()["signal"] == "down"
    out = svc.still()
    assert not out.ok and out.line.startswith("no signal on grabber")


def test_one_series_and_one_mpps_a_procedure(rig):
    mpps = RecordingMpps()
    svc, g, buf, _, choice = rig(mpps=mpps)
    svc.start()
    wait_for(lambda: svc.status()["signal"] == "up", "the signal")
    first = [svc.still(), svc.still()]
    assert all(o.ok for o in first)
    japanese = dataclasses.replace(procedure("japanese"), key="SPS-10|ACC-0043|1.2.3.4")
    choice.now = japanese
    assert svc.still().ok
    series = {}
    for p in stored_files(buf):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        series.setdefault(ds.PatientID, set()).add((ds.SeriesInstanceUID, ds.SeriesNumber))
    assert len(series["PID-LAT"]) == 1 and len(series["PID-JP"]) == 1
    assert series["PID-LAT"] != series["PID-JP"]
    begun = [c for c in mpps.calls if c[0] == "begin"]
    assert [c[1] for c in begun] == [procedure("latin1").key, japanese.key]
    assert begun[0][3:5] == ("EDGE", "US")
    # Moving on to the Japanese patient completed the first procedure, with its two stills.
    (completed,) = [c for c in mpps.calls if c[0] == "complete"]
    assert completed[1] == begun[0][2] and len(completed[2]) == 2 and completed[3] is False
    assert {r[1] for r in completed[2]} == {o.sop_uid for o in first}
    out = svc.end_procedure(discontinued=True)
    assert out.ok and out.line.endswith("ended: 1 objects; its MPPS is queued as DISCONTINUED; choose the next one")
    assert mpps.calls[-1][0] == "complete" and mpps.calls[-1][3] is True
    again = svc.end_procedure()
    assert not again.ok and again.line.startswith("no procedure is being captured for")


def test_the_frame_counter_shows_a_still_is_the_latest(rig):
    svc, g, buf, _, _ = rig({"encoding": "rle"})
    svc.start()
    wait_for(lambda: g.index > 10, "frames")
    before = g.index
    assert svc.still().ok
    (path,) = stored_files(buf)
    got = int(pydicom.dcmread(path).pixel_array[0, 0, 0])
    # The still is the frame read last when it was asked for (or one read since): not an old one.
    assert (got - (before - 1)) % 256 < 60, (got, before)


def test_a_full_buffer_refuses_a_still_and_a_clip_in_one_line_and_keeps_nothing(rig):
    svc, _, buf, seen, _ = rig(reserve=1 << 62)  # a reserve no disk has: the buffer is "full"
    svc.start()
    wait_for(lambda: svc.status()["signal"] == "up", "the signal")
    still, clip = svc.still(), svc.clip(2.0)
    assert not still.ok and still.line.startswith("the buffer refused the still: ") and "reserve" in still.line
    assert not clip.ok and clip.line.startswith("the buffer is full: ") and "\n" not in clip.line
    assert "[Errno" not in still.line + clip.line and "object of 0 bytes" not in clip.line, (still.line, clip.line)
    assert svc.status()["recording"] is None and stored_files(buf) == []
    assert not list(buf.files.incoming.iterdir())
    assert [e.data["what"] for e in kinds(seen) if e.kind == CAPTURE_FAILED] == ["still", "clip"]


def test_frames_a_slow_reader_never_got_are_counted_short_of_the_rate(rig):
    svc, g, buf, seen, _ = rig(grabber=ScriptedGrabber(step=2))
    svc.start()
    wait_for(lambda: svc.status()["signal"] == "up", "the signal")
    assert svc.clip(2.0).ok
    done = svc.wait_clip(60)
    assert done.ok, done.line
    stored = [e for e in kinds(seen) if e.kind == CAPTURE_STORED][0].data
    # 2 s at 16 frames a second is 33 frames; the reader got every other one of the source's.
    assert stored["frames"] + stored["dropped"] == 33 and stored["dropped"] >= 16, stored
    assert f"{stored['dropped']} dropped" in done.line


def test_a_still_is_never_a_frame_from_before_the_signal_stopped(rig):
    svc, g, buf, _, _ = rig({"grabber": {"signal_timeout_s": 30.0}})
    svc.start()
    wait_for(lambda: svc.status()["signal"] == "up", "the signal")
    g.frozen.set()  # the cable is pulled: no frame, and no "no signal" for 30 s
    time.sleep(1.0)  # longer than a fresh frame's age (0.5 s, or 3 frame intervals)
    out = svc.still()
    assert not out.ok and out.line.startswith("no frame from grabber for ") and "nothing captured" in out.line
    assert stored_files(buf) == []


@pytest.mark.parametrize("capture_after_restart", [True, False])
def test_a_step_begun_before_a_restart_is_carried_on_and_ended(rig, capture_after_restart):
    from gateway.buffer.mpps import MppsStore

    svc, g, buf, _, choice = rig(mpps="store")
    store = svc.mpps
    svc.start()
    wait_for(lambda: svc.status()["signal"] == "up", "the signal")
    before = [svc.still().sop_uid, svc.still().sop_uid]
    assert all(before)
    (step,) = store.for_procedure(choice.now.key)
    svc.stop(5)  # the service restarts: the new one knows nothing of the step in memory
    again = CaptureService(svc.settings, ScriptedGrabber(), choice, svc.intake, buf.files.new_incoming_path,
                           EventBus(), equipment=svc.equipment, mpps=MppsStore(buf.queue), station_ae="EDGE")
    again.start()
    try:
        wait_for(lambda: again.status()["signal"] == "up", "the signal")
        after = [again.still().sop_uid] if capture_after_restart else []
        out = again.end_procedure()
        assert out.ok, out.line
        (record,) = store.for_procedure(choice.now.key)  # no second step was begun
        assert record.mpps_uid == step.mpps_uid and record.status == "COMPLETED" and record.set_job is not None
        from gateway.buffer import mpps_attributes as attrs
        refs = {str(i.ReferencedSOPInstanceUID) for s in attrs.decode(record.set_attrs).PerformedSeriesSequence
                for i in s.ReferencedImageSequence}
        assert refs == set(before + after)
    finally:
        again.stop(5)
