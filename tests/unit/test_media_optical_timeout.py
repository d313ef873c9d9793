"""A drive that stops answering: xorriso hangs with its output open. The burn's timeout must still
end it with a one-line WriteFailed, not block the export worker forever."""

from __future__ import annotations

import pytest

from drivers.media.interface import WriteFailed
from drivers.media.optical import OpticalDrive


def test_a_hung_xorriso_is_cut_at_the_timeout(tmp_path):
    hung = tmp_path / "xorriso"
    hung.write_text("#!/bin/sh\necho 'xorriso : UPDATE : still here'\nexec sleep 60\n")
    hung.chmod(0o755)
    drive = OpticalDrive("cd", "/dev/sr0", xorriso=str(hung), timeout_s=1.0)
    with pytest.raises(WriteFailed) as exc:
        drive._run(["-outdev", "/dev/sr0", "-toc"])
    assert "did not finish within 1 s" in str(exc.value) and "\n" not in str(exc.value)
