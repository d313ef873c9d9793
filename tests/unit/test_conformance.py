"""The conformance statement (gateway/conformance/): the committed CONFORMANCE.md is the generated
one, and it names what the listener accepts.

Which contexts the running gateway really accepts is tests/interop/test_conformance_contexts.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from pydicom.uid import UID

from gateway import conformance
from gateway.config import Config
from gateway.dicom.sop_classes import NON_PATIENT_STORAGE

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "dicom-gateway conformance --output CONFORMANCE.md"


def test_committed_statement_is_the_generated_one():
    committed = (ROOT / "CONFORMANCE.md").read_text(encoding="utf-8")
    assert committed == conformance.render(), (
        f"CONFORMANCE.md is not what the code says: run `{REGENERATE}` and commit it")


def test_statement_names_every_context_the_listener_accepts():
    text = conformance.render()
    contexts = conformance.accepted_contexts(Config())
    abstracts = {c.abstract_syntax for c in contexts}
    assert len(abstracts) > 200  # every storage class, print, verification, commitment
    missing = sorted(u for u in abstracts if not re.search(rf"\b{re.escape(u)}\b(?![.\d])", text))
    assert not missing, f"SOP classes accepted but not in the statement: {missing}"
    syntaxes = {t for c in contexts for t in c.transfer_syntaxes}
    assert {t for t in syntaxes if t not in text} == set()


def test_storage_classes_not_accepted_are_said_so_and_not_listed_as_accepted():
    text = conformance.render()
    accepted_table = text[text.index("Table 4.2-2"):text.index("Not accepted")]
    for uid in NON_PATIENT_STORAGE:
        assert f"| {uid} |" not in accepted_table
        assert uid in text[text.index("Not accepted"):]


def test_private_storage_classes_of_the_config_are_listed():
    config = Config(storage={"extra_sop_classes": ["1.2.826.0.1.3680043.9.9999.1"]})
    text = conformance.render(config)
    assert "| Private (`[storage] extra_sop_classes`) | 1.2.826.0.1.3680043.9.9999.1 |" in text
    assert "Storage: 200 SOP classes" in text


def test_configured_values_show_the_config_defaults():
    text = conformance.render(Config(ae={"max_pdu": 65536}, timers={"inactivity_s": 90}))
    assert "configurable (`ae.max_pdu`), default 65536" in text
    assert "| `timers.inactivity_s` | 90 s |" in text
    default = conformance.render()
    assert "configurable (`ae.max_pdu`), default 131072" in default


def test_names_come_from_the_dictionaries():
    assert conformance.uid_name("1.2.840.10008.5.1.4.1.1.6") == "Ultrasound Image Storage (Retired)"
    # pynetdicom knows it, pydicom 3.0 does not yet
    assert conformance.uid_name("1.2.840.10008.5.1.4.1.1.66.7") == "Label Map Segmentation Storage"
    assert conformance.uid_name("1.2.3.4") == "1.2.3.4"
    assert UID("1.2.840.10008.1.2.1").name in conformance.render()


def test_cli_prints_the_statement_and_writes_the_file(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'hw-sim'}"}
    env.pop("DICOM_GATEWAY_CONFIG", None)
    run = subprocess.run([sys.executable, "-m", "gateway.cli", "conformance"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout == (ROOT / "CONFORMANCE.md").read_text(encoding="utf-8")
    out = tmp_path / "c.md"
    run = subprocess.run([sys.executable, "-m", "gateway.cli", "conformance", "--output", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert out.read_text(encoding="utf-8") == (ROOT / "CONFORMANCE.md").read_text(encoding="utf-8")
    assert not list(tmp_path.glob(".*.tmp"))
    bad = subprocess.run([sys.executable, "-m", "gateway.cli", "conformance", "--output", str(tmp_path / "no" / "c.md")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=env)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [f"conformance: cannot write {tmp_path / 'no' / 'c.md'}: "
                                               "No such file or directory"]


def test_the_statement_of_a_config_with_coercion_rules_says_so(tmp_path):
    # `conformance --config` with [[coercion]] rules once ended in "internal error" (the storage role
    # was built without a buffer, and its intake looked for the worklist cache in it).
    cfg = tmp_path / "gateway.toml"
    cfg.write_text('[buffer]\npath = "buf"\n\n[[coercion]]\nname = "legacy-ct"\ncalling_ae = ["CT1"]\n'
                   'fill_from_worklist = ["PatientName"]\n\n[worklist]\nenabled = true\n', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'hw-sim'}"}
    run = subprocess.run([sys.executable, "-m", "gateway.cli", "conformance", "--config", str(cfg)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert "rules of the configuration (none by default; 1 in this configuration)" in run.stdout
