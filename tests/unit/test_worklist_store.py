"""The worklist kept in the buffer (gateway/buffer/worklist.py), the [worklist] section's bounds,
and what `dicom-gateway worklist` shows on a terminal that cannot show every name."""

from __future__ import annotations


import pytest
from pydantic import ValidationError
from pydicom.dataset import Dataset

from gateway.buffer.procedure import Procedure, encode_identifier
from gateway.buffer.worklist import CachedWorklist, WorklistStore
from gateway.config.worklist import WorklistSection
from gateway.operator_views import displayable_name, worklist_lines

JP_RAW = b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"


def _item() -> Procedure:
    ds = Dataset()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientID = "PIDJP"
    raw = encode_identifier(ds)
    # The name's bytes as the SCP sent them, appended as an element (0010,0010) PN.
    raw += b"\x10\x00\x10\x00PN" + len(JP_RAW).to_bytes(2, "little") + JP_RAW
    return Procedure(key="SPS1|ACC1|1.2.3", identifier=raw, patient_id="PIDJP",
                     patient_name="Yamada^Tarou=山田^太郎", accession_number="ACC1", start="202611291015",
                     modality="ES", description="Gastroscopy", station_ae="EDGE")


def test_save_then_load_keeps_every_byte(tmp_path):
    store = WorklistStore(tmp_path)
    assert store.load() is None
    wl = CachedWorklist((_item(),), 1_790_000_000.5, "RIS@10.0.0.5:104")
    store.save(wl)
    back = store.load()
    assert back == wl and JP_RAW in back.items[0].identifier
    assert str(back.items[0].dataset().PatientName) == "Yamada^Tarou=山田^太郎"
    assert [p.name for p in tmp_path.iterdir()] == ["worklist.json"]  # no temp file left behind


def test_an_empty_worklist_is_kept_too(tmp_path):
    store = WorklistStore(tmp_path)
    store.save(CachedWorklist((_item(),), 1.0, "RIS@h:1"))
    store.save(CachedWorklist((), 2.0, "RIS@h:1"))
    assert store.load() == CachedWorklist((), 2.0, "RIS@h:1")


@pytest.mark.parametrize("content", [b"{not json", b'{"version": 99, "items": []}', b'{"version": 1}',
                                     b'{"version": 1, "fetched_at": 1, "source": "x", "items": [{"key": "k", '
                                     b'"identifier": "%%%"}]}'])
def test_a_damaged_cache_is_no_cache(tmp_path, caplog, content):
    (tmp_path / "worklist.json").write_bytes(content)
    assert WorklistStore(tmp_path).load() is None
    assert "worklist.json" in caplog.text and "Traceback" not in caplog.text


def test_the_day_counter_restarts_each_day_and_survives_a_new_store(tmp_path):
    assert WorklistStore(tmp_path).next_unscheduled_number("20261129") == 1
    assert WorklistStore(tmp_path).next_unscheduled_number("20261129") == 2
    assert WorklistStore(tmp_path).next_unscheduled_number("20261130") == 1


@pytest.mark.parametrize("key, value", [("refresh_s", 1.0), ("timeout_s", 0.0), ("days_back", 40),
                                        ("modality", "us"), ("unscheduled_prefix", "A B"),
                                        ("station_ae", "X" * 17), ("calling_ae", "BAD\\AE"),
                                        ("unscheduled_id", "serial"), ("auto_select_minutes", -1),
                                        ("max_items", 0), ("colour", "red")])
def test_the_section_refuses_bad_values_by_name(key, value):
    with pytest.raises(ValidationError) as err:
        WorklistSection(**{key: value})
    assert key in str(err.value)


def test_the_section_defaults_to_this_box():
    s = WorklistSection()
    assert (s.calling("EDGE"), s.station("EDGE")) == ("EDGE", "EDGE")
    s = WorklistSection(calling_ae="US1", station_ae="*")
    assert (s.calling("EDGE"), s.station("EDGE")) == ("US1", "*")


def test_names_shown_as_the_terminal_allows():
    name = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    assert displayable_name(name, "utf-8") == name
    assert displayable_name(name, "ascii") == "Yamada^Tarou"
    assert displayable_name("山田^太郎", "ascii") == "??^??"
    wl = CachedWorklist((_item(),), 1_790_000_000.0, "RIS@h:1")
    lines = worklist_lines(wl, None, 100, "ascii")
    assert "Yamada^Tarou " in lines[2] and "PIDJP" in lines[2]
    assert lines[-1] == "current procedure: - (no service running)"


def test_a_disabled_worklist_does_not_show_a_stale_copy():
    wl = CachedWorklist((_item(),), 1_790_000_000.0, "RIS@h:1")
    lines = worklist_lines(wl, {"enabled": False, "current": ""}, 100, "utf-8")
    assert lines[0].startswith("worklist disabled") and not any("PIDJP" in ln for ln in lines)


def test_items_without_sps_id_or_accession_get_keys_of_their_own():
    from gateway.dicom.worklist_scu import _unique

    a = Procedure(key="||", identifier=b"")
    b = _unique(Procedure(key="||", identifier=b""), [a])
    c = _unique(Procedure(key="||", identifier=b""), [a, b])
    assert (a.key, b.key, c.key) == ("||", "||#2", "||#3")
