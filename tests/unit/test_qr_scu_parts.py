"""The Q/R SCU's parts that need no peer: the `[qr_scu]` section (timers bounded, names checked),
the identifiers it sends (hierarchical keys, character set, retrieve keys only), the storage
contexts of a C-GET, and routing never sending an instance back to the AE it came from."""

from __future__ import annotations

import pytest
from pydicom.uid import CTImageStorage

from gateway.buffer.source import Source
from gateway.config import Config
from gateway.config.load import ConfigError, load
from gateway.dicom.qr_scu import (MAX_GET_STORAGE_CLASSES, identifier, keyword_of, retrieve_identifier,
                                  status_words, storage_contexts)
from gateway.part10.attributes import InstanceAttributes
from gateway.routing import Router

BASE = '[destinations.pacs]\nae_title = "PACS"\nport = 11122\n\n'


def _problems(tmp_path, text: str) -> list[str]:
    path = tmp_path / "gateway.toml"
    path.write_text(BASE + text)
    with pytest.raises(ConfigError) as exc:
        load(path)
    return exc.value.problems


def test_defaults_are_the_seed_timers():
    q = Config().qr_scu
    assert (q.association_s, q.inactivity_s, q.find_session_s, q.retrieve_session_s) == (30, 90, 3600, 10800)
    assert q.retrieve == "move" and q.destination == "" and q.move_destination == ""


@pytest.mark.parametrize("line, key", [
    ("association_s = 0", "qr_scu.association_s"),
    ("association_s = 601", "qr_scu.association_s"),
    ("inactivity_s = 0", "qr_scu.inactivity_s"),
    ("inactivity_s = 3601", "qr_scu.inactivity_s"),
    ("find_session_s = 30", "qr_scu.find_session_s"),
    ("retrieve_session_s = 90000", "qr_scu.retrieve_session_s"),
    ("max_results = 0", "qr_scu.max_results"),
    ('retrieve = "fetch"', "qr_scu.retrieve"),
    ('move_destination = "A\\\\B"', "qr_scu.move_destination"),
    ("timeout_s = 5", "qr_scu.timeout_s"),
])
def test_bad_values_are_refused_by_name(tmp_path, line, key):
    problems = _problems(tmp_path, f"[qr_scu]\n{line}\n")
    assert len(problems) == 1 and problems[0].startswith(key), problems


def test_unknown_default_destination_is_named(tmp_path):
    (problem,) = _problems(tmp_path, '[qr_scu]\ndestination = "archive"\n')
    assert "qr_scu.destination: unknown destination 'archive'" in problem and "pacs" in problem


def test_hierarchical_keys_are_required():
    with pytest.raises(ValueError, match="StudyInstanceUID"):
        identifier("SERIES", {})
    with pytest.raises(ValueError, match="SeriesInstanceUID"):
        identifier("IMAGE", {"StudyInstanceUID": "1.2"})
    with pytest.raises(ValueError, match="single|one value"):
        identifier("SERIES", {"StudyInstanceUID": "1.2*"})
    with pytest.raises(ValueError, match="Patient Root"):
        identifier("PATIENT", {})
    with pytest.raises(ValueError, match="PatientID"):
        identifier("STUDY", {}, model="patient")
    ds = identifier("IMAGE", {"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3"})
    assert ds.QueryRetrieveLevel == "IMAGE" and ds.SOPInstanceUID == "" and ds.SOPClassUID == ""


def test_character_set_follows_the_values():
    assert "SpecificCharacterSet" not in identifier("STUDY", {"PatientName": "DOE^*"})
    assert identifier("STUDY", {"PatientName": "Buc^Jérôme"}).SpecificCharacterSet == "ISO_IR 100"
    assert identifier("STUDY", {"PatientName": "山田^太郎"}).SpecificCharacterSet == "ISO_IR 192"


def test_keys_by_keyword_or_tag():
    assert keyword_of("PatientName") == keyword_of("0010,0010") == keyword_of("(0010,0010)") == "PatientName"
    assert keyword_of("00080050") == "AccessionNumber"
    with pytest.raises(ValueError, match="not a DICOM keyword"):
        keyword_of("PatientNmae")
    with pytest.raises(ValueError, match="sequence"):
        identifier("STUDY", {"ReferencedStudySequence": ""})


def test_retrieve_identifier_has_unique_keys_only():
    ds = retrieve_identifier("SERIES", {"StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3", "PatientName": "X"})
    assert [e.keyword for e in ds] == ["QueryRetrieveLevel", "StudyInstanceUID", "SeriesInstanceUID"]
    with pytest.raises(ValueError):
        retrieve_identifier("STUDY", {})


def test_get_contexts_fit_one_association():
    for n in (1, 5, 9, 10, 11, 60, MAX_GET_STORAGE_CLASSES):
        assert n * len(storage_contexts(n)) <= MAX_GET_STORAGE_CLASSES
    # Few classes: a context of its own for each compressed syntax, so nothing is transcoded.
    assert ["1.2.840.10008.1.2.5"] in storage_contexts(1)


def test_status_words():
    assert status_words(0xA801) == "0xA801 (refused: move destination unknown)"
    assert status_words(0xC123) == "0xC123 (unable to process)"


def _attrs() -> InstanceAttributes:
    return InstanceAttributes(transfer_syntax="1.2.840.10008.1.2.1", sop_class=str(CTImageStorage),
                              sop_uid="1.2.3.4", study_uid="1.2.3", series_uid="1.2.3.1", modality="CT")


@pytest.mark.parametrize("routes", [[], [{"to": ["pacs", "archive"]}], [{"to": ["pacs", "archive"], "source": ["AE:*"]}]])
def test_never_routed_back_to_the_sender(routes):
    route = Router(Config.model_validate({
        "destinations": {"pacs": {"ae_title": "PACS", "port": 11122}, "archive": {"ae_title": "ARCH", "port": 11123}},
        "routes": routes}))
    assert route(_attrs(), Source.ae("PACS")) == ["archive"]  # retrieved from the PACS: not back to it
    assert route(_attrs(), Source.ae("PACS  ")) == ["archive"]
    assert route(_attrs(), Source.ae("CT1")) == ["pacs", "archive"]
    if not routes or "source" not in routes[0]:
        # A medium labelled like an AE title is no network source: nothing is left out.
        assert route(_attrs(), Source.media("PACS")) == ["pacs", "archive"]


def test_two_quick_cancel_requests_are_two_the_second_aborts(monkeypatch):
    # Two Ctrl-C in quick succession (`timeout -s INT`, an impatient user): each is counted when
    # it comes, not when its thread runs, so the second one aborts. The threads are held back
    # here, as a busy process may hold them.
    import threading

    from gateway.dicom.qr_scu import Cancel

    monkeypatch.setattr(threading.Thread, "start", lambda self: None)
    cancel = Cancel()
    cancel.request()
    assert not cancel.aborted
    cancel.request()
    assert cancel.requested == 2 and cancel.aborted
