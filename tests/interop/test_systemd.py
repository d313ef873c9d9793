"""The service under systemd: the shipped unit, sd_notify, and a clean stop on SIGTERM.

- config/dicom-gateway.service passes `systemd-analyze verify` and declares what the README
  promises (Type=notify, WatchdogSec, Restart=on-failure, StateDirectory, hardening).
- With NOTIFY_SOCKET / WATCHDOG_USEC / INVOCATION_ID set as systemd sets them, the real
  `dicom-gateway run` sends READY=1 (only once its port is open), STATUS=..., WATCHDOG=1 at half
  the watchdog interval, and STOPPING=1 on SIGTERM, all from the main PID (NotifyAccess=main).
- SIGTERM while a modality sends: the process exits 0 within the unit's TimeoutStopSec and, after a
  restart, every instance the sender got Success for is in the buffer, byte for byte.

A real systemd (PID 1) is not needed: the test stands where systemd would, on the notify socket.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from datasets import make_series
from fault_support import acknowledged_files, check_buffer
from peers import ROOT, require, wait_until

pytestmark = [pytest.mark.interop]

UNIT = ROOT / "config" / "dicom-gateway.service"


def unit_settings(path: Path = UNIT) -> dict[str, list[str]]:
    """Key -> values of a unit file (keys may repeat; section names are not needed here)."""
    out: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;[":
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def _seconds(value: str) -> float:
    """systemd time spans as used in the unit: '60', '60s', '1min', '1min 30s', '500ms'."""
    units = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(num) * units[unit]
    return total


def timeout_stop_s() -> float:
    return _seconds(unit_settings()["TimeoutStopSec"][-1])


# --- the unit file ------------------------------------------------------------------------------

def test_unit_file_passes_systemd_analyze_verify(tmp_path):
    exe = require("systemd-analyze", "systemd")
    gateway_exe = Path(sys.executable).parent / "dicom-gateway"
    assert gateway_exe.is_file(), f"{gateway_exe} missing: the venv is not installed with -e ."
    # verify checks that ExecStart/ExecStartPre binaries exist; on a dev box the console script
    # lives in the venv, not /usr/bin. Only the path changes; every other line is checked as shipped.
    text = UNIT.read_text().replace("/usr/bin/dicom-gateway", str(gateway_exe))
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    proc = subprocess.run([exe, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    out = (proc.stdout + proc.stderr).strip()
    if re.search(r"(User|Group|user|group).*(not found|does not exist|unknown)", out) and not _user_exists():
        # systemd 252 (Debian 12) does not resolve User=/Group= in verify, but other versions may.
        # The package creates the dicom-gateway user at install time; a test box has none, so
        # verify with root instead: only those two lines change, the rest is checked as shipped.
        text = re.sub(r"^(User|Group)=.*$", r"\1=root", text, flags=re.M)
        unit.write_text(text)
        proc = subprocess.run([exe, "verify", str(unit)], capture_output=True, text=True, timeout=60)
        out = (proc.stdout + proc.stderr).strip()
    about_unit = [line for line in out.splitlines() if UNIT.name in line or str(unit) in line]
    assert proc.returncode == 0, f"systemd-analyze verify failed (rc {proc.returncode}):\n{out}"
    assert not about_unit, "systemd-analyze verify complains about the unit:\n" + "\n".join(about_unit)


def _user_exists(name: str = "dicom-gateway") -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_unit_declares_notify_watchdog_restart_state_and_hardening():
    s = {k: v[-1] for k, v in unit_settings().items()}
    assert s["Type"] == "notify"
    assert s.get("NotifyAccess", "main") in ("main", "all")
    assert _seconds(s["WatchdogSec"]) > 0
    assert s["Restart"] == "on-failure"
    assert s["StateDirectory"] == "dicom-gateway"
    assert "run" in s["ExecStart"].split() and "--config" in s["ExecStart"].split()
    for key, want in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                      "PrivateTmp": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
                      "DevicePolicy": "closed", "CapabilityBoundingSet": "", "UMask": "0027",
                      "MemoryDenyWriteExecute": "yes", "RestrictRealtime": "yes", "ProtectClock": "yes",
                      "ProtectHostname": "yes", "ProtectProc": "invisible", "ProtectKernelTunables": "yes",
                      "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
                      "SystemCallFilter": "~@privileged @obsolete @mount @swap @reboot @raw-io @module @debug "
                                          "@cpu-emulation @clock"}.items():
        assert s.get(key) == want, f"hardening: {key}={s.get(key)!r}, want {want!r}"
    assert unit_settings()["SystemCallFilter"][0] == "@system-service"
    assert "AmbientCapabilities" not in s
    # The network and nothing else: DICOM and HTTP, journald/sd_notify/control socket, udev events.
    assert sorted(s["RestrictAddressFamilies"].split()) == ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"]
    # ProtectSystem=strict leaves only the StateDirectory writable: the default buffer must be there.
    from gateway.config import BufferSection

    assert Path(BufferSection().path) == Path("/var/lib") / s["StateDirectory"], (
        "the default buffer.path is not the unit's StateDirectory; under ProtectSystem=strict the "
        "service could not write it")
    # SIGTERM drains for up to timers.stop_drain_s (bounded in the config), then aborts and closes
    # the index: systemd must wait longer than the largest drain allowed, or it SIGKILLs mid-store.
    from gateway.config import TimersSection

    drain_max = next(m.le for m in TimersSection.model_fields["stop_drain_s"].metadata if hasattr(m, "le"))
    assert _seconds(s["TimeoutStopSec"]) >= drain_max + 10
    # Config errors (exit 2) and a buffer held by another instance (3) are not cured by restarting.
    from gateway import exit_codes

    prevent = " ".join(unit_settings()["RestartPreventExitStatus"]).split()
    assert str(exit_codes.CONFIG) in prevent and str(exit_codes.BUFFER_IN_USE) in prevent
    assert "check-config" in s["ExecStartPre"].split()


# Device class (DeviceAllow=, as in /proc/devices) -> the kernel module that registers it, loaded by
# modprobe@.service before the unit starts (an unregistered class is dropped from the ACL).
DEVICE_CLASSES = {
    "char-usb_device": None,          # USB core, always there
    "char-usb": "usblp",              # /dev/usb/lp*
    "char-ttyUSB": "usbserial",
    "char-ttyACM": "cdc_acm",
    "char-ttyS": None,                # 8250 core
    "char-ttyAMA": None,              # the Pi's PL011, built in
    "block-sr": "sr_mod",
    "char-sg": "sg",
    "block-sd": "sd_mod",
    "char-video4linux": "videodev",
    "char-input": "evdev",
    "char-i2c": "i2c_dev",
}


def test_unit_allows_exactly_the_devices_the_box_needs():
    """Printers (USB raw and usblp, serial), optical drives (sr, sg), USB sticks (sd), grabbers
    (video4linux), the panel (input, i2c; LEDs through sysfs): no more, no less, all read-write;
    and every class's driver is loaded before the unit starts."""
    allowed = {}
    for value in unit_settings()["DeviceAllow"]:
        node, _, access = value.partition(" ")
        allowed[node] = access
    assert allowed == {cls: "rw" for cls in DEVICE_CLASSES}
    wants = " ".join(unit_settings()["Wants"]).split()
    after = " ".join(unit_settings()["After"]).split()
    for cls, module in DEVICE_CLASSES.items():
        if module:
            assert f"modprobe@{module}.service" in wants and f"modprobe@{module}.service" in after, cls
    # /sys is read-only under ProtectKernelTunables=: the LEDs' files must be made writable, on the
    # symlinks' side and the real one.
    rw = " ".join(unit_settings()["ReadWritePaths"]).split()
    assert "-/sys/class/leds" in rw and "-/sys/devices/platform" in rw
    groups = unit_settings()["SupplementaryGroups"][-1].split()
    assert groups == ["dialout"], "the box's own devices come through the udev rules' group"


def test_config_error_ends_with_an_exit_code_the_unit_does_not_restart_on(tmp_path):
    bad = tmp_path / "gateway.toml"
    bad.write_text("[ae]\nbind = \"999.1.1.1\"\n")
    prevent = " ".join(unit_settings()["RestartPreventExitStatus"]).split()
    for command in ("check-config", "run"):  # ExecStartPre, then ExecStart
        r = subprocess.run([sys.executable, "-m", "gateway.cli", command, "--config", str(bad)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert str(r.returncode) in prevent and r.returncode != 0, (command, r.returncode, r.stderr)
        assert r.stderr.strip().splitlines() == ["config: ae.bind: '999.1.1.1' is not a valid IPv4 address"]


def test_unit_hardening_exposure_is_ok(tmp_path):
    exe = require("systemd-analyze", "systemd")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text())
    proc = subprocess.run([exe, "security", "--offline=true", "--no-pager", str(unit)],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 and "offline" in (proc.stderr + proc.stdout):
        pytest.skip("this systemd-analyze has no `security --offline` (needs systemd >= 250)")
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", proc.stdout)
    assert m, proc.stdout[-2000:] + proc.stderr[-2000:]
    # 0 = fully locked down, 10 = unprotected; systemd calls <= 4.9 "OK". Issue 14 asks for <= 2.0.
    print(m.group(0))
    assert float(m.group(1)) <= 2.0, proc.stdout[-3000:]


# --- sd_notify ----------------------------------------------------------------------------------

def _require_systemd_python() -> None:
    try:
        import systemd.daemon  # noqa: F401
    except ImportError:
        msg = ("needs systemd-python in the venv, which builds from source against the Debian "
               "packages libsystemd-dev and pkg-config (apt-get install libsystemd-dev pkg-config)")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


class NotifySocket:
    """Stands where systemd would: an abstract unix datagram socket, with sender credentials."""

    def __init__(self, gateway_port: int):
        self.name = f"dicom-gw-test-{os.getpid()}-{random.randrange(10**9)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.2)
        self.port = gateway_port
        self.messages: list[tuple[float, int | None, str, bool | None]] = []  # (t, pid, text, port open)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def env_value(self) -> str:
        return "@" + self.name

    def _port_open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _run(self) -> None:
        creds_size = struct.calcsize("3i")
        while not self._stop.is_set():
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(creds_size))
            except socket.timeout:
                continue
            except OSError:
                return
            pid = None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:creds_size])[0]
            text = data.decode(errors="replace")
            # systemd's own check for Type=notify: is the service really ready when it says so?
            port_open = self._port_open() if "READY=1" in text.split("\n") else None
            self.messages.append((time.monotonic(), pid, text, port_open))

    def assignments(self, key: str) -> list[tuple[float, int | None, str, bool | None]]:
        out = []
        for t, pid, text, port_open in list(self.messages):
            for line in text.split("\n"):
                if line.startswith(key + "="):
                    out.append((t, pid, line[len(key) + 1:], port_open))
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def notify_env(monkeypatch):
    """Environment as systemd sets it for a Type=notify service with WatchdogSec=2."""
    _require_systemd_python()

    def make(port: int, watchdog_pid: str | None = None) -> NotifySocket:
        ns = NotifySocket(port)
        sockets.append(ns)
        monkeypatch.setenv("NOTIFY_SOCKET", ns.env_value)
        monkeypatch.setenv("WATCHDOG_USEC", "2000000")
        if watchdog_pid is None:
            # systemd sets WATCHDOG_PID to the main PID, which the test cannot know before the
            # spawn; gateway/systemd_notify.py treats an unset WATCHDOG_PID as "for this process".
            monkeypatch.delenv("WATCHDOG_PID", raising=False)
        else:
            monkeypatch.setenv("WATCHDOG_PID", watchdog_pid)
        monkeypatch.setenv("INVOCATION_ID", "%032x" % random.getrandbits(128))
        return ns

    sockets: list[NotifySocket] = []
    yield make
    for ns in sockets:
        ns.close()


# journald = "off": INVOCATION_ID makes the gateway believe it runs under systemd, and it would then
# log only to a journal socket that this box may not have; stderr keeps its log in gateway.log.
QUIET_JOURNAL = {"logging": {"journald": "off"}}


def test_sd_notify_ready_status_watchdog_stopping(gateway_factory, notify_env):
    from peers import free_port

    port = free_port()
    ns = notify_env(port)
    gw = gateway_factory(QUIET_JOURNAL, name="gw", port=port)
    pid = gw.proc.pid

    # WATCHDOG_USEC=2 s: petted every second; wait for several.
    wait_until(lambda: len(ns.assignments("WATCHDOG")) >= 3, 15, 0.1, "three WATCHDOG=1 messages")
    ready = ns.assignments("READY")
    assert len(ready) == 1 and ready[0][2] == "1", ns.messages
    assert ready[0][3] is True, "READY=1 was sent before the DICOM port accepted connections"
    status = ns.assignments("STATUS")
    assert status and all(s[2] for s in status), ns.messages
    assert f"127.0.0.1:{port}" in status[0][2] and "EDGE" in status[0][2], status
    watchdog = ns.assignments("WATCHDOG")
    assert all(w[2] == "1" for w in watchdog)
    assert all(w[0] >= ready[0][0] for w in watchdog), "WATCHDOG before READY"
    gaps = [b[0] - a[0] for a, b in zip(watchdog, watchdog[1:])]
    # At half of WatchdogSec (1 s), never close to the 2 s at which systemd would kill it.
    assert max(gaps) < 1.8, f"watchdog gaps {gaps}"
    # NotifyAccess=main: systemd ignores messages from any other PID.
    assert {m[1] for m in ns.messages} == {pid}, [(m[1], m[2]) for m in ns.messages]

    gw.proc.send_signal(signal.SIGTERM)
    rc = gw.proc.wait(timeout_stop_s())
    assert rc == 0, gw.log[-3000:]
    stopping = ns.assignments("STOPPING")
    assert [s[2] for s in stopping] == ["1"], ns.messages
    print(f"notify messages: {[m[2] for m in ns.messages]}")


def test_no_watchdog_when_watchdog_pid_is_another_process(gateway_factory, notify_env):
    """WATCHDOG_PID names the process systemd watches; a child that inherited the variables (not
    the main PID) must not pet it. READY still comes."""
    from peers import free_port

    port = free_port()
    ns = notify_env(port, watchdog_pid=str(os.getpid()))  # the test process, not the gateway
    gw = gateway_factory(QUIET_JOURNAL, name="gw", port=port)
    wait_until(lambda: ns.assignments("READY"), 15, 0.1, "READY=1")
    time.sleep(2.5)
    assert not ns.assignments("WATCHDOG"), ns.messages
    assert gw.stop(timeout_stop_s()) == 0


def _healthz(gw) -> int:
    """The status server's /healthz code for this gateway (200 healthy, 503 not)."""
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{gw.config['status_http']['port']}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_watchdog_stops_while_the_index_is_unavailable_and_resumes(gateway_factory, notify_env):
    """WATCHDOG=1 only while /healthz answers 200: the run loop and /healthz share one check
    (gateway/status/health.py Health). The index is made unavailable the way root cannot prevent
    by permissions: index.sqlite is renamed away and a directory takes its place (the service's open
    connection keeps working on the renamed file; a fresh open, as after a restart, fails)."""
    from peers import free_port

    port = free_port()
    ns = notify_env(port)
    gw = gateway_factory(QUIET_JOURNAL, name="gw", port=port)
    wait_until(lambda: len(ns.assignments("WATCHDOG")) >= 2, 15, 0.1, "two WATCHDOG=1 messages")
    assert _healthz(gw) == 200
    index = gw.buffer / "index.sqlite"
    aside = gw.buffer / "index.sqlite.aside"
    os.rename(index, aside)
    index.mkdir()
    try:
        wait_until(lambda: "unhealthy, not petting the watchdog: index:" in gw.log, 15, 0.1,
                   "the unhealthy log line")
        assert _healthz(gw) == 503
        stopped_at = len(ns.assignments("WATCHDOG"))
        # Three ticks of the run loop (WATCHDOG_USEC=2 s: one tick a second) without a pet; systemd
        # would have killed it after two.
        time.sleep(3.5)
        assert len(ns.assignments("WATCHDOG")) == stopped_at, ns.messages[-5:]
    finally:
        index.rmdir()
        os.rename(aside, index)
    wait_until(lambda: len(ns.assignments("WATCHDOG")) > stopped_at, 15, 0.1, "WATCHDOG=1 again")
    assert "healthy again: petting the watchdog" in gw.log
    assert _healthz(gw) == 200
    assert gw.stop(timeout_stop_s()) == 0
    print(f"WATCHDOG=1 messages: {stopped_at} before the index went away, none while it was away, "
          f"{len(ns.assignments('WATCHDOG')) - stopped_at} after it came back")


# --- SIGTERM mid-transfer -----------------------------------------------------------------------

def _sigterm_rounds(tmp_path, gw, rounds: int) -> tuple[int, dict[str, Path], list[dict]]:
    """SIGTERM the gateway at a random moment while storescu sends 40 instances, `rounds` times;
    after each, check the stop was clean-ish (exit 0 in time) and, after a restart, that every
    acknowledged instance is in the buffer byte for byte. Returns the seed, the acknowledged
    instances and, per round, what storescu and the gateway said about the stop."""
    exe = require("storescu", "dcmtk")
    import pydicom

    seed = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(2**32))
    print(f"CRASH_SEED={seed}")
    rng = random.Random(seed)
    limit = timeout_stop_s()
    acked: dict[str, Path] = {}
    info: list[dict] = []
    for rnd in range(rounds):
        ctx = f"seed {seed}, round {rnd}"
        files = make_series(tmp_path / f"series-{rnd}", 40)
        err = tmp_path / f"storescu-{rnd}.log"
        log_mark = len(gw.log)
        with open(err, "wb") as errf, open(tmp_path / f"storescu-{rnd}.out", "wb") as outf:
            scu = subprocess.Popen([exe, "-v", "-aet", "STORESCU", "-aec", "EDGE", "127.0.0.1",
                                    str(gw.port), *map(str, files)], stdout=outf, stderr=errf,
                                   start_new_session=True)
            try:
                # storescu sends 40 small objects in about 2 s here (../shared/PEERS.md: Nagle, ~20/s).
                delay = rng.uniform(0.2, 1.5)
                time.sleep(delay)
                t0 = time.monotonic()
                gw.proc.send_signal(signal.SIGTERM)
                try:
                    rc = gw.proc.wait(limit)
                except subprocess.TimeoutExpired:
                    pytest.fail(f"{ctx}: still running {limit} s after SIGTERM (TimeoutStopSec): "
                                "systemd would SIGKILL it")
                took = time.monotonic() - t0
                scu.wait(60)
            finally:
                if scu.poll() is None:
                    scu.kill()
                    scu.wait(10)
        assert rc == 0, f"{ctx}: exit status {rc} after SIGTERM\n{gw.log[-3000:]}"
        scu_log = err.read_text(errors="replace")
        got = acknowledged_files(scu_log)
        for p in got:
            acked[str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)] = p
        info.append({
            "round": rnd, "delay": round(delay, 3), "exit_s": round(took, 2), "acked": len(got),
            "refused": [line for line in scu_log.splitlines()
                        if "Received Store Response (" in line and "(Success)" not in line],
            # The gateway's own errors; pynetdicom's DUL logs an aborted half-sent PDU as ERROR.
            "errors": [line for line in gw.log[log_mark:].splitlines() if " ERROR gateway." in line],
        })
        print(f"round {rnd}: SIGTERM at {delay:.3f} s, exit 0 after {took:.2f} s, "
              f"{len(got)}/40 acknowledged, refused {info[-1]['refused']}")
        gw.start()
        check_buffer(gw.buffer, acked, ctx)
    print(f"seed {seed}: {rounds} SIGTERM rounds, {len(acked)} acknowledged instances, all present")
    return seed, acked, info


def test_sigterm_mid_transfer_is_clean(tmp_path, gateway_factory):
    """SIGTERM while a modality sends: exit 0 within TimeoutStopSec; every acknowledged instance
    is kept byte for byte; and the object in hand is never answered with a failure caused by the
    stop itself (e.g. the index closed under the association: 0xC001, which a modality may treat
    as permanent): it is either stored and acknowledged, or the association ends and the
    modality sends it again."""
    gw = gateway_factory({}, name="gw")
    seed, _acked, info = _sigterm_rounds(tmp_path, gw, int(os.environ.get("SIGTERM_ROUNDS", "3")))
    refused = [(i["round"], line) for i in info for line in i["refused"]]
    errors = [(i["round"], line) for i in info for line in i["errors"]]
    assert not refused, f"seed {seed}: C-STORE refused because of the stop: {refused}"
    assert not errors, f"seed {seed}: errors logged during a clean stop: {errors}"


# --- installed: the shipped config with the shipped unit's environment -----------------------------

def test_shipped_config_keeps_its_data_in_the_state_directory(tmp_path):
    """/etc/dicom-gateway/gateway.toml as shipped, run with what the unit sets ($STATE_DIRECTORY from
    StateDirectory=): check-config (ExecStartPre) passes, and `run` keeps buffer and films in the
    state directory, writing nothing next to the (read-only) config."""
    from peers import free_port, wait_port

    etc = tmp_path / "etc"
    etc.mkdir()
    cfg = etc / "gateway.toml"
    cfg.write_text((ROOT / "config" / "gateway.toml").read_text())
    state = tmp_path / "state"
    state.mkdir()
    env = dict(os.environ, STATE_DIRECTORY=str(state))
    port = free_port()
    sets = ["--set", f"ae.port={port}", "--set", f"destinations.pacs.port={free_port()}",
            "--set", 'logging.journald="off"']
    check = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", "--config", str(cfg), *sets],
                           cwd="/", env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert f"buffer {state / 'buffer'} (relative paths against {state})" in check.stdout
    log = open(tmp_path / "gw.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(cfg), *sets],
                            cwd="/", env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        wait_port(port, 30, proc)
        assert (state / "buffer" / "index.sqlite").is_file()
        assert sorted(p.name for p in etc.iterdir()) == ["gateway.toml"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout_stop_s()) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


# --- SIGHUP ---------------------------------------------------------------------------------------

def test_sighup_is_logged_and_ignored(gateway_factory):
    exe = require("echoscu", "dcmtk")
    gw = gateway_factory()
    gw.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP received and ignored" in gw.log, 15, 0.05, "the SIGHUP log line")
    assert gw.proc.poll() is None, gw.log[-2000:]
    r = subprocess.run([exe, "-aet", "ECHOSCU", "-aec", "EDGE", "127.0.0.1", str(gw.port)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert gw.stop(timeout_stop_s()) == 0
