"""The C-FIND SCP over the buffer in the real service (`dicom-gateway run`), asked by DCMTK's findscu
(-S Study Root, -P Patient Root) and by pynetdicom where findscu cannot ask (extended negotiation):
every level, wildcard, date range, UID list, Latin-1 and Japanese names from pydicom's character
set files, a peer without may_query refused, a bad level answered A900, C-CANCEL answered FE00; the
queries counted on /metrics and shown in /status.json."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pydicom
import pytest
from datasets import make_series
from index_seed import seed_studies
from peers import free_port, require, storescu, wait_until
from pydicom.data import get_charset_files
from prometheus_client.parser import text_string_to_metric_families
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation

from gateway.buffer.index import Index

PATIENT_ROOT = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT = "1.2.840.10008.5.1.4.1.2.2.1"
FILES = ("chrFren", "chrGerm", "chrH31", "chrX1")
PEERS = {"peers": {
    "finder": {"ae_title": "FINDSCU", "may_store": False, "may_query": True},
    "nofind": {"ae_title": "NOFIND", "may_store": False, "may_query": False},
}}


def _charset_files() -> list[Path]:
    return [Path(get_charset_files(f"{name}.dcm")[0]) for name in FILES]


@pytest.fixture
def gw(gateway_factory, tmp_path):
    gw = gateway_factory(PEERS)
    r = storescu(gw.port, _charset_files())
    assert r.returncode == 0, r.stderr
    series = make_series(tmp_path / "ct", 3, patient_id="CT-1")
    r = storescu(gw.port, series)
    assert r.returncode == 0, r.stderr
    return gw


def findscu(gw, tmp_path: Path, model: str, keys: list[str | bytes], aet: str = "FINDSCU",
            extra: tuple[str, ...] = ()) -> tuple[list[Dataset], str]:
    """Run findscu; returns the response identifiers (extracted with -X) and its log."""
    exe = require("findscu", "dcmtk")
    out = tmp_path / f"rsp-{len(list(tmp_path.glob('rsp-*')))}"
    out.mkdir()
    args = [exe, "-d", model, "-aet", aet, "-aec", "EDGE", "-to", "30", "-ta", "30", "-td", "30",
            "-X", "-od", str(out), *extra]
    for k in keys:
        args += ["-k", k]
    r = subprocess.run([*args, "127.0.0.1", str(gw.port)], capture_output=True, text=True, errors="replace",
                       timeout=90)
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))], r.stdout + r.stderr


def _final_status(log: str) -> str:
    """The last response's Status, as findscu -d logs it ("DIMSE Status : 0xa900: ...")."""
    found = re.findall(r"DIMSE Status\s*:\s*0x([0-9A-Fa-f]{4})", log)
    return found[-1].upper() if found else ""


def test_study_root_every_level(gw, tmp_path):
    rs, log = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=STUDY", "StudyInstanceUID", "PatientID",
                                           "PatientName", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"])
    assert _final_status(log) == "0000", log
    by_pid = {r.PatientID: r for r in rs}
    assert sorted(by_pid) == ["CT-1", "H31EXAMPLE", "SCSFREN", "SCSGERM", "X1EXAMPLE"]
    assert by_pid["CT-1"].NumberOfStudyRelatedInstances == 3 and by_pid["CT-1"].ModalitiesInStudy == "CT"
    study = by_pid["CT-1"].StudyInstanceUID
    rs, log = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={study}",
                                           "SeriesInstanceUID", "Modality", "NumberOfSeriesRelatedInstances"])
    (series,) = rs
    assert series.Modality == "CT" and series.NumberOfSeriesRelatedInstances == 3
    rs, log = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={study}",
                                           f"SeriesInstanceUID={series.SeriesInstanceUID}", "SOPInstanceUID",
                                           "InstanceNumber=2"])
    assert [r.InstanceNumber for r in rs] == [2], log


def test_patient_root_every_level(gw, tmp_path):
    rs, log = findscu(gw, tmp_path, "-P", ["QueryRetrieveLevel=PATIENT", "PatientID=SCS*", "PatientName",
                                           "NumberOfPatientRelatedStudies"])
    assert sorted(str(r.PatientName) for r in rs) == ["Buc^Jérôme", "Äneas^Rüdiger"], log
    assert all(r.SpecificCharacterSet == "ISO_IR 100" for r in rs)
    rs, log = findscu(gw, tmp_path, "-P", ["QueryRetrieveLevel=STUDY", "PatientID=CT-1", "StudyInstanceUID",
                                           "StudyDate"])
    (study,) = rs
    rs, _ = findscu(gw, tmp_path, "-P", ["QueryRetrieveLevel=SERIES", "PatientID=CT-1",
                                         f"StudyInstanceUID={study.StudyInstanceUID}", "SeriesInstanceUID"])
    (series,) = rs
    rs, _ = findscu(gw, tmp_path, "-P", ["QueryRetrieveLevel=IMAGE", "PatientID=CT-1",
                                         f"StudyInstanceUID={study.StudyInstanceUID}",
                                         f"SeriesInstanceUID={series.SeriesInstanceUID}", "SOPInstanceUID"])
    assert len(rs) == 3
    # Hierarchical: a study-level query without the patient's ID is refused, naming the key.
    rs, log = findscu(gw, tmp_path, "-P", ["QueryRetrieveLevel=STUDY", "StudyInstanceUID"])
    assert rs == [] and _final_status(log) == "A900" and "PatientID" in log, log


def test_wildcard_date_range_and_uid_list(gw, tmp_path):
    rs, _ = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=STUDY", "PatientID=*EXAMPLE", "StudyInstanceUID"])
    assert sorted(r.PatientID for r in rs) == ["H31EXAMPLE", "X1EXAMPLE"]
    rs, _ = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=STUDY", "StudyDate=20261101-20261130", "PatientID"])
    assert [r.PatientID for r in rs] == ["CT-1"]  # made CTs are of 2026-11-23; the charset files have no date
    assert findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=STUDY", "StudyDate=-20261122", "PatientID"])[0] == []
    uids = [pydicom.dcmread(f).StudyInstanceUID for f in _charset_files()[:2]]
    rs, _ = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={chr(92).join(uids)}",
                                         "PatientID"])
    assert sorted(r.StudyInstanceUID for r in rs) == sorted(uids)


def test_latin1_and_japanese_names(gw, tmp_path):
    # findscu sends a key's bytes as given: Latin-1 bytes, declared ISO_IR 100.
    rs, log = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=STUDY", "SpecificCharacterSet=ISO_IR 100",
                                           "PatientName=BUC^JÉRÔME".encode("latin-1"), "PatientID"])
    assert [r.PatientID for r in rs] == ["SCSFREN"], log
    assert str(rs[0].PatientName) == "Buc^Jérôme" and rs[0].SpecificCharacterSet == "ISO_IR 100"
    rs, log = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=STUDY", "PatientName=yamada^tarou", "PatientID"])
    (r,) = rs
    assert r.PatientID == "H31EXAMPLE" and r.SpecificCharacterSet == ["", "ISO 2022 IR 87"], log
    assert str(r.PatientName) == "Yamada^Tarou=山田^太郎=やまだ^たろう"
    # The ideographic group, asked in UTF-8 (pynetdicom: findscu's -k takes the bytes of this process's locale).
    ds = _q("STUDY", PatientName="山田^太郎", PatientID="")
    ds.SpecificCharacterSet = "ISO_IR 192"
    statuses, rs = _pyfind(gw, STUDY_ROOT, ds)
    assert [r.PatientID for r in rs] == ["H31EXAMPLE"] and statuses[-1] == 0x0000
    rs, _ = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=STUDY", "PatientName=WANG*", "PatientID"])
    assert [(r.PatientID, r.SpecificCharacterSet) for r in rs] == [("X1EXAMPLE", "ISO_IR 192")]


def test_peer_without_may_query_is_refused(gw, tmp_path):
    rs, log = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=STUDY", "PatientID"], aet="NOFIND")
    assert rs == [] and _final_status(log) == "0124", log
    assert "NOFIND may not query" in log or "0124" in log


def _http(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as rsp:
        return rsp.read().decode()


def test_queries_are_counted_on_metrics_and_shown_in_status_json(gateway_factory, tmp_path):
    """An administrator sees that workstations query, and which one was refused: findscu's answered
    query and a refused one move gateway_qr_queries_total and the status document's "qr"; no key
    or value of the queries (a Patient ID here) reaches either."""
    port = free_port()
    gw = gateway_factory({**PEERS, "status_http": {"port": port}})
    url = f"http://127.0.0.1:{port}/"
    wait_until(lambda: f"status page {url}" in gw.log, 20, what="the status page's URL in the log")
    r = storescu(gw.port, make_series(tmp_path / "ct", 2, patient_id="QRPID-7"))
    assert r.returncode == 0, r.stderr
    rs, log = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=STUDY", "PatientID=QRPID-7", "StudyInstanceUID"])
    assert len(rs) == 1 and _final_status(log) == "0000", log
    rs, log = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=STUDY", "PatientID=QRPID-7"], aet="NOFIND")
    assert _final_status(log) == "0124", log

    def counted() -> dict[str, float]:
        return {s.labels["outcome"]: s.value for f in text_string_to_metric_families(_http(url + "metrics"))
                for s in f.samples if s.name == "gateway_qr_queries_total"}

    wait_until(lambda: counted() == {"success": 1, "refused": 1}, 20, what="both queries counted")
    text = _http(url + "status.json")
    qr = json.loads(text)["qr"]
    assert qr["today"]["queries"] == 2 and qr["today"]["retrieves"] == 0
    assert qr["last_query"]["calling_ae"] == "NOFIND" and qr["last_query"]["outcome"] == "refused"
    assert qr["last_failure"]["operation"] == "C-FIND" and qr["last_failure"]["status"] == 0x0124
    assert qr["failing"] is True
    assert "QRPID-7" not in text and "QRPID-7" not in _http(url + "metrics")


@pytest.mark.parametrize("level, status", [("FRAME", "A900"), ("PATIENT", "A900")])
def test_a_level_the_model_lacks_is_answered_a900(gw, tmp_path, level, status):
    rs, log = findscu(gw, tmp_path, "-S", [f"QueryRetrieveLevel={level}", "PatientID"])
    assert rs == [] and _final_status(log) == status, log
    assert "QueryRetrieveLevel" in log


def test_cancel_stops_the_matches(gateway_factory, tmp_path):
    """findscu --cancel 2: C-CANCEL after two pendings; the SCP answers FE00 and sends no more.
    10,000 studies written into the index before the service starts, so that the cancel arrives
    while matches are still going out."""
    gw = gateway_factory(PEERS, start=False)
    gw.buffer.mkdir(parents=True)
    index = Index(gw.buffer / "index.sqlite")
    seed_studies(index, [f"1.2.826.0.1.3680043.2.1125.99.{n}" for n in range(10_000)], patient_id="C")
    index.close()
    gw.start()
    rs, log = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=STUDY", "StudyInstanceUID"], extra=("--cancel", "2"))
    assert _final_status(log) == "FE00", log[-2000:]
    assert 2 <= len(rs) < 10_000


# -- pynetdicom as SCU, for what findscu cannot propose ------------------------------------------------
def _q(level: str, **keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def _pyfind(gw, model: str, ds: Dataset, combined: bool | None = None) -> tuple[list[int], list[Dataset]]:
    ae = AE(ae_title="FINDSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(model)
    ext = []
    if combined is not None:
        item = SOPClassExtendedNegotiation()
        item.sop_class_uid = model
        item.service_class_application_information = bytes([0, 1 if combined else 0])
        ext.append(item)
    assoc = ae.associate("127.0.0.1", gw.port, ae_title="EDGE", ext_neg=ext)
    assert assoc.is_established
    try:
        statuses, found = [], []
        for status, identifier in assoc.send_c_find(ds, model):
            statuses.append(status.Status)
            if identifier is not None and status.Status in (0xFF00, 0xFF01):
                found.append(identifier)
        return statuses, found
    finally:
        assoc.release()


def test_combined_date_time_matching_when_negotiated(gw, tmp_path):
    # The made CTs: 2026-11-23 12:00. Separately, 13:00-23:59 excludes them on any date; combined,
    # 2026-11-22 13:00 .. 2026-11-23 12:30 includes them.
    ds = _q("STUDY", StudyDate="20261122-20261123", StudyTime="1300-1230", PatientID="")
    _, found = _pyfind(gw, STUDY_ROOT, ds)
    assert found == []
    statuses, found = _pyfind(gw, STUDY_ROOT, ds, combined=True)
    assert [r.PatientID for r in found] == ["CT-1"] and statuses[-1] == 0x0000


def test_modality_at_study_level_answers_its_studies_with_ff01(gw, tmp_path):
    # Many workstations send Modality (a SERIES key) at STUDY level: matched as ModalitiesInStudy
    # (the charset files are OT, the made CTs CT), returned empty, pendings FF01 ("optional keys not
    # supported"); a series key without a study-level meaning (SeriesNumber) restricts nothing.
    rs, log = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=STUDY", "StudyInstanceUID", "PatientID",
                                           "Modality=CT", "SeriesNumber=99"])
    assert [r.PatientID for r in rs] == ["CT-1"], log
    assert rs[0]["Modality"].is_empty and rs[0]["SeriesNumber"].is_empty
    statuses = re.findall(r"DIMSE Status\s*:\s*0x([0-9A-Fa-f]{4})", log)
    assert [s.upper() for s in statuses] == ["FF01", "0000"], log
    assert "Warning: Unsupported optional keys" in log, log  # as findscu 3.6.7 names FF01
    rs, _ = findscu(gw, tmp_path, "-S", ["QueryRetrieveLevel=STUDY", "PatientID", "Modality=OT"])
    assert sorted(r.PatientID for r in rs) == ["H31EXAMPLE", "SCSFREN", "SCSGERM", "X1EXAMPLE"]
    wait_until(lambda: "Modality (0008,0060) matched as ModalitiesInStudy" in gw.log, 10,
               what="the query's log line naming the ignored keys")
    assert "SeriesNumber (0020,0011)" in gw.log and "=99" not in gw.log
