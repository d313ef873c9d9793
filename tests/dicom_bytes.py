"""Byte-level views of Part-10 files, for "stored as received" checks."""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path


def dataset_bytes(blob: bytes) -> bytes:
    """The encoded data set after the File Meta Information (whose group length is (0002,0000))."""
    if blob[128:132] != b"DICM":
        raise ValueError("not a Part-10 file")
    tag = struct.unpack("<HH", blob[132:136])
    if tag != (0x0002, 0x0000) or blob[136:138] != b"UL":
        raise ValueError("file meta has no group length")
    group_len = struct.unpack("<I", blob[140:144])[0]
    return blob[144 + group_len:]


def file_dataset_bytes(path: Path) -> bytes:
    return dataset_bytes(Path(path).read_bytes())


def indexed(buffer: Path) -> dict[str, Path]:
    """SOP Instance UID -> stored file, from the buffer's index."""
    db = sqlite3.connect(f"file:{buffer / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return {uid: buffer / rel for uid, rel in db.execute("SELECT sop_uid, path FROM instances")}
    finally:
        db.close()


def jobs(buffer: Path) -> list[tuple]:
    db = sqlite3.connect(f"file:{buffer / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT id, target, state, attempts, last_error FROM jobs ORDER BY id").fetchall()
    finally:
        db.close()
