"""`dicom-gateway export`: in-process (with an Exporter on the simulated drive following the same
buffer, so --wait sees the medium verified) and as a subprocess (exit codes, one-line refusals)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pydicom
import pytest
from peers import ROOT, TEST_FILES, require, write_toml

from gateway import cli
from gateway.buffer.ingest import Buffer
from gateway.config import Config
from gateway.events import EventBus
from gateway.operator_views import follow_exports
from gateway.media.export import EXPORT, Exporter
from gateway.routing import Router
from hwsim.media import SimulatedOpticalDrive

from test_media_export import Box

CT = TEST_FILES / "CT_small.dcm"
CT_STUDY = str(pydicom.dcmread(CT, stop_before_pixels=True).StudyInstanceUID)


def setup(tmp_path: Path, drives: dict | None = None) -> Path:
    box = Box(tmp_path)
    box.hold([CT])
    box.close()
    cfg = tmp_path / "gateway.toml"
    write_toml(cfg, {"buffer": {"path": str(tmp_path / "buffer"), "reserve_mb": 0},
                     "media": {"drives": drives if drives is not None else
                               {"cd": {"kind": "optical-sim", "sim_dir": str(tmp_path / "sim")}}}})
    return cfg


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_export_queues_one_job_per_copy_and_says_so(tmp_path, capsys):
    cfg = setup(tmp_path)
    assert cli.main(["export", CT_STUDY, "--copies", "2", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "job 1: export of 1 study (copy 1 of 2) to cd queued" in out
    assert "job 2: export of 1 study (copy 2 of 2) to cd queued" in out
    assert "no service is running on this buffer" in out


def test_export_wait_follows_the_job_until_the_medium_is_verified(tmp_path, capsys):
    require("xorriso", "xorriso")
    cfg = setup(tmp_path)
    buffer = Buffer(tmp_path / "buffer", 0, "replace", Router(Config.model_validate({})))
    sim = SimulatedOpticalDrive("cd", tmp_path / "sim" / "cd")
    sim.start()
    sim.insert("cd", None)
    exporter = Exporter(buffer, sim.drive(120), EventBus(), staging_dir=tmp_path / "staging")
    exporter.start()
    try:
        assert cli.main(["export", CT_STUDY, "--wait", "--config", str(cfg)]) == 0
    finally:
        exporter.stop(10)
        sim.stop()
        buffer.close()
    out = capsys.readouterr().out
    assert out.strip().endswith("job 1: written and verified")


def test_export_wait_exits_1_when_the_attempt_fails(tmp_path, capsys):
    require("xorriso", "xorriso")
    cfg = setup(tmp_path)
    buffer = Buffer(tmp_path / "buffer", 0, "replace", Router(Config.model_validate({})))
    sim = SimulatedOpticalDrive("cd", tmp_path / "sim" / "cd")
    sim.start()
    sim.insert("cd", None)
    sim.fault("write-error")
    exporter = Exporter(buffer, sim.drive(120), EventBus(), staging_dir=tmp_path / "staging")
    exporter.start()
    try:
        assert cli.main(["export", CT_STUDY, "--wait", "--config", str(cfg)]) == 1
    finally:
        exporter.stop(10)
        sim.stop()
        buffer.close()
    out = capsys.readouterr().out
    assert "job 1: attempt 1 failed: drive cd: writing failed" in out
    assert "waits for the next medium" in out


def test_export_as_a_subprocess_refuses_in_one_line(tmp_path):
    cfg = setup(tmp_path, {"cd": {"kind": "optical-sim", "sim_dir": str(tmp_path / "sim")},
                           "stick": {"kind": "usb-sim", "sim_dir": str(tmp_path / "sim")}})
    r = run("export", CT_STUDY, "--config", str(cfg))
    assert r.returncode == 2 and r.stderr.strip() == (
        "dicom-gateway: export: 2 drives are configured; choose one with --to: cd, stick")
    r = run("export", CT_STUDY, "--to", "dvd", "--config", str(cfg))
    assert r.returncode == 2 and "unknown drive 'dvd' (configured: cd, stick)" in r.stderr
    r = run("export", "1.2.3", "--to", "cd", "--config", str(cfg))
    assert r.returncode == 1 and r.stderr.strip() == (
        "export: study 1.2.3 has no instance held in the buffer")
    r = run("export", CT_STUDY, "--to", "cd", "--copies", "0", "--config", str(cfg))
    assert r.returncode == 2 and "not a number of copies" in r.stderr
    assert "Traceback" not in r.stderr
    r = run("export", CT_STUDY, "--to", "stick", "--config", str(cfg))
    assert r.returncode == 0 and "job 1: export of 1 study to stick queued" in r.stdout
    r = run("queue", "list", "--config", str(cfg))
    assert r.returncode == 0 and "export of 1 study to stick" in r.stdout, r.stdout
    assert '{"studies"' not in r.stdout  # the job's payload is not shown raw


def test_export_with_no_drive_configured_is_a_usage_error(tmp_path, capsys):
    cfg = setup(tmp_path, {})
    assert cli.main(["export", CT_STUDY, "--config", str(cfg)]) == 2
    assert "no media drive is configured" in capsys.readouterr().err


def test_wait_on_a_terminal_rewrites_one_line_then_prints_the_outcome(tmp_path, capsys):
    cfg = setup(tmp_path)
    assert cli.main(["export", CT_STUDY, "--config", str(cfg)]) == 0
    capsys.readouterr()
    buffer = Buffer(tmp_path / "buffer", 0, "replace", Router(Config.model_validate({})))
    try:
        q = buffer.queue
        (job,) = q.claim(EXPORT, "cd", 1)
        done = threading.Timer(0.7, lambda: q.complete([job.id]))
        done.start()
        assert follow_exports(q, [job.id], tty=True, poll_s=0.1) is True
        done.join()
    finally:
        buffer.close()
    out = capsys.readouterr().out
    assert out.startswith("\r\033[Kjob 1: writing and verifying (attempt 1)")
    assert out.count("\n") == 2 and out.endswith("\njob 1: written and verified\n")


def test_the_split_capacity_the_cli_uses_per_drive_kind():
    from drivers.media.interface import CD_700_BYTES, MediumInfo, MediumKind
    from gateway.media.export import medium_capacity, nominal_capacity

    assert nominal_capacity("optical") == (MediumKind.CD, CD_700_BYTES)
    assert nominal_capacity("optical-sim", 5) == (MediumKind.CD, 5_000_000)
    assert nominal_capacity("usb") is None and nominal_capacity("usb-sim", 5) is None
    assert medium_capacity(MediumInfo("cd", MediumKind.DVD, True, 10, 9)) == (MediumKind.DVD, 9)
    assert medium_capacity(MediumInfo("cd", MediumKind.DVD, False, 10, 0)) is None
    assert medium_capacity(None) is None


def test_wait_shows_the_bytes_the_service_reports_as_a_bar_on_a_terminal_and_in_tens_of_percent_in_a_log(tmp_path, capsys):
    from gateway.operator_views import export_progress, export_state
    from gateway.state import snapshot_path

    cfg = setup(tmp_path)
    assert cli.main(["export", CT_STUDY, "--config", str(cfg)]) == 0
    capsys.readouterr()
    buffer = Buffer(tmp_path / "buffer", 0, "replace", Router(Config.model_validate({})))
    try:
        q = buffer.queue
        (job,) = q.claim(EXPORT, "cd", 1)
        snap = snapshot_path(tmp_path / "buffer")

        def report(done: int, total: int) -> None:
            progress = {"job_id": job.id, "done_bytes": done, "total_bytes": total, "at": 1.0}
            snap.write_text(json.dumps({"media": {"cd": {"progress": progress}, "usb": {"progress": None}}}))

        report(0, 0)
        assert export_progress(json.loads(snap.read_text()), job.id) == (0, 0)
        assert export_progress(json.loads(snap.read_text()), job.id + 1) is None
        assert export_progress(None, job.id) is None
        report(35_000_000, 140_000_000)
        j = q.get(job.id)
        assert export_state(j, (35_000_000, 140_000_000), 8) == (
            "", "writing [##......]  25 % 35.0 of 140.0 MB")
        assert export_state(j, (39_000_000, 140_000_000), 0) == ("", "writing: 20 % of 140.0 MB")
        assert export_state(j, (140_000_000, 140_000_000), 8) == (
            "", "verifying (attempt 1): 140.0 MB written")
        assert export_state(j, (0, 0), 8) == ("", "writing and verifying (attempt 1)")

        steps = iter([(70_000_000, 140_000_000), (140_000_000, 140_000_000)])

        def advance():
            try:
                report(*next(steps))
                threading.Timer(0.3, advance).start()
            except StopIteration:
                q.complete([job.id])

        threading.Timer(0.3, advance).start()
        assert follow_exports(q, [job.id], tty=False, poll_s=0.05) is True
    finally:
        buffer.close()
    out = capsys.readouterr().out.splitlines()
    assert out == ["job 1: writing: 20 % of 140.0 MB", "job 1: writing: 50 % of 140.0 MB",
                   "job 1: verifying (attempt 1): 140.0 MB written", "job 1: written and verified"]


@pytest.mark.parametrize("flags, exported", [((), True), (("--no-mark",), False)])
def test_an_operator_export_counts_the_study_as_exported_unless_told_not_to(tmp_path, capsys, flags, exported):
    from gateway.media.rules import study_rows

    cfg = setup(tmp_path)
    assert cli.main(["export", CT_STUDY, *flags, "--config", str(cfg)]) == 0
    buffer = Buffer(tmp_path / "buffer", 0, "replace", Router(Config.model_validate({})))
    try:
        (row,) = study_rows(buffer.index)
        assert (row.study_uid, row.exported) == (CT_STUDY, exported)
        # A dead job frees the study again (the operator gave that medium up).
        (job,) = buffer.queue.claim(EXPORT, "cd", 1)
        buffer.queue.fail(job.id, "given up", None)
        assert buffer.queue.get(job.id).state == "dead"
        (row,) = study_rows(buffer.index)
        assert row.exported is False
    finally:
        buffer.close()
