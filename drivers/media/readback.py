"""Read-back comparison, shared by every drive: a file-set is good only when each file read back
from the medium equals its source byte for byte (issue 8, "honest media")."""

from __future__ import annotations

import filecmp
from pathlib import Path

from drivers.media.interface import Mapping, ReadBackMismatch


def compare_tree(drive: str, root: Path, mapping: Mapping) -> None:
    """Compare the files read back under `root` with their sources: every (destination, source) of
    `mapping` must exist at root/destination with the same bytes. Raises ReadBackMismatch naming
    the first bad file (drive: the drive's name, for the message)."""
    for dest, src in mapping:
        got = root / dest
        if not got.is_file():
            raise ReadBackMismatch(drive, dest, "missing on the medium")
        # shallow=False: contents, never the stat signature (a copy has its own times).
        if not filecmp.cmp(got, Path(src), shallow=False):
            raise ReadBackMismatch(drive, dest, "bytes differ")
