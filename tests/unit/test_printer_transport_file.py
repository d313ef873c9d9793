import os
import subprocess

import numpy as np
import pytest

from drivers.printer.interface import Printer, PrinterNotReady, PrintJob
from drivers.printer.postscript import PostScriptLanguage
from drivers.printer.transport_file import FileTransport


def test_each_job_is_one_complete_file(tmp_path):
    t = FileTransport(tmp_path, suffix=".ps", min_free_bytes=0)
    p = Printer(t, PostScriptLanguage())
    p.print_film(PrintJob(np.zeros((10, 8), np.uint8), 10))
    p.print_film(PrintJob(np.ones((10, 8), np.uint8), 10))
    files = sorted(tmp_path.iterdir())
    assert len(files) == 2 and all(f.suffix == ".ps" for f in files)
    assert t.last_path.read_bytes().startswith(b"%!PS-Adobe-3.0")
    assert not any(f.name.startswith(".") for f in files)


def test_missing_folder_is_offline(tmp_path):
    p = Printer(FileTransport(tmp_path / "nope"), PostScriptLanguage())
    assert not p.status().online
    with pytest.raises(PrinterNotReady):
        p.print_film(PrintJob(np.zeros((2, 2), np.uint8), 10))


def test_full_disk_is_receiver_full(tmp_path):
    t = FileTransport(tmp_path, min_free_bytes=1 << 62)
    assert t.status().receiver_full


def test_read_only_folder_is_offline(tmp_path):
    if os.geteuid() == 0:
        # Root writes through permission bits; a read-only mount stops even root (EROFS).
        folder = tmp_path / "ro"
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
        try:
            assert not FileTransport(folder).status().online
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    tmp_path.chmod(0o500)
    try:
        assert not FileTransport(tmp_path).status().online
    finally:
        tmp_path.chmod(0o700)
