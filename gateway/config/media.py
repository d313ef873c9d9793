"""`[media]`: the removable-media drives (issue 8 item 3) and the export rules (item 2).

    [media.drives.cd]
    kind = "optical-sim"          # optical | usb (drivers/), optical-sim | usb-sim (hw-sim)
    [media.drives.stick]
    kind = "usb"
    device = ""                   # "" = the stick udev reports; or a fixed partition "/dev/sdb1"

    [[media.export_rules]]        # what a blank medium gets when it is inserted (first rule that
    name = "new-studies"          #  selects something wins; gateway/media/rules.py)
    drive = "any"                 # a drive name, or "any"
    take = "not-exported"         # "not-exported" (no export marked it yet) | "all"
    modality = ["CT", "MR"]       # any of them in the study ([] = any)
    source = ["AE:CT1", "MEDIA:*"]  # where its instances came from (route source patterns)
    within_hours = 24             # its last instance arrived in the last N hours (0 = any age)
    stable_s = 60                 # its last instance arrived at least this long ago (not cut)
    copies = 1
    mark_exported = true          # a study this rule exports is not "not-exported" any more
    max_studies = 200             # at most this many (oldest first) per medium

    [media.import]                # what an imported medium's instances become (item 4)
    reconcile = ""                # "" = imported as they are; else the mapping file (absolute path,
                                  #  format in gateway/media/reconcile.py): Patient ID / Name /
                                  #  Accession replaced, the originals kept (Original Attributes Sequence)
    unmatched = "import"          # an instance no mapping row matches: "import" it unchanged | "skip" it

`kind` is any kind of the device registry's ``media`` family (drivers/registry.py), checked the way
`print.printer.kind` is: the registry decides, so hw-sim's kinds are valid without this file
naming them.  This module imports the registry (drivers/, a floor below) and config/base only.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from gateway.config.base import DeviceKind, FloatRange, IntRange, Section
from gateway.config.routes import SourcePattern

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_DriveKind = DeviceKind("media")


class MediaDrive(Section):
    """One drive.  ``device``: the optical drive's node (/dev/sr0, required for kind optical) or a
    USB stick's fixed partition ("" = whichever stick udev reports).  The simulators keep their
    images and their control folder in ``<sim_dir>/<drive name>/`` (relative paths resolve against
    the state directory, as every config path) and report blank discs of ``sim_cd_mb`` /
    ``sim_dvd_mb`` and sticks of ``sim_usb_mb`` megabytes (10^6 bytes).  ``timeout_s`` bounds one
    burn, copy or read-back."""
    kind: _DriveKind
    device: str = ""
    timeout_s: FloatRange(gt=0, le=24 * 3600) = 3600.0
    sim_dir: str = "hw-sim/media"
    sim_cd_mb: IntRange(1, 900) = 700
    sim_dvd_mb: IntRange(1, 9400) = 4700
    # FAT32 needs 65525 clusters: at 512-byte clusters, about 34 MB.
    sim_usb_mb: IntRange(34, 65536) = 64

    @model_validator(mode="after")
    def _where(self) -> "MediaDrive":
        if self.kind == "optical" and not self.device:
            raise ValueError("device is required for an optical drive (e.g. \"/dev/sr0\")")
        if self.device and not self.device.startswith("/dev/"):
            raise ValueError(f"device {self.device!r} must be a device node under /dev/")
        return self


def _absolute_or_empty(value: str) -> str:
    if value and not value.startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path (e.g. \"/etc/dicom-gateway/reconcile.csv\")")
    return value


class MediaImport(Section):
    """`[media.import]`: import reconciliation (IHE RAD Import Reconciliation Workflow, done with a
    local mapping file instead of a worklist or PDQ query).  ``reconcile``: the mapping file, an
    absolute path ("" = off).  Absolute because the importer is handed the config but not where
    it was loaded from, and the file is the operator's (beside the config, e.g.
    /etc/dicom-gateway/reconcile.csv), not the gateway's state.  Its content is checked by
    `check-config` (gateway/preflight.py -> gateway/media/reconcile.py) and read again at each
    import, so an edit applies to the next medium without a restart.  ``unmatched``: an instance
    whose Patient ID no row maps is imported unchanged ("import") or skipped ("skip", reason
    "not-reconciled" in the import report)."""
    reconcile: Annotated[str, AfterValidator(_absolute_or_empty)] = ""
    unmatched: Literal["import", "skip"] = "import"


ANY_DRIVE = "any"
# Rule values: kept small so that one insertion's decision is one bounded index query.
MAX_RULES = 32


def _modality(value: str) -> str:
    # PS3.3 C.7.3.1.1.1: Modality is a CS value (upper case, digits, '_', at most 16).
    if not re.fullmatch(r"[A-Z0-9_]{1,16}", value):
        raise ValueError(f"{value!r} is not a Modality (CS: 1-16 of A-Z, 0-9, '_'; e.g. \"CT\")")
    return value


class ExportRule(Section):
    """One `[[media.export_rules]]`: which studies go on a blank medium inserted into ``drive``
    (a drive name or "any").  ``take``: "not-exported" (studies no marked export has taken, done
    or on its way) or "all".  Criteria are ANDed, a list's values ORed, an empty list matches
    anything: ``modality`` (a series of the study has it), ``source`` (an instance came from it:
    route source patterns, "AE:CT1", "MEDIA:*"), ``within_hours`` (its last instance arrived in
    the last N hours; 0 = any age).  ``stable_s``: a study whose last instance arrived less than
    this many seconds ago is still arriving and is not cut.  ``copies``: media written per export;
    ``mark_exported``: whether this rule's export counts as "exported" for the next insertion;
    ``max_studies``: at most this many studies (oldest first) per medium."""
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    drive: str = ANY_DRIVE
    take: Literal["not-exported", "all"] = "not-exported"
    modality: Annotated[list[Annotated[str, AfterValidator(_modality)]], Field(max_length=32)] = []
    source: Annotated[list[SourcePattern], Field(max_length=32)] = []
    within_hours: IntRange(0, 24 * 366) = 0
    stable_s: IntRange(0, 24 * 3600) = 60
    copies: IntRange(1, 10) = 1
    mark_exported: bool = True
    max_studies: IntRange(1, 10_000) = 200


class MediaSection(Section):
    """The drives by name (1-32 of letters, digits, '-', '_'; the name the CLI and events use),
    the export rules, tried in order on each blank medium (at most 32; names unique; a rule's
    drive is "any" or a configured drive), and ``import_`` (TOML `[media.import]`: MediaImport)."""
    drives: dict[str, MediaDrive] = {}
    export_rules: Annotated[list[ExportRule], Field(max_length=MAX_RULES)] = []
    # `import` is a Python keyword: the field is import_, the TOML key [media.import].
    import_: MediaImport = Field(default=MediaImport(), alias="import")

    @model_validator(mode="after")
    def _consistent(self) -> "MediaSection":
        problems = []
        devices: dict[str, str] = {}
        usb_hotplug = []
        for name, drive in self.drives.items():
            if not _NAME_RE.match(name):
                problems.append(f"drives.{name}: a drive name is 1-32 letters, digits, '-' or '_'")
            if drive.device:
                if drive.device in devices:
                    problems.append(f"drives.{name}.device: {drive.device} is also drives.{devices[drive.device]}")
                devices.setdefault(drive.device, name)
            elif drive.kind == "usb":
                usb_hotplug.append(name)
        # udev names no port a stick came through: two hotplug USB drives could not tell theirs.
        if len(usb_hotplug) > 1:
            problems.append(f"drives: {', '.join(usb_hotplug)} are all usb drives without a device: at most "
                            f"one may take whichever stick is plugged in")
        seen: set[str] = set()
        for i, rule in enumerate(self.export_rules):
            if rule.name in seen:
                problems.append(f"export_rules.{i}.name: {rule.name!r} names two rules")
            seen.add(rule.name)
            if rule.drive != ANY_DRIVE and rule.drive not in self.drives:
                known = ", ".join(sorted(self.drives)) or "none configured"
                problems.append(f"export_rules.{i}.drive: {rule.drive!r} is not a drive ({known}) nor \"any\"")
        if problems:
            raise ValueError("; ".join(problems))
        return self
