"""Attribute coercion on a Part-10 file's bytes: set, replace or delete top-level data elements and
record the previous values in an Original Attributes Sequence item (PS3.3 C.12.1.1.9), while every
other byte, the pixel data included, is copied as it was.

Why by hand and not pydicom's dcmread + save_as: that decodes the whole data set and re-encodes it
(pixel data in memory, value padding, VRs and undefined lengths normalised), so the stored object
would no longer be the bytes the sender made; here only the changed elements are encoded again.

How: one walk over the top-level element headers (values are seeked over, as in structure.py,
but with reads on the file, never an mmap of a medium) up to the first element of a group above
every group that changes; then the output is written in tag order: the file meta as it was, the
untouched elements as copied byte ranges, the new encodings, the Original Attributes Sequence
(0400,0561) with one more item, and the rest of the file (the pixel data) with shutil.copyfileobj.
Data set group length elements (gggg,0000), retired but legal (PS3.5 7.2), are recomputed for the
groups that change; the File Meta Information Group Length stays right because the meta is not
touched.

The same on a file's first bytes held in memory (read_head, coerce_head: coercion in
the receive stream, gateway/buffer/head_coercion.py): the walk runs on the bytes (slices and
struct.unpack_from, no file reads) and stops at the same element; the bytes written for the head
are those coerce_file writes for it, the rest of the file follows as it arrives.

Transfer syntaxes: Implicit VR Little Endian, Explicit VR Little and Big Endian and every
encapsulated one (the pixel data is in the tail and never looked at). A deflated data set
(1.2.840.10008.1.2.1.99, 1.2.840.10008.1.2.8.1) is refused with CoerceError: its elements are
inside one zlib stream, so changing one means inflating and deflating the whole object again.

The Original Attributes item (PS3.3 Table C.12.1.1.9-1): Modified Attributes Sequence (0400,0550)
with one item holding each changed element's previous encoding as it was in the file (an element
that was absent is there with a zero length value, as C.12.1.1.9 allows), Attribute Modification
DateTime (0400,0562), Modifying System (0400,0563), Source of Previous Values (0400,0564, type 2,
may be empty) and Reason for the Attribute Modification (0400,0565): COERCE or CORRECT. An item is
appended to an Original Attributes Sequence the file already has: its items are preserved.

Specific Character Set: a str value is encoded in the data set's Specific Character Set (0008,0005)
(the new one when the same change sets it). The previous values keep their bytes; a changed
(0008,0005) is itself one of them, so the Modified Attributes item says in which character set its
values are.
"""

from __future__ import annotations

import functools
from bisect import bisect_left
import os
import shutil
import struct
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Iterable, Mapping, Union

from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement
from pydicom.datadict import dictionary_VR as _dictionary_VR
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element

from gateway.part10.structure import DEFLATED, EXPLICIT_BE, IMPLICIT_LE, UNDEFINED, StructureError, file_meta

ORIGINAL_ATTRIBUTES = 0x04000561
MODIFIED_ATTRIBUTES = 0x04000550
MODIFICATION_DATETIME = 0x04000562
MODIFYING_SYSTEM = 0x04000563
SOURCE_OF_PREVIOUS_VALUES = 0x04000564
REASON_FOR_MODIFICATION = 0x04000565
SPECIFIC_CHARACTER_SET = 0x00080005
PIXEL_GROUP = 0x7FE0
REASONS = ("COERCE", "CORRECT")  # PS3.3 C.12.1.1.9: the Defined Terms of (0400,0565)

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_NUL_PADDED = {b"UI", b"OB", b"UN", b"OW", b"OF", b"OD", b"OL", b"OV"}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
# Text VRs whose value is the string's bytes as they are (no number conversion, no structure), and
# the character sets whose encoding is one Python codec with no escape sequences.
_PLAIN_TEXT_VRS = {b"AE", b"AS", b"CS", b"DA", b"DT", b"LO", b"LT", b"PN", b"SH", b"ST", b"TM", b"UC",
                   b"UI", b"UR", b"UT"}
_PLAIN_CODECS = {"ISO_IR 6": "ascii", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}
_MAX_DEPTH = 32
# A pydicom dictionary search per new element on every coerced object: cached (the dictionary is fixed).
dictionary_VR = functools.lru_cache(maxsize=4096)(_dictionary_VR)
_HEAD_LIMIT = 64 << 20  # a previous value kept in memory: header elements, never pixel data
_COPY_CHUNK = 1 << 20


class CoerceError(ValueError):
    """The file cannot be coerced as asked; one line naming why (deflated, a tag that may not be
    changed, a value that does not encode, a data set that does not hold together)."""


class _Truncated(CoerceError):
    """The bytes end inside an element: a file that is cut short, or a head still arriving."""


class HeadIncomplete(Exception):
    """read_head: the bytes given end before the first element of a group above the last one
    asked for; more of the data set is needed (or the whole of it, complete=True)."""


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()
"""A change's value that removes the element (its previous value is recorded)."""

Value = Union[bytes, str, DataElement, _Delete]


@dataclass(frozen=True)
class Provenance:
    """Who changed the attributes and why: the Original Attributes item's own elements.
    modifying_system: LO, at most 64 characters (e.g. "EDGE dicom-gateway"); reason: "COERCE" or
    "CORRECT"; source: Source of Previous Values, LO, "" allowed (type 2); when: the Attribute
    Modification DateTime (default: now, local time with its UTC offset)."""

    modifying_system: str
    reason: str = "COERCE"
    source: str = ""
    when: datetime | None = None


@dataclass(frozen=True)
class CoerceResult:
    """transfer_syntax: the file's (unchanged); changed: the tags whose element was replaced, added
    or deleted, ascending (a change to the value already there is not one, and without any the
    output is the input: no item is added); size: bytes written."""

    transfer_syntax: str
    changed: tuple[int, ...]
    size: int


@dataclass(slots=True)
class _Element:
    tag: int
    vr: bytes | None  # None: Implicit VR
    start: int  # offset of the tag in the file
    value_start: int
    end: int  # offset after the element (after its sequence delimiter for undefined length)
    length: int  # as encoded (UNDEFINED for undefined length)


class _Encoding:
    def __init__(self, implicit: bool, little: bool):
        self.implicit, self.little = implicit, little
        self.e = "<" if little else ">"

    def tag(self, tag: int) -> bytes:
        return struct.pack(self.e + "HH", tag >> 16, tag & 0xFFFF)

    def header(self, tag: int, vr: bytes, length: int) -> bytes:
        if self.implicit:
            return self.tag(tag) + struct.pack(self.e + "I", length)
        if vr in _LONG_VRS:
            return self.tag(tag) + vr + b"\x00\x00" + struct.pack(self.e + "I", length)
        if length > 0xFFFF:
            raise CoerceError(f"({tag >> 16:04X},{tag & 0xFFFF:04X}): a {vr.decode()} value of {length} "
                              "bytes does not fit its 16-bit length")
        return self.tag(tag) + vr + struct.pack(self.e + "H", length)

    def element(self, tag: int, vr: bytes, value: bytes) -> bytes:
        if len(value) % 2:
            value += b"\x00" if vr in _NUL_PADDED else b" "
        return self.header(tag, vr, len(value)) + value


def _tagname(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


class _HeaderWalk:
    """Top-level element headers read from the file (values seeked over, sequences walked item by
    item), from `start` until the first element of a group above `last_group`."""

    def __init__(self, fh: BinaryIO, size: int, enc: _Encoding):
        self.fh, self.size, self.enc = fh, size, enc

    def _read(self, pos: int, n: int, what: str) -> bytes:
        if pos + n > self.size:
            raise _Truncated(f"data set truncated in {what} at byte {pos}")
        self.fh.seek(pos)
        data = self.fh.read(n)
        if len(data) != n:
            raise _Truncated(f"data set truncated in {what} at byte {pos}")
        return data

    def _u32(self, pos: int, what: str) -> int:
        return struct.unpack(self.enc.e + "I", self._read(pos, 4, what))[0]

    def _tag(self, pos: int) -> int:
        g, e = struct.unpack(self.enc.e + "HH", self._read(pos, 4, "an element tag"))
        return g << 16 | e

    def header(self, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
        """(tag, VR or None, value start, length) of the element at pos."""
        tag = self._tag(pos)
        if implicit:
            return tag, None, pos + 8, self._u32(pos + 4, "an element length")
        vr = self._read(pos + 4, 2, "a VR")
        if vr in _LONG_VRS:
            return tag, vr, pos + 12, self._u32(pos + 8, "an element length")
        (length,) = struct.unpack(self.enc.e + "H", self._read(pos + 6, 2, "an element length"))
        return tag, vr, pos + 8, length

    def _items(self, pos: int, implicit: bool, depth: int) -> int:
        """Offset after the sequence delimiter of an undefined-length value starting at pos."""
        if depth > _MAX_DEPTH:
            raise CoerceError("sequences nested too deep")
        while True:
            tag = self._tag(pos)
            length = self._u32(pos + 4, "an item length")
            pos += 8
            if tag == _SEQ_END:
                return pos
            if tag != _ITEM:
                raise CoerceError(f"expected an item, found {_tagname(tag)} at byte {pos - 8}")
            if length != UNDEFINED:
                pos += length
                continue
            while True:  # an item of undefined length: its elements up to the item delimiter
                if self._tag(pos) == _ITEM_END:
                    pos += 8
                    break
                pos = self._end_of(pos, implicit, depth + 1)[1]

    def _end_of(self, pos: int, implicit: bool, depth: int) -> tuple[_Element, int]:
        tag, vr, value_start, length = self.header(pos, implicit)
        if length == UNDEFINED:
            # CP-246: a sequence sent as UN with undefined length is encoded Implicit VR LE inside.
            end = self._items(value_start, implicit or vr == b"UN", depth)
        else:
            end = value_start + length
            if end > self.size:
                raise _Truncated(f"data set truncated in the value of {_tagname(tag)} at byte {value_start}")
        return _Element(tag, vr, pos, value_start, end, length), end

    def top_level(self, start: int, last_group: int) -> tuple[list[_Element], int]:
        """The elements up to the first of a group above last_group, and where the rest begins."""
        out: list[_Element] = []
        pos = start
        while pos < self.size:
            tag = self._tag(pos)
            if tag >> 16 > last_group:
                break
            element, pos = self._end_of(pos, self.enc.implicit, 0)
            if out and element.tag <= out[-1].tag:
                raise CoerceError(f"data set elements out of order: {_tagname(element.tag)} after "
                                  f"{_tagname(out[-1].tag)} at byte {element.start}")
            out.append(element)
        return out, pos


def _vr_of(tag: int, existing: _Element | None) -> bytes:
    # An element the sender wrote as UN gets its dictionary VR back with its new value.
    if existing is not None and existing.vr is not None and existing.vr != b"UN":
        return existing.vr
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        raise CoerceError(f"{_tagname(tag)} is not in the data dictionary: give it as a DataElement "
                          "with its VR") from None
    if len(vr) != 2:  # "US or SS", "OB or OW": the dictionary cannot choose
        raise CoerceError(f"{_tagname(tag)} has VR {vr!r} in the dictionary: give it as a DataElement")
    return vr.encode("ascii")


def _encode(tag: int, value: Value, existing: _Element | None, enc: _Encoding, charset: list[str]) -> bytes:
    """The new element's full encoding (header and value) in the file's encoding."""
    if isinstance(value, bytes):
        return enc.element(tag, _vr_of(tag, existing), value)
    text = value if isinstance(value, str) else None
    if text is not None:
        vr = _vr_of(tag, existing)
        codec = _PLAIN_CODECS.get("\\".join(charset))
        if codec is not None and vr in _PLAIN_TEXT_VRS and (codec != "ascii" or text.isascii()):
            # A text value in a one-byte-per-code or UTF-8 character set is its characters' bytes:
            # encoded here, not by pydicom (a DataElement and its writer cost as much as the rest of
            # the coercion of a header; the ingest bench pays it on every object).
            try:
                return enc.element(tag, vr, text.encode(codec))
            except UnicodeEncodeError:
                raise CoerceError(f"{_tagname(tag)}: the new value has characters the data set's Specific "
                                  f"Character Set ({chr(92).join(charset)}) cannot encode") from None
        value = DataElement(tag, vr.decode("ascii"), text)
    if not isinstance(value, DataElement):
        raise CoerceError(f"{_tagname(tag)}: a change is bytes, str, a DataElement or DELETE, "
                          f"not {type(value).__name__}")
    if int(value.tag) != tag:
        raise CoerceError(f"{_tagname(tag)}: the DataElement given is {_tagname(int(value.tag))}")
    if text is not None and charset == ["ISO_IR 6"] and not text.isascii():
        # pydicom would write Latin-1 bytes under the default repertoire; a reader would not know.
        raise CoerceError(f"{_tagname(tag)}: the new value is not ASCII and the data set declares no "
                          "Specific Character Set (0008,0005)")
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = enc.little, enc.implicit
    try:
        with warnings.catch_warnings():
            # pydicom only warns when a character does not encode, and writes "?" instead.
            warnings.simplefilter("error", UserWarning)
            write_data_element(fp, value, convert_encodings(charset))
    except UserWarning:
        raise CoerceError(f"{_tagname(tag)}: the new value has characters the data set's Specific Character "
                          f"Set ({chr(92).join(charset)}) cannot encode") from None
    except (ValueError, TypeError, LookupError, struct.error) as exc:
        raise CoerceError(f"{_tagname(tag)}: the value does not encode as {value.VR}: {exc}") from None
    return fp.getvalue()


def _charset(raw: bytes) -> list[str]:
    text = raw.decode("ascii", "replace")
    return [v.strip(" \x00") for v in text.split("\\")] if text.strip(" \x00") else ["ISO_IR 6"]


def _now_dt(when: datetime | None) -> str:
    """DT (PS3.5 6.2) YYYYMMDDHHMMSS.FFFFFF&ZZXX of `when` (now, local time, by default); the
    offset only for an aware datetime. From isoformat: strftime costs ~4 us a field here, on every
    coerced object."""
    when = when or datetime.now().astimezone()
    iso = when.isoformat(timespec="microseconds")  # YYYY-MM-DDTHH:MM:SS.ffffff[+HH:MM[:SS...]]
    text = iso[0:4] + iso[5:7] + iso[8:10] + iso[11:13] + iso[14:16] + iso[17:26]
    return text + iso[26:29] + iso[30:32] if when.tzinfo is not None else text


def _check_changes(changes: Mapping[int, Value], record: Iterable[int]) -> None:
    for tag in list(changes) + list(record):
        group = tag >> 16
        if group == 0x0002:
            raise CoerceError(f"{_tagname(tag)} is file meta (group 0002): not a data set element")
        if group >= PIXEL_GROUP or group in (0xFFFA, 0xFFFC, 0xFFFE):
            raise CoerceError(f"{_tagname(tag)}: only elements before the pixel data (group 7FE0) are coerced")
        if tag & 0xFFFF == 0:
            raise CoerceError(f"{_tagname(tag)} is a group length: it is recomputed, not set")
        if tag == ORIGINAL_ATTRIBUTES:
            raise CoerceError("(0400,0561) Original Attributes Sequence is written by the coercion itself")


def coerce_file(src: Path, out: BinaryIO, changes: Mapping[int, Value], provenance: Provenance, *,
                record: Iterable[int] = ()) -> CoerceResult:
    """Write to `out` the Part-10 file `src` with `changes` applied to its top-level data set and
    an Original Attributes Sequence item recording the previous values (PS3.3 C.12.1.1.9).

    changes: tag (group << 16 | element) -> the new value: bytes (the value already encoded for
    the element's VR, in the file's byte order and character set; padded to even length here),
    str (encoded here in the data set's Specific Character Set, the VR that of the element in the
    file or else the dictionary's), a pydicom DataElement (any VR, sequences included; encoded by
    pydicom in the file's encoding), or DELETE. Tags of group 0002, group lengths, (0400,0561) and
    anything from the pixel data (7FE0,0010) on are refused. record: tags recorded in the
    Modified Attributes item with their present value although unchanged (PS3.3 C.12.1.1.9: the
    Issuer of Patient ID beside a changed Patient ID). Everything else is copied byte for byte;
    the part of the file after the last group touched (the pixel data) is streamed with
    shutil.copyfileobj, never held in memory. `out` is written from its current position; the
    caller owns it (fsync, rename).

    Raises CoerceError (a ValueError) for a deflated transfer syntax, a refused tag, a value that
    does not encode, a data set that does not hold together up to the last group touched, or an
    Original Attributes Sequence that is not an SQ; OSError when reading or writing fails.
    Nothing is written before every check has passed, except when writing itself fails."""
    if provenance.reason not in REASONS:
        raise CoerceError(f"reason {provenance.reason!r}: (0400,0565) is COERCE or CORRECT")
    record = tuple(t for t in record if t not in changes)
    _check_changes(changes, record)
    with open(src, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(min(size, 132))
        if len(head) < 132 or head[128:132] != b"DICM":
            raise CoerceError("not a Part-10 file (no \"DICM\" after the 128-byte preamble, PS3.10 7.1)")
        start, meta = _meta_end(fh, size)
        ts, enc = _encoding(meta)
        groups = [t >> 16 for t in list(changes) + list(record)] + [ORIGINAL_ATTRIBUTES >> 16]
        elements, tail = _HeaderWalk(fh, size, enc).top_level(start, max(groups))
        return _write(fh, out, ts, enc, start, elements, tail, changes, provenance, record)


def _encoding(meta: dict[str, str]) -> tuple[str, "_Encoding"]:
    ts = meta.get("transfer_syntax", "")
    if not ts:
        raise CoerceError("no Transfer Syntax UID (0002,0010) in the file meta")
    if ts in DEFLATED:
        raise CoerceError(f"deflated transfer syntax {ts}: the data set is one zlib stream; coercing "
                          "it would inflate and deflate the whole object (not done)")
    return ts, _Encoding(ts == IMPLICIT_LE, ts != EXPLICIT_BE)


def _write(fh: BinaryIO, out: BinaryIO, ts: str, enc: "_Encoding", start: int, elements: list["_Element"],
           tail: int, changes: Mapping[int, Value], provenance: Provenance, record: tuple[int, ...]) -> CoerceResult:
    """coerce_file's output from the walked header: `elements` (top-level, from `start`, the data
    set's first byte) up to `tail`, the rest of `fh` copied after them."""
    def read(a: int, b: int) -> bytes:
        fh.seek(a)
        return fh.read(b - a)

    plan, changed = _coerced_plan(read, enc, start, elements, changes, provenance, record)
    out_start = out.tell()
    if plan is None:
        fh.seek(0)
        shutil.copyfileobj(fh, out, _COPY_CHUNK)
        return CoerceResult(ts, (), out.tell() - out_start)
    for piece in plan:
        if isinstance(piece, bytes):
            out.write(piece)
        else:
            _copy_range(fh, out, piece[0], piece[1])
    fh.seek(tail)
    shutil.copyfileobj(fh, out, _COPY_CHUNK)
    return CoerceResult(ts, changed, out.tell() - out_start)


def _coerced_plan(read, enc: "_Encoding", start: int, elements: list["_Element"], changes: Mapping[int, Value],
                  provenance: Provenance, record: tuple[int, ...]) -> tuple[list | None, tuple[int, ...]]:
    """What replaces the bytes before the tail: (_plan's pieces, the changed tags ascending), or
    (None, ()) when no change changes anything. read(start, end): those bytes of the source."""
    by_tag = {el.tag: el for el in elements}

    def raw(el: _Element) -> bytes:
        if el.end - el.start > _HEAD_LIMIT:
            raise CoerceError(f"{_tagname(el.tag)} is {el.end - el.start} bytes: too large to record "
                              "as a previous value")
        return read(el.start, el.end)

    charset_el = by_tag.get(SPECIFIC_CHARACTER_SET)
    charset_raw = raw(charset_el)[charset_el.value_start - charset_el.start:] if charset_el else b""
    charset = _charset(charset_raw)
    new_charset = changes.get(SPECIFIC_CHARACTER_SET)
    if isinstance(new_charset, str):
        charset = _charset(new_charset.encode("ascii", "replace"))
    elif isinstance(new_charset, DataElement):
        v = new_charset.value
        charset = _charset("\\".join(v if isinstance(v, list) else [str(v or "")]).encode("ascii", "replace"))
    elif isinstance(new_charset, bytes):
        charset = _charset(new_charset)

    # The new encodings, and the previous ones for the Modified Attributes item.
    new: dict[int, bytes | None] = {}
    previous: dict[int, bytes] = {}
    for tag in sorted(changes):
        old = by_tag.get(tag)
        value = changes[tag]
        encoded = None if value is DELETE else _encode(tag, value, old, enc, charset)
        old_bytes = raw(old) if old is not None else None
        if encoded == old_bytes:
            continue  # the value it already has: nothing changes, nothing to record
        if old is None and encoded is None:
            continue  # deleting what is not there
        new[tag] = encoded
        previous[tag] = old_bytes if old_bytes is not None else _empty(tag, value, enc)
    if not new:
        return None, ()
    for tag in record:
        old = by_tag.get(tag)
        previous[tag] = raw(old) if old is not None else _empty(tag, None, enc)
    existing = by_tag.get(ORIGINAL_ATTRIBUTES)
    item = _original_attributes_item(previous, provenance, enc, charset)
    changed = tuple(sorted(new))
    new[ORIGINAL_ATTRIBUTES] = _append_item(existing, raw(existing) if existing else None, item, enc)
    return _plan(start, elements, by_tag, new, enc), changed


@dataclass
class Head:
    """The first bytes of a Part-10 file (preamble, file meta, the data set's start) walked up to
    the first element of a group above `last_group` (read_head). values(): the walked top-level
    elements' raw values."""

    data: bytes
    transfer_syntax: str
    start: int  # the data set's first byte
    elements: list
    tail: int  # the first byte after the walked elements
    enc: "_Encoding"

    def values(self, tags) -> dict[int, tuple[bytes | None, bytes]]:
        """{tag: (VR or None for Implicit VR, raw value bytes)} of those of `tags` present, as
        structure.walk_file gives them. An element of undefined length is given as b"" with VR
        b"SQ" (never a text value: the caller falls back)."""
        out = {}
        for el in self.elements:
            if el.tag in tags:
                if el.length == UNDEFINED:
                    out[el.tag] = (b"SQ", b"")
                else:
                    out[el.tag] = (el.vr, self.data[el.value_start:el.end])
        return out


class _BytesWalk(_HeaderWalk):
    """_HeaderWalk over bytes in memory: slices instead of seek and read (a head is walked while
    the C-STORE is being received; the file walk's two calls per field are most of its cost)."""

    def __init__(self, data: bytes, enc: _Encoding):
        super().__init__(None, len(data), enc)
        self.data = data
        self._hh = struct.Struct(enc.e + "HH").unpack_from
        self._ui = struct.Struct(enc.e + "I").unpack_from
        self._uh = struct.Struct(enc.e + "H").unpack_from

    def _read(self, pos: int, n: int, what: str) -> bytes:
        if pos + n > self.size:
            raise _Truncated(f"data set truncated in {what} at byte {pos}")
        return self.data[pos:pos + n]

    def _tag(self, pos: int) -> int:
        if pos + 4 > self.size:
            raise _Truncated(f"data set truncated in an element tag at byte {pos}")
        g, e = self._hh(self.data, pos)
        return g << 16 | e

    def header(self, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
        # As _HeaderWalk.header (the same bytes needed, the same answer), unpacked in place.
        if pos + 8 > self.size:
            raise _Truncated(f"data set truncated in an element header at byte {pos}")
        data = self.data
        g, e = self._hh(data, pos)
        if implicit:
            return g << 16 | e, None, pos + 8, self._ui(data, pos + 4)[0]
        vr = data[pos + 4:pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > self.size:
                raise _Truncated(f"data set truncated in an element length at byte {pos + 8}")
            return g << 16 | e, vr, pos + 12, self._ui(data, pos + 8)[0]
        return g << 16 | e, vr, pos + 8, self._uh(data, pos + 6)[0]

    def top_level(self, start: int, last_group: int) -> tuple[list[_Element], int]:
        # _HeaderWalk.top_level with its calls inlined for the elements of defined length (all but
        # sequences, which go the general way): the same elements, the same errors, at a third of
        # the cost; this walk runs on every coerced C-STORE while it is received.
        data, size, implicit = self.data, self.size, self.enc.implicit
        hh, ui = self._hh, self._ui
        # tag, VR and a short length in one unpack (Explicit VR): most elements need nothing more
        explicit = struct.Struct(self.enc.e + "HH2sH").unpack_from
        out: list[_Element] = []
        pos, previous = start, -1
        while pos < size:
            if pos + 4 > size:
                raise _Truncated(f"data set truncated in an element tag at byte {pos}")
            if pos + 8 > size:
                g, e = hh(data, pos)
                if g > last_group:
                    break
                raise _Truncated(f"data set truncated in an element header at byte {pos}")
            if implicit:
                g, e = hh(data, pos)
                vr, value_start, length = None, pos + 8, ui(data, pos + 4)[0]
            else:
                g, e, vr, length = explicit(data, pos)
                value_start = pos + 8
            if g > last_group:
                break
            tag = g << 16 | e
            if vr in _LONG_VRS:
                if pos + 12 > size:
                    raise _Truncated(f"data set truncated in an element length at byte {pos + 8}")
                value_start, length = pos + 12, ui(data, pos + 8)[0]
            if length == UNDEFINED:
                element, end = self._end_of(pos, implicit, 0)
            else:
                end = value_start + length
                if end > size:
                    raise _Truncated(f"data set truncated in the value of {_tagname(tag)} at byte {value_start}")
                element = _Element(tag, vr, pos, value_start, end, length)
            if tag <= previous:
                raise CoerceError(f"data set elements out of order: {_tagname(tag)} after "
                                  f"{_tagname(previous)} at byte {pos}")
            out.append(element)
            previous, pos = tag, end
        return out, pos


def read_head(data: bytes, last_group: int, complete: bool, meta: tuple[int, str] | None = None) -> Head:
    """Walk the start of a Part-10 file held in memory, `data`, up to the first element of a group
    above `last_group` (the point from which coerce_head leaves the bytes as they are).

    complete: `data` is the whole file. meta: (where the data set starts, its transfer syntax UID)
    when the caller wrote the file meta itself (the receiver: its file meta is not walked again).
    Raises HeadIncomplete when `data` ends before that point
    and not complete; CoerceError when the bytes do not hold together, for a deflated transfer
    syntax, or a data set starting with group 0002 elements (left to the file path)."""
    if len(data) < 132:
        if complete:
            raise CoerceError("not a Part-10 file (shorter than preamble and \"DICM\")")
        raise HeadIncomplete()
    if data[128:132] != b"DICM":
        raise CoerceError("not a Part-10 file (no \"DICM\" after the 128-byte preamble, PS3.10 7.1)")
    if meta is not None:
        start, uids = meta[0], {"transfer_syntax": meta[1]}
    else:
        try:
            start, uids = file_meta(data)
        except StructureError as exc:
            if complete:
                raise CoerceError(f"file meta: {exc}") from None
            raise HeadIncomplete() from None
    if start >= len(data) and not complete:
        raise HeadIncomplete()
    ts, enc = _encoding(uids)
    try:
        elements, tail = _BytesWalk(data, enc).top_level(start, last_group)
    except _Truncated:
        if complete:
            raise
        raise HeadIncomplete() from None
    if tail >= len(data) and not complete:
        raise HeadIncomplete()  # ended on an element boundary: the next may still be in the group
    if elements and elements[0].tag >> 16 == 0x0002:
        raise CoerceError("data set begins with file meta elements")
    return Head(data, ts, start, elements, tail, enc)


def coerce_head(head: Head, changes: Mapping[int, Value], provenance: Provenance, *,
                record: Iterable[int] = ()) -> tuple[bytes, CoerceResult]:
    """coerce_file on a Head: (the bytes coerce_file writes in place of head.data[:head.tail],
    the CoerceResult); everything from head.tail on follows unchanged (the caller writes it: not
    copied here, it is most of a head that holds the first fragment of the pixel data).
    Every change's group must be at most the head's last_group (CoerceError otherwise, as any
    coerce_file refusal)."""
    if provenance.reason not in REASONS:
        raise CoerceError(f"reason {provenance.reason!r}: (0400,0565) is COERCE or CORRECT")
    record = tuple(t for t in record if t not in changes)
    _check_changes(changes, record)
    groups = [t >> 16 for t in list(changes) + list(record)] + [ORIGINAL_ATTRIBUTES >> 16]
    if head.tail < len(head.data) and max(groups) >= _tag_at(head, head.tail) >> 16:
        raise CoerceError("a change beyond the walked head")
    data = head.data
    plan, changed = _coerced_plan(lambda a, b: data[a:b], head.enc, head.start, head.elements, changes, provenance,
                                  record)
    if plan is None:
        return data[:head.tail], CoerceResult(head.transfer_syntax, (), head.tail)
    out = b"".join(p if isinstance(p, bytes) else data[p[0]:p[1]] for p in plan)
    return out, CoerceResult(head.transfer_syntax, changed, len(out))


def _tag_at(head: Head, pos: int) -> int:
    g, e = struct.unpack_from(head.enc.e + "HH", head.data, pos)
    return g << 16 | e


def _meta_end(fh: BinaryIO, size: int) -> tuple[int, dict[str, str]]:
    """Where the data set starts, and the file meta's UIDs (structure.file_meta on the first 64 KiB:
    a file meta is a few hundred bytes)."""
    fh.seek(0)
    head = fh.read(min(size, 1 << 16))
    try:
        start, meta = file_meta(head)
    except StructureError as exc:
        raise CoerceError(f"file meta: {exc}") from None
    if start >= len(head) and len(head) < size:
        raise CoerceError("file meta longer than 64 KiB")
    return start, meta


def _empty(tag: int, value: Value | None, enc: _Encoding) -> bytes:
    """An element with a zero length value: the previous value of an element that was absent
    (PS3.3 C.12.1.1.9: "may be present ... with a zero length value")."""
    if isinstance(value, DataElement) and len(value.VR) == 2:
        vr = value.VR.encode("ascii")
    else:
        vr = _vr_of(tag, None)
    return enc.header(tag, vr, 0)


def _item(body: bytes, enc: _Encoding) -> bytes:
    return enc.tag(_ITEM) + struct.pack(enc.e + "I", len(body)) + body


def _original_attributes_item(previous: dict[int, bytes], provenance: Provenance, enc: _Encoding,
                              charset: list[str]) -> bytes:
    """One item of (0400,0561), PS3.3 Table C.12.1.1.9-1, its elements in tag order."""
    if not provenance.modifying_system.strip() or len(provenance.modifying_system) > 64:
        raise CoerceError("modifying system (0400,0563, LO, type 1): 1 to 64 characters")
    if len(provenance.source) > 64:
        raise CoerceError("source of previous values (0400,0564, LO): at most 64 characters")
    modified = _item(b"".join(previous[t] for t in sorted(previous)), enc)
    body = enc.header(MODIFIED_ATTRIBUTES, b"SQ", len(modified)) + modified
    body += enc.element(MODIFICATION_DATETIME, b"DT", _now_dt(provenance.when).encode("ascii"))
    body += _provenance_elements(provenance.modifying_system, provenance.source, provenance.reason, enc.implicit,
                                 enc.little, tuple(charset))
    return _item(body, enc)


@functools.lru_cache(maxsize=256)
def _provenance_elements(system: str, source: str, reason: str, implicit: bool, little: bool,
                         charset: tuple[str, ...]) -> bytes:
    """(0400,0563) to (0400,0565) encoded: the same few on every object a rule coerces."""
    enc = _Encoding(implicit, little)
    return (_encode(MODIFYING_SYSTEM, system, None, enc, list(charset))
            + _encode(SOURCE_OF_PREVIOUS_VALUES, source, None, enc, list(charset))
            + enc.element(REASON_FOR_MODIFICATION, b"CS", reason.encode("ascii")))


def _append_item(existing: _Element | None, old: bytes | None, item: bytes, enc: _Encoding) -> bytes:
    """(0400,0561) with `item` after the items it already has (PS3.3 C.12.1.1.9: existing items
    are preserved)."""
    if existing is None or old is None:
        return enc.header(ORIGINAL_ATTRIBUTES, b"SQ", len(item)) + item
    if existing.vr not in (None, b"SQ"):
        raise CoerceError(f"the file's Original Attributes Sequence (0400,0561) is encoded as "
                          f"{existing.vr.decode('ascii', 'replace')}, not SQ: not appended to")
    value = old[existing.value_start - existing.start:]
    if existing.length != UNDEFINED:
        return enc.header(ORIGINAL_ATTRIBUTES, b"SQ", len(value) + len(item)) + value + item
    delimiter = enc.tag(_SEQ_END) + b"\x00" * 4
    if not value.endswith(delimiter):
        raise CoerceError("the file's Original Attributes Sequence (0400,0561) does not end with a "
                          "sequence delimiter")
    return enc.header(ORIGINAL_ATTRIBUTES, b"SQ", UNDEFINED) + value[:-8] + item + delimiter


def _plan(meta_end: int, elements: list[_Element], by_tag: dict[int, _Element], new: dict[int, bytes | None],
          enc: _Encoding) -> list:
    """The output up to the tail: byte ranges of the file (start, end) to copy and bytes to write,
    in tag order; group lengths of the groups that change recomputed. elements: ascending and
    contiguous from meta_end (as the walk gives them); by_tag: the same by tag.

    Only the changed tags are looked at: what lies between two of them is one range (a header has
    dozens of elements and a rule changes a few; this runs on every coerced C-STORE)."""
    tags = [el.tag for el in elements]
    end = elements[-1].end if elements else meta_end
    edits = dict(new)
    for group in {t >> 16 for t in new}:
        length_el = by_tag.get(group << 16)
        if length_el is None:
            continue
        # Retired in data sets (PS3.5 7.2) but present: made true again, else readers that
        # trust it would skip into the middle of an element. The group's elements are one run.
        first, last = bisect_left(tags, (group << 16) + 1), bisect_left(tags, (group + 1) << 16)
        size = elements[last - 1].end - elements[first].start if last > first else 0
        for tag, value in new.items():
            if tag >> 16 == group:
                old = by_tag.get(tag)
                size += (len(value) if value is not None else 0) - (old.end - old.start if old is not None else 0)
        edits[group << 16] = enc.element(group << 16, length_el.vr or b"UL", struct.pack(enc.e + "I", size))
    out: list = []
    copied = 0  # the source's bytes before this are planned
    for tag in sorted(edits):
        el = by_tag.get(tag)
        if el is not None:
            at, after = el.start, el.end
        else:  # added: before the first element above it
            i = bisect_left(tags, tag)
            at = after = elements[i].start if i < len(elements) else end
        if at > copied:
            out.append((copied, at))
        if edits[tag] is not None:
            out.append(edits[tag])
        copied = after
    if end > copied:
        out.append((copied, end))
    return out


def _copy_range(fh: BinaryIO, out: BinaryIO, start: int, end: int) -> None:
    fh.seek(start)
    left = end - start
    while left > 0:
        chunk = fh.read(min(left, _COPY_CHUNK))
        if not chunk:
            raise CoerceError(f"file shorter than its elements say (at byte {end - left})")
        out.write(chunk)
        left -= len(chunk)
