"""Applying the `[[coercion]]` rules (gateway/config/coercion.py) to one received Part-10 file.

On ingest (the Intake, gateway/buffer/intake.py, before the index or the router see the object):
every path into the buffer (C-STORE fast path and pynetdicom path, media import, capture) passes the
Intake, so one call there covers them all. Which rules apply is decided by the source alone: a
`calling_ae` rule matches a network peer by its AE title, a `source` rule matches the rendered
source ("AE:CT1", "MEDIA:*", "CAPTURE:grabber0") like a route. The box's own captures are coerced
only by a rule that names a CAPTURE source: the capture already builds its objects from the
worklist, and a rule written for a legacy modality must not rewrite them by accident.

On forward (gateway/dicom/forward.py), rules with a `destination` give the destination a coerced
copy made when the job sends; the stored object, the index and other destinations keep the
ingest's values. Why not one copy per destination at ingest: it would multiply the buffer's size by
the number of such destinations and make retention and media export choose between copies; a copy
at send time costs one streamed write of the object per send, on the forwarder's thread.

The rules only compute the changes: the file is rewritten by gateway/part10/coerce.py, which
streams every untouched byte (pixel data included) and appends one Original Attributes Sequence
item (PS3.3 C.12.1.1.9: Reason COERCE, Modifying System this box's AE title, Source of Previous
Values the source) holding the values the object came with.

The values the rules read are parsed with pydicom from the header only (stop_before_pixels,
specific_tags): a few attributes of the first groups, never the pixel data.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.multival import MultiValue
from pydicom.valuerep import DT

from gateway.buffer.source import Source
from gateway.buffer.worklist import WorklistStore
from gateway.config.coercion import NUMBER_VRS, CoercionRule, check_value
from gateway.config.coercion import attribute_tag as _attribute_tag
from gateway.part10.attributes import InstanceAttributes
from gateway.part10.coerce import DELETE, CoerceError, Head, Provenance, coerce_file
from gateway.part10.coerce import coerce_head as coerce_head_bytes
from gateway.part10.structure import StructureError, walk_file

log = logging.getLogger("gateway.buffer.coercion")

# The rules' attribute names and the dictionary's VRs are looked up on every object (each a pydicom
# dictionary search, ~15% of a header's coercion): cached, the rules and the dictionary never change.
attribute_tag = functools.lru_cache(maxsize=4096)(_attribute_tag)
dictionary_VR = functools.lru_cache(maxsize=4096)(dictionary_VR)
# A rule's value is checked against its VR on every object it changes (pydicom's validation, ~10 us
# each); mostly the same few values (set, map, an issuer), so the answers are cached (a failure is not).
check_value = functools.lru_cache(maxsize=4096)(check_value)

SPECIFIC_CHARACTER_SET = 0x00080005
ACCESSION_NUMBER = 0x00080050
PATIENT_ID = 0x00100020
ISSUER_OF_PATIENT_ID = 0x00100021
ORIGINAL_ATTRIBUTES = 0x04000561


class CoercionFailed(Exception):
    """The rules cannot be applied to this object; one line naming the rule or the attribute (the
    object is refused: see Intake)."""


@dataclass(frozen=True)
class Coerced:
    """What a coercion did. rules: the names of the rules that applied, in order; changed: the
    tags replaced, added or deleted (empty: the object already had the rules' values, the file was
    not rewritten); warn: a rule asks for C-STORE status B000 (PS3.4 B.2.3)."""

    rules: tuple[str, ...]
    changed: tuple[int, ...]
    warn: bool
    # The changed tags' new values as text (None: deleted), for coerced_attributes.
    values: tuple[tuple[int, str | None], ...] = ()


def _tagname(tag: int) -> str:
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _text(elem) -> str:
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, (MultiValue, list)):
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip(" \x00")
    return str(value).strip(" \x00") if elem.VR not in ("LT", "ST", "UT") else str(value).rstrip(" \x00")


def _pydicom_values(path: Path, tags: set[int]) -> dict[int, str | None]:
    """The values of `tags` as text (None: absent), by pydicom (every character set, VR, byte order)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=sorted(tags))
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds; the Intake already parsed it
        raise CoercionFailed(f"header does not read for coercion: {type(exc).__name__}: {exc}") from None
    out: dict[int, str | None] = {}
    for tag in tags:
        elem = ds.get(tag)
        try:
            out[tag] = None if elem is None else _text(elem)
        except Exception as exc:  # noqa: BLE001 - a value that does not decode in its character set
            raise CoercionFailed(f"{_tagname(tag)} does not decode: {exc}") from None
    return out


# The character sets whose text values decode byte for byte with one codec (as attributes.py reads).
_PLAIN_CODECS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}


def _plain_values(path: Path, tags: set[int]) -> dict[int, str | None] | None:
    """The values of `tags` as text from one structure walk (no pydicom parse: it costs as much as
    the rest of a header's coercion), or None when any needs pydicom: a character set with code
    extensions, a number VR, a VR other than the dictionary's, a file that does not walk."""
    try:
        ts, raw = walk_file(path, wanted=frozenset(tags))
    except (StructureError, OSError, ValueError):
        return None
    return plain_values_of(raw, tags)


def plain_values_of(raw: dict[int, tuple[bytes | None, bytes]], tags: set[int]) -> dict[int, str | None] | None:
    """_plain_values on raw top-level values already read ({tag: (VR or None, value bytes)}, as
    structure.walk_file or coerce.Head.values give them); None when any needs pydicom."""
    charset = raw.get(SPECIFIC_CHARACTER_SET, (None, b""))[1].decode("ascii", "replace").strip(" \x00")
    codec = _PLAIN_CODECS.get(charset)
    if codec is None:
        return None
    out: dict[int, str | None] = {}
    for tag in tags:
        if tag not in raw:
            out[tag] = None
            continue
        vr, value = raw[tag]
        want = dictionary_VR(tag)
        if want in NUMBER_VRS or (vr is not None and vr.decode("ascii", "replace") != want):
            return None
        try:
            text = value.decode(codec)
        except UnicodeDecodeError:
            return None
        if want in ("LT", "ST", "UT"):
            out[tag] = text.rstrip(" \x00")
        else:  # as pydicom reads them: each value's padding removed
            text = "\\".join(v.strip(" \x00") for v in text.split("\\")).strip(" \x00")
            # pydicom drops a person name's empty trailing component groups ("Alphabetic=Ideographic=")
            out[tag] = text.rstrip("=") if want == "PN" else text
    return out


def _rule_tags(rule: CoercionRule) -> set[int]:
    """Every tag the rule reads or writes."""
    specs = list(rule.fill_from_worklist) + list(rule.copy_) + list(rule.copy_.values()) + list(rule.map_) \
        + list(rule.set_) + list(rule.delete_)
    tags = {attribute_tag(s) for s in specs}
    if rule.fill_from_worklist:
        tags.add(ACCESSION_NUMBER)
    if rule.issuer_of_patient_id or rule.patient_id_prefix:
        tags |= {PATIENT_ID, ISSUER_OF_PATIENT_ID}
    return tags | {SPECIFIC_CHARACTER_SET}


class Coercer:
    """The rules of one place (ingest, or one destination), resolved to tags once.

    rules: in file order; modifying_system: this box's AE title (0400,0563); worklist: the cache
    `fill_from_worklist` reads (None: that action finds nothing)."""

    def __init__(self, rules: list[CoercionRule], modifying_system: str, worklist: WorklistStore | None = None):
        self.rules = list(rules)
        self.modifying_system = modifying_system
        self.worklist = worklist
        self._tags = {r.name: _rule_tags(r) for r in self.rules}
        self._tags_of: dict[tuple[str, ...], frozenset[int]] = {}
        self._wl_key: tuple | None = None
        self._wl_items: tuple = ()

    @classmethod
    def for_ingest(cls, config, buffer_dir: Path | None) -> "Coercer":
        """The ingest rules of `config` (a gateway.config.Config); buffer_dir: where the worklist
        cache is (None: no buffer, e.g. the conformance statement's roles; fill_from_worklist finds
        nothing)."""
        worklist = WorklistStore(buffer_dir) if buffer_dir is not None else None
        return cls([r for r in config.coercion if r.on_ingest], config.ae.title, worklist)

    @classmethod
    def for_destination(cls, config, destination: str) -> "Coercer":
        return cls([r for r in config.coercion if destination in r.destination], config.ae.title)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def rules_for(self, source: Source | None) -> list[CoercionRule]:
        """The rules that apply to an object from `source` (None: a destination's coercer, all)."""
        if source is None:
            return list(self.rules)
        rendered = f"{source.kind.value}:{source.name.strip()}"
        out = []
        for rule in self.rules:
            if source.is_ae and source.name.strip() in rule.calling_ae:
                out.append(rule)
            elif any(fnmatchcase(rendered, p) for p in rule.source):
                out.append(rule)
        return out

    # -- computing the changes ----------------------------------------------------------------------
    def changes(self, path: Path, rules: list[CoercionRule]) -> tuple[dict, tuple[int, ...]]:
        """The changes `rules` make to the file at `path`: ({tag: str | DataElement | DELETE}, the
        tags to record unchanged beside them). Raises CoercionFailed (a value its VR refuses, a
        header pydicom cannot read)."""
        tags = self.tags_of(rules)
        original = _plain_values(path, tags)
        if original is None:
            original = _pydicom_values(path, tags)
        return self.changes_of(original, rules)

    def tags_of(self, rules: list[CoercionRule]) -> frozenset[int]:
        """Every tag `rules` read or write (0008,0005 always)."""
        key = tuple(r.name for r in rules)
        tags = self._tags_of.get(key)
        if tags is None:  # asked on every coerced object, for the same few rule lists
            tags = self._tags_of[key] = frozenset().union(*(self._tags[r.name] for r in rules))
        return tags

    def changes_of(self, original: dict[int, str | None], rules: list[CoercionRule]) -> tuple[dict, tuple[int, ...]]:
        """changes() from the values of tags_of(rules) already read (None: absent)."""
        view = dict(original)
        for rule in rules:
            self._apply(rule, view)
        out: dict = {}
        for tag, value in view.items():
            if value == original[tag]:
                continue
            if value is None:
                out[tag] = DELETE
                continue
            if tag != SPECIFIC_CHARACTER_SET:
                try:
                    check_value(tag, value)
                except ValueError as exc:
                    raise CoercionFailed(f"the coerced value does not fit: {exc}") from None
            vr = dictionary_VR(tag)
            if vr in NUMBER_VRS:
                nums = [float(v) if vr in ("FL", "FD") else int(v) for v in value.split("\\")]
                out[tag] = DataElement(tag, vr, nums if len(nums) > 1 else nums[0])
            else:
                out[tag] = value
        record = ()
        if PATIENT_ID in out or ISSUER_OF_PATIENT_ID in out:
            # PS3.3 C.12.1.1.9: the Patient ID's issuer is recorded beside a changed Patient ID.
            record = (PATIENT_ID, ISSUER_OF_PATIENT_ID)
        return out, record

    def _apply(self, rule: CoercionRule, view: dict[int, str | None]) -> None:
        if rule.character_set:
            if rule.character_set_mode == "replace" or not view.get(SPECIFIC_CHARACTER_SET):
                view[SPECIFIC_CHARACTER_SET] = rule.character_set
        if rule.fill_from_worklist:
            wanted = [attribute_tag(s) for s in rule.fill_from_worklist]
            missing = [t for t in wanted if not view.get(t)]
            if missing:
                for tag, value in self._from_worklist(rule, view.get(ACCESSION_NUMBER) or "", missing).items():
                    view[tag] = value
        for target, src in rule.copy_.items():
            value = view.get(attribute_tag(src))
            if value is not None:
                view[attribute_tag(target)] = value
        for spec, table in rule.map_.items():
            tag = attribute_tag(spec)
            value = view.get(tag)
            if value is not None and value in table:
                view[tag] = table[value]
        for spec, value in rule.set_.items():
            view[attribute_tag(spec)] = value
        if rule.issuer_of_patient_id and not view.get(ISSUER_OF_PATIENT_ID):
            view[ISSUER_OF_PATIENT_ID] = rule.issuer_of_patient_id
        if rule.patient_id_prefix:
            pid = view.get(PATIENT_ID)
            if pid and not pid.startswith(rule.patient_id_prefix):
                view[PATIENT_ID] = rule.patient_id_prefix + pid
        for spec in rule.delete_:
            view[attribute_tag(spec)] = None

    def _worklist_items(self) -> tuple:
        # The cache file is replaced whole on each refresh (worklist.py): re-read only when it changed.
        if self.worklist is None:
            return ()
        try:
            st = os.stat(self.worklist.path)
        except OSError:
            return ()
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key != self._wl_key:
            cached = self.worklist.load()
            self._wl_items = cached.items if cached is not None else ()
            self._wl_key = key
        return self._wl_items

    def _from_worklist(self, rule: CoercionRule, accession: str, missing: list[int]) -> dict[int, str]:
        """The missing attributes from the worklist item(s) of this Accession Number. Several items
        (one per Scheduled Procedure Step) must agree on a value, else it is not filled."""
        if not accession:
            log.info("coercion rule %s: no Accession Number, nothing filled from the worklist", rule.name)
            return {}
        items = [p for p in self._worklist_items() if p.accession_number.strip() == accession.strip()]
        if not items:
            log.info("coercion rule %s: no worklist item with Accession Number %s in the cache, nothing "
                     "filled", rule.name, accession)
            return {}
        out: dict[int, str] = {}
        for tag in missing:
            values = set()
            for proc in items:
                try:
                    elem = proc.dataset().get(tag)
                    values.add(_text(elem) if elem is not None else "")
                except Exception:  # noqa: BLE001 - a damaged cached item fills nothing
                    values.add("")
            values.discard("")
            if len(values) == 1:
                out[tag] = values.pop()
            elif len(values) > 1:
                log.warning("coercion rule %s: the worklist items of Accession Number %s disagree on %s; "
                            "not filled", rule.name, accession, _tagname(tag))
        return out

    # -- writing -----------------------------------------------------------------------------------
    def coerce(self, path: Path, out_path: Path, rules: list[CoercionRule], source_label: str,
               sync: bool = True, when: datetime | None = None) -> Coerced:
        """Write to `out_path` (created; fsynced when `sync`: a forward's copy is not kept) the file at `path` with `rules` applied, when they
        change anything (Coerced.changed empty: nothing written). Raises CoercionFailed for a
        value, a transfer syntax (deflated) or a data set the coercion refuses; OSError when the
        write fails. `out_path` never stays behind half written."""
        changes, record = self.changes(path, rules)
        names = tuple(r.name for r in rules)
        warn = any(r.store_status == "warning" for r in rules)
        if not changes:
            return Coerced(names, (), False)
        provenance = Provenance(self.modifying_system, "COERCE", source_label[:64], when)
        try:
            with open(out_path, "wb") as out:
                result = coerce_file(path, out, changes, provenance, record=record)
                if sync:
                    out.flush()
                    os.fdatasync(out.fileno())
        except CoerceError as exc:
            out_path.unlink(missing_ok=True)
            raise CoercionFailed(str(exc)) from None
        except BaseException:
            out_path.unlink(missing_ok=True)
            raise
        if not result.changed:
            out_path.unlink(missing_ok=True)
        values = tuple((t, None if changes[t] is DELETE else _as_text(changes[t])) for t in result.changed)
        return Coerced(names, result.changed, warn and bool(result.changed), values)


    def coerce_head(self, head: Head, rules: list[CoercionRule], source_label: str,
                    when: datetime | None = None) -> tuple[bytes | None, Coerced] | None:
        """coerce() on the start of a file held in memory (gateway/buffer/head_coercion.py): (the
        bytes to write instead of head.data[:head.tail], or None when nothing changes; the Coerced
        result): with the rest after them, the bytes and result coerce() gives for the whole file. None: a value needs pydicom
        (a character set with code extensions, a number VR, an unexpected VR): left to coerce().
        Raises CoercionFailed as coerce() does."""
        tags = self.tags_of(rules)
        original = plain_values_of(head.values(tags), tags)
        if original is None:
            return None
        changes, record = self.changes_of(original, rules)
        names = tuple(r.name for r in rules)
        warn = any(r.store_status == "warning" for r in rules)
        if not changes:
            return None, Coerced(names, (), False)
        provenance = Provenance(self.modifying_system, "COERCE", source_label[:64], when)
        try:
            data, result = coerce_head_bytes(head, changes, provenance, record=record)
        except CoerceError as exc:
            raise CoercionFailed(str(exc)) from None
        if not result.changed:
            return None, Coerced(names, (), False)
        values = tuple((t, None if changes[t] is DELETE else _as_text(changes[t])) for t in result.changed)
        return data, Coerced(names, result.changed, warn, values)


def _as_text(value) -> str:
    return value if isinstance(value, str) else _text(value)


# The index's attributes (gateway/part10/attributes.py) by tag, and the InstanceAttributes field of
# each. IS values (series and instance numbers) are not here: pydicom writes them (coerce.py) and
# may spell a number otherwise than the rule did, so they are read back from the file.
_INDEXED = {0x00080020: "study_date", 0x00080030: "study_time", 0x00080050: "accession", 0x00080060: "modality",
            0x00080090: "referring", 0x00081030: "study_description", 0x0008103E: "series_description",
            0x00100010: "patient_name", 0x00100020: "patient_id", 0x00100021: "issuer",
            0x00100030: "birth_date", 0x00100040: "sex", 0x00180015: "body_part", 0x00200010: "study_id"}
_READ_BACK = {SPECIFIC_CHARACTER_SET, 0x00200011, 0x00200013}


def coerced_attributes(attrs: InstanceAttributes, coerced: Coerced) -> InstanceAttributes | None:
    """The index attributes of the coerced file, from those of the file it was made from and the
    values the coercion wrote (what read_attributes would read, without reading the file again),
    or None when they must be read from the file: the character set changed (every text value
    decodes anew) or a number changed."""
    fields = {}
    for tag, value in coerced.values:
        if tag in _READ_BACK:
            return None
        field = _INDEXED.get(tag)
        if field is None:
            continue
        # As attributes.py reads a value: each value's padding removed, a person name without
        # its empty trailing component groups.
        text = "\\".join(v.strip(" \x00") for v in (value or "").split("\\")).strip()
        fields[field] = text.rstrip("=") if tag == 0x00100010 else text
    return dataclasses.replace(attrs, **fields)


def previous_coercion_time(stored: Path, modifying_system: str) -> datetime | None:
    """The Attribute Modification DateTime of the last Original Attributes item this box wrote
    into the stored file `stored`, or None. A re-sent object coerced again with that time is byte
    for byte what was stored when it was sent the same: the buffer sees an identical re-send (not
    forwarded again) as it does without rules, instead of a new version at every re-send."""
    try:
        ds = pydicom.dcmread(stored, stop_before_pixels=True, specific_tags=[ORIGINAL_ATTRIBUTES])
        items = ds.get(ORIGINAL_ATTRIBUTES)
        if items is None or not items.value:
            return None
        last = items.value[-1]
        if str(last.get("ModifyingSystem", "")) != modifying_system:
            return None
        value = last.get("AttributeModificationDateTime")
        return DT(value) if value else None
    except Exception:  # noqa: BLE001 - an unreadable stored header: coerce with the time of now
        return None


def describe(coerced: Coerced) -> str:
    """For a log line: the rules and the changed attributes (names of attributes, never values)."""
    return f"rules {', '.join(coerced.rules)}; changed {', '.join(_tagname(t) for t in coerced.changed)}"
