"""Attribute coercion rules (issue 11 item 3): gateway/config/coercion.py (the [[coercion]] tables,
refused naming the rule), gateway/buffer/coercion.py (the rules applied to pydicom's test files: the
expected data sets, the Original Attributes Sequence holding the old values, the pixel data byte
identical), the Intake applying them before the index and the router, and routes matching on
indexed attributes (gateway/routing.py)."""

from __future__ import annotations

import dataclasses
import shutil
import tomllib
from pathlib import Path

import pydicom
import pytest
from datasets import make_ct
from peers import TEST_FILES
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, DeflatedExplicitVRLittleEndian

from gateway.buffer.coercion import Coercer, CoercionFailed, coerced_attributes
from gateway.buffer.ingest import Buffer
from gateway.buffer.intake import Intake, Refusal
from gateway.buffer.procedure import Procedure, encode_identifier
from gateway.buffer.source import Source
from gateway.buffer.worklist import CachedWorklist, WorklistStore
from gateway.config import Config, ConfigError, load
from gateway.config.routes import ROUTE_ATTRIBUTES
from gateway.events import EventBus
from gateway.part10.attributes import InstanceAttributes, read_attributes
from gateway.routing import Router

CHARSET_FILES = Path(pydicom.__file__).parent / "data" / "charset_files"
CT = str(CTImageStorage)
PIXEL = 0x7FE00010

RULES = {
    "ae": {"title": "EDGE"},
    "coercion": [
        {"name": "legacy", "calling_ae": ["CT1"],
         "copy": {"OtherPatientIDs": "PatientID"},
         "map": {"InstitutionName": {"GH01": "General Hospital"}},
         "set": {"StationName": "LEGACY1", "StudyDescription": "CT HEAD"},
         "issuer_of_patient_id": "HOSP-A",
         "delete": ["PatientBirthDate"]},
    ],
}


def _cfg(extra: dict | None = None) -> Config:
    return Config.model_validate({**RULES, **(extra or {})})


def _tail(path: Path) -> bytes:
    """The bytes from the pixel data element to the end of the file."""
    data = path.read_bytes()
    for tag in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10"):
        at = data.rfind(tag)
        if at > 0:
            return data[at:]
    raise AssertionError("no pixel data")


def _coerce(src: Path, tmp_path: Path, cfg: Config, source=Source.ae("CT1"), buffer_dir: Path | None = None):
    work = tmp_path / "in.dcm"
    shutil.copyfile(src, work)
    coercer = Coercer.for_ingest(cfg, buffer_dir or tmp_path)
    out = tmp_path / "out.dcm"
    result = coercer.coerce(work, out, coercer.rules_for(source), str(source))
    if result.changed:
        # The index attributes the intake derives without reading the file again are the file's.
        derived = coerced_attributes(read_attributes(work), result)
        assert derived is None or derived == read_attributes(out)
    return result, out


def _modified(ds) -> Dataset:
    (item,) = ds.OriginalAttributesSequence[-1:]
    assert item.ReasonForTheAttributeModification == "COERCE"
    assert item.ModifyingSystem == "EDGE"
    return item.ModifiedAttributesSequence[0]


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm",
                                  "MR_small_bigendian.dcm", "JPEG2000.dcm"])
def test_a_rule_set_gives_the_expected_data_set_and_records_the_old_values(name, tmp_path):
    src = TEST_FILES / name
    before = pydicom.dcmread(src)
    with pydicom.dcmread(src) as ds:  # the map needs its key: give the file an institution code
        ds.InstitutionName = "GH01"
        ds.PatientBirthDate = ds.get("PatientBirthDate") or "19700101"
        ds.save_as(tmp_path / "src.dcm")
    src = tmp_path / "src.dcm"
    before = pydicom.dcmread(src)
    result, out = _coerce(src, tmp_path, _cfg())
    after = pydicom.dcmread(out)
    assert result.rules == ("legacy",)
    assert after.InstitutionName == "General Hospital"
    assert after.StationName == "LEGACY1" and after.StudyDescription == "CT HEAD"
    assert after.OtherPatientIDs == before.PatientID
    assert after.IssuerOfPatientID == "HOSP-A"
    assert "PatientBirthDate" not in after
    # Identity and everything untouched as it was.
    for kw in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID",
               "PatientName", "Modality", "Rows", "Columns"):
        assert after.get(kw) == before.get(kw), kw
    untouched = {e.tag for e in before} - {0x00080080, 0x00081010, 0x00081030, 0x00101000, 0x00100021,
                                           0x00100030, 0x04000561, PIXEL}
    for tag in untouched:
        assert after[tag].value == before[tag].value, tag
    assert _tail(out) == _tail(src)  # pixel data (and what follows) byte-identical
    old = _modified(after)
    assert old.InstitutionName == "GH01"
    assert old.PatientBirthDate == before.PatientBirthDate
    assert old.StudyDescription == before.get("StudyDescription", "")
    assert old.IssuerOfPatientID == "" and old.PatientID == before.PatientID  # recorded beside it
    assert "StationName" in old and old.StationName == before.get("StationName", "")  # absent: zero length
    assert read_attributes(out).study_description == "CT HEAD"
    assert coerced_attributes(read_attributes(src), result) == read_attributes(out)


def test_latin1_values_keep_their_character_set(tmp_path):
    src = CHARSET_FILES / "chrFren.dcm"
    cfg = Config.model_validate({"ae": {"title": "EDGE"}, "coercion": [
        {"name": "fr", "source": ["MEDIA:*"], "set": {"InstitutionName": "Hôpital Général"},
         "map": {"PatientName": {"Buc^Jérôme": "Buc^Jérôme Émile"}}}]})
    result, out = _coerce(src, tmp_path, cfg, Source.media("USB1"))
    after = pydicom.dcmread(out)
    assert after.SpecificCharacterSet == "ISO_IR 100"
    assert after.InstitutionName == "Hôpital Général"
    assert str(after.PatientName) == "Buc^Jérôme Émile"
    assert "Hôpital".encode("latin-1") in out.read_bytes()
    assert str(_modified(after).PatientName) == "Buc^Jérôme"


def test_a_missing_character_set_is_added_and_the_bytes_stay(tmp_path):
    src = tmp_path / "nocs.dcm"
    ds = make_ct(tmp_path / "ct.dcm")
    ds = pydicom.dcmread(tmp_path / "ct.dcm")
    if "SpecificCharacterSet" in ds:
        del ds.SpecificCharacterSet
    ds.save_as(src)
    raw = src.read_bytes().replace(b"Test^Patient", b"M\xfcller^Hans ")  # Latin-1, undeclared
    src.write_bytes(raw)
    cfg = Config.model_validate({"ae": {"title": "EDGE"}, "coercion": [
        {"name": "cs", "calling_ae": ["CT1"], "character_set": "ISO_IR 100"}]})
    result, out = _coerce(src, tmp_path, cfg)
    after = pydicom.dcmread(out)
    assert after.SpecificCharacterSet == "ISO_IR 100"
    assert str(after.PatientName) == "Müller^Hans"
    assert b"M\xfcller^Hans " in out.read_bytes()
    assert "SpecificCharacterSet" in _modified(after)
    # Declared already: "add" leaves it.
    result2, out2 = _coerce(out, tmp_path / "x" if False else tmp_path, cfg)
    assert result2.changed == ()


def _worklist(buffer_dir: Path, accession: str) -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Worklist^Émilie"
    ds.PatientID = "WL123"
    ds.PatientBirthDate = "19800202"
    ds.AccessionNumber = accession
    proc = Procedure(key=f"SPS1|{accession}|", identifier=encode_identifier(ds), patient_id="WL123",
                     patient_name="Worklist^Émilie", accession_number=accession)
    WorklistStore(buffer_dir).save(CachedWorklist((proc,), 1.0, "RIS@127.0.0.1:104"))


def test_missing_attributes_are_filled_from_the_worklist_by_accession_number(tmp_path):
    buf_dir = tmp_path / "buf"
    buf_dir.mkdir()
    _worklist(buf_dir, "ACC77")
    make_ct(tmp_path / "ct.dcm")
    ds = pydicom.dcmread(tmp_path / "ct.dcm")
    ds.AccessionNumber = "ACC77"
    ds.PatientName = ""
    ds.SpecificCharacterSet = "ISO_IR 100"
    if "PatientBirthDate" in ds:
        del ds.PatientBirthDate
    ds.save_as(tmp_path / "src.dcm")
    cfg = Config.model_validate({"ae": {"title": "EDGE"}, "worklist": {"enabled": True}, "coercion": [
        {"name": "wl", "calling_ae": ["CT1"], "fill_from_worklist": ["PatientName", "PatientBirthDate",
                                                                     "PatientID"]}]})
    result, out = _coerce(tmp_path / "src.dcm", tmp_path, cfg, buffer_dir=buf_dir)
    after = pydicom.dcmread(out)
    assert str(after.PatientName) == "Worklist^Émilie" and after.PatientBirthDate == "19800202"
    assert after.PatientID == ds.PatientID  # present: not filled
    # Another accession number: nothing filled, nothing written.
    ds.AccessionNumber = "OTHER"
    ds.save_as(tmp_path / "src2.dcm")
    result, _ = _coerce(tmp_path / "src2.dcm", tmp_path, cfg, buffer_dir=buf_dir)
    assert result.changed == ()


def test_patient_id_prefix_is_applied_once(tmp_path):
    cfg = Config.model_validate({"ae": {"title": "EDGE"}, "coercion": [
        {"name": "site", "calling_ae": ["CT1"], "patient_id_prefix": "A-"}]})
    make_ct(tmp_path / "ct.dcm")
    pid = pydicom.dcmread(tmp_path / "ct.dcm").PatientID
    _, out = _coerce(tmp_path / "ct.dcm", tmp_path, cfg)
    assert pydicom.dcmread(out).PatientID == "A-" + pid
    shutil.copyfile(out, tmp_path / "again.dcm")
    result, _ = _coerce(tmp_path / "again.dcm", tmp_path, cfg)
    assert result.changed == ()


def test_rules_match_only_their_source(tmp_path):
    coercer = Coercer.for_ingest(_cfg(), tmp_path)
    assert [r.name for r in coercer.rules_for(Source.ae("CT1"))] == ["legacy"]
    assert coercer.rules_for(Source.ae("CT2")) == []
    assert coercer.rules_for(Source.capture("CT1")) == []  # a calling_ae rule never touches a capture
    assert coercer.rules_for(Source.media("CT1")) == []


def test_a_deflated_object_or_an_unencodable_value_is_a_coercion_failure(tmp_path):
    make_ct(tmp_path / "ct.dcm")
    ds = pydicom.dcmread(tmp_path / "ct.dcm")
    ds.InstitutionName = "GH01"
    ds.save_as(tmp_path / "defl.dcm", implicit_vr=False, little_endian=True)
    ds = pydicom.dcmread(tmp_path / "defl.dcm")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "defl.dcm", enforce_file_format=True)
    with pytest.raises(CoercionFailed, match="deflated"):
        _coerce(tmp_path / "defl.dcm", tmp_path, _cfg())
    assert not (tmp_path / "out.dcm").exists()
    # A non-ASCII value into a data set that declares no character set.
    cfg = Config.model_validate({"ae": {"title": "EDGE"}, "coercion": [
        {"name": "accent", "calling_ae": ["CT1"], "set": {"InstitutionName": "Hôpital"}}]})
    ds = pydicom.dcmread(tmp_path / "ct.dcm")
    if "SpecificCharacterSet" in ds:
        del ds.SpecificCharacterSet
    ds.save_as(tmp_path / "ascii.dcm")
    with pytest.raises(CoercionFailed, match="ASCII"):
        _coerce(tmp_path / "ascii.dcm", tmp_path, cfg)
    # A copy whose value does not fit the target's VR.
    cfg = Config.model_validate({"ae": {"title": "EDGE"}, "coercion": [
        {"name": "long", "calling_ae": ["CT1"], "set": {"StudyDescription": "X" * 60}},
        {"name": "then-copy", "calling_ae": ["CT1"], "copy": {"StationName": "StudyDescription"}}]})
    with pytest.raises(CoercionFailed, match="StationName"):
        _coerce(tmp_path / "ct.dcm", tmp_path, cfg)


BAD = [
    ({"set": {"InstitutionNam": "x"}}, "coercion.bad: rule 'bad': set: 'InstitutionNam' is not a keyword"),
    ({"set": {"Modality": "computed tomography"}}, "Modality (CS)"),
    ({"set": {"Rows": "twelve"}}, "'twelve' is not a US number"),
    ({"map": {"InstitutionName": {}}}, "a map without entries"),
    ({"delete": ["SOPInstanceUID"]}, "SOPInstanceUID (0008,0018) is the object's identity"),
    ({"set": {"StudyInstanceUID": "1.2.3"}}, "StudyInstanceUID (0020,000D) is the object's identity"),
    ({"copy": {"Rows": "PatientName"}}, "VR mismatch"),
    ({"set": {"PixelData": "x"}}, "before the pixel data"),
    ({"set": {"(0009,0010)": "x"}}, "private attribute"),
    ({"delete": ["ReferencedImageSequence"]}, "has VR SQ"),
    ({"set": {"SpecificCharacterSet": "ISO_IR 100"}}, "character_set"),
    ({"character_set": "LATIN1"}, "not a Defined Term"),
    ({"frobnicate": True, "set": {"StationName": "x"}}, "coercion.bad.frobnicate: unknown key"),
    ({"destination": ["pacs"], "set": {"StationName": "x"}}, "not both"),
    ({}, "no action"),
    ({"fill_from_worklist": ["PatientName"]}, "coercion.bad.fill_from_worklist: no worklist to fill from"),
]


@pytest.mark.parametrize("rule,message", BAD)
def test_a_bad_rule_is_refused_naming_it(rule, message, tmp_path):
    body = {"name": "bad", "calling_ae": ["CT1"], **rule}
    toml = tmp_path / "gw.toml"
    import json
    lines = ["[[coercion]]"] + [f"{k} = {json.dumps(v) if not isinstance(v, dict) else _inline(v)}"
                                for k, v in body.items()]
    toml.write_text("\n".join(lines) + "\n")
    tomllib.loads(toml.read_text())  # the test's own TOML is valid
    with pytest.raises(ConfigError) as err:
        load(toml)
    text = str(err.value)
    assert message in text and "bad" in text, text


def _inline(d: dict) -> str:
    import json
    return "{ " + ", ".join(f"{json.dumps(k)} = {_inline(v) if isinstance(v, dict) else json.dumps(v)}"
                            for k, v in d.items()) + " }"


def test_rule_names_are_unique_and_destinations_known():
    with pytest.raises(Exception, match="a second rule of this name"):
        Config.model_validate({"coercion": [{"name": "a", "calling_ae": ["X"], "set": {"StationName": "1"}},
                                            {"name": "a", "calling_ae": ["Y"], "set": {"StationName": "2"}}]})
    with pytest.raises(Exception, match="unknown destination 'nowhere'"):
        Config.model_validate({"coercion": [{"name": "a", "destination": ["nowhere"],
                                             "set": {"StationName": "1"}}]})


def test_route_attributes_are_indexed_attributes():
    names = {f.name for f in dataclasses.fields(InstanceAttributes)}
    assert set(ROUTE_ATTRIBUTES.values()) <= names


def _attrs(**kw) -> InstanceAttributes:
    return InstanceAttributes("1.2.840.10008.1.2.1", CT, "1.2.3.4", "1.2.3", "1.2.3.1", **kw)


def test_routes_match_indexed_attributes():
    cfg = Config.model_validate({
        "destinations": {"ct": {"ae_title": "CTPACS", "port": 11001}, "mr": {"ae_title": "MRPACS", "port": 11002},
                         "neuro": {"ae_title": "NEURO", "port": 11003}},
        "routes": [{"to": ["ct"], "match": {"Modality": ["CT"]}},
                   {"to": ["mr"], "match": {"Modality": ["MR"]}},
                   {"to": ["neuro"], "match": {"StudyDescription": ["*HEAD*", "*BRAIN*"], "PatientID": ["A-*"]}}]})
    route = Router(cfg)
    src = Source.ae("ANY")
    assert route(_attrs(modality="CT"), src) == ["ct"]
    assert route(_attrs(modality="MR", study_description="MR BRAIN", patient_id="A-7"), src) == ["mr", "neuro"]
    assert route(_attrs(modality="MR", study_description="MR BRAIN", patient_id="B-7"), src) == ["mr"]
    with pytest.raises(ConfigError, match="InstitutionName' is not an indexed attribute"):
        load_from({"destinations": {"ct": {"ae_title": "X", "port": 11001}},
                   "routes": [{"to": ["ct"], "match": {"InstitutionName": ["*"]}}]})


def load_from(data: dict):
    from gateway.config.load import _format_errors
    from pydantic import ValidationError
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, data)) from None


@pytest.fixture
def intake(tmp_path):
    def build(cfg: Config):
        buf = Buffer(tmp_path / "buf", 0, "replace", Router(cfg))
        bus = EventBus()
        build.events = bus.subscribe()
        return Intake(cfg, buf, bus, {CT}), buf
    return build


def test_the_intake_indexes_and_routes_the_coerced_values(intake, tmp_path):
    """The index, the routes and the received event hold the coerced values."""
    cfg = Config.model_validate({
        "ae": {"title": "EDGE"},
        "destinations": {"neuro": {"ae_title": "NEURO", "port": 11003}, "other": {"ae_title": "OTHER", "port": 11004}},
        "routes": [{"to": ["neuro"], "match": {"StudyDescription": ["*HEAD*"]}},
                   {"to": ["other"], "match": {"StudyDescription": ["ORIGINAL"]}}],
        "coercion": [{"name": "head", "calling_ae": ["CT1"], "set": {"StudyDescription": "CT HEAD"},
                      "patient_id_prefix": "A-"}]})
    take, buf = intake(cfg)
    sub = intake.events
    ds = make_ct(tmp_path / "ct.dcm")
    d = pydicom.dcmread(tmp_path / "ct.dcm")
    d.StudyDescription = "ORIGINAL"
    d.save_as(tmp_path / "ct.dcm")
    path = buf.files.new_incoming_path()
    shutil.copyfile(tmp_path / "ct.dcm", path)
    r = take.take(path, Source.ae("CT1"), CT, ds.SOPInstanceUID)
    assert r.ok and r.ingest.routes == ("neuro",) and r.coerced.rules == ("head",)
    (row,) = buf.index.query("SELECT s.description, p.patient_id, i.path FROM instances i JOIN series se ON"
                             " i.series_fk = se.id JOIN studies s ON se.study_fk = s.id JOIN patients p ON"
                             " s.patient_fk = p.id")
    assert row["description"] == "CT HEAD" and row["patient_id"] == "A-" + d.PatientID
    stored = pydicom.dcmread(buf.files.absolute(row["path"]))
    assert stored.StudyDescription == "CT HEAD" and stored.OriginalAttributesSequence[0].ModifyingSystem == "EDGE"
    assert _tail(buf.files.absolute(row["path"])) == _tail(tmp_path / "ct.dcm")
    assert list(buf.files.incoming.iterdir()) == []  # no coerced copy left behind
    ev = sub.get_nowait()
    assert ev.kind == "received" and ev.payload.coerced == ("head",)


def test_the_intake_refuses_an_object_its_rules_cannot_coerce(intake, tmp_path):
    cfg = Config.model_validate({"ae": {"title": "EDGE"}, "coercion": [
        {"name": "accent", "calling_ae": ["CT1"], "set": {"InstitutionName": "Hôpital"}}]})
    take, buf = intake(cfg)
    make_ct(tmp_path / "ct.dcm")
    d = pydicom.dcmread(tmp_path / "ct.dcm")
    if "SpecificCharacterSet" in d:
        del d.SpecificCharacterSet
    d.save_as(tmp_path / "ct.dcm")
    path = buf.files.new_incoming_path()
    shutil.copyfile(tmp_path / "ct.dcm", path)
    r = take.take(path, Source.ae("CT1"), CT, d.SOPInstanceUID)
    assert r.refusal is Refusal.COERCION_FAILED and "coercion failed" in r.reason
    assert buf.index.query("SELECT COUNT(*) AS n FROM instances")[0]["n"] == 0
    assert list(buf.files.incoming.iterdir()) == []
    # Another peer's objects are not touched by the rule: stored as sent.
    path = buf.files.new_incoming_path()
    shutil.copyfile(tmp_path / "ct.dcm", path)
    assert take.take(path, Source.ae("CT2"), CT, d.SOPInstanceUID).ok


def test_check_config_lists_the_rules_without_their_values():
    from gateway.config.coercion import check_config_lines
    cfg = Config.model_validate({
        "destinations": {"pacs": {"ae_title": "PACS", "port": 11001}},
        "routes": [{"to": ["pacs"], "match": {"Modality": ["CT", "MR"]}}],
        "coercion": [{"name": "legacy", "calling_ae": ["CT1"], "set": {"PatientName": "Secret^Name"},
                      "map": {"InstitutionName": {"GH01": "General Hospital"}}, "store_status": "warning"},
                     {"name": "out", "destination": ["pacs"], "delete": ["PatientComments"]}]})
    lines = check_config_lines(cfg)
    assert lines[0] == ("coerces (1) legacy: on ingest from AE:CT1: map InstitutionName (1 entries); "
                        "set PatientName; answers B000")
    assert lines[1] == "coerces (2) out: on forward to pacs: delete PatientComments"
    # CT1 is no peer and unknown callers are refused: the rule could never apply (a typo?)
    assert lines[2] == ("note: coercion.legacy.calling_ae: 'CT1' is not the AE title of any [peers.*] and "
                        "ae.accept_unknown_callers = false: the rule would never apply")
    assert lines[3] == "routes[0] to pacs when Modality in CT, MR"
    assert not any("Secret" in line or "General Hospital" in line for line in lines)
    # A peer of that title, or unknown callers accepted: no note.
    for extra in ({"peers": {"ct": {"ae_title": "CT1"}}}, {"ae": {"accept_unknown_callers": True}}):
        cfg2 = Config.model_validate({**cfg.model_dump(exclude_unset=True, by_alias=True), **extra})
        assert not any(line.startswith("note:") for line in check_config_lines(cfg2)), extra


def test_a_fill_from_worklist_rule_without_a_worklist_is_refused_naming_it():
    from gateway.config.coercion import worklist_problems
    from gateway.config.worklist import WorklistSection
    with_worklist = Config.model_validate({"worklist": {"enabled": True}, "coercion": [
        {"name": "ct1-wl", "calling_ae": ["CT1"], "fill_from_worklist": ["PatientName"]},
        {"name": "plain", "calling_ae": ["CT2"], "set": {"StationName": "CT2"}}]})
    assert worklist_problems(with_worklist) == []
    # The same rules with [worklist] as its defaults (enabled = false); copied, not validated
    # again: what is checked here is the check itself, wherever the config's loading calls it.
    without = with_worklist.model_copy(update={"worklist": WorklistSection()})
    (line,) = worklist_problems(without)
    assert line.startswith("coercion.ct1-wl.fill_from_worklist: no worklist to fill from ([worklist] enabled = false)")
    assert "\n" not in line


@pytest.mark.parametrize("path", [TEST_FILES / "CT_small.dcm", TEST_FILES / "MR_small_implicit.dcm",
                                  TEST_FILES / "JPEG2000.dcm", CHARSET_FILES / "chrFren.dcm",
                                  CHARSET_FILES / "chrGerm.dcm", CHARSET_FILES / "chrX1.dcm"])
def test_the_structure_walk_reads_the_values_pydicom_reads(path):
    from gateway.buffer.coercion import _plain_values, _pydicom_values
    tags = {0x00080005, 0x00080050, 0x00080080, 0x00081010, 0x00081030, 0x00100010, 0x00100020, 0x00100021,
            0x00100030, 0x00104000, 0x00200010}
    fast = _plain_values(path, tags)
    assert fast is not None
    assert fast == _pydicom_values(path, tags)


def test_a_japanese_file_is_coerced_through_pydicom_and_keeps_its_names(tmp_path):
    from gateway.buffer.coercion import _plain_values
    src = CHARSET_FILES / "chrH31.dcm"
    assert _plain_values(src, {0x00080005, 0x00100010}) is None  # ISO 2022: pydicom reads it
    before = pydicom.dcmread(src)
    cfg = Config.model_validate({"ae": {"title": "EDGE"}, "coercion": [
        {"name": "jp", "source": ["MEDIA:*"], "set": {"InstitutionName": "TOKYO"},
         "map": {"PatientName": {str(before.PatientName): "Yamada^Hanako"}}}]})
    result, out = _coerce(src, tmp_path, cfg, Source.media("CD"))
    after = pydicom.dcmread(out)
    assert after.InstitutionName == "TOKYO" and str(after.PatientName) == "Yamada^Hanako"
    assert str(_modified(after).PatientName) == str(before.PatientName)


def test_an_identical_resend_of_a_coerced_object_is_identical_again(intake, tmp_path):
    from gateway.buffer.ingest import Outcome
    cfg = Config.model_validate({
        "ae": {"title": "EDGE"}, "destinations": {"pacs": {"ae_title": "PACS", "port": 11003}},
        "coercion": [{"name": "st", "calling_ae": ["CT1"], "set": {"StationName": "LEGACY1"}}]})
    take, buf = intake(cfg)
    ds = make_ct(tmp_path / "ct.dcm")
    outcomes = []
    for _ in range(2):
        path = buf.files.new_incoming_path()
        shutil.copyfile(tmp_path / "ct.dcm", path)
        r = take.take(path, Source.ae("CT1"), CT, ds.SOPInstanceUID)
        outcomes.append((r.ingest.outcome, r.ingest.routes))
    assert outcomes == [(Outcome.STORED, ("pacs",)), (Outcome.IDENTICAL, ())]


def test_a_media_import_is_coerced_and_a_failing_rule_is_reported(tmp_path):
    """The importer goes through the same Intake: a MEDIA:* rule applies to what a stick holds; an
    object the rule cannot coerce is a failed item naming the problem, the rest imported."""
    from gateway.dicom.sop_classes import storage_sop_classes
    from gateway.media.importer import Reason, Status, import_tree
    cfg = Config.model_validate({"ae": {"title": "EDGE"}, "coercion": [
        {"name": "stick", "source": ["MEDIA:*"], "set": {"InstitutionName": "Clinique Générale"}}]})
    buf = Buffer(tmp_path / "buf", 0, "replace", Router(cfg))
    take = Intake(cfg, buf, EventBus(), storage_sop_classes())
    medium = tmp_path / "stick"
    medium.mkdir()
    shutil.copyfile(CHARSET_FILES / "chrFren.dcm", medium / "fr.dcm")  # ISO_IR 100: encodes
    make_ct(tmp_path / "ct.dcm")
    ds = pydicom.dcmread(tmp_path / "ct.dcm")
    if "SpecificCharacterSet" in ds:
        del ds.SpecificCharacterSet
    ds.save_as(medium / "ct.dcm")  # no character set: the accent does not encode
    report = import_tree(medium, "USB1", take, buf.files.new_incoming_path)
    items = {i.path: i for i in report.items}
    assert items["fr.dcm"].status is Status.IMPORTED
    assert (items["ct.dcm"].status, items["ct.dcm"].reason) == (Status.FAILED, Reason.COERCION_FAILED)
    (row,) = buf.index.query("SELECT path FROM instances")
    stored = pydicom.dcmread(buf.files.absolute(row["path"]))
    assert stored.InstitutionName == "Clinique Générale"
    assert stored.OriginalAttributesSequence[-1].SourceOfPreviousValues == "MEDIA:USB1"


def test_check_config_notes_rules_that_will_refuse_objects():
    # Valid rules that will refuse objects at run time (0x0110): said before the modality's sends fail.
    from gateway.config.coercion import check_config_lines
    cfg = Config.model_validate({"peers": {"us": {"ae_title": "US1"}}, "coercion": [
        {"name": "jp", "calling_ae": ["US1"], "set": {"PatientName": "山田^太郎"}},
        {"name": "cp", "calling_ae": ["US1"], "copy": {"StationName": "InstitutionName"}},
        {"name": "ok", "calling_ae": ["US1"], "character_set": "ISO_IR 192", "set": {"PatientName": "山田^太郎"},
         "copy": {"InstitutionName": "StationName"}}]})
    notes = [line for line in check_config_lines(cfg) if line.startswith("note:")]
    assert notes == [
        "note: coercion.jp.set: 'PatientName': a value that is not ASCII: an object whose Specific Character "
        "Set (0008,0005) cannot hold it is refused (0x0110); add character_set (e.g. \"ISO_IR 192\") to the rule",
        "note: coercion.cp.copy: 'StationName' (SH, at most 16 characters) from 'InstitutionName' (LO, up to 64): "
        "an object with a longer value is refused (0x0110)"]
    assert not any("山田" in line for line in check_config_lines(cfg))  # no values in its output
