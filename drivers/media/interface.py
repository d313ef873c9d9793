"""The one media drive interface: what is in the drive, write a file-set, read it back, eject.

A drive writes a *mapping*: ``[(destination, source), ...]`` where ``destination`` is the path
relative to the medium's root in PS3.10 8.2 File ID form joined with "/" (``"DICOM/P0000001/S0000001/
I0000001"``, ``"DICOMDIR"``) and ``source`` is the local file whose bytes go there.  Each source is
read once by the writer; nothing is staged.  A medium is good only after ``verify`` (issue 8 item 5).

Every error names the drive in its one-line message, so a log line or a CLI refusal is enough.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

# (destination relative to the medium root, local source file)
Mapping = Sequence[tuple[str, Path]]
# progress(done_bytes, total_bytes); called from the writing thread, must be quick.
Progress = Callable[[int, int], None]


class MediumKind(str, enum.Enum):
    """What is in a drive: PS3.11's media families (STD-GEN-CD, STD-GEN-DVD-*, STD-GEN-USB-*)."""
    CD = "cd"
    DVD = "dvd"
    USB = "usb"


# Nominal capacities in bytes (2048-byte sectors for optical): a medium that reports its own wins.
CD_650_BYTES = 333_000 * 2048
CD_700_BYTES = 359_847 * 2048
DVD_BYTES = 2_295_104 * 2048  # single-layer DVD±R, "4.7 GB"


@dataclass(frozen=True)
class MediumInfo:
    """The medium in a drive.  ``capacity_bytes`` is the whole medium, ``free_bytes`` what a write
    may still use (0 on a closed disc); ``label`` the ISO 9660 volume id or FAT volume label
    ("" when none); ``read_only`` a write-protected stick or a closed / pressed disc."""
    drive: str
    kind: MediumKind
    blank: bool
    capacity_bytes: int
    free_bytes: int
    label: str = ""
    read_only: bool = False


class MediaError(Exception):
    """A drive or medium failure; ``drive`` names the drive, the message is one line naming it.
    An export that meets any of these is failed, never reported good (issue 8 item 5)."""

    what = "media error"

    def __init__(self, drive: str, detail: str = ""):
        self.drive = drive
        self.detail = detail
        super().__init__(f"drive {drive}: {self.what}" + (f": {detail}" if detail else ""))


class NoMedium(MediaError):
    what = "no medium in the drive"


class MediumRemoved(MediaError):
    what = "the medium was removed during the operation"


class MediumFull(MediaError):
    what = "the file-set does not fit on the medium"


class ReadOnlyMedium(MediaError):
    what = "the medium is write-protected or closed"


class WriteFailed(MediaError):
    what = "writing failed"


class ReadBackMismatch(MediaError):
    """Verification found a file that differs from (or is missing against) its source; ``path``
    is the destination of the first bad file."""

    what = "read-back does not match"

    def __init__(self, drive: str, path: str, detail: str = ""):
        self.path = path
        super().__init__(drive, f"{path}" + (f" ({detail})" if detail else ""))


@runtime_checkable
class MediaDrive(Protocol):
    """A removable-media drive.  ``name`` is the config's drive name ([media.drives.<name>])."""

    name: str

    def medium(self) -> MediumInfo | None:
        """The medium now in the drive, or None when there is none."""

    def write(self, mapping: Mapping, volume_id: str, progress: Progress | None = None) -> None:
        """Write the file-set: every ``source`` to ``destination`` on the medium, labelled
        ``volume_id`` (ISO 9660 volume identifier / FAT label: d-characters, <= 32 / 11).  Raises
        NoMedium, MediumFull, ReadOnlyMedium, MediumRemoved or WriteFailed; returning means
        written, not yet verified."""

    def verify(self, mapping: Mapping) -> None:
        """Read every destination back and compare it with its source; raises ReadBackMismatch
        naming the first bad file (or NoMedium / MediumRemoved)."""

    def read_tree(self, dest_dir: Path) -> Path:
        """Copy the medium's files into ``dest_dir`` (for import); returns ``dest_dir``.  Names
        are as the medium records them (an ISO's are upper case, version suffix dropped)."""

    def eject(self) -> None:
        """Release the medium (open the tray, let go of the stick); no medium is not an error."""

    def start(self) -> None:
        """Called once before first use (a simulator starts here)."""

    def stop(self) -> None:
        """Called once at the end."""
