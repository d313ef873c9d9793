"""The media drives' pure parts: the udev classifier on real-looking property sets, xorriso's TOC
parsing, ISO 9660 level 1 name checks, the [media.drives] config section and the registry family.
The drivers against their simulators and real tools are in tests/interop/test_media_drives_sim.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from drivers import registry
from drivers.media.devices import TrackedEvents
from drivers.media.hotplug import MediaEvent, UdevClassifier, UdevEventSource, classify
from drivers.media.interface import MediaError, MediumKind, ReadBackMismatch, WriteFailed
from drivers.media.optical import (
    OpticalDrive, check_destinations, estimate_image_bytes, parse_progress, parse_toc)
from drivers.media.usb_disk import UsbDisk
from gateway.config.load import ConfigError, load

OPTICAL = {"/dev/sr0": "cd"}

# What `udevadm info /dev/sr0` shows for a DVD writer holding a blank CD-R (cdrom_id).
BLANK_CDR = {
    "DEVNAME": "/dev/sr0", "SUBSYSTEM": "block", "DEVTYPE": "disk", "ID_BUS": "ata", "ID_CDROM": "1",
    "ID_CDROM_CD": "1", "ID_CDROM_CD_R": "1", "ID_CDROM_CD_RW": "1", "ID_CDROM_DVD": "1",
    "ID_CDROM_DVD_PLUS_R": "1", "ID_CDROM_MEDIA": "1", "ID_CDROM_MEDIA_CD_R": "1",
    "ID_CDROM_MEDIA_STATE": "blank", "ID_CDROM_MEDIA_SESSION_NEXT": "1", "ID_CDROM_MEDIA_TRACK_COUNT": "1",
}
# The same drive with a pressed data DVD.
DATA_DVD = {
    "DEVNAME": "/dev/sr0", "SUBSYSTEM": "block", "DEVTYPE": "disk", "ID_BUS": "ata", "ID_CDROM": "1",
    "ID_CDROM_CD": "1", "ID_CDROM_DVD": "1", "ID_CDROM_MEDIA": "1", "ID_CDROM_MEDIA_DVD": "1",
    "ID_CDROM_MEDIA_STATE": "complete", "ID_CDROM_MEDIA_SESSION_COUNT": "1",
    "ID_CDROM_MEDIA_TRACK_COUNT_DATA": "1", "ID_FS_TYPE": "iso9660", "ID_FS_LABEL": "STUDY_1",
}
# The tray opened: the drive's properties without any ID_CDROM_MEDIA*.
EMPTY_TRAY = {k: v for k, v in BLANK_CDR.items() if not k.startswith("ID_CDROM_MEDIA")}
# A USB stick: the disk (partition table, no file system), then its FAT32 partition.
STICK_DISK = {
    "DEVNAME": "/dev/sdb", "SUBSYSTEM": "block", "DEVTYPE": "disk", "ID_BUS": "usb",
    "ID_USB_DRIVER": "usb-storage", "ID_MODEL": "Cruzer_Blade", "ID_PART_TABLE_TYPE": "dos",
}
STICK_PART = {
    "DEVNAME": "/dev/sdb1", "SUBSYSTEM": "block", "DEVTYPE": "partition", "ID_BUS": "usb",
    "ID_USB_DRIVER": "usb-storage", "ID_MODEL": "Cruzer_Blade", "ID_FS_TYPE": "vfat",
    "ID_FS_VERSION": "FAT32", "ID_FS_USAGE": "filesystem", "ID_FS_LABEL": "STICK", "PARTN": "1",
}
SATA_EXT4 = {"DEVNAME": "/dev/sda2", "SUBSYSTEM": "block", "DEVTYPE": "partition", "ID_BUS": "ata",
             "ID_FS_TYPE": "ext4"}


# -- hotplug --------------------------------------------------------------------------------------

def test_a_blank_cdr_is_a_blank_cd_inserted():
    assert classify("change", BLANK_CDR, OPTICAL, "stick") == MediaEvent(
        "inserted", "cd", MediumKind.CD, True, "/dev/sr0")


def test_a_dvd_with_data_is_a_dvd_not_blank():
    # The drive's own capabilities (ID_CDROM_DVD=1) say nothing about the disc: only *_MEDIA_* do.
    assert classify("change", DATA_DVD, OPTICAL, "stick") == MediaEvent(
        "inserted", "cd", MediumKind.DVD, False, "/dev/sr0")


def test_an_empty_tray_is_a_removal():
    assert classify("change", EMPTY_TRAY, OPTICAL, None) == MediaEvent("removed", "cd", None, None, "/dev/sr0")


def test_a_usb_sticks_vfat_partition_is_inserted_its_disk_is_not():
    assert classify("add", STICK_DISK, OPTICAL, "stick") is None
    assert classify("add", STICK_PART, OPTICAL, "stick") == MediaEvent(
        "inserted", "stick", MediumKind.USB, None, "/dev/sdb1")


def test_a_pulled_stick_is_a_removal_of_its_partition():
    assert classify("remove", STICK_DISK, OPTICAL, "stick") is None
    assert classify("remove", STICK_PART, OPTICAL, "stick") == MediaEvent(
        "removed", "stick", None, None, "/dev/sdb1")


def test_devices_not_configured_are_ignored():
    assert classify("add", SATA_EXT4, OPTICAL, "stick") is None
    assert classify("add", STICK_PART, OPTICAL, None) is None  # no USB drive configured
    assert classify("change", {**BLANK_CDR, "DEVNAME": "/dev/sr1"}, OPTICAL, "stick") is None
    assert classify("add", {**STICK_PART, "ID_FS_TYPE": "ntfs"}, OPTICAL, "stick") is None


def test_the_classifier_delivers_only_while_started():
    source = UdevClassifier(OPTICAL, "stick")
    got = []
    assert source.feed("change", BLANK_CDR) is not None  # classified, nobody listening yet
    source.start(got.append)
    source.feed("change", BLANK_CDR)
    source.feed("add", SATA_EXT4)
    source.stop()
    source.feed("change", EMPTY_TRAY)
    assert [e.action for e in got] == ["inserted"]


def test_a_usb_drive_follows_its_stick_through_hotplug():
    disk = UsbDisk("stick")
    source = UdevClassifier({}, "stick")
    events = TrackedEvents(source, disk)
    got = []
    events.start(got.append)
    source.feed("add", STICK_PART)
    assert disk.device == "/dev/sdb1" and got[-1].action == "inserted"
    source.feed("remove", STICK_PART)
    assert disk.device is None and disk.medium() is None


# -- xorriso's TOC ----------------------------------------------------------------------------------

def test_parse_toc_blank_cdr():
    out = ("Drive current: -outdev '/dev/sr0'\nMedia current: CD-R\nMedia product: 97m26s66f , CMC Magnetics\n"
           "Media status : is blank\nMedia blocks : 0 readable , 359844 writable , 359844 overall\n"
           "Media summary: 0 sessions, 0 data blocks, 0 data,  703m free\n")
    info = parse_toc("cd", out)
    assert (info.kind, info.blank, info.capacity_bytes, info.free_bytes, info.read_only) == (
        MediumKind.CD, True, 359844 * 2048, 359844 * 2048, False)


def test_parse_toc_closed_dvd_and_no_disc():
    out = ("Media current: DVD-ROM\nMedia status : is written , is closed\n"
           "Media blocks : 2295104 readable , 0 writable , 2295104 overall\nVolume id    : 'STUDY_1'\n")
    info = parse_toc("cd", out)
    assert (info.kind, info.blank, info.free_bytes, info.label, info.read_only) == (
        MediumKind.DVD, False, 0, "STUDY_1", True)
    assert parse_toc("cd", "Drive current: -outdev '/dev/sr0'\nMedia current: is not present\n"
                           "Media status : is not present\n") is None


def test_burn_progress_from_xorrisos_pacifier():
    # A line xorriso 1.5.4 printed while writing a 60 MB file to a stdio: image.
    line = "xorriso : UPDATE : Writing:       3108s   10.5%   fifo   0%  buf  50%\n"
    assert parse_progress(line) == 3108 * 2048
    assert parse_progress("xorriso : UPDATE :       1 files added in 1 seconds\n") is None


# -- names and sizes --------------------------------------------------------------------------------

@pytest.mark.parametrize("dest", ["dicom/I1", "DICOM/i1", "DICOM/IMAGE0001", "DICOM/I1.DCM.X", "A/B/C/D/E/F/G/H/I",
                                  "DICOM/I-1", "DICOM//I1", "README.TEXT"])
def test_names_that_iso_9660_level_1_would_mangle_are_refused(dest, tmp_path):
    with pytest.raises(ValueError, match=r"drive cd: .* is not an ISO 9660 level 1 path"):
        check_destinations([(dest, tmp_path)], "cd")


def test_conformant_names_pass_and_duplicates_do_not(tmp_path):
    check_destinations([("DICOMDIR", tmp_path), ("README.TXT", tmp_path), ("A/B/C/D/E/F/G/H", tmp_path),
                        ("DICOM/P0000001/S0000001/I0000001", tmp_path)], "cd")
    with pytest.raises(ValueError, match="mapped twice"):
        check_destinations([("DICOMDIR", tmp_path), ("DICOMDIR", tmp_path)], "cd")


def test_the_image_estimate_counts_whole_sectors(tmp_path):
    one = tmp_path / "one"
    one.write_bytes(b"x")
    small = estimate_image_bytes([("A", one)])
    assert estimate_image_bytes([("A", one), ("B", one)]) - small >= 2048
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2049)
    assert estimate_image_bytes([("A", big)]) - small == 2048


def test_errors_are_one_line_naming_the_drive():
    assert str(WriteFailed("cd", "xorriso exit 5")) == "drive cd: writing failed: xorriso exit 5"
    err = ReadBackMismatch("stick", "DICOM/I1", "bytes differ")
    assert isinstance(err, MediaError) and err.path == "DICOM/I1" and "\n" not in str(err)


# -- config and registry -----------------------------------------------------------------------------

def _load(tmp_path: Path, text: str):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return load(path)


def test_config_takes_real_and_simulated_kinds(tmp_path):
    cfg = _load(tmp_path, '[media.drives.cd]\nkind = "optical"\ndevice = "/dev/sr0"\n'
                          '[media.drives.cd2]\nkind = "optical-sim"\n[media.drives.stick]\nkind = "usb-sim"\n'
                          '[media.drives.port]\nkind = "usb"\n')
    drives = cfg.config.media.drives
    assert {n: d.kind for n, d in drives.items()} == {"cd": "optical", "cd2": "optical-sim",
                                                      "stick": "usb-sim", "port": "usb"}
    assert drives["cd2"].sim_cd_mb == 700 and drives["stick"].sim_dir == "hw-sim/media"
    assert _load(tmp_path, "").config.media.drives == {}


@pytest.mark.parametrize("text, problem", [
    ('[media.drives.cd]\nkind = "floppy"\n', "media.drives.cd.kind: media kind 'floppy' is not one of optical"),
    ('[media.drives.cd]\nkind = "optical"\n', "device is required for an optical drive"),
    ('[media.drives.cd]\nkind = "optical"\ndevice = "sr0"\n', "must be a device node under /dev/"),
    ('[media.drives.cd]\nkind = "optical-sim"\nspeed = 4\n', "media.drives.cd.speed: unknown key"),
    ('[media.drives.cd]\nkind = "optical-sim"\nsim_cd_mb = "700"\n', "media.drives.cd.sim_cd_mb"),
    ('[media.drives.a]\nkind = "usb"\n[media.drives.b]\nkind = "usb"\n', "at most one may take whichever stick"),
    ('[media.drives.a]\nkind = "optical"\ndevice = "/dev/sr0"\n[media.drives.b]\nkind = "optical"\n'
     'device = "/dev/sr0"\n', "drives.b.device: /dev/sr0 is also drives.a"),
    ('[media.drives."c d"]\nkind = "optical-sim"\n', "a drive name is 1-32 letters"),
    ('[media.drives.cd]\ndevice = "/dev/sr0"\n', "media.drives.cd.kind: required key is missing"),
])
def test_config_refuses_with_one_precise_line(tmp_path, text, problem):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert any(problem in p for p in err.value.problems), err.value.problems


def test_the_registry_builds_real_drives_with_udev_sources():
    assert {"optical", "usb", "optical-sim", "usb-sim"} <= set(registry.kinds("media"))
    cfg = SimpleNamespace(device="/dev/sr0", timeout_s=60.0)
    drive = registry.create("media", "optical", "cd", cfg, Path)
    assert isinstance(drive, OpticalDrive) and drive.device == "/dev/sr0" and drive.name == "cd"
    assert isinstance(drive.events, UdevEventSource) and drive.events.optical == {"/dev/sr0": "cd"}
    stick = registry.create("media", "usb", "stick", SimpleNamespace(device="", timeout_s=60.0), Path)
    assert isinstance(stick, UsbDisk) and stick.device is None and stick.medium() is None
    assert isinstance(stick.events, TrackedEvents) and stick.events.source.usb == "stick"


def test_the_registry_builds_simulated_drives_over_the_real_drivers(tmp_path):
    cfg = SimpleNamespace(device="", timeout_s=60.0, sim_dir="sim", sim_cd_mb=650, sim_dvd_mb=4700, sim_usb_mb=64)
    drive = registry.create("media", "optical-sim", "cd", cfg, lambda p: tmp_path / p)
    assert type(drive) is OpticalDrive and drive.device == f"stdio:{tmp_path / 'sim' / 'cd' / 'disc.iso'}"
    assert drive.simulator.capacity[MediumKind.CD] == 650_000_000
    stick = registry.create("media", "usb-sim", "stick", cfg, lambda p: tmp_path / p)
    assert type(stick) is UsbDisk and stick.device == str(tmp_path / "sim" / "stick" / "stick.img")
