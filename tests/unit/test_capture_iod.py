"""The objects a capture makes (gateway/capture/iod.py, gateway/capture/clip_file.py): every object
and encoding decodes back to the frames given, the worklist's bytes reach the object, an
unscheduled capture says so, a clip's memory stays flat and a discarded clip leaves nothing.
dciodvfy's verdict on the same objects: tests/interop/test_capture_dciodvfy.py."""

from __future__ import annotations

import os
import tracemalloc
from array import array
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from pydicom import dcmread, dcmwrite

from capture_pictures import procedure, psnr, ultrasound_frame
from drivers.grabber.interface import FrameFormat
from gateway.buffer.procedure import Procedure
from gateway.capture.clip_file import ClipWriter
from gateway.capture.iod import (
    MF_GRAYSCALE_BYTE_SC,
    MF_TRUE_COLOR_SC,
    SC,
    UNSCHEDULED_ISSUER,
    VL_ENDOSCOPIC,
    Equipment,
    new_series,
    still,
)
from gateway.config.capture import CaptureSection
from image.video_frame import rgb_to_gray

ENCODINGS = ("uncompressed", "jpeg-baseline", "rle", "jpeg-ls")
EQUIPMENT = Equipment("Acme Imaging", "FrameBox 2", "1.4.2", device_serial_number="FB-1", station_name="ENDO1")
WHEN = datetime(2026, 11, 29, 9, 30, 15, 250000)
FMT = FrameFormat(width=640, height=480, fps=25.0, source_format="yuyv422", analog=True)


def _expected(frame: np.ndarray, settings: CaptureSection) -> np.ndarray:
    return rgb_to_gray(frame) if settings.color == "grayscale" else frame


def _check_pixels(got: np.ndarray, want: np.ndarray, settings: CaptureSection) -> None:
    assert got.shape == want.shape
    if settings.encoding == "jpeg-baseline":
        assert psnr(want, got) >= 40.0
    else:
        assert np.array_equal(got, want)


def _write_still(tmp_path: Path, settings: CaptureSection, proc=None, frame=None, name="still.dcm"):
    proc = proc or procedure("latin1")
    frame = ultrasound_frame() if frame is None else frame
    ds = still(frame, proc, new_series(settings, 3), EQUIPMENT, settings, 1, WHEN)
    path = tmp_path / name
    dcmwrite(path, ds, enforce_file_format=True)
    return path, frame


def _write_clip(tmp_path: Path, settings: CaptureSection, frames, proc=None, name="clip.dcm", fmt=FMT):
    writer = ClipWriter(tmp_path / name, proc or procedure("latin1"), new_series(settings, 4), EQUIPMENT, settings,
                        fmt, 2, WHEN)
    for f in frames:
        writer.add(f)
    return writer.close(WHEN + timedelta(seconds=(len(frames) - 1) / fmt.fps), "clip ended by the operator")


# --- stills -------------------------------------------------------------------------------------


@pytest.mark.parametrize("color", ["rgb", "grayscale"])
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("modality", ["US", "ES"])
def test_a_still_decodes_back_to_the_frame(tmp_path, encoding, color, modality):
    settings = CaptureSection(encoding=encoding, color=color)
    path, frame = _write_still(tmp_path, settings, procedure("latin1", modality))
    back = dcmread(path)
    assert back.SOPClassUID == (VL_ENDOSCOPIC if modality == "ES" else SC)
    assert back.file_meta.TransferSyntaxUID == {"uncompressed": "1.2.840.10008.1.2.1",
                                                 "jpeg-baseline": "1.2.840.10008.1.2.4.50",
                                                 "rle": "1.2.840.10008.1.2.5",
                                                 "jpeg-ls": "1.2.840.10008.1.2.4.80"}[encoding]
    _check_pixels(back.pixel_array, _expected(frame, settings), settings)
    assert back.BurnedInAnnotation == "YES"
    assert back.LossyImageCompression == ("01" if encoding == "jpeg-baseline" else "00")


def test_jpeg_baseline_at_the_default_quality_keeps_40_db_on_ultrasound_video(tmp_path):
    settings = CaptureSection()
    assert settings.encoding == "jpeg-baseline"
    path, frame = _write_still(tmp_path, settings, procedure("ascii"))
    back = dcmread(path)
    assert back.PhotometricInterpretation == "YBR_FULL_422"
    assert back.LossyImageCompressionMethod == "ISO_10918_1"
    assert float(back.LossyImageCompressionRatio) > 5
    assert psnr(frame, back.pixel_array) >= 40.0


def test_still_sop_class_follows_the_setting_and_the_modality(tmp_path):
    es = procedure("ascii", "ES")
    assert still(ultrasound_frame(), es, new_series(CaptureSection(), 1), EQUIPMENT, CaptureSection(), 1,
                 WHEN).SOPClassUID == VL_ENDOSCOPIC
    sc_only = CaptureSection(still_sop="sc")
    ds = still(ultrasound_frame(), es, new_series(sc_only, 1), EQUIPMENT, sc_only, 1, WHEN)
    assert ds.SOPClassUID == SC and ds.Modality == "ES"


def test_sc_equipment_names_the_grabber_and_the_conversion_type():
    settings = CaptureSection()
    proc = procedure("ascii")
    analog = still(ultrasound_frame(), proc, new_series(settings, 1), EQUIPMENT, settings, 1, WHEN)
    assert analog.ConversionType == "DV"
    assert analog.SecondaryCaptureDeviceManufacturer == "Acme Imaging"
    assert analog.SecondaryCaptureDeviceManufacturerModelName == "FrameBox 2"
    assert analog.SecondaryCaptureDeviceSoftwareVersions == "1.4.2"
    assert analog.Modality == "US"
    digital = Equipment("Acme Imaging", "FrameBox 2", "1.4.2", analog=False)
    assert still(ultrasound_frame(), proc, new_series(settings, 1), digital, settings, 1,
                 WHEN).ConversionType == "DI"


def test_a_bad_frame_is_one_precise_error():
    settings = CaptureSection()
    with pytest.raises(ValueError, match=r"\(rows, columns, 3\) uint8 RGB, got \(480, 640\) uint8"):
        still(np.zeros((480, 640), np.uint8), procedure("ascii"), new_series(settings, 1), EQUIPMENT, settings, 1,
              WHEN)


# --- the procedure's identity -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["latin1", "japanese"])
def test_the_patient_is_the_worklists_bytes_and_decodes_to_its_name(tmp_path, kind):
    proc = procedure(kind)
    source = proc.dataset()
    path, _ = _write_still(tmp_path, CaptureSection(encoding="uncompressed"), proc)
    back = dcmread(path)
    assert back.SpecificCharacterSet == source.SpecificCharacterSet
    assert str(back.PatientName) == proc.patient_name
    raw = dcmread(path)  # undecoded: get_item keeps the bytes as read
    for tag in (0x00100010, 0x00081030):
        src_tag = 0x00321060 if tag == 0x00081030 else tag
        assert raw.get_item(tag).value == source.get_item(src_tag).value
    assert back.StudyInstanceUID == proc.study_uid
    assert back.AccessionNumber == "ACC-0042"
    assert back.StudyID == "RP-7"
    assert "PatientComments" not in back


def test_the_request_attributes_sequence_names_the_procedure_step(tmp_path):
    path, _ = _write_still(tmp_path, CaptureSection(), procedure("japanese"))
    item = dcmread(path).RequestAttributesSequence[0]
    assert item.RequestedProcedureID == "RP-7"
    assert item.ScheduledProcedureStepID == "SPS-9"
    assert item.ScheduledProcedureStepDescription == "Abdomen"
    assert item.AccessionNumber == "ACC-0042"


def test_an_unscheduled_capture_says_so(tmp_path):
    settings = CaptureSection(uid_root="1.2.3.4")
    path, _ = _write_still(tmp_path, settings, procedure("unscheduled"))
    back = dcmread(path)
    assert back.PatientID == "UNSCHED-0001"
    assert back.IssuerOfPatientID == UNSCHEDULED_ISSUER
    assert back.PatientComments.startswith("UNSCHEDULED capture")
    assert back.StudyInstanceUID.startswith("1.2.3.4.")
    assert back.SOPInstanceUID.startswith("1.2.3.4.") and back.SeriesInstanceUID.startswith("1.2.3.4.")
    assert "RequestAttributesSequence" not in back


def test_uids_are_made_under_the_root_and_fit_64_characters():
    settings = CaptureSection(uid_root="1.2.826.0.1.3680043.10.1234567890123456")
    series = new_series(settings, 7)
    assert series.uid.startswith(settings.uid_root + ".") and len(series.uid) <= 64
    assert series.number == 7 and series.description == "Video capture"
    with pytest.raises(ValueError, match="series number 0"):
        new_series(settings, 0)


def test_an_aware_time_gives_the_timezone_offset():
    settings = CaptureSection()
    when = datetime(2026, 11, 29, 9, 30, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))
    ds = still(ultrasound_frame(), procedure("ascii"), new_series(settings, 1), EQUIPMENT, settings, 1, when)
    assert ds.TimezoneOffsetFromUTC == "-0530"


# --- clips --------------------------------------------------------------------------------------


@pytest.mark.parametrize("color", ["rgb", "grayscale"])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_clip_decodes_back_to_its_frames(tmp_path, encoding, color):
    settings = CaptureSection(encoding=encoding, color=color)
    frames = [ultrasound_frame(seed=i) for i in range(4)]
    result = _write_clip(tmp_path, settings, frames)
    assert result.path == tmp_path / "clip.dcm" and result.frames == 4
    assert result.bytes == result.path.stat().st_size
    back = dcmread(result.path)
    assert back.SOPClassUID == (MF_GRAYSCALE_BYTE_SC if color == "grayscale" else MF_TRUE_COLOR_SC)
    assert result.sop_class_uid == back.SOPClassUID and result.sop_instance_uid == back.SOPInstanceUID
    assert back.NumberOfFrames == 4
    assert float(back.FrameTime) == pytest.approx(40.0)
    assert back.CineRate == 25 and back.RecommendedDisplayFrameRate == 25
    assert back.ImageComments == "clip ended by the operator"
    decoded = back.pixel_array
    for i, frame in enumerate(frames):
        _check_pixels(decoded[i], _expected(frame, settings), settings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.dcm"]  # no spool, no part file


def test_a_clip_of_a_dropping_grabber_plays_in_real_time(tmp_path):
    settings = CaptureSection(encoding="uncompressed", color="grayscale")
    small = FrameFormat(64, 48, 30.0, "mjpeg", False)
    writer = ClipWriter(tmp_path / "c.dcm", procedure("ascii"), new_series(settings, 1), EQUIPMENT, settings,
                        small, 1, WHEN)
    for i in range(11):
        writer.add(ultrasound_frame(48, 64, seed=i))
    back = dcmread(writer.close(WHEN + timedelta(seconds=1)).path)  # 10 intervals in 1 s: 10 fps
    assert float(back.FrameTime) == pytest.approx(100.0)
    assert back.CineRate == 10
    assert back.ConversionType == "DI"


def test_a_clip_file_appears_only_when_closed(tmp_path):
    settings = CaptureSection()
    writer = ClipWriter(tmp_path / "clip.dcm", procedure("ascii"), new_series(settings, 1), EQUIPMENT, settings,
                        FMT, 1, WHEN)
    writer.add(ultrasound_frame())
    assert not (tmp_path / "clip.dcm").exists()
    writer.close(WHEN)
    assert (tmp_path / "clip.dcm").exists()
    writer.discard()  # after close: the file is the caller's
    assert (tmp_path / "clip.dcm").exists()
    with pytest.raises(RuntimeError, match="already closed"):
        writer.add(ultrasound_frame())


def test_a_discarded_clip_leaves_no_file(tmp_path):
    settings = CaptureSection()
    writer = ClipWriter(tmp_path / "clip.dcm", procedure("ascii"), new_series(settings, 1), EQUIPMENT, settings,
                        FMT, 1, WHEN)
    for i in range(3):
        writer.add(ultrasound_frame(seed=i))
    writer.discard()
    writer.discard()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        writer.close(WHEN)


def test_a_clip_refuses_a_frame_of_another_size_and_an_empty_close(tmp_path):
    settings = CaptureSection()
    writer = ClipWriter(tmp_path / "clip.dcm", procedure("ascii"), new_series(settings, 1), EQUIPMENT, settings,
                        FMT, 1, WHEN)
    with pytest.raises(ValueError, match="frame is 320x240, the clip is 640x480"):
        writer.add(ultrasound_frame(240, 320))
    with pytest.raises(ValueError, match="no frames: discard it"):
        writer.close(WHEN)
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def _rss() -> int:
    """The resident set, bytes (Linux /proc)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_long_clip_keeps_memory_flat(tmp_path):
    """300 frames of 640x480 RGB (276 MB raw, ~24 MB as JPEG): the peak of traced allocations
    while adding frames 250-300 is no higher than while adding frames 10-60, give or take one
    frame's worth; holding the frames (or their encodings) would add tens of MB.  The resident set
    (which also sees the encoders' C buffers, untraced) grows by less than 16 MB over the same
    240 frames, where holding the raw frames would add 220 MB."""
    settings = CaptureSection()
    frames = [ultrasound_frame(seed=i) for i in range(3)]
    writer = ClipWriter(tmp_path / "long.dcm", procedure("ascii"), new_series(settings, 1), EQUIPMENT, settings,
                        FMT, 1, WHEN)
    tracemalloc.start()
    try:
        for i in range(10):
            writer.add(frames[i % 3])
        tracemalloc.reset_peak()
        for i in range(10, 60):
            writer.add(frames[i % 3])
        early = tracemalloc.get_traced_memory()[1]
        rss_early = _rss()
        for i in range(60, 250):
            writer.add(frames[i % 3])
        tracemalloc.reset_peak()
        for i in range(250, 300):
            writer.add(frames[i % 3])
        late = tracemalloc.get_traced_memory()[1]
        rss_late = _rss()
    finally:
        tracemalloc.stop()
    assert writer.frames == 300
    assert rss_late - rss_early < 16 << 20, f"RSS grew by {rss_late - rss_early} bytes from frame 60 to 300"
    assert late - early < 640 * 480 * 3, f"peak grew by {late - early} bytes from frame 60 to frame 300"
    result = writer.close(WHEN + timedelta(seconds=299 / 25))
    assert result.frames == 300 and dcmread(result.path, stop_before_pixels=True).NumberOfFrames == 300


# --- config and pixel maths ---------------------------------------------------------------------


def test_capture_settings_are_strict_and_bounded():
    defaults = CaptureSection()
    assert (defaults.encoding, defaults.jpeg_quality, defaults.still_sop, defaults.color) == (
        "jpeg-baseline", 95, "auto", "rgb")
    assert defaults.uid_root == "1.2.826.0.1.3680043.8.498"
    for bad in ({"encoding": "jpeg2000"}, {"jpeg_quality": 101}, {"jpeg_quality": 59}, {"clip_max_s": 0.0},
                {"clip_max_s": 601.0}, {"uid_root": "1.2..3"}, {"uid_root": "1." + "2" * 40},
                {"series_description": "a\\b"}, {"institution": "x" * 65}, {"color": "mono"},
                {"jpeg_quality": "95"}, {"frame_rate": 25}):
        with pytest.raises(ValidationError):
            CaptureSection(**bad)


def test_rgb_to_gray_is_bt601_luma_and_keeps_grays():
    ramp = np.arange(256, dtype=np.uint8)
    assert np.array_equal(rgb_to_gray(np.stack([ramp] * 3, axis=-1)[None]), ramp[None])
    pure = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    assert rgb_to_gray(pure).tolist() == [[77, 149, 29]]
    with pytest.raises(ValueError, match="uint8 RGB"):
        rgb_to_gray(np.zeros((2, 2, 3), np.uint16))


def test_an_unscheduled_procedures_objects_share_one_study():
    settings = CaptureSection()
    proc = procedure("unscheduled")
    first = still(ultrasound_frame(), proc, new_series(settings, 1), EQUIPMENT, settings, 1, WHEN)
    second = still(ultrasound_frame(), proc, new_series(settings, 2), EQUIPMENT, settings, 1, WHEN)
    assert first.StudyInstanceUID == second.StudyInstanceUID
    assert first.StudyID == second.StudyID and first.StudyID.startswith("U-") and len(first.StudyID) <= 16
    assert first.SOPInstanceUID != second.SOPInstanceUID


@pytest.mark.parametrize("identifier, message", [
    (b"\x10\x00\x10\x00PN\xff\x00ab", r"procedure k: element \(0010,0010\) is 2 bytes, its length says 255"),
    (b"\x10\x00\x10\x00ZZ\x02\x00ab", r"procedure k: element \(0010,0010\) does not decode: .*'ZZ'"),
])
def test_a_malformed_identifier_is_one_line_and_no_object(tmp_path, identifier, message):
    settings = CaptureSection()
    broken = Procedure(key="k", identifier=identifier)
    with pytest.raises(ValueError, match=message):
        still(ultrasound_frame(), broken, new_series(settings, 1), EQUIPMENT, settings, 1, WHEN)
    with pytest.raises(ValueError, match=message):
        ClipWriter(tmp_path / "c.dcm", broken, new_series(settings, 1), EQUIPMENT, settings, FMT, 1, WHEN)
    assert list(tmp_path.iterdir()) == []


def test_an_encapsulated_clip_has_a_basic_offset_table(tmp_path):
    """PS3.5 A.4: one fragment a frame, and the Basic Offset Table pointing at each fragment's item
    (offsets from the first item after the table)."""
    settings = CaptureSection(encoding="jpeg-ls", color="grayscale")
    result = _write_clip(tmp_path, settings, [ultrasound_frame(seed=i) for i in range(3)])
    data = dcmread(result.path).PixelData
    assert data[:4] == b"\xfe\xff\x00\xe0"
    table_length = int.from_bytes(data[4:8], "little")
    assert table_length == 12
    offsets = np.frombuffer(data[8:8 + table_length], "<u4")
    first = 8 + table_length
    assert offsets[0] == 0
    for offset in offsets:
        assert data[first + offset:first + offset + 4] == b"\xfe\xff\x00\xe0"
        assert data[first + offset + 8:first + offset + 10] == b"\xff\xd8"  # a JPEG-LS stream's SOI


def test_a_clip_over_4_gb_gets_an_empty_basic_offset_table(tmp_path):
    settings = CaptureSection()
    writer = ClipWriter(tmp_path / "c.dcm", procedure("ascii"), new_series(settings, 1), EQUIPMENT, settings,
                        FMT, 1, WHEN)
    writer._offsets = array("Q", [0, 2**32])  # what two frames 4 GB apart would leave
    assert writer._basic_offset_table() == b"\xfe\xff\x00\xe0\x00\x00\x00\x00"
    writer.discard()


def test_a_close_that_fails_leaves_no_file_and_no_temporaries(tmp_path, monkeypatch):
    settings = CaptureSection()
    writer = ClipWriter(tmp_path / "clip.dcm", procedure("ascii"), new_series(settings, 1), EQUIPMENT, settings,
                        FMT, 1, WHEN)
    writer.add(ultrasound_frame())

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("gateway.capture.clip_file.os.replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        writer.close(WHEN)
    assert list(tmp_path.iterdir()) == []
