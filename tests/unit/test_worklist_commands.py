"""The worklist's operator verbs (gateway/commands.py) and their control-socket table
(gateway/control.py worklist_verbs), without a worklist SCP: refusals in one line, selections on
a worklist handed to the current procedure, the status document the CLI reads."""

from __future__ import annotations

import json
import threading

from pydicom.dataset import Dataset

from gateway.buffer.procedure import Procedure, encode_identifier
from gateway.commands import Commands
from gateway.config import Config
from gateway.control import parse_request, worklist_verbs
from gateway.dicom.worklist_service import WorklistService
from gateway.events import EventBus


def _proc(n: int) -> Procedure:
    ds = Dataset()
    ds.PatientID = f"PID{n}"
    return Procedure(key=f"K{n}", identifier=encode_identifier(ds), patient_id=f"PID{n}",
                     patient_name="Secret^Name", accession_number=f"A{n}", modality="US",
                     start="202611291015", description="Abdomen")


def _commands(tmp_path, enabled: bool = False):
    cfg = Config.model_validate({"worklist": {"enabled": enabled}})
    svc = WorklistService(cfg, tmp_path, EventBus())
    return Commands(None, cfg, wake=lambda: None, worklist=svc), svc


def test_no_worklist_service_is_a_refusal():
    c = Commands(None, Config(), wake=lambda: None)
    for verb in (c.worklist_refresh, c.next_procedure, c.unscheduled_procedure, c.worklist_status):
        r = verb()
        assert not r.ok and "the worklist service is not running" in r.refused
    assert "not running" in c.select_procedure("1").refused


def test_refresh_refused_when_the_worklist_is_not_enabled(tmp_path):
    c, svc = _commands(tmp_path)
    svc.start()  # disabled: no thread, no query, the cache unused
    try:
        r = c.worklist_refresh()
        assert r.refused == "worklist-refresh: the worklist is not enabled ([worklist] enabled = false)"
        assert svc.status()["source"] == "none" and svc.is_alive()
        assert "worklist" not in {t.name for t in threading.enumerate()}
    finally:
        svc.stop()


def test_selection_verbs_answer_in_one_line_without_the_name(tmp_path):
    c, svc = _commands(tmp_path)
    assert c.next_procedure().refused.startswith("procedure-next: the worklist is empty")
    svc.current.set_worklist([_proc(1), _proc(2)])
    r = c.select_procedure("2")
    assert r.ok and r.summary == ("current procedure: 2 of 2: Patient ID PID2, accession A2, US, "
                                  "start 2026-11-29 10:15, Abdomen")
    assert c.next_procedure().summary.startswith("current procedure: 1 of 2")
    assert "no item 3" in c.select_procedure("3").refused
    r = c.unscheduled_procedure()
    assert r.ok and r.summary.startswith("current procedure: unscheduled: Patient ID UNSCHED")
    assert all("Secret" not in line for res in (r,) for line in res.lines())
    doc = json.loads(c.worklist_status().summary)
    assert doc["current_scheduled"] is False and doc["position"] is None and doc["enabled"] is False


def test_the_control_table_takes_exactly_these_arguments(tmp_path):
    c, _ = _commands(tmp_path)
    verbs = worklist_verbs(c)
    assert set(verbs) == {"worklist-refresh", "worklist-status", "procedure-select", "procedure-next",
                          "procedure-previous", "procedure-unscheduled"}
    assert parse_request(b'{"verb": "procedure-select", "args": {"which": "2"}}', verbs) == (
        "procedure-select", {"which": "2"})
    refused = parse_request(b'{"verb": "procedure-select", "args": {"which": 2}}', verbs)
    assert refused["refused"] == "procedure-select: argument 'which' must be a str"
