"""The foot pedal in the running service (issue 10): the real `dicom-gateway run` with [capture] on
hw-sim's grabber and [capture.pedal] kind = "sim", pressed with `hw-sim pedal press` from another
process, as beside `make run`: a tap is a still in the buffer, a hold a clip (`dicom-gateway
status` counts them and names the last); a pedal whose device does not exist leaves the service
capturing without it, said in one WARNING line."""

from __future__ import annotations

import os
import subprocess
import sys

from peers import ROOT, wait_until

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "hw-sim"), os.environ.get("PYTHONPATH", "")])}


def capture_config(**pedal) -> dict:
    return {"capture": {"enabled": True, "encoding": "jpeg-baseline", "clip_s": 1.0,
                        "grabber": {"kind": "sim", "width": 320, "height": 240, "fps": 10.0},
                        "pedal": {"enabled": True, "kind": "sim", "long_press_s": 0.5, "sim_long_press_s": 1.5,
                                  **pedal}}}


def hwsim_pedal(gw, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwsim.cli", "pedal", "--pedal-dir",
                           str(gw.workdir / "hw-sim" / "pedal"), *args],
                          capture_output=True, text=True, timeout=60, env=ENV, cwd=ROOT)


def status(gw) -> str:
    return gw.cli("status").stdout


def test_a_pedal_tap_stores_a_still_and_a_hold_a_clip(gateway_factory):
    gw = gateway_factory(capture_config())
    wait_until(lambda: "signal 320x240" in status(gw), 60, what="the grabber's signal in `status`")
    wait_until(lambda: hwsim_pedal(gw, "show").returncode == 0, 30, what="the service's simulated pedal")
    r = hwsim_pedal(gw, "press")
    assert r.returncode == 0 and r.stdout.strip() == "pedal pressed", r.stdout + r.stderr
    wait_until(lambda: "1 objects captured" in status(gw), 60, what="the still in `status`")
    assert "last: still" in status(gw)
    studies = gw.cli("studies")  # the still is an instance in the buffer's index, not only a count
    assert studies.returncode == 0 and "holds no studies" not in studies.stdout, studies.stdout + studies.stderr
    r = hwsim_pedal(gw, "press", "--long")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: "last: clip of" in status(gw), 60, what="the clip in `status`")
    assert "2 objects captured" in status(gw)
    assert "foot pedal on " in gw.log and "Traceback" not in gw.log


def test_a_pedal_that_is_not_there_leaves_the_service_capturing(gateway_factory, tmp_path):
    missing = str(tmp_path / "by-id" / "usb-foot-switch-event-kbd")
    gw = gateway_factory(capture_config(kind="evdev", device=missing))
    wait_until(lambda: "signal 320x240" in status(gw), 60, what="the grabber's signal in `status`")
    wait_until(lambda: "foot pedal not started" in gw.log, 30, what="the pedal's WARNING line")
    lines = [line for line in gw.log.splitlines() if "foot pedal" in line]
    assert len(lines) == 1 and "WARNING" in lines[0] and missing in lines[0], lines
    r = gw.cli("capture")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_until(lambda: "1 objects captured" in status(gw), 60, what="a still from the CLI")
