"""The buffer on the power-cut test bed (tests/powercut_fs.py): what this module's code makes
durable survives a cut; the first of issue 13's checks, the campaign builds on them."""

from __future__ import annotations

import shutil
from pathlib import Path

from datasets import make_ct
from powercut_support import powercut_mount  # noqa: F401 - the fixture

from gateway.buffer.ingest import Buffer, Outcome
from gateway.part10.attributes import read_attributes


def test_a_fresh_buffer_and_an_acknowledged_object_survive_a_power_cut(powercut_mount, tmp_path):  # noqa: F811
    # A fresh box: the buffer directory does not exist yet. Everything ingest() returned for must
    # be there after the cut, the directories that hold it included.
    src = tmp_path / "ct.dcm"
    ds = make_ct(src)
    root = Path(powercut_mount.path) / "var" / "buffer"
    buf = Buffer(root, 0, "replace", lambda attrs, calling: [])
    tmp = buf.files.new_incoming_path()
    shutil.copyfile(src, tmp)
    assert buf.ingest(tmp, read_attributes(src), "MOD").outcome is Outcome.STORED
    buf.index.close()
    powercut_mount.cut()
    buf = Buffer(root, 0, "replace", lambda attrs, calling: [])
    (row,) = buf.index.query("SELECT sop_uid, path FROM instances")
    assert row["sop_uid"] == ds.SOPInstanceUID
    assert (root / row["path"]).read_bytes() == src.read_bytes()
    buf.index.close()
