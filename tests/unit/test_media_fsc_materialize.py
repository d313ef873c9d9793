"""materialize: the copies are made in the kernel and byte-identical, and the file-set is durable
before it returns: one syncfs(2) of the medium's file system where it reports write-back errors
(Linux >= 5.8), an fsync of every file and directory otherwise, a failed sync one line."""

from __future__ import annotations

import ctypes
import errno
import os

import pytest
from datasets import make_ct

from gateway.media import fileset as fileset_module
from gateway.media.fileset import FilesetError, materialize, plan_fileset


def _sources(tmp_path, n=4):
    folder = tmp_path / "src"
    folder.mkdir()
    out = []
    for i in range(n):
        make_ct(folder / f"s{i}.dcm", number=i + 1)
        out.append(folder / f"s{i}.dcm")
    return out


def _count_fsyncs(monkeypatch) -> list[str]:
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd))
    return calls


@pytest.mark.skipif(fileset_module._SYNCFS is None, reason="no syncfs(2) that reports errors here")
def test_one_syncfs_makes_the_copies_durable(tmp_path, monkeypatch):
    synced = []
    real = fileset_module._SYNCFS
    monkeypatch.setattr(fileset_module, "_SYNCFS",
                        lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd))
    fsyncs = _count_fsyncs(monkeypatch)
    sources = _sources(tmp_path)
    mapping = materialize(plan_fileset(sources, "STD-GEN-CD"), tmp_path / "m")
    assert synced == [str(tmp_path / "m")]
    # Only write_fileset's own: the DICOMDIR and its folder; none per copied file.
    assert sorted(fsyncs) == sorted([str(tmp_path / "m" / "DICOMDIR"), str(tmp_path / "m")])
    for rel, src in mapping[1:]:
        assert (tmp_path / "m" / rel).read_bytes() == src.read_bytes()


def test_without_syncfs_every_file_and_folder_is_fsynced(tmp_path, monkeypatch):
    monkeypatch.setattr(fileset_module, "_SYNCFS", None)
    fsyncs = _count_fsyncs(monkeypatch)
    mapping = materialize(plan_fileset(_sources(tmp_path), "STD-GEN-CD"), tmp_path / "m")
    root = tmp_path / "m"
    files = {str(root / rel) for rel, _ in mapping}
    folders = {str(p) for rel, _ in mapping for p in (root / rel).parents if root in p.parents or p == root}
    assert set(fsyncs) == files | folders


def test_a_failed_sync_is_one_line(tmp_path, monkeypatch):
    def fail(fd):
        ctypes.set_errno(errno.EIO)
        return -1
    monkeypatch.setattr(fileset_module, "_SYNCFS", fail)
    with pytest.raises(FilesetError, match=r"^cannot copy the file-set into .*: \[Errno 5\] syncfs: "
                                           r"Input/output error$"):
        materialize(plan_fileset(_sources(tmp_path), "STD-GEN-CD"), tmp_path / "m")


def test_copies_fall_back_to_sendfile_across_file_systems(tmp_path, monkeypatch):
    def cross(*args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")
    monkeypatch.setattr(os, "copy_file_range", cross, raising=False)
    sources = _sources(tmp_path)
    mapping = materialize(plan_fileset(sources, "STD-GEN-CD"), tmp_path / "m")
    assert len(mapping) == 1 + len(sources)
    for rel, src in mapping[1:]:
        assert (tmp_path / "m" / rel).read_bytes() == src.read_bytes()
