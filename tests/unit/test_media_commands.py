"""The front panel's media verbs in-process (Gateway.commands): export the chosen study, eject a
drive; each refusal is one line and changes nothing."""

from __future__ import annotations

import shutil

import pytest
from datasets import make_ct

from gateway.buffer.ingest import Buffer
from gateway.commands import Commands
from gateway.config import Config
from gateway.part10.attributes import read_attributes
from hwsim.media import SimulatedOpticalDrive
from peers import require


@pytest.fixture
def setup(tmp_path):
    require("xorriso", "xorriso")
    cfg = Config.model_validate({"media": {"drives": {"cd": {"kind": "optical-sim"}}}})
    buf = Buffer(tmp_path / "buf", 0, "replace", lambda attrs, source: [])
    src = tmp_path / "ct.dcm"
    ds = make_ct(src)
    tmp = buf.files.new_incoming_path()
    shutil.copyfile(src, tmp)
    buf.ingest(tmp, read_attributes(src), "CT1")
    sim = SimulatedOpticalDrive("cd", tmp_path / "sim" / "cd")
    drive = sim.drive()
    drive.start()
    woken = []

    class Exporter:
        def medium_changed(self):
            woken.append(True)

    busy = {"cd": False}
    cmds = Commands(buf.queue, cfg, drives={"cd": drive}, exporters={"cd": Exporter()}, busy=busy.get)
    yield cmds, buf, sim, str(ds.StudyInstanceUID), woken, busy
    drive.stop()
    buf.close()


def test_export_queues_and_wakes_the_drive(setup):
    cmds, buf, sim, study, woken, _ = setup
    r = cmds.export([study])
    assert r.ok and not r.refused and woken == [True]
    (res,) = r.results
    assert buf.queue.get(res.job_id).kind == "export" and "drive cd" in r.summary
    r = cmds.export(["1.2.3.999"])
    assert r.refused == "export: study 1.2.3.999 has no instance held in the buffer" and not r.usage
    r = cmds.export([study], drive="dvd")
    assert r.refused.startswith("export: unknown drive 'dvd'") and r.usage


def test_eject_refuses_while_writing_or_reading(setup):
    cmds, buf, sim, study, _, busy = setup
    sim.insert("cd", None)
    (res,) = cmds.export([study]).results
    with buf.index.tx() as cur:
        cur.execute("UPDATE jobs SET state = 'in_flight' WHERE id = ?", (res.job_id,))
    r = cmds.eject("cd")
    assert "is writing or verifying its medium" in r.refused and sim.image.exists()
    with buf.index.tx() as cur:
        cur.execute("UPDATE jobs SET state = 'queued' WHERE id = ?", (res.job_id,))
    busy["cd"] = True
    assert "is reading its medium" in cmds.eject("cd").refused and sim.image.exists()
    busy["cd"] = False
    r = cmds.eject("cd")
    assert r.ok and r.summary == "drive cd: medium released" and not sim.image.exists()
    # Again, with the drive empty: done (a tray opens), but nothing is said to be released.
    r = cmds.eject("cd")
    assert r.ok and r.summary == "drive cd: no medium in the drive (nothing to release)"
    assert cmds.eject("nowhere").usage


def test_import_refuses_while_the_drive_is_written_or_read_and_says_when_it_is_still_reading(setup):
    from concurrent.futures import Future

    from gateway.media.service import ImportOutcome

    cmds, buf, sim, study, _, busy = setup
    asked = []
    pending: Future = Future()

    def request_import(drive):
        asked.append(drive)
        return pending

    # wait_s: a refusal must come before any wait (a broken check would wait for `pending`).
    r = cmds.import_medium("cd", wait_s=1)
    assert r.refused == "import: the media service is not running" and not asked
    cmds._request_import = request_import
    r = cmds.import_medium("dvd", wait_s=1)
    assert r.refused == "import: unknown drive 'dvd' (configured: cd)" and r.usage and not asked
    (res,) = cmds.export([study]).results
    with buf.index.tx() as cur:
        cur.execute("UPDATE jobs SET state = 'in_flight' WHERE id = ?", (res.job_id,))
    r = cmds.import_medium("cd", wait_s=1)
    assert r.refused == "import: drive cd is writing or verifying its medium; try again when it is done" and not asked
    with buf.index.tx() as cur:
        cur.execute("UPDATE jobs SET state = 'queued' WHERE id = ?", (res.job_id,))
    busy["cd"] = True
    assert "import: drive cd is reading its medium (an import)" in cmds.import_medium("cd", wait_s=1).refused
    assert not asked
    busy["cd"] = False
    r = cmds.import_medium("cd", wait_s=0.1)
    assert asked == ["cd"] and r.ok and r.lines() == [
        "drive cd: still reading its medium after 0.1 s; the report when done: dicom-gateway imports"]
    # What the worker answers: a refusal, a failed import (exit 1), an import with files left out.
    for outcome, refused, lines, ok in [
        (ImportOutcome(refused="import: drive cd has no medium"), "import: drive cd has no medium", None, False),
        (ImportOutcome(ok=False, detail="xorriso: cannot read"), "",
         ["import of drive cd: xorriso: cannot read", "drive cd: the medium could not be read"], False),
        (ImportOutcome(ok=False, import_id=7,
                       detail="3 files: 2 imported, 0 duplicate, 1 skipped, 0 failed; 0 flagged"),
         "", ["import 7 of drive cd as MEDIA:cd: 3 files: 2 imported, 0 duplicate, 1 skipped, 0 failed; 0 flagged",
              "some files were not imported; the report: dicom-gateway imports 7"], False),
    ]:
        done: Future = Future()
        done.set_result(outcome)
        cmds._request_import = lambda drive, done=done: done
        r = cmds.import_medium("cd")
        assert (r.refused, r.ok) == (refused, ok) and (lines is None or r.lines() == lines), r
