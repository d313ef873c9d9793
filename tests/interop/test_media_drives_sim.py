"""The real media drivers against hw-sim's drives, checked with real tools.

Each driver writes a small file-set onto its simulator's image (an ISO made by xorriso's
``stdio:`` device, a FAT32 image written by mtools), verifies it, reads it back and ejects; the
results are checked by peers that share no code with the drivers: ``xorriso -check_md5_r``,
``isoinfo -l`` (genisoimage) for the ISO's names, ``mdir`` / ``mcopy`` for the stick.  Every
simulated fault gives its typed error and never a medium reported good; the `hw-sim media`
command line, run as its own process, changes what the drive reports.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.media.interface import (
    MediaError, MediumFull, MediumKind, MediumRemoved, NoMedium, ReadBackMismatch, ReadOnlyMedium,
    WriteFailed)
from hwsim.media import SimError, SimulatedOpticalDrive, SimulatedUsbPort
from peers import ROOT, require, wait_until

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "hw-sim"),
                                                    os.environ.get("PYTHONPATH", "")])}


@pytest.fixture
def optical_tools():
    require("xorriso", "xorriso")
    return require("isoinfo", "genisoimage")


@pytest.fixture
def usb_tools():
    require("mkfs.vfat", "dosfstools")
    for tool in ("mcopy", "mdir", "mmd", "mlabel", "minfo"):
        require(tool, "mtools")


def _tree(root: Path) -> list[tuple[str, Path]]:
    """A small file-set: a DICOMDIR, README.TXT and images two levels down, distinct bytes each."""
    files = {"DICOMDIR": 3000, "README.TXT": 200, "DICOM/P0000001/S0000001/I0000001": 70_000,
             "DICOM/P0000001/S0000001/I0000002": 5000, "DICOM/P0000001/S0000002/I0000001": 1}
    mapping = []
    root.mkdir(parents=True, exist_ok=True)
    for i, (dest, size) in enumerate(files.items()):
        src = root / f"source-{i}.dcm"  # sources are named unlike their destinations, on purpose
        src.write_bytes(random.Random(i).randbytes(size))
        mapping.append((dest, src))
    return mapping


@pytest.fixture
def optical(tmp_path, optical_tools):
    sim = SimulatedOpticalDrive("cd", tmp_path / "sim" / "cd")
    drive = sim.drive(timeout_s=120)
    drive.start()
    events = []
    drive.events.start(events.append)
    yield sim, drive, events
    drive.stop()


@pytest.fixture
def usb(tmp_path, usb_tools):
    sim = SimulatedUsbPort("stick", tmp_path / "sim" / "stick", stick_bytes=40 * 1024 * 1024)
    drive = sim.drive(timeout_s=120)
    drive.start()
    events = []
    drive.events.start(events.append)
    yield sim, drive, events
    drive.stop()


def _iso_names(isoinfo: str, image: Path) -> list[str]:
    out = subprocess.run([isoinfo, "-l", "-i", str(image)], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.startswith("-")]


# -- round trips ---------------------------------------------------------------------------------

def test_optical_writes_verifies_reads_back_and_ejects(optical, tmp_path, optical_tools):
    sim, drive, events = optical
    assert drive.medium() is None
    sim.insert("cd", None)
    assert events[-1].action == "inserted" and events[-1].kind is MediumKind.CD and events[-1].blank
    info = drive.medium()
    assert (info.kind, info.blank, info.capacity_bytes, info.read_only) == (MediumKind.CD, True, 359_847 * 2048, False)
    mapping = _tree(tmp_path / "src")
    seen = []
    drive.write(mapping, "STUDY_1", progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1]
    drive.verify(mapping)
    info = drive.medium()
    assert (info.blank, info.label, info.free_bytes, info.read_only) == (False, "STUDY_1", 0, True)
    # A peer checks the MD5s xorriso recorded, and isoinfo reads plain ISO 9660 names unmangled.
    check = subprocess.run(["xorriso", "-md5", "on", "-indev", str(sim.image), "-check_md5_r", "SORRY", "/", "--"],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "File contents and their MD5 checksums match" in check.stdout + check.stderr
    names = _iso_names(optical_tools, sim.image)
    assert sorted(n.removesuffix(";1").removesuffix(".") for n in names) == sorted(
        ["DICOMDIR", "README.TXT", "I0000001", "I0000002", "I0000001"])
    pvd = subprocess.run([optical_tools, "-d", "-i", str(sim.image)], capture_output=True, text=True, timeout=60)
    assert "Volume id: STUDY_1" in pvd.stdout
    back = drive.read_tree(tmp_path / "back")
    for dest, src in mapping:
        assert (back / dest).read_bytes() == src.read_bytes(), dest
    written = sim.image.read_bytes()
    drive.eject()
    assert drive.medium() is None and events[-1].action == "removed"
    # The disc the user now holds is kept for them to look at (make run: config/hw-sim/media/cd/ejected/).
    (kept,) = (sim.folder / "ejected").iterdir()
    assert kept.name.endswith("-disc.iso") and kept.read_bytes() == written


def test_a_dvd_reports_its_capacity_and_a_written_disc_is_not_written_again(optical, tmp_path):
    sim, drive, _ = optical
    sim.insert("dvd", None)
    info = drive.medium()
    assert (info.kind, info.capacity_bytes) == (MediumKind.DVD, 2_295_104 * 2048)
    mapping = _tree(tmp_path / "src")
    drive.write(mapping, "DVD_1")
    drive.verify(mapping)
    with pytest.raises(ReadOnlyMedium, match="drive cd: .*the dvd is not blank"):
        drive.write(mapping, "DVD_2")


def test_a_disc_inserted_from_a_folder_reads_back(optical, tmp_path):
    sim, drive, events = optical
    folder = tmp_path / "disc"
    (folder / "DICOM").mkdir(parents=True)
    (folder / "DICOMDIR").write_bytes(b"dicomdir bytes")
    (folder / "DICOM" / "IM1").write_bytes(b"image bytes")
    sim.insert("cd", folder)
    assert events[-1].blank is False and drive.medium().blank is False
    back = drive.read_tree(tmp_path / "back")
    assert (back / "DICOMDIR").read_bytes() == b"dicomdir bytes"
    assert (back / "DICOM" / "IM1").read_bytes() == b"image bytes"


def test_usb_writes_verifies_reads_back_and_ejects(usb, tmp_path, usb_tools):
    sim, drive, events = usb
    assert drive.medium() is None
    sim.insert("usb", None)
    assert events[-1].action == "inserted" and events[-1].kind is MediumKind.USB
    info = drive.medium()
    assert (info.kind, info.blank, info.read_only) == (MediumKind.USB, True, False)
    assert 30_000_000 < info.free_bytes <= info.capacity_bytes == 40 * 1024 * 1024
    mapping = _tree(tmp_path / "src")
    seen = []
    drive.write(mapping, "STUDY_1", progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (sum(s.stat().st_size for _, s in mapping),) * 2
    drive.verify(mapping)
    info = drive.medium()
    assert (info.blank, info.label) == (False, "STUDY_1")
    # mtools itself, not the driver, reads the stick back.
    listing = subprocess.run(["mdir", "-/", "-b", "-i", str(sim.image), "::/"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout.split()
    assert sorted(p.removeprefix("::/") for p in listing if not p.endswith("/")) == sorted(d for d, _ in mapping)
    out = tmp_path / "one"
    subprocess.run(["mcopy", "-i", str(sim.image), "::/DICOM/P0000001/S0000001/I0000001", str(out)], check=True,
                   timeout=60, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    assert out.read_bytes() == mapping[2][1].read_bytes()
    back = drive.read_tree(tmp_path / "back")
    for dest, src in mapping:
        assert (back / dest).read_bytes() == src.read_bytes(), dest
    drive.eject()
    assert drive.medium() is None and events[-1].action == "removed"


def test_a_stick_holding_a_file_set_is_not_written_over(usb, tmp_path):
    sim, drive, _ = usb
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "DICOMDIR").write_bytes(b"someone else's")
    sim.insert("usb", folder)
    assert drive.medium().blank is False
    with pytest.raises(WriteFailed, match="drive stick: writing failed: the stick already holds DICOMDIR"):
        drive.write(_tree(tmp_path / "src"), "STUDY_1")
    assert (drive.read_tree(tmp_path / "back") / "DICOMDIR").read_bytes() == b"someone else's"


def test_no_medium(optical, usb, tmp_path):
    for _, drive, _ in (optical, usb):
        with pytest.raises(NoMedium, match=f"drive {drive.name}: no medium in the drive"):
            drive.write(_tree(tmp_path / "src"), "STUDY_1")


# -- faults: each typed, never a medium reported good, and the next medium works -------------------

FAULT_ERRORS = [("pull", MediumRemoved), ("full", MediumFull), ("write-error", WriteFailed),
                ("bad-sector", ReadBackMismatch)]


def _export(drive, mapping) -> None:
    """What the export worker will do: a medium is good only when write and verify both return."""
    drive.write(mapping, "STUDY_1")
    drive.verify(mapping)


@pytest.mark.parametrize("fault, error", FAULT_ERRORS)
def test_optical_faults(optical, tmp_path, fault, error):
    sim, drive, _ = optical
    mapping = _tree(tmp_path / "src")
    sim.insert("cd", None)
    sim.fault(fault)
    with pytest.raises(error, match="^drive cd: "):
        _export(drive, mapping)
    if fault == "pull":
        assert drive.medium() is None and not sim.image.exists()
    # The fault fired once: the next blank disc is written and verified.
    if sim.image.exists():
        sim.pull()
    sim.insert("cd", None)
    _export(drive, mapping)


@pytest.mark.parametrize("fault, error", FAULT_ERRORS + [("read-only", ReadOnlyMedium)])
def test_usb_faults(usb, tmp_path, fault, error):
    sim, drive, _ = usb
    mapping = _tree(tmp_path / "src")
    sim.insert("usb", None)
    sim.fault(fault)
    with pytest.raises(error, match="^drive stick: "):
        _export(drive, mapping)
    if fault == "pull":
        assert drive.medium() is None
    if fault == "read-only":
        assert drive.medium().read_only and drive.medium().blank  # nothing was written
        sim.fault("clear")
    if sim.image.exists():
        sim.pull()
    sim.insert("usb", None)
    _export(drive, mapping)


def test_bad_sector_names_the_first_bad_file(optical, usb, tmp_path):
    mapping = _tree(tmp_path / "src")
    for sim, drive, _ in (optical, usb):
        sim.insert("cd" if sim.type == "optical" else "usb", None)
        sim.fault("bad-sector")
        drive.write(mapping, "STUDY_1")  # written: the sector goes bad under it
        with pytest.raises(ReadBackMismatch) as err:
            drive.verify(mapping)
        assert err.value.path == "DICOMDIR", str(err.value)


def test_read_only_is_a_stick_fault_only(optical):
    sim, _, _ = optical
    with pytest.raises(SimError, match="read-only is a USB stick fault"):
        sim.fault("read-only")
    with pytest.raises(SimError, match="unknown fault 'melt'"):
        sim.fault("melt")


# -- the hw-sim command line from another process ------------------------------------------------------

def _hwsim(sim_dir: Path, *args: str, wait: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwsim.cli", "--sim-dir", str(sim_dir), "--wait", str(wait),
                           "media", *args], capture_output=True, text=True, timeout=180, env=ENV)


def test_hwsim_media_commands_change_what_the_drives_report(optical, usb, tmp_path):
    (osim, odrive, oevents), (usim, udrive, uevents) = optical, usb
    sim_dir = tmp_path / "sim"
    run = _hwsim(sim_dir, "insert", "cd", "--blank")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "cd (optical): cd blank; faults armed: none"
    assert odrive.medium().blank and oevents[-1].action == "inserted"

    run = _hwsim(sim_dir, "fault", "cd", "bad-sector")
    assert run.returncode == 0 and "faults armed: bad-sector" in run.stdout
    assert osim.faults == {"bad-sector"}

    run = _hwsim(sim_dir, "pull", "cd")
    assert run.returncode == 0 and "cd (optical): empty" in run.stdout
    assert odrive.medium() is None and oevents[-1].action == "removed"
    run = _hwsim(sim_dir, "pull", "cd")
    assert run.returncode == 1 and run.stderr == "hw-sim: drive cd has no medium to pull\n"

    folder = tmp_path / "stick-content"
    folder.mkdir()
    (folder / "DICOMDIR").write_bytes(b"on the stick")
    run = _hwsim(sim_dir, "insert", "usb", "--from", str(folder))
    assert run.returncode == 0, run.stderr
    assert "stick (usb): usb with data" in run.stdout
    assert (udrive.read_tree(tmp_path / "back") / "DICOMDIR").read_bytes() == b"on the stick"
    assert uevents[-1].action == "inserted"

    run = _hwsim(sim_dir, "insert", "dvd")
    assert run.returncode == 0 and odrive.medium().kind is MediumKind.DVD
    status = _hwsim(sim_dir, "status")
    assert status.returncode == 0
    assert sorted(status.stdout.splitlines()) == ["cd (optical): dvd blank; faults armed: bad-sector",
                                                  "stick (usb): usb with data; faults armed: none"]
    # Each command was applied once and taken away, its answer read: nothing fires again.
    for drive in ("cd", "stick"):
        assert not list((sim_dir / drive / "commands").iterdir())
        assert not list((sim_dir / drive / "results").iterdir())


def test_hwsim_media_refusals_are_one_line(tmp_path, optical):
    sim_dir = tmp_path / "sim"
    for args, message in [(("pull", "floppy"), "no simulated drive 'floppy'"),
                          (("insert", "usb"), "0 simulated usb drives"),
                          (("insert", "cd", "--from", str(tmp_path / "nope")), "not a folder")]:
        run = _hwsim(sim_dir, *args)
        assert run.returncode == 1 and message in run.stderr and run.stderr.count("\n") == 1, run.stderr
    bad = _hwsim(sim_dir, "fault", "cd", "melt")
    assert bad.returncode == 2
    empty = _hwsim(tmp_path / "none", "status")
    assert empty.returncode == 1 and "no simulated media drive" in empty.stderr


def test_hwsim_media_says_when_no_simulator_is_listening(tmp_path, optical):
    sim, _, _ = optical
    sim.stop()  # the folder stays, as after the service stopped
    run = _hwsim(tmp_path / "sim", "insert", "cd", wait=0.5)
    assert run.returncode == 1 and "no simulator picked the command up" in run.stderr
    assert not list((tmp_path / "sim" / "cd" / "commands").iterdir())  # nothing left to fire later


# -- config -> registry -> simulator, as the service will build it ---------------------------------

def test_a_configured_simulated_drive_runs_the_real_driver(tmp_path, optical_tools):
    from drivers import registry
    from gateway.config.load import load
    (tmp_path / "gateway.toml").write_text('[media.drives.cd]\nkind = "optical-sim"\nsim_cd_mb = 1\n')
    cfg = load(tmp_path / "gateway.toml").config.media.drives["cd"]
    drive = registry.create("media", cfg.kind, "cd", cfg, lambda p: tmp_path / p)
    drive.start()
    try:
        drive.simulator.insert("cd", None)
        assert drive.medium().capacity_bytes == 1_000_000
        big = tmp_path / "big"
        big.write_bytes(b"\1" * 2_000_000)
        with pytest.raises(MediumFull, match="drive cd: the file-set does not fit on the medium: needs about 2.1 MB, the cd has 1.0 MB"):
            drive.write([("DICOM/I1", big)], "STUDY_1")
        assert drive.medium().blank  # nothing was burnt
        wait_until(lambda: (tmp_path / "hw-sim" / "media" / "cd" / "state.json").exists(), 5, what="state.json")
    finally:
        drive.stop()
    assert isinstance(MediumFull("cd"), MediaError)


# -- the box's own source: pyudev ---------------------------------------------------------------------

def test_the_udev_source_classifies_real_pyudev_devices_and_stops(tmp_path):
    """The real UdevEventSource on this machine's udev: at start it reports what is in each
    configured drive; a block device that is no optical drive, named as one, has no disc in it."""
    pyudev = pytest.importorskip("pyudev")
    import threading
    from drivers.media.hotplug import UdevEventSource
    try:
        devices = list(pyudev.Context().list_devices(subsystem="block"))
    except Exception as exc:  # noqa: BLE001 - no /sys or udev here: nothing to test against
        pytest.skip(f"no udev database: {exc}")
    if not devices:
        pytest.skip("no block devices on this machine")
    devname = devices[0].device_node
    source = UdevEventSource({devname: "cd"}, None)
    got = []
    before = set(threading.enumerate())
    source.start(got.append)
    try:
        assert [(e.action, e.drive, e.devname) for e in got] == [("removed", "cd", devname)]
    finally:
        source.stop()
    wait_until(lambda: set(threading.enumerate()) <= before, 10, what="the observer thread to end")


def test_a_medium_already_in_the_drive_is_reported_at_start(tmp_path, optical_tools, usb_tools):
    """Coldplug, as the box's udev source does: a disc left in the tray or a stick plugged in
    before the service started is reported when the drive's event source starts."""
    cd = SimulatedOpticalDrive("cd", tmp_path / "sim" / "cd")
    cd.drive().start()
    cd.insert("cd", None)  # nobody listening yet
    stick = SimulatedUsbPort("stick", tmp_path / "sim" / "stick", stick_bytes=40 * 1024 * 1024)
    stick_drive = stick.drive()
    stick_drive.start()
    stick.insert("usb", None)
    seen = []
    cd.events.start(seen.append)
    stick.events.start(seen.append)
    try:
        assert [(e.action, e.drive, e.blank) for e in seen] == [("inserted", "cd", True),
                                                                  ("inserted", "stick", None)]
    finally:
        cd.stop()
        stick.stop()
