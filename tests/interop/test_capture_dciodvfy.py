"""Every object a capture makes, in every encoding, checked by real readers: dicom3tools' dciodvfy
finds no error (PS3.3 A.8.1 SC, A.8.3 / A.8.5 multi-frame SC, A.32.1 VL Endoscopic), and DCMTK
decompresses it (dcmdjpeg, dcmdrle, dcmdjpls) back to the frames given: bit-exact for the lossless
encodings, PSNR >= 40 dB for JPEG Baseline at the default quality.

Warnings dciodvfy may give and why they stay (anything else fails the test):
- Laterality (0020,0060) present but empty: General Series makes it Type 2C (required for a
  paired body part); a video grabber cannot know the side, so it is empty, which dciodvfy accepts
  "only when actually unknown": that is the case here.
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread, dcmwrite

from capture_pictures import procedure, psnr, ultrasound_frame
from drivers.grabber.interface import FrameFormat
from gateway.capture.clip_file import ClipWriter
from gateway.capture.iod import Equipment, new_series, still
from gateway.config.capture import CaptureSection
from image.video_frame import rgb_to_gray
from peers import require

ENCODINGS = ("uncompressed", "jpeg-baseline", "rle", "jpeg-ls")
OBJECTS = ("still-sc", "still-vl-endoscopic", "clip-true-color", "clip-grayscale-byte")
EQUIPMENT = Equipment("Acme Imaging", "FrameBox 2", "1.4.2", device_serial_number="FB-1", station_name="ENDO1")
WHEN = datetime(2026, 11, 29, 9, 30, 15, 250000)
FMT = FrameFormat(width=640, height=480, fps=25.0, source_format="yuyv422", analog=True)

ALLOWED_WARNINGS = ("attribute <Laterality>",)
DECOMPRESSOR = {"jpeg-baseline": ("dcmdjpeg", "dcmtk"), "rle": ("dcmdrle", "dcmtk"), "jpeg-ls": ("dcmdjpls", "dcmtk")}


def _make(tmp_path: Path, obj: str, encoding: str, kind: str = "latin1", color: str = "rgb"):
    """Write one object; its path, the frames it holds (as the object stores them: luma for
    grayscale) and its settings."""
    if obj == "clip-grayscale-byte":
        color = "grayscale"
    settings = CaptureSection(encoding=encoding, color=color, institution="Klinikum Nord")
    modality = "ES" if obj == "still-vl-endoscopic" else "US"
    proc = procedure(kind, modality)
    series = new_series(settings, 5)
    path = tmp_path / f"{obj}-{encoding}.dcm"
    if obj.startswith("still"):
        frames = [ultrasound_frame()]
        dcmwrite(path, still(frames[0], proc, series, EQUIPMENT, settings, 1, WHEN), enforce_file_format=True)
    else:
        frames = [ultrasound_frame(seed=i) for i in range(3)]
        writer = ClipWriter(path, proc, series, EQUIPMENT, settings, FMT, 2, WHEN)
        for f in frames:
            writer.add(f)
        writer.close(WHEN + timedelta(seconds=2 / FMT.fps), "signal lost")
    expected = [rgb_to_gray(f) if color == "grayscale" else f for f in frames]
    return path, expected, settings


def _dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    exe = require("dciodvfy", "dicom3tools")
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
    lines = (out.stdout + out.stderr).splitlines()
    # A message may follow a tag on its line ("(0x7fe0,0x0001) OV ... Warning - ..."), so any
    # line naming an error or a warning counts.
    errors = [line for line in lines if "Error" in line]
    warnings = [line for line in lines if "Warning" in line]
    return errors, warnings


def _assert_valid(path: Path) -> None:
    errors, warnings = _dciodvfy(path)
    assert errors == [], "\n".join(errors)
    unexplained = [w for w in warnings if not any(a in w for a in ALLOWED_WARNINGS)]
    assert unexplained == [], "\n".join(unexplained)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("obj", OBJECTS)
def test_dciodvfy_finds_no_error(tmp_path, obj, encoding):
    path, _, _ = _make(tmp_path, obj, encoding)
    _assert_valid(path)


@pytest.mark.parametrize("obj", ["still-sc", "still-vl-endoscopic"])
def test_a_grayscale_still_is_valid_too(tmp_path, obj):
    for encoding in ENCODINGS:
        path, _, _ = _make(tmp_path, obj, encoding, color="grayscale")
        _assert_valid(path)


@pytest.mark.parametrize("kind", ["japanese", "unscheduled", "ascii"])
def test_other_procedures_give_valid_objects(tmp_path, kind):
    for obj in ("still-sc", "clip-true-color"):
        path, _, _ = _make(tmp_path, obj, "jpeg-baseline", kind=kind)
        _assert_valid(path)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("obj", OBJECTS)
def test_dcmtk_decodes_the_frames_given(tmp_path, obj, encoding):
    path, expected, settings = _make(tmp_path, obj, encoding)
    if encoding in DECOMPRESSOR:
        tool, package = DECOMPRESSOR[encoding]
        exe = require(tool, package)
        plain = tmp_path / "plain.dcm"
        out = subprocess.run([exe, str(path), str(plain)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    else:
        exe = require("dcmconv", "dcmtk")
        plain = tmp_path / "plain.dcm"
        out = subprocess.run([exe, "+te", str(path), str(plain)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    back = dcmread(plain)
    assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    pixels = back.pixel_array
    if len(expected) == 1:
        pixels = pixels[None]
    assert pixels.shape[0] == len(expected)
    for got, want in zip(pixels, expected):
        if encoding == "jpeg-baseline":
            assert psnr(want, got) >= 40.0
        else:
            assert np.array_equal(got, want)
