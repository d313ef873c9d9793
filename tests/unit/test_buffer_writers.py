"""A process writing into the buffer beside the service (`dicom-gateway import`) announces itself
(buffer/lock.py writer), and a service (re)started meanwhile leaves the file cleaning of its
recovery to the next start: the import's file in flight is not deleted under it."""

from __future__ import annotations

import multiprocessing

from gateway.buffer import lock
from gateway.buffer.ingest import Buffer


def _buffer(root):
    return Buffer(root, 0, "replace", lambda attrs, source: [])


def _hold_writer(root, ready, release):
    held = lock.writer(root)
    ready.set()
    release.wait(30)
    held.close()


def test_recovery_leaves_files_alone_while_a_writer_works(tmp_path):
    buf = _buffer(tmp_path)
    partial = buf.files.new_incoming_path()
    partial.write_bytes(b"half an import")
    (buf.files.objects / "20261129").mkdir()
    unindexed = buf.files.objects / "20261129" / "placed-not-yet-indexed.dcm"
    unindexed.write_bytes(b"renamed in, index row not committed yet")
    # The writer is another process, as the CLI is beside the service.
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    writer = ctx.Process(target=_hold_writer, args=(tmp_path, ready, release))
    writer.start()
    try:
        assert ready.wait(30)
        done = buf.recover()
        assert done["partial_files"] == 0 and done["orphan_files"] == 0
        assert partial.exists() and unindexed.exists()
    finally:
        release.set()
        writer.join(30)
    done = buf.recover()  # the next start cleans
    assert done["partial_files"] == 1 and done["orphan_files"] == 1
    assert not partial.exists() and not unindexed.exists()
    buf.close()
