"""`[[coercion]]`: attribute coercion rules (applied by gateway/buffer/coercion.py).

A legacy modality sends headers a PACS rejects or files images under the wrong institution; a rule
rewrites the few attributes that are wrong, and every change is recorded in the object's Original
Attributes Sequence (PS3.3 C.12.1.1.9, reason COERCE).

    [[coercion]]
    name = "ct1-legacy"               # names the rule in check-config, the log and the received event
    calling_ae = ["CT1"]              # where: network peers by AE title (ingest)
    # source = ["AE:US*", "MEDIA:*"]  # or: source patterns as in [[routes]] (ingest); CAPTURE:...
    #                                 # only when named: the box's own objects are never coerced by
    #                                 # a calling_ae rule
    # destination = ["pacs"]          # or: on the way to these destinations (a coerced copy is
    #                                 # sent; the stored object is not changed)
    character_set = "ISO_IR 100"      # (0008,0005) added when missing (character_set_mode = "add")
    character_set_mode = "add"        # or "replace": always this value (the sender declares wrong)
    fill_from_worklist = ["PatientName", "PatientBirthDate"]  # missing/empty ones, from the
                                      # cached worklist item with this object's Accession Number
    copy = { OtherPatientIDs = "PatientID" }       # target = source attribute
    map = { InstitutionName = { GH01 = "General Hospital" } }  # a value table per attribute
    set = { StationName = "CT1" }
    issuer_of_patient_id = "HOSP-A"   # Issuer of Patient ID (0010,0021), when missing or empty
    patient_id_prefix = ""            # prepended to the Patient ID unless it starts with it already
    delete = ["PatientComments"]
    store_status = "success"          # or "warning": answer B000 "Coercion of data elements"

Actions run in the order of the keys above, each on the values the previous ones left, rules in file
order; one Original Attributes item records the values the object arrived with.

Attributes are keywords ("InstitutionName") or tags ("(0008,0080)", "00080080") of the data dictionary,
top level, with a value VR that a string can set (text VRs; US/SS/UL/SL/FL/FD from their decimal
text). Refused at load time, naming the rule: an unknown keyword/tag, a private or binary (OB, SQ...)
attribute, a value its VR does not allow, a map without entries, a group 0002 / group length / pixel
data tag, (0008,0005) outside `character_set`, and the identity attributes (SOP Class, SOP Instance,
Study and Series Instance UIDs): changing them silently would make the object another object for
every peer, its storage commitment and its Original Attributes record; they are never coerced.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator
from pydicom.charset import python_encoding
from pydicom.config import RAISE
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.valuerep import validate_value

from gateway.config.base import AETitle, Section
from gateway.config.routes import SourcePattern

# The identity of an object (PS3.3 C.12.1 SOP Common, C.7.2.1, C.7.3.1): never coerced.
IDENTITY_TAGS = {0x00080016: "SOPClassUID", 0x00080018: "SOPInstanceUID",
                 0x0020000D: "StudyInstanceUID", 0x0020000E: "SeriesInstanceUID"}
SPECIFIC_CHARACTER_SET = 0x00080005
ORIGINAL_ATTRIBUTES = 0x04000561
TEXT_VRS = frozenset("AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT".split())
NUMBER_VRS = frozenset("US SS UL SL FL FD".split())
MAX_RULES = 64
_MAX_ENTRIES = 256
_MAX_MAP = 10000
_MAX_VALUE = 1024
# PS3.5 Table 6.2-1: the most characters a value of each text VR holds (PN: per component group).
_MAX_CHARS = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64, "LT": 10240,
              "PN": 64, "SH": 16, "ST": 1024, "TM": 14, "UI": 64}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TAG_RE = re.compile(r"\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?")


def attribute_tag(spec: str) -> int:
    """The tag of a keyword or a "(gggg,eeee)" / "ggggeeee" spelling. ValueError (one line) when the
    data dictionary does not know it, or it is private, binary, a sequence, a group length, file
    meta, pixel data and after, (0400,0561), or an identity attribute (see the module docstring)."""
    m = _TAG_RE.fullmatch(spec.strip())
    if m:
        tag = int(m.group(1) + m.group(2), 16)
    else:
        tag = tag_for_keyword(spec.strip())
        if tag is None:
            raise ValueError(f"{spec!r} is not a keyword of the data dictionary (e.g. \"InstitutionName\") "
                             "or a tag \"(0008,0080)\"")
    name = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    group = tag >> 16
    if group % 2:
        raise ValueError(f"{spec!r}: private attribute {name}: its VR and meaning are the sender's; not coerced")
    if group == 0x0002:
        raise ValueError(f"{spec!r}: {name} is file meta (group 0002), not a data set attribute")
    if tag & 0xFFFF == 0:
        raise ValueError(f"{spec!r}: {name} is a group length, recomputed, never set")
    if group >= 0x7FE0:
        raise ValueError(f"{spec!r}: {name}: only attributes before the pixel data are coerced")
    if tag in IDENTITY_TAGS:
        raise ValueError(f"{spec!r}: {IDENTITY_TAGS[tag]} {name} is the object's identity: never coerced "
                         "(another UID would make it another object for every peer)")
    if tag == ORIGINAL_ATTRIBUTES:
        raise ValueError(f"{spec!r}: (0400,0561) Original Attributes Sequence is written by the coercion itself")
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        raise ValueError(f"{spec!r}: {name} is not in the data dictionary") from None
    if vr not in TEXT_VRS and vr not in NUMBER_VRS:
        raise ValueError(f"{spec!r}: {keyword_for_tag(tag) or name} has VR {vr}, which a rule's text value "
                         "cannot set (text VRs and US/SS/UL/SL/FL/FD only)")
    return tag


def attribute_vr(tag: int) -> str:
    return dictionary_VR(tag)


def check_value(tag: int, value: str) -> str:
    """`value` is a valid value of the attribute's VR (PS3.5 6.2: length, character repertoire,
    format; backslash-separated values each checked). ValueError naming the attribute."""
    vr = dictionary_VR(tag)
    label = keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    if len(value) > _MAX_VALUE:
        raise ValueError(f"{label}: a value longer than {_MAX_VALUE} characters")
    if vr in NUMBER_VRS:
        for part in value.split("\\"):
            try:
                float(part) if vr in ("FL", "FD") else int(part)
            except ValueError:
                raise ValueError(f"{label}: {part!r} is not a {vr} number") from None
        return value
    parts = [value] if vr in ("LT", "ST", "UT", "UR") else value.split("\\")
    for part in parts:
        try:
            validate_value(vr, part, RAISE)
        except ValueError as exc:
            raise ValueError(f"{label} ({vr}): {exc}".split(" Please see")[0]) from None
    return value


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r}: a rule name is 1-64 letters, digits, '_', '.' or '-', starting with a "
                         "letter or digit")
    return value


def _check_charset(value: str) -> str:
    terms = [t.strip() for t in value.split("\\")]
    for term in terms:
        if term and term not in python_encoding:
            raise ValueError(f"{term!r} is not a Defined Term of Specific Character Set (0008,0005) "
                             "(PS3.3 C.12.1.1.2; e.g. \"ISO_IR 100\", \"ISO_IR 192\")")
    if not any(terms):
        raise ValueError("an empty character set: leave character_set out instead")
    return value


def _check_issuer(value: str) -> str:
    if value:
        check_value(0x00100021, value)
    return value


def _check_prefix(value: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z0-9_.-]{1,16}", value):
        raise ValueError(f"{value!r}: a Patient ID prefix is 1-16 letters, digits, '_', '.' or '-'")
    return value


RuleName = Annotated[str, AfterValidator(_check_name)]
Attribute = Annotated[str, Field(min_length=1, max_length=64)]


class CoercionRule(Section):
    """One `[[coercion]]` table. The action keys `copy`, `map`, `set`, `delete` are the TOML
    spellings (fields with a trailing underscore: pydantic's BaseModel has methods of those names)."""

    name: RuleName
    source: Annotated[list[SourcePattern], Field(max_length=_MAX_ENTRIES)] = []
    calling_ae: Annotated[list[AETitle], Field(max_length=_MAX_ENTRIES)] = []
    destination: Annotated[list[str], Field(max_length=_MAX_ENTRIES)] = []
    character_set: Annotated[str, AfterValidator(_check_charset)] | None = None
    character_set_mode: Literal["add", "replace"] = "add"
    fill_from_worklist: Annotated[list[Attribute], Field(max_length=_MAX_ENTRIES)] = []
    copy_: Annotated[dict[Attribute, Attribute], Field(alias="copy", max_length=_MAX_ENTRIES)] = {}
    map_: Annotated[dict[Attribute, dict[str, str]], Field(alias="map", max_length=_MAX_ENTRIES)] = {}
    set_: Annotated[dict[Attribute, str], Field(alias="set", max_length=_MAX_ENTRIES)] = {}
    issuer_of_patient_id: Annotated[str, AfterValidator(_check_issuer)] = ""
    patient_id_prefix: Annotated[str, AfterValidator(_check_prefix)] = ""
    delete_: Annotated[list[Attribute], Field(alias="delete", max_length=_MAX_ENTRIES)] = []
    store_status: Literal["success", "warning"] = "success"

    @property
    def on_ingest(self) -> bool:
        return bool(self.source or self.calling_ae)

    def problems(self) -> list[str]:
        """Everything wrong with the rule, each a phrase without the rule's name (the caller adds
        `coercion.<name>`): attributes and values the standard's dictionary refuses."""
        out: list[str] = []

        def tag_of(key: str, spec: str) -> int | None:
            try:
                tag = attribute_tag(spec)
            except ValueError as exc:
                out.append(f"{key}: {exc}")
                return None
            if tag == SPECIFIC_CHARACTER_SET:
                out.append(f"{key}: {spec!r}: (0008,0005) is set with character_set, which knows its Defined Terms")
                return None
            return tag

        def value_ok(key: str, tag: int, value: str) -> None:
            try:
                check_value(tag, value)
            except ValueError as exc:
                out.append(f"{key}: {exc}")

        if self.on_ingest == bool(self.destination):
            out.append("say where it applies: source or calling_ae (on ingest), or destination (on forward), "
                       "not both")
        for spec in self.fill_from_worklist:
            tag_of("fill_from_worklist", spec)
        for target, src in self.copy_.items():
            t, s = tag_of("copy", target), tag_of("copy", src)
            if t is not None and s is not None:
                if t == s:
                    out.append(f"copy: {target!r} from itself")
                elif (attribute_vr(t) in NUMBER_VRS) != (attribute_vr(s) in NUMBER_VRS):
                    out.append(f"copy: {target!r} ({attribute_vr(t)}) from {src!r} ({attribute_vr(s)}): "
                               "VR mismatch (a number from text or text from a number)")
        for spec, table in self.map_.items():
            tag = tag_of("map", spec)
            if not table:
                out.append(f"map: {spec!r}: a map without entries")
            if len(table) > _MAX_MAP:
                out.append(f"map: {spec!r}: more than {_MAX_MAP} entries")
            if tag is not None:
                for to in list(table.values())[:_MAX_MAP]:
                    value_ok("map", tag, to)
        for spec, value in self.set_.items():
            tag = tag_of("set", spec)
            if tag is not None:
                value_ok("set", tag, value)
        for spec in self.delete_:
            tag = tag_of("delete", spec)
            if tag is not None and (tag in self._written()):
                out.append(f"delete: {spec!r} is also set, copied, mapped or filled by this rule")
        if self.destination and self.fill_from_worklist:
            out.append("fill_from_worklist: on ingest only (the index must hold the filled values)")
        if not self._acts():
            out.append("no action (character_set, fill_from_worklist, copy, map, set, issuer_of_patient_id, "
                       "patient_id_prefix, delete)")
        return out

    def notes(self) -> list[str]:
        """What check-config should point out although the rule is valid, each a phrase without the
        rule's name: actions that will refuse objects (0x0110) whose values the rule cannot hold."""
        out: list[str] = []
        if not self.character_set:
            for key, values in (("set", self.set_), ("map", {k: v for t in self.map_.values() for k, v in t.items()})):
                for spec, value in values.items():
                    if not value.isascii():
                        out.append(f"{key}: {spec!r}: a value that is not ASCII: an object whose Specific "
                                   "Character Set (0008,0005) cannot hold it is refused (0x0110); add "
                                   "character_set (e.g. \"ISO_IR 192\") to the rule")
                        break
        for target, src in self.copy_.items():
            try:
                t, s = attribute_tag(target), attribute_tag(src)
            except ValueError:
                continue
            vt, vs = attribute_vr(t), attribute_vr(s)
            if _MAX_CHARS.get(vs, 0) > _MAX_CHARS.get(vt, 1 << 30):
                out.append(f"copy: {target!r} ({vt}, at most {_MAX_CHARS[vt]} characters) from {src!r} ({vs}, "
                           f"up to {_MAX_CHARS[vs]}): an object with a longer value is refused (0x0110)")
        return out

    def _written(self) -> set[int]:
        tags = set()
        for spec in list(self.fill_from_worklist) + list(self.copy_) + list(self.map_) + list(self.set_):
            try:
                tags.add(attribute_tag(spec))
            except ValueError:
                pass
        return tags

    def _acts(self) -> bool:
        return bool(self.character_set or self.fill_from_worklist or self.copy_ or self.map_ or self.set_
                    or self.issuer_of_patient_id or self.patient_id_prefix or self.delete_)

    @model_validator(mode="after")
    def _check(self) -> "CoercionRule":
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(f"rule {self.name!r}: {p}" for p in problems))
        return self

    def summary(self) -> str:
        """One line for check-config: where, and what it does (no values: they may be a patient's)."""
        if self.on_ingest:
            where = "on ingest from " + ", ".join([f"AE:{a}" for a in self.calling_ae] + list(self.source))
        else:
            where = "on forward to " + ", ".join(self.destination)
        acts = []
        if self.character_set:
            acts.append(f"character set {self.character_set} ({self.character_set_mode})")
        if self.fill_from_worklist:
            acts.append("fill from worklist " + ", ".join(self.fill_from_worklist))
        if self.copy_:
            acts.append("copy " + ", ".join(f"{s}->{t}" for t, s in self.copy_.items()))
        if self.map_:
            acts.append("map " + ", ".join(f"{k} ({len(v)} entries)" for k, v in self.map_.items()))
        if self.set_:
            acts.append("set " + ", ".join(self.set_))
        if self.issuer_of_patient_id:
            acts.append("issuer of patient ID")
        if self.patient_id_prefix:
            acts.append("patient ID prefix")
        if self.delete_:
            acts.append("delete " + ", ".join(self.delete_))
        status = "; answers B000" if self.store_status == "warning" else ""
        return f"{self.name}: {where}: {'; '.join(acts)}{status}"


def worklist_problems(config) -> list[str]:
    """The rules that fill from the worklist in a config (`config`: a gateway.config.Config) without
    one: a "coercion.<name>.fill_from_worklist: ..." line each. The rule reads the cache the
    worklist service writes (gateway/buffer/worklist.py), and with `[worklist] enabled = false`
    nothing asks the RIS: the rule would fill nothing, with no error anywhere, for every object
    (or, worse, from a cache a worklist once enabled left behind)."""
    if config.worklist.enabled:
        return []
    return [f"coercion.{rule.name}.fill_from_worklist: no worklist to fill from ([worklist] enabled = false): "
            "enable [worklist] with the RIS's Modality Worklist SCP, or remove the action"
            for rule in config.coercion if rule.fill_from_worklist]


def caller_notes(config) -> list[str]:
    """check-config's notes on rules whose `calling_ae` names an AE title that cannot call
    (`config`: a gateway.config.Config): not a [peers.*] title while `ae.accept_unknown_callers =
    false`, so its associations are rejected and the rule never applies (a typo, or a renamed
    peer). A note, not a refusal: the rule may be written before its peer. With unknown callers
    accepted any title may call: nothing to say."""
    if config.ae.accept_unknown_callers:
        return []
    titles = {peer.ae_title for peer in config.peers.values()}
    return [f"coercion.{rule.name}.calling_ae: {title!r} is not the AE title of any [peers.*] and "
            "ae.accept_unknown_callers = false: the rule would never apply"
            for rule in config.coercion for title in rule.calling_ae if title.strip() not in titles]


def check_config_lines(config) -> list[str]:
    """check-config's lines for the coercion rules and attribute routes (`config`: a
    gateway.config.Config): each coercion rule (CoercionRule.summary) and each route that matches
    on indexed attributes."""
    lines = [f"coerces ({i + 1}) {rule.summary()}" for i, rule in enumerate(config.coercion)]
    lines += [f"note: coercion.{rule.name}.{note}" for rule in config.coercion for note in rule.notes()]
    lines += [f"note: {note}" for note in caller_notes(config)]
    for i, route in enumerate(config.routes):
        if route.match:
            tests = "; ".join(f"{k} in {', '.join(v)}" for k, v in route.match.items())
            lines.append(f"routes[{i}] to {', '.join(route.to)} when {tests}")
    return lines
