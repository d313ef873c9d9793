"""hw-sim's mid-write faults under the real media drivers: "pull" and "write-error" strike after
part of the file-set is on the medium, never at the start.

Optical: xorriso's burn into ``stdio:disc.iso`` is cut mid-stream (the simulator's FIFO stops
taking bytes after the system area and ``at`` of the files' bytes), so the disc left behind holds
exactly that many bytes of a real ISO image.  USB: the stick fails or goes between two of the
driver's mcopy calls, after the copy that brings the files to ``at`` of their bytes, so the stick
holds the first folders' files and not the rest.  The driver raises its one-line typed error, the
fault fires once, and the next medium is written and verified.  Real xorriso and mtools.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import threading
from pathlib import Path

import pytest

from drivers.media.interface import MediumRemoved, WriteFailed
from hwsim.media import ISO_SYSTEM_AREA, SimError, SimulatedOpticalDrive, SimulatedUsbPort
from peers import require

MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
# Destination -> size: the root's files, then two series folders (the USB driver copies folder
# by folder, in this order).
TREE = {"DICOMDIR": 3000, "README.TXT": 200, "DICOM/P0000001/S0000001/I0000001": 70_000,
        "DICOM/P0000001/S0000001/I0000002": 5000, "DICOM/P0000001/S0000002/I0000001": 30_000}
SEEDS = [3, 11, 29]


def tree(root: Path) -> list[tuple[str, Path]]:
    root.mkdir(parents=True, exist_ok=True)
    mapping = []
    for i, (dest, size) in enumerate(TREE.items()):
        src = root / f"source-{i}"
        src.write_bytes(random.Random(i).randbytes(size))
        mapping.append((dest, src))
    return mapping


def total(mapping) -> int:
    return sum(src.stat().st_size for _, src in mapping)


@pytest.fixture
def optical(tmp_path):
    require("xorriso", "xorriso")
    sim = SimulatedOpticalDrive("cd", tmp_path / "sim" / "cd")
    drive = sim.drive(timeout_s=120)
    drive.start()
    events = []
    drive.events.start(events.append)
    yield sim, drive, events
    drive.stop()


@pytest.fixture
def usb(tmp_path):
    require("mkfs.vfat", "dosfstools")
    require("mcopy", "mtools")
    sim = SimulatedUsbPort("stick", tmp_path / "sim" / "stick", stick_bytes=40 * 1024 * 1024)
    drive = sim.drive(timeout_s=120)
    drive.start()
    events = []
    drive.events.start(events.append)
    yield sim, drive, events
    drive.stop()


def written_then_verified(sim, drive, mapping, medium: str) -> None:
    """The fault fired once: the next blank medium is written and verified."""
    if sim.image.exists():
        sim.pull()
    sim.insert(medium, None)
    drive.write(mapping, "STUDY_1")
    drive.verify(mapping)


def no_relay_left() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("hwsim-burn-")]


# -- optical: the burn is cut mid-stream ---------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_a_write_error_cuts_the_burn_and_leaves_a_half_written_disc(optical, tmp_path, seed):
    sim, drive, _ = optical
    mapping = tree(tmp_path / "src")
    at = random.Random(seed).uniform(0.05, 0.95)
    sim.insert("cd", None)
    sim.fault("write-error", at=at)
    with pytest.raises(WriteFailed) as err:
        drive.write(mapping, "STUDY_1")
    # xorriso's FAILURE line depends on where the stream broke ("libburn indicates failure with
    # writing.", "Burn run failed"): one line of it, after the drive and the exit status.
    assert re.fullmatch(r"drive cd: writing failed: xorriso exit 5: [^\n]+", str(err.value)), str(err.value)
    # The disc holds the burn up to the cut, byte for byte: the system area, the volume
    # descriptors xorriso wrote first, `at` of the files' bytes; not the rest of the image.
    cut = ISO_SYSTEM_AREA + int(at * total(mapping))
    disc = sim.image.read_bytes()
    assert sim.image.is_file() and len(disc) == cut
    assert disc[ISO_SYSTEM_AREA + 1:ISO_SYSTEM_AREA + 6] == b"CD001"  # ECMA-119 8.4: the PVD
    info = drive.medium()
    assert (info.blank, info.read_only, info.label) == (False, True, "STUDY_1")
    check = subprocess.run(["xorriso", "-md5", "on", "-indev", str(sim.image), "-check_md5_r", "SORRY", "/", "--"],
                           capture_output=True, text=True, timeout=60)
    assert "File contents and their MD5 checksums match" not in check.stdout + check.stderr
    assert sim.faults == set() and no_relay_left()
    assert sorted(p.name for p in sim.folder.iterdir() if p.name.startswith("disc")) == ["disc.iso"]
    written_then_verified(sim, drive, mapping, "cd")


@pytest.mark.parametrize("seed", SEEDS)
def test_a_disc_pulled_mid_burn_is_gone_and_half_written(optical, tmp_path, seed):
    sim, drive, events = optical
    mapping = tree(tmp_path / "src")
    at = random.Random(seed).uniform(0.05, 0.95)
    sim.insert("dvd", None)
    sim.fault("pull", at=at)
    with pytest.raises(MediumRemoved, match="^drive cd: the medium was removed during the operation$"):
        drive.write(mapping, "STUDY_1")
    assert drive.medium() is None and events[-1].action == "removed"
    # The disc the user pulled out: the burn up to the cut.
    (pulled,) = (sim.folder / "pulled").iterdir()
    assert pulled.name.endswith("-disc.iso")
    assert pulled.stat().st_size == ISO_SYSTEM_AREA + int(at * total(mapping))
    assert sim.faults == set() and no_relay_left()
    written_then_verified(sim, drive, mapping, "dvd")


def test_a_burn_that_fails_before_the_cut_leaves_the_fault_armed(optical, tmp_path):
    """xorriso ended before the cut (here: it cannot start): the device never failed, so the
    fault waits for the next write, and the blank disc is still blank."""
    sim, drive, _ = optical
    mapping = tree(tmp_path / "src")
    sim.insert("cd", None)
    sim.fault("write-error")
    drive.xorriso = str(tmp_path / "no-such-xorriso")
    with pytest.raises(WriteFailed, match="cannot run"):
        drive.write(mapping, "STUDY_1")
    assert sim.faults == {"write-error"} and no_relay_left()
    assert drive.medium().blank and not sim.image.is_fifo()


# -- USB: the copy fails between two mcopy calls ---------------------------------------------------------

def on_stick(image: Path) -> set[str]:
    out = subprocess.run(["mdir", "-/", "-b", "-i", str(image), "::/"], capture_output=True, text=True,
                         timeout=60, env=MTOOLS_ENV)
    assert out.returncode == 0, out.stderr
    return {p.removeprefix("::/") for p in out.stdout.split() if not p.endswith("/")}


def first_folders(at: float) -> set[str]:
    """The files of the folders copied until the copied bytes reach `at` of all."""
    folders: dict[str, list[str]] = {}
    for dest in TREE:
        folders.setdefault(dest.rpartition("/")[0], []).append(dest)
    want, done, out = at * sum(TREE.values()), 0, set()
    for files in folders.values():
        out.update(files)
        done += sum(TREE[f] for f in files)
        if done >= want:
            return out
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_a_stick_failing_mid_copy_keeps_the_first_files_only(usb, tmp_path, seed):
    sim, drive, _ = usb
    mapping = tree(tmp_path / "src")
    at = random.Random(seed).uniform(0.05, 0.95)
    sim.insert("usb", None)
    sim.fault("write-error", at=at)
    with pytest.raises(WriteFailed, match=r"^drive stick: writing failed: copying into /DICOM/P0000001/S000000\d: "
                                          r"init :: non DOS media$"):
        drive.write(mapping, "STUDY_1")
    there = on_stick(sim.image)
    assert there == first_folders(at) and there < set(TREE), there
    info = drive.medium()
    assert not info.blank and info.label != "STUDY_1"  # the label comes last: never set
    assert sim.faults == set() and not sim.image.is_symlink()
    written_then_verified(sim, drive, mapping, "usb")


@pytest.mark.parametrize("seed", SEEDS)
def test_a_stick_pulled_mid_copy_is_gone_and_half_written(usb, tmp_path, seed):
    sim, drive, events = usb
    mapping = tree(tmp_path / "src")
    at = random.Random(seed).uniform(0.05, 0.95)
    sim.insert("usb", None)
    sim.fault("pull", at=at)
    with pytest.raises(MediumRemoved, match="^drive stick: the medium was removed during the operation$"):
        drive.write(mapping, "STUDY_1")
    assert drive.medium() is None and events[-1].action == "removed"
    (pulled,) = (sim.folder / "pulled").iterdir()
    there = on_stick(pulled)
    assert there == first_folders(at) and there < set(TREE), there
    assert sim.faults == set()
    written_then_verified(sim, drive, mapping, "usb")


# -- arming ---------------------------------------------------------------------------------------------

def test_where_a_fault_strikes_is_checked_when_it_is_armed(tmp_path):
    sim = SimulatedUsbPort("stick", tmp_path / "stick")
    with pytest.raises(SimError, match="only pull and write-error strike at a point of the write, not 'full'"):
        sim.fault("full", at=0.5)
    for bad in (0, 1, 1.5, -0.1, "half", True):
        with pytest.raises(SimError, match="at must be a fraction of the write between 0 and 1"):
            sim.fault("pull", at=bad)
    assert sim.faults == set()
    sim.folder.mkdir(parents=True)
    sim.apply({"verb": "fault", "kind": "write-error", "at": 0.25})
    assert sim.faults == {"write-error"} and sim.cut_at == 0.25
    sim.fault("pull")
    assert sim.cut_at == 0.5


def test_a_stick_pulled_mid_copy_under_hotplug_tracking_is_removed_not_a_crash(tmp_path):
    """In the service the stick's removal uevent reaches the driver (TrackedEvents detaches it)
    while the copy is still running: the next mtools call finds no device and the write ends in
    MediumRemoved, not in an exception from running mtools without one."""
    require("mkfs.vfat", "dosfstools")
    require("mcopy", "mtools")
    from drivers.media.devices import TrackedEvents
    sim = SimulatedUsbPort("stick", tmp_path / "sim" / "stick", stick_bytes=40 * 1024 * 1024)
    disk = sim.drive(timeout_s=120)
    disk.device = None  # as the registry's usb kind: the stick is whatever hotplug reports
    tracked = TrackedEvents(sim.events, disk)
    sim.start()
    seen = []
    tracked.start(seen.append)
    try:
        sim.insert("usb", None)
        assert disk.device == str(sim.image)
        sim.fault("pull", at=0.1)
        with pytest.raises(MediumRemoved, match="^drive stick: the medium was removed during the operation$"):
            disk.write(tree(tmp_path / "src"), "STUDY_1")
        assert disk.device is None and [e.action for e in seen] == ["inserted", "removed"]
    finally:
        sim.stop()


@pytest.mark.parametrize("kind", ["optical", "usb"])
def test_a_device_left_mid_fault_by_a_killed_service_is_settled_at_start(tmp_path, kind):
    """kill -9 while a mid-write fault is under the writer leaves a FIFO (optical) or a link to
    /dev/full (USB) where the image was: the next start puts the half-written medium back."""
    folder = tmp_path / "sim" / "d"
    folder.mkdir(parents=True)
    if kind == "optical":
        sim = SimulatedOpticalDrive("d", folder)
        os.mkfifo(sim.image)
        (folder / "disc.iso.burning").write_bytes(b"\1" * 40_000)
    else:
        sim = SimulatedUsbPort("d", folder)
        os.symlink("/dev/full", sim.image)
        (folder / "stick.img.failing").write_bytes(b"\2" * 40_000)
    sim.start()
    try:
        assert sim.image.is_file() and not sim.image.is_symlink()
        assert sim.image.read_bytes()[:1] == (b"\1" if kind == "optical" else b"\2")
        assert sorted(p.name for p in folder.iterdir() if p.name.startswith(("disc", "stick"))) == [sim.image.name]
    finally:
        sim.stop()
