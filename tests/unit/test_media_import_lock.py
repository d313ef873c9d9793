"""`dicom-gateway import` with no service running holds the buffer's lock while it imports: a
service starting meanwhile would run its recovery, which empties incoming/ (where the import's
copies wait) and deletes files not yet indexed. Beside a running service it takes no lock."""

from __future__ import annotations

import os

import tomli_w

from gateway import cli
from gateway.buffer import lock as buffer_lock
from gateway.media import importer


def _config(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text(tomli_w.dumps({"buffer": {"path": str(tmp_path / "buf")},
                                   "ae": {"bind": "127.0.0.1", "port": 11999}}))
    return path


def test_the_import_holds_the_buffer_when_no_service_runs(tmp_path, monkeypatch, capsys):
    seen = []
    real = importer.import_tree

    def spy(root, label, intake, new_incoming_path, **kw):
        seen.append(buffer_lock.holder(tmp_path / "buf"))
        return real(root, label, intake, new_incoming_path, **kw)

    monkeypatch.setattr(importer, "import_tree", spy)
    (tmp_path / "empty").mkdir()
    assert cli.main(["import", str(tmp_path / "empty"), "--config", str(_config(tmp_path))]) == 0
    assert seen == [os.getpid()]
    assert buffer_lock.holder(tmp_path / "buf") is None  # given back afterwards
    assert "0 files: 0 imported" in capsys.readouterr().out


def test_beside_a_service_the_import_takes_no_lock(tmp_path, monkeypatch, capsys):
    (tmp_path / "buf").mkdir()
    service = buffer_lock.acquire(tmp_path / "buf")  # stands for the running service's lock
    try:
        took = []
        monkeypatch.setattr(buffer_lock, "acquire", lambda *a, **k: took.append(a))
        (tmp_path / "empty").mkdir()
        assert cli.main(["import", str(tmp_path / "empty"), "--config", str(_config(tmp_path))]) == 0
        assert took == []
    finally:
        service.close()
