"""Does the encoded data set hold together? A walk over element headers, to the last byte.

Written by hand because pydicom reads a truncated data set without complaint (it stops at the end
of the bytes, and a pixel data value cut short comes back short), and acknowledging a truncated
image is exactly the loss this appliance exists to prevent. The walk reads only headers and seeks
over values, so a 1 GB multi-frame costs a few hundred reads, not a decode. On the way it can
collect the raw values of a few top-level elements (walk_file), which is how the buffer reads the
attributes it indexes without a second parse.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from pathlib import Path

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")
UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_ITEM, _ITEM_END, _SEQ_END = (0xFFFE, 0xE000), (0xFFFE, 0xE00D), (0xFFFE, 0xE0DD)
_MAX_DEPTH = 32


class StructureError(ValueError):
    pass


class StrayFileMeta(StructureError):
    """Group 0002 elements at the start of the data set, after the file meta (PS3.10 7.1: group
    0002 belongs to the file meta only; PS3.7 says nothing in a C-STORE data set may carry it).
    `start`/`end`: their byte range in the file; `tags`: (group, element) of each."""

    def __init__(self, start: int, end: int, tags: list[tuple[int, int]]):
        names = ", ".join(f"({g:04X},{e:04X})" for g, e in tags)
        super().__init__(f"group 0002 element(s) {names} inside the data set")
        self.start, self.end, self.tags = start, end, tags


class _Walker:
    def __init__(self, buf, start: int, implicit: bool, little: bool, wanted: frozenset[int] = frozenset()):
        self.buf, self.pos, self.implicit = buf, start, implicit
        self.e = "<" if little else ">"
        self.end = len(buf)
        self.wanted = wanted
        # (group << 16 | element) -> (VR or None when implicit, raw value) of wanted top-level elements
        self.values: dict[int, tuple[bytes | None, bytes]] = {}

    def _need(self, n: int, what: str) -> None:
        if self.pos + n > self.end:
            raise StructureError(f"data set truncated in {what} at byte {self.pos} "
                                 f"(needs {n} bytes, {self.end - self.pos} left)")

    def _tag(self) -> tuple[int, int]:
        self._need(4, "an element tag")
        g, e = struct.unpack_from(self.e + "HH", self.buf, self.pos)
        self.pos += 4
        return g, e

    def _u32(self, what: str) -> int:
        self._need(4, what)
        (v,) = struct.unpack_from(self.e + "I", self.buf, self.pos)
        self.pos += 4
        return v

    def _vr_and_length(self) -> tuple[bytes | None, int]:
        """The VR (None when implicit) and value length of the element whose tag was just read."""
        if self.implicit:
            return None, self._u32("an element length")
        self._need(2, "a VR")
        vr = bytes(self.buf[self.pos:self.pos + 2])
        self.pos += 2
        if vr in _LONG_VRS:
            self._need(2, "reserved bytes")
            self.pos += 2
            return vr, self._u32("an element length")
        self._need(2, "an element length")
        (length,) = struct.unpack_from(self.e + "H", self.buf, self.pos)
        self.pos += 2
        return vr, length

    def _skip(self, n: int, tag) -> None:
        self._need(n, f"the value of ({tag[0]:04X},{tag[1]:04X})")
        self.pos += n

    def dataset(self, depth: int, until_item_end: bool) -> None:
        if depth > _MAX_DEPTH:
            raise StructureError("sequences nested too deep")
        while self.pos < self.end:
            tag = self._tag()
            if tag == _ITEM_END:
                if not until_item_end:
                    raise StructureError(f"item delimiter outside an item at byte {self.pos - 4}")
                self._u32("an item delimiter")
                return
            if tag[0] == 0xFFFE:
                raise StructureError(f"unexpected ({tag[0]:04X},{tag[1]:04X}) at byte {self.pos - 4}")
            vr, length = self._vr_and_length()
            if length == UNDEFINED and vr == b"UN":
                # CP-246: a sequence sent as UN with undefined length is encoded Implicit VR LE.
                saved, self.implicit = self.implicit, True
                self.items(depth + 1, encapsulated=False)
                self.implicit = saved
            elif length == UNDEFINED:
                self.items(depth + 1, encapsulated=(tag == (0x7FE0, 0x0010)))
            else:
                if depth == 0 and self.wanted:
                    key = tag[0] << 16 | tag[1]
                    if key in self.wanted and self.pos + length <= self.end:
                        self.values[key] = (vr, bytes(self.buf[self.pos:self.pos + length]))
                self._skip(length, tag)
        if until_item_end:
            raise StructureError("data set truncated inside a sequence item")

    def items(self, depth: int, encapsulated: bool) -> None:
        while True:
            tag = self._tag()
            length = self._u32("an item length")
            if tag == _SEQ_END:
                return
            if tag != _ITEM:
                raise StructureError(f"expected an item, found ({tag[0]:04X},{tag[1]:04X}) at byte {self.pos - 8}")
            if length == UNDEFINED:
                if encapsulated:
                    raise StructureError("encapsulated fragment of undefined length")
                self.dataset(depth, until_item_end=True)
            else:
                self._skip(length, tag)


_META_UIDS = {0x0002: "sop_class", 0x0003: "sop_instance", 0x0010: "transfer_syntax"}


def file_meta(mm) -> tuple[int, dict[str, str]]:
    """Where the data set starts after the file meta group, and the group's SOP class, SOP instance
    and transfer syntax UIDs (those present). Walks the group 0002 elements (always Explicit VR LE)
    rather than trusting a group length that may be absent or wrong; but where the group length
    (0002,0000) ends exactly on an element boundary, the meta ends there, so group 0002 elements
    a sender put at the start of its data set cannot redefine the meta (see StrayFileMeta)."""
    if len(mm) < 132 or mm[128:132] != b"DICM":
        raise StructureError("not a Part-10 file")
    w = _Walker(mm, 132, False, True)
    uids: dict[str, str] = {}
    declared_end = None
    while w.pos + 4 <= w.end and struct.unpack_from("<H", mm, w.pos)[0] == 0x0002:
        if w.pos == declared_end:
            break
        tag = w._tag()
        w._need(2, "a VR")
        vr = bytes(mm[w.pos:w.pos + 2])
        w.pos += 2
        if vr in _LONG_VRS:
            w.pos += 2
            length = w._u32("a file meta element length")
        else:
            w._need(2, "a file meta element length")
            (length,) = struct.unpack_from("<H", mm, w.pos)
            w.pos += 2
        if length == UNDEFINED:
            raise StructureError("file meta element of undefined length")
        if tag == (0x0002, 0x0000) and length == 4 and vr == b"UL" and w.pos == 140 and w.pos + 4 <= w.end:
            declared_end = w.pos + 4 + struct.unpack_from("<I", mm, w.pos)[0]
        if tag[1] in _META_UIDS:
            w._need(length, f"(0002,{tag[1]:04X})")
            uids[_META_UIDS[tag[1]]] = bytes(mm[w.pos:w.pos + length]).rstrip(b"\x00 ").decode("ascii", "replace")
        w._skip(length, tag)
    return w.pos, uids


def _stray_meta(mm, start: int, implicit: bool, little: bool) -> None:
    """Raise StrayFileMeta if the data set at `start` begins with group 0002 elements. One look
    at the first tag for a normal object; the run is walked only when there is one."""
    e = "<" if little else ">"
    if start + 4 > len(mm) or struct.unpack_from(e + "H", mm, start)[0] != 0x0002:
        return
    w = _Walker(mm, start, implicit, little)
    tags = []
    while w.pos + 4 <= w.end and struct.unpack_from(e + "H", mm, w.pos)[0] == 0x0002:
        tags.append(struct.unpack_from(e + "HH", mm, w.pos))
        _one_element(w)
    raise StrayFileMeta(start, w.pos, tags)


def _one_element(w: _Walker) -> None:
    """Advance the walker over exactly one top-level element (values included)."""
    tag = w._tag()
    vr, length = w._vr_and_length()
    if length == UNDEFINED:
        if vr == b"UN":
            saved, w.implicit = w.implicit, True
            w.items(1, encapsulated=False)
            w.implicit = saved
        else:
            w.items(1, encapsulated=False)
    else:
        w._skip(length, tag)


def walk_file(path: Path, transfer_syntax: str | None = None,
              wanted: frozenset[int] = frozenset()) -> tuple[str, dict[int, tuple[bytes | None, bytes]]]:
    """Walk the Part-10 file at `path` to its last byte (StructureError if it does not hold
    together). `transfer_syntax`: as known to the caller, else read from the file meta. Returns the
    transfer syntax and the raw values of the `wanted` top-level elements that are present."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        start, meta = file_meta(mm)
        ts = transfer_syntax or meta.get("transfer_syntax", "")
        if not ts:
            raise StructureError("no Transfer Syntax UID in the file meta")
        if ts in DEFLATED:
            try:
                buf = zlib.decompress(mm[start:], -15)
            except zlib.error as exc:
                raise StructureError(f"deflated data set does not inflate: {exc}") from None
            w = _Walker(buf, 0, False, True, wanted)
        else:
            _stray_meta(mm, start, ts == IMPLICIT_LE, ts != EXPLICIT_BE)
            w = _Walker(mm, start, ts == IMPLICIT_LE, ts != EXPLICIT_BE, wanted)
        w.dataset(0, False)
        return ts, w.values


def check_structure(path: Path, transfer_syntax: str) -> None:
    """Raise StructureError unless the data set after the file meta parses to its last byte."""
    walk_file(path, transfer_syntax)
