"""The front panel in the running service (issue 9 items 1-3 wired): the real `dicom-gateway run`
with hw-sim's panel under the real drivers, read and pressed with `hw-sim panel` from another
process, as an operator does beside `make run`; a CT sent with DCMTK storescu.

- at start: READY on the display, the power LED steady;
- one CT in, its destination down (nothing listens on its port): the activity LED flickers, the
  network LED blinks slowly, the display says PACS DOWN and counts the forward job waiting;
- `hw-sim panel press next` prints the studies screen, the patient's name;
- `hw-sim panel press export --long` on it: an export job in `dicom-gateway queue list`;
- hardware that is not there (an LED label missing): the service runs without the panel, says why
  in one line, and still stores;
- the status page's port taken: a config-problem, shown on the panel as an alarm, ACK steadies it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pydicom
from peers import ROOT, TEST_FILES, free_port, storescu, wait_until

from hwsim.panel import led_pattern

CT = TEST_FILES / "CT_small.dcm"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "hw-sim"), os.environ.get("PYTHONPATH", "")])}
FLICKER = (50, 150)  # gateway/panel/leds.py FLICKER, as the LED's timer trigger delays


def panel_config(tmp_path: Path) -> dict:
    return {
        "destinations": {"pacs": {"ae_title": "TESTPACS", "host": "127.0.0.1", "port": free_port()}},
        "routes": [{"to": ["pacs"]}],
        "media": {"drives": {"cd": {"kind": "optical-sim", "sim_dir": str(tmp_path / "media")}}},
        "panel": {"kind": "sim", "long_press_s": 0.5, "sim_long_press_s": 1.5},
    }


def hwsim_panel(gw, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwsim.cli", "panel", "--panel-dir",
                           str(gw.workdir / "hw-sim" / "panel"), *args],
                          capture_output=True, text=True, timeout=60, env=ENV, cwd=ROOT)


def healthz(gw) -> int:
    """/healthz's status: 200 only while every worker thread runs, the panel's included."""
    url = f"http://127.0.0.1:{gw.config['status_http']['port']}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def shown(gw) -> str:
    """`hw-sim panel show`'s output; "" until the service has started its panel (the DICOM port,
    which the tests wait for, is bound before the panel starts)."""
    r = hwsim_panel(gw, "show")
    return r.stdout if r.returncode == 0 else ""


def test_the_panel_shows_the_service_and_its_buttons_act(gateway_factory, tmp_path):
    gw = gateway_factory(panel_config(tmp_path))
    wait_until(lambda: "|READY" in shown(gw), 30, what="READY on the simulated display")
    out = shown(gw)
    assert "power: on" in out and "activity: off" in out, out

    # The activity LED flickers about 2 s: watched in the LED's files from before the C-STORE.
    led = gw.workdir / "hw-sim" / "panel" / "leds" / "panel:green:activity"
    seen, done = [], threading.Event()

    def watch():
        while not done.is_set():
            p = led_pattern(led)
            if (p.on_ms, p.off_ms) == FLICKER:
                seen.append(p)
                return
            done.wait(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    r = storescu(gw.port, [CT])
    assert r.returncode == 0 and "Received Store Response (Success)" in r.stderr + r.stdout, r.stderr
    wait_until(lambda: seen, 30, what="the activity LED to flicker")
    done.set()
    # The forward fails (nothing listens there): the network LED and the display say so, and the
    # housekeeping tick's count shows the job waiting.
    wait_until(lambda: "network: blink-slow" in shown(gw), 30, what="the network LED for pacs down")
    wait_until(lambda: "|PACS DOWN" in shown(gw) and "QUEUE 1" in shown(gw), 30,
               what="PACS DOWN and the forward job counted on the display")

    # `press` prints the panel as the service left it after the press, not as it was before.
    r = hwsim_panel(gw, "press", "next", "--settle", "20")
    assert r.returncode == 0, r.stderr
    name = str(pydicom.dcmread(CT, stop_before_pixels=True).PatientName).replace("^", " ")[:16]
    assert r.stdout.startswith("pressed next\n") and f"|{name}" in r.stdout, r.stdout

    r = hwsim_panel(gw, "press", "export", "--long", "--settle", "20")
    assert r.returncode == 0, r.stderr
    assert "EXPORT OK" in r.stdout, r.stdout  # answered while held: printed once released
    listed = gw.cli("queue", "list")
    assert listed.returncode == 0, listed.stderr
    assert "cd: 1 queued" in listed.stdout and re.search(r"^\s+\d+ export\s+queued ", listed.stdout, re.M), \
        listed.stdout
    assert healthz(gw) == 200
    assert "Traceback" not in gw.log and "front panel not started" not in gw.log
    assert gw.stop() == 0


def test_missing_panel_hardware_leaves_the_service_running(gateway_factory, tmp_path):
    cfg = panel_config(tmp_path)
    cfg["panel"]["leds_root"] = str(tmp_path / "no-leds")  # kind linux: sysfs LEDs that are not there
    cfg["panel"]["kind"] = "linux"
    cfg["panel"]["display"] = "none"
    gw = gateway_factory(cfg)
    r = storescu(gw.port, [CT])
    assert r.returncode == 0 and "Received Store Response (Success)" in r.stderr + r.stdout, r.stderr
    lines = [line for line in gw.log.splitlines() if "front panel not started" in line]
    assert len(lines) == 1 and "WARNING" in lines[0] and "runs without it" in lines[0], gw.log
    assert "no-leds" in lines[0], lines[0]  # the part named, as the driver said it
    assert healthz(gw) == 200  # a panel that never started is not a dead thread
    assert "Traceback" not in gw.log
    assert gw.stop() == 0


def test_a_box_without_a_panel_runs_none(gateway_factory, tmp_path):
    cfg = panel_config(tmp_path)
    cfg["panel"]["enabled"] = False
    gw = gateway_factory(cfg)
    r = storescu(gw.port, [CT])
    assert r.returncode == 0 and "Received Store Response (Success)" in r.stderr + r.stdout, r.stderr
    assert healthz(gw) == 200
    # No simulated panel was made, so `hw-sim panel show` finds none; no warning about it either.
    assert shown(gw) == "" and not (gw.workdir / "hw-sim" / "panel" / "panel.json").exists()
    assert "front panel" not in gw.log and "Traceback" not in gw.log
    assert gw.stop() == 0


def test_a_config_problem_at_run_time_is_an_alarm_on_the_panel(gateway_factory, tmp_path):
    # The status page's port is taken: the service runs on without its page (a config-problem
    # event), and the panel shows it as an alarm until acknowledged.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = {**panel_config(tmp_path), "status_http": {"port": taken.getsockname()[1]}}
        gw = gateway_factory(cfg)
        wait_until(lambda: "|!CONFIG PROBLEM" in shown(gw), 30, what="the config problem on the display")
        out = shown(gw)
        assert "|status_http.port" in out and "error: blink-fast" in out, out
        r = hwsim_panel(gw, "press", "ack")
        assert r.returncode == 0, r.stderr
        # Acknowledged, still standing (the page is still not served): the error LED steady.
        wait_until(lambda: "error: on" in shown(gw), 30, what="the acknowledged alarm's steady LED")
        # `status` names it too (the snapshot's config_problems).
        r = gw.cli("status")
        assert r.returncode == 0, r.stderr
        assert re.search(r"CONFIG PROBLEM since .*: status_http\.port: ", r.stdout), r.stdout
        assert "Traceback" not in gw.log
        assert gw.stop() == 0
