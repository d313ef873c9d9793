"""Issue 14 item 12 (print): `dicom-gateway print-test` never drives the printer beside the service
that holds it, and the simulated imager's films never overwrite one another, across restarts.

The service's claim on the printer is the buffer lock (gateway.buffer.lock) `run` holds for its
whole life; here a second real process holds that lock the way `run` does.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from peers import ROOT

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

HOLD = ("import sys, time; from pathlib import Path; from gateway.buffer.lock import acquire; "
        "lock = acquire(Path(sys.argv[1])); print('held', flush=True); time.sleep(120)")


def _config(films):
    return {"print": {"enabled": True, "printer": {"kind": "serial-sim", "dpi": 25,
                                                   "sim_out": str(films)}}}


def test_print_test_refuses_while_the_service_holds_the_printer(gateway_factory, tmp_path):
    films = tmp_path / "films"
    gw = gateway_factory(_config(films), start=False)
    gw.buffer.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(gw.buffer)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        done = gw.cli("print-test", "--steps", "5")
        assert done.returncode == 1, done.stdout + done.stderr
        lines = done.stdout.strip().splitlines()
        assert len(lines) == 1 and f"PID {holder.pid}" in lines[0], done.stdout
        assert "Traceback" not in done.stderr, done.stderr
        # Neither a second simulated imager nor the device was started: nothing came out.
        assert not films.exists() or not list(films.iterdir())
    finally:
        holder.kill()
        holder.wait(10)
    # The service gone, print-test prints; each run starts a fresh simulated imager, and its
    # film is added next to the earlier one instead of replacing it.
    for n in (1, 2):
        done = gw.cli("print-test", "--steps", "5")
        assert done.returncode == 0, done.stdout + done.stderr
        assert len(list(films.glob("film-*.png"))) == n
    assert sorted(p.name for p in films.glob("film-*.png")) == ["film-000001.png", "film-000002.png"]
