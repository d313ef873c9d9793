"""Import reconciliation (issue 8 item 4): the mapping file's format and its errors (file:line),
the `[media.import]` section and check-config, and a medium imported through the real intake
with its identifiers replaced, the originals in the Original Attributes Sequence, the pixel bytes
as they were and the report saying so without patient data."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from datasets import make_ct
from peers import TEST_FILES, write_toml

from gateway import config
from gateway.buffer.imports import ImportStore
from gateway.buffer.ingest import Buffer
from gateway.buffer.intake import Intake
from gateway.config import Config
from gateway.dicom.sop_classes import storage_sop_classes
from gateway.events import EventBus
from gateway.media.importer import Reason, Status, import_tree
from gateway.media.reconcile import Reconciliation
from gateway.media.reconcile import MappingError, Mapping, check_mapping
from gateway.part10.attributes import configure_pydicom
from gateway.routing import Router

ROOT = Path(__file__).resolve().parents[2]
HEADER = "source_patient_id,source_issuer,patient_id,issuer,patient_name,source_accession,accession\n"


def _mapping(tmp_path: Path, text: str, name: str = "reconcile.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the mapping file -------------------------------------------------------------------------------
def test_a_row_maps_a_patient_and_its_accessions(tmp_path):
    m = Mapping.load(_mapping(tmp_path, "# local IDs from the RIS\n" + HEADER +
                              "EXT-1,,MRN1,HOSP,Doe^Jane,,\n"
                              "EXT-1,,MRN1,HOSP,Doe^Jane,A77,ACC-9001\n"
                              "\n"
                              "EXT-1,OTHER-SITE,MRN2,HOSP,,,\n"))
    plain = m.match("EXT-1", "", "", "Old^Name", "")
    assert plain.line == 3 and plain.changes[0x00100020] == "MRN1" and plain.changes[0x00100010] == "Doe^Jane"
    assert plain.changes[0x00100021] == "HOSP" and 0x00080050 not in plain.changes
    assert plain.attributes == "Patient's Name, Patient ID, Issuer of Patient ID"
    with_acc = m.match("EXT-1", "", "A77", "Old^Name", "")
    assert with_acc.line == 4 and with_acc.changes[0x00080050] == "ACC-9001"
    # A row naming the issuer wins over one without; an empty patient_name leaves the name alone.
    site = m.match("EXT-1", "OTHER-SITE", "A77", "Old^Name", "")
    assert site.line == 6 and site.changes[0x00100020] == "MRN2" and 0x00100010 not in site.changes
    assert 0x00080050 not in site.changes  # accessions are matched within their own patient key
    assert m.match("EXT-2", "", "", "", "") is None
    # Already the local values: a match that changes nothing.
    assert m.match("MRN1", "", "", "", "") is None
    same = m.match("EXT-1", "", "", "Doe^Jane", "")
    assert same.changes != {} and 0x00100010 not in same.changes


def test_an_unchanged_issuer_is_recorded_beside_a_new_patient_id(tmp_path):
    m = Mapping.load(_mapping(tmp_path, "source_patient_id,patient_id\nEXT-1,MRN1\n"))
    match = m.match("EXT-1", "SITE-B", "", "", "ISO_IR 100")
    assert set(match.changes) == {0x00100020, 0x00080015} and match.record == (0x00100021,)


def test_a_non_ascii_name_makes_an_instance_without_character_set_utf8(tmp_path):
    m = Mapping.load(_mapping(tmp_path, "source_patient_id,patient_id,patient_name\nEXT-1,MRN1,Müller^Jürgen\n"))
    assert m.match("EXT-1", "", "", "", "").changes[0x00080005] == "ISO_IR 192"
    assert 0x00080005 not in m.match("EXT-1", "", "", "", "ISO_IR 100").changes


@pytest.mark.parametrize("text,problem", [
    ("", "reconcile.csv:0: no header row"),
    ("source_patient_id,patient_id,colour\nA,B,red\n", "reconcile.csv:1: unknown column(s) colour"),
    ("source_patient_id,issuer\nA,B\n", "reconcile.csv:1: the header lacks patient_id"),
    ("source_patient_id,patient_id\nA\n", "reconcile.csv:2: 1 cells, the header has 2"),
    ("source_patient_id,patient_id\nA,\n", "reconcile.csv:2: patient_id is empty"),
    ("source_patient_id,patient_id\nA," + "9" * 65 + "\n", "reconcile.csv:2: patient_id: at most 64 characters (LO)"),
    ("source_patient_id,patient_id\nA,B\\C\n", "reconcile.csv:2: patient_id: a backslash would make it two values"),
    ("source_patient_id,patient_id,source_accession,accession\nA,B,X,\n",
     "reconcile.csv:2: source_accession and accession go together"),
    ("source_patient_id,patient_id,source_accession,accession\nA,B,X," + "7" * 17 + "\n",
     "reconcile.csv:2: accession: at most 16 characters (SH)"),
    ("source_patient_id,patient_id,patient_name\nA,B,a^b^c^d^e^f\n", "reconcile.csv:2: patient_name: at most 5 name"),
    ("source_patient_id,patient_id\n# a comment\nA,B\nA,C\n",
     "reconcile.csv:4: maps the same source patient as line 3 to another patient_id"),
    ("source_patient_id,patient_id,source_accession,accession\nA,B,X,Y\nA,B,X,Z\n",
     "reconcile.csv:3: source_accession already mapped at line 2"),
    ('source_patient_id,patient_id\n"A,B\n', "not valid CSV"),
])
def test_every_problem_names_file_and_line(tmp_path, text, problem):
    with pytest.raises(MappingError) as caught:
        Mapping.load(_mapping(tmp_path, text))
    assert any(problem in p for p in caught.value.problems), caught.value.problems
    assert all(p.startswith(str(tmp_path / "reconcile.csv") + ":") for p in caught.value.problems)


def test_every_bad_row_is_listed_not_just_the_first(tmp_path):
    with pytest.raises(MappingError) as caught:
        Mapping.load(_mapping(tmp_path, "source_patient_id,patient_id\nA,\nB,ok\nC\n"))
    assert [p.split(":")[1] for p in caught.value.problems] == ["2", "4"]


def test_a_missing_or_non_utf8_file_is_one_line(tmp_path):
    assert check_mapping(str(tmp_path / "none.csv")) == [
        f"media.import.reconcile: {tmp_path / 'none.csv'}:0: cannot read the mapping file: No such file or directory"]
    (tmp_path / "latin1.csv").write_bytes(b"source_patient_id,patient_id\nA,M\xfcller\n")
    assert check_mapping(str(tmp_path / "latin1.csv")) == [
        f"media.import.reconcile: {tmp_path / 'latin1.csv'}:2: not UTF-8 (byte 32)"]
    assert check_mapping("") == []


# -- the config -------------------------------------------------------------------------------------
def _problems(overrides: list[str]) -> list[str]:
    try:
        config.load(None, overrides)
    except config.ConfigError as exc:
        return exc.problems
    return []


def test_the_import_section_is_strict():
    assert config.load(None, []).config.media.import_.reconcile == ""
    assert config.load(None, []).config.media.import_.unmatched == "import"
    c = config.load(None, ['media.import.reconcile="/etc/dicom-gateway/reconcile.csv"',
                           'media.import.unmatched="skip"']).config.media.import_
    assert (c.reconcile, c.unmatched) == ("/etc/dicom-gateway/reconcile.csv", "skip")
    assert _problems(['media.import.reconcile="reconcile.csv"']) == [
        "media.import.reconcile: 'reconcile.csv' is not an absolute path (e.g. \"/etc/dicom-gateway/reconcile.csv\")"]
    assert _problems(['media.import.unmatched="drop"']) == [
        "media.import.unmatched: Input should be 'import' or 'skip' (got 'drop')"]
    assert _problems(['media.import.mapping="/x.csv"']) == ["media.import.mapping: unknown key"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_config_names_the_mapping_files_line(tmp_path):
    mapping = _mapping(tmp_path, "source_patient_id,patient_id\nA,B\nA,C\n")
    cfg = tmp_path / "gateway.toml"
    write_toml(cfg, {"ae": {"port": _free_port()}, "buffer": {"path": str(tmp_path / "buffer")},
                     "media": {"import": {"reconcile": str(mapping)}}})
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", "--config", str(cfg)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (f"config: media.import.reconcile: {mapping}:3: maps the same source patient as "
                                "line 2 to another patient_id, issuer or patient_name")
    # `run` refuses what check-config refuses (ExecStartPre may be skipped), with the same line.
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--config", str(cfg)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"media.import.reconcile: {mapping}:3: maps the same source patient" in r.stderr
    mapping.write_text("source_patient_id,patient_id\nA,B\n")
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", "--config", str(cfg)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr


# -- the import ------------------------------------------------------------------------------------
class Gateway:
    """A buffer with its intake; `[media.import]` from the arguments."""

    def __init__(self, root: Path, reconcile: str = "", unmatched: str = "import"):
        self.config = Config.model_validate({
            "destinations": {"pacs": {"ae_title": "PACS", "port": 11122}},
            "routes": [{"to": ["pacs"], "source": ["MEDIA:*"]}],
            "media": {"import": {"reconcile": reconcile, "unmatched": unmatched}},
        })
        configure_pydicom()
        self.buffer = Buffer(root, 0, "replace", Router(self.config))
        self.intake = Intake(self.config, self.buffer, EventBus(), storage_sop_classes())

    def run(self, medium: Path, **kw):
        return import_tree(medium, "usb", self.intake, self.buffer.files.new_incoming_path, **kw)

    def stored(self) -> dict[str, pydicom.Dataset]:
        rows = self.buffer.index.query("SELECT sop_uid, path FROM instances")
        return {r["sop_uid"]: pydicom.dcmread(self.buffer.files.root / r["path"]) for r in rows}

    def close(self):
        self.buffer.close()


@pytest.fixture
def medium(tmp_path):
    root = tmp_path / "medium"
    (root / "A").mkdir(parents=True)
    make_ct(root / "A" / "IM1", patient_id="EXT-1")
    make_ct(root / "A" / "IM2", patient_id="EXT-1", implicit=True)
    make_ct(root / "A" / "IM3", patient_id="STRANGER")
    (root / "A" / "IM4").write_bytes((TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm").read_bytes())  # Patient ID "ID1"
    return root


def _by_patient(stored: dict) -> dict[str, list]:
    out: dict[str, list] = {}
    for ds in stored.values():
        out.setdefault(str(ds.PatientID), []).append(ds)
    return out


def test_an_imported_medium_is_reconciled_in_the_buffer(tmp_path, medium):
    mapping = _mapping(tmp_path, HEADER + "EXT-1,,MRN0042,HOSP_A,Doe^Jane,ACC1,ACC-9001\n"
                                          "ID1,,MRN0077,,,,\n")
    gw = Gateway(tmp_path / "buffer", str(mapping))
    try:
        report = gw.run(medium)
        originals = {p.name: pydicom.dcmread(p) for p in (medium / "A").iterdir()}
        stored = gw.stored()
        patients = {r["patient_id"] for r in gw.buffer.index.query("SELECT patient_id FROM patients")}
        stored_rows = ImportStore(gw.buffer.index).items(report.import_id)
    finally:
        gw.close()
    assert report.count(Status.IMPORTED) == 4 and report.reconciled == 3 and report.ok
    assert report.summary().endswith("; 3 reconciled")
    by_patient = _by_patient(stored)
    assert sorted(by_patient) == ["MRN0042", "MRN0077", "STRANGER"] and len(by_patient["MRN0042"]) == 2
    for ds in by_patient["MRN0042"]:
        assert ds.PatientName == "Doe^Jane" and ds.IssuerOfPatientID == "HOSP_A" and ds.AccessionNumber == "ACC-9001"
        [item] = ds.OriginalAttributesSequence
        old = item.ModifiedAttributesSequence[0]
        assert old.PatientID == "EXT-1" and old.PatientName == "Test^Patient" and old.AccessionNumber == "ACC1"
        assert item.ReasonForTheAttributeModification == "COERCE" and item.SourceOfPreviousValues == "MEDIA:usb"
        assert item.ModifyingSystem == "EDGE dicom-gateway" and "InstanceCoercionDateTime" in ds
        original = next(o for o in originals.values() if o.SOPInstanceUID == ds.SOPInstanceUID)
        assert ds.PixelData == original.PixelData
        assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    [jpeg] = by_patient["MRN0077"]
    assert jpeg.PixelData == originals["IM4"].PixelData  # the encapsulated fragments, byte for byte
    assert jpeg.PatientName == originals["IM4"].PatientName  # an empty patient_name leaves it
    [stranger] = by_patient["STRANGER"]
    assert "OriginalAttributesSequence" not in stranger
    # The buffer's index holds the local identity only.
    assert patients == {"MRN0042", "MRN0077", "STRANGER"}
    # The report: per item, reconciled or not, without names or IDs.
    items = {i.path: i for i in report.items}
    assert items["A/IM1"].reconciled == 2 and items["A/IM1"].detail == (
        "reconciled by mapping line 2: Accession Number, Patient's Name, Patient ID, Issuer of Patient ID "
        "replaced (previous values in the Original Attributes Sequence)")
    assert items["A/IM3"].detail == "not reconciled: no row of the mapping file maps its Patient ID; imported unchanged"
    text = " ".join(f"{r.detail} {r.reason} {r.flag}" for r in stored_rows)
    assert "reconciled by mapping line 2" in text
    for secret in ("Doe", "Jane", "MRN0042", "EXT-1", "Test^Patient"):
        assert secret not in text


def test_unmatched_skip_leaves_the_stranger_out(tmp_path, medium):
    mapping = _mapping(tmp_path, "source_patient_id,patient_id\nEXT-1,MRN0042\nID1,MRN0077\n")
    gw = Gateway(tmp_path / "buffer", str(mapping), unmatched="skip")
    try:
        report = gw.run(medium)
        stored = gw.stored()
    finally:
        gw.close()
    [skipped] = [i for i in report.items if i.status is Status.SKIPPED]
    assert skipped.path == "A/IM3" and skipped.reason is Reason.NOT_RECONCILED
    assert skipped.detail == "no row of the mapping file maps its Patient ID (media.import.unmatched = \"skip\")"
    assert sorted(str(d.PatientID) for d in stored.values()) == ["MRN0042", "MRN0042", "MRN0077"]


def test_off_by_default_and_an_explicit_none(tmp_path, medium):
    gw = Gateway(tmp_path / "buffer")
    try:
        report = gw.run(medium)
    finally:
        gw.close()
    assert report.reconciled == 0 and report.count(Status.IMPORTED) == 4
    mapping = _mapping(tmp_path, "source_patient_id,patient_id\nEXT-1,MRN0042\n")
    gw = Gateway(tmp_path / "buffer2", str(mapping))
    try:
        assert gw.run(medium, reconcile=None).reconciled == 0
        explicit = Reconciliation(Mapping.load(mapping), "import", "OTHER")
        report = gw.run(medium, reconcile=explicit)
    finally:
        gw.close()
    assert report.reconciled == 2


def test_a_mapping_file_broken_since_check_config_refuses_the_import(tmp_path, medium):
    mapping = _mapping(tmp_path, "source_patient_id\nEXT-1\n")
    gw = Gateway(tmp_path / "buffer", str(mapping))
    try:
        with pytest.raises(OSError) as caught:  # MappingError: the callers' one-line path
            gw.run(medium)
        assert isinstance(caught.value, MappingError)
        assert str(caught.value) == f"{mapping}:1: the header lacks patient_id"
        assert ImportStore(gw.buffer.index).recent() == []  # nothing begun, nothing imported
    finally:
        gw.close()


def test_an_instance_the_rewrite_refuses_is_skipped_with_the_reason(tmp_path):
    root = tmp_path / "medium"
    root.mkdir()
    ds = make_ct(tmp_path / "plain.dcm", patient_id="EXT-1")
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    ds.save_as(root / "DFL", enforce_file_format=True)
    mapping = _mapping(tmp_path, "source_patient_id,patient_id\nEXT-1,MRN1\n")
    gw = Gateway(tmp_path / "buffer", str(mapping))
    try:
        [item] = gw.run(root).items
    finally:
        gw.close()
    assert item.status is Status.SKIPPED and item.reason is Reason.NOT_RECONCILED
    assert item.detail.startswith("cannot reconcile (mapping line 2): deflated transfer syntax")


def test_the_import_command_reconciles_and_refuses_a_broken_mapping_in_one_line(tmp_path, medium):
    mapping = _mapping(tmp_path, "source_patient_id,patient_id\nEXT-1,MRN0042\n")
    cfg = tmp_path / "gateway.toml"
    write_toml(cfg, {"buffer": {"path": str(tmp_path / "buffer"), "reserve_mb": 0},
                     "media": {"import": {"reconcile": str(mapping)}}})

    def run():
        return subprocess.run([sys.executable, "-m", "gateway.cli", "import", str(medium), "--config", str(cfg)],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)

    r = run()
    assert r.returncode == 0, r.stderr
    assert "4 files: 4 imported, 0 duplicate, 0 skipped, 0 failed; 0 flagged; 2 reconciled" in r.stdout
    mapping.write_text("source_patient_id,patient_id\nEXT-1\n")
    r = run()
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"error: {mapping}:2: 1 cells, the header has 2"


def test_importing_a_reconciled_medium_again_is_identical_and_queues_nothing_twice(tmp_path, medium):
    mapping = _mapping(tmp_path, HEADER + "EXT-1,,MRN0042,HOSP_A,Doe^Jane,ACC1,ACC-9001\n")
    gw = Gateway(tmp_path / "buffer", str(mapping))
    try:
        first = gw.run(medium)
        jobs = gw.buffer.index.query("SELECT COUNT(*) AS n FROM jobs")[0]["n"]
        again = gw.run(medium)
        assert gw.buffer.index.query("SELECT COUNT(*) AS n FROM jobs")[0]["n"] == jobs
        # Mapped elsewhere since: reconciled anew, and the buffer's copy replaced.
        mapping.write_text(HEADER + "EXT-1,,MRN0043,HOSP_A,Doe^Jane,,\n")
        third = gw.run(medium, reconcile=Reconciliation(Mapping.load(mapping)))
        stored = _by_patient(gw.stored())
    finally:
        gw.close()
    assert first.reconciled == 2
    assert [i.outcome for i in again.items] == ["identical"] * 4
    assert sorted(i.outcome for i in third.items if i.reconciled) == ["replaced", "replaced"]
    [item] = stored["MRN0043"][0].OriginalAttributesSequence  # one item: the medium's values, not ours
    assert item.ModifiedAttributesSequence[0].PatientID == "EXT-1"
