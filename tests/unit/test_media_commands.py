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
    assert cmds.eject("nowhere").usage
