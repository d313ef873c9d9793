"""The planner's fast header read (one structure walk, pydicom decoding the raw values) against
pydicom.dcmread: the same files planned both ways give the same File IDs, the same records, key
by key, and the same reasons for what is left out. Over pydicom's shipped test and charset files:
every transfer syntax they cover, implicit and big endian, deflated, ISO 2022 and Latin-1 names."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pydicom
import pytest

from gateway.media import dicomdir as dicomdir_module
from gateway.media import fileset as fileset_module
from gateway.media.fileset import plan_fileset

_DATA = Path(os.path.dirname(pydicom.__file__)) / "data"
_INPUTS = sorted((_DATA / "test_files").glob("*.dcm")) + sorted((_DATA / "charset_files").glob("*.dcm"))


def _records(plan) -> list:
    out = []

    def visit(nodes, depth):
        for node in nodes:
            keys = [(e.tag, e.VR, str(e.value)) for e in node.record]
            out.append((depth, node.record_type, keys))
            visit(node.children, depth + 1)

    visit(plan.record_tree(), 0)
    return out


@pytest.mark.parametrize("profile", ["STD-GEN-CD", "STD-GEN-USB-JPEG"])
def test_walked_headers_plan_what_pydicom_headers_plan(profile, monkeypatch):
    # A STUDY record of an instance without any date takes the export time: one clock for both.
    monkeypatch.setattr(dicomdir_module, "datetime",
                        type("Clock", (), {"now": staticmethod(lambda: datetime(2026, 1, 2, 3, 4, 5))}))
    fast = plan_fileset(_INPUTS, profile, "SAME")
    walked = sum(1 for p in _INPUTS if fileset_module._walked_header(p) is not None)
    monkeypatch.setattr(fileset_module, "_walked_header", lambda source: None)
    slow = plan_fileset(_INPUTS, profile, "SAME")
    assert walked > len(_INPUTS) // 2  # the fast path is the common one, not a rarity
    assert [(f.path, f.source, f.syntax, f.convert, f.estimated_size) for f in fast.files] == \
        [(f.path, f.source, f.syntax, f.convert, f.estimated_size) for f in slow.files]
    assert [(g.source, g.reason) for g in fast.left_out] == [(g.source, g.reason) for g in slow.left_out]
    assert _records(fast) == _records(slow)


def test_records_kept_as_bytes_encode_as_pydicom_encodes_them(tmp_path, monkeypatch):
    # The IMAGE records of walked images stay raw Explicit VR LE and are laid out by hand; decoded
    # (as any reader of the record would leave them), pydicom writes them: the bytes must agree.
    from datasets import make_ct

    from gateway.media.dicomdir import encode_dicomdir

    monkeypatch.setattr(dicomdir_module, "generate_uid", lambda: "1.2.3.4")
    files = []
    for i, charset in enumerate(["ISO_IR 100", "", "ISO_IR 192"]):
        path = tmp_path / f"ct{i}.dcm"
        ds = make_ct(path, number=i + 7, implicit=(i == 1))
        if charset:
            ds.SpecificCharacterSet = charset
        elif "SpecificCharacterSet" in ds:
            del ds.SpecificCharacterSet
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    roots = plan_fileset(files, "STD-GEN-CD", "SAME").record_tree()
    leaves = [leaf for p in roots for st in p.children for se in st.children for leaf in se.children]
    assert len(leaves) == 3 and all(
        all(isinstance(leaf.record.get_item(t), pydicom.dataelem.RawDataElement) for t in leaf.record.keys())
        for leaf in leaves)
    by_hand, _ = encode_dicomdir(roots, "SAME")
    for leaf in leaves:
        list(leaf.record)  # decodes every raw element in place
    by_pydicom, _ = encode_dicomdir(roots, "SAME")
    assert by_hand == by_pydicom


def test_instances_of_a_known_series_are_planned_from_raw_bytes(tmp_path, monkeypatch):
    # A pydicom Dataset is made for an instance only when a record needs one (a new patient, study
    # or series) and the patient keys are decoded once per patient: the rest compare raw bytes.
    from datasets import make_ct

    files = []
    for i in range(12):
        path = tmp_path / f"ct{i}.dcm"
        make_ct(path, study_uid="1.2.3", series_uid="1.2.3.4", number=i + 1, rows=8, cols=8)
        files.append(path)
    made = []
    real = fileset_module._raw_dataset
    monkeypatch.setattr(fileset_module, "_raw_dataset", lambda *a: made.append(1) or real(*a))
    plan = plan_fileset(files, "STD-GEN-CD")
    assert len(plan.files) == 12 and not plan.left_out
    assert len(made) == 2  # the first instance's header, and its patient keys
