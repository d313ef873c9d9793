"""What the storage SCP accepts (issue 14 item 7) and what CONFORMANCE.md says it accepts."""

from __future__ import annotations

import re
from pathlib import Path

from pydicom._uid_dict import UID_dictionary

from gateway.dicom.sop_classes import NON_PATIENT_STORAGE, STORAGE_SOP_CLASSES, storage_sop_classes

ROOT = Path(__file__).resolve().parents[2]


def test_retired_ultrasound_classes_are_storage_classes():
    assert "1.2.840.10008.5.1.4.1.1.6" in STORAGE_SOP_CLASSES
    assert "1.2.840.10008.5.1.4.1.1.3" in STORAGE_SOP_CLASSES


def test_not_storage_although_named_so():
    for uid in ("1.2.840.10008.1.20.1", "1.2.840.10008.1.20.2", "1.2.840.10008.1.3.10"):
        assert uid not in STORAGE_SOP_CLASSES
    assert not STORAGE_SOP_CLASSES & NON_PATIENT_STORAGE


def test_every_standard_storage_class_of_the_dictionary_is_accepted():
    named = {uid for uid, (name, kind, *_r) in UID_dictionary.items() if kind == "SOP Class" and name.endswith("Storage")}
    missing = named - STORAGE_SOP_CLASSES - NON_PATIENT_STORAGE - {"1.2.840.10008.1.3.10"}
    assert not missing


def test_config_adds_private_classes():
    assert "1.2.3.4.5" in storage_sop_classes(["1.2.3.4.5"])


def test_conformance_statement_names_every_retired_class_accepted():
    text = (ROOT / "CONFORMANCE.md").read_text()
    table = text[text.index("| Retired storage SOP class | UID |"):]
    table = table[:table.index("\n\n")]
    listed = set(re.findall(r"\| ([0-9.]+) \|", table))
    retired = {u for u in STORAGE_SOP_CLASSES if UID_dictionary.get(u, ("", "", "", ""))[3] == "Retired"}
    assert listed == retired
