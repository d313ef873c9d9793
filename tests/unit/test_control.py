"""The control channel (gateway/control.py): `<buffer>/control.sock`, one JSON request per
connection to the running service, one JSON answer; every malformed request answered in one
line; no service -> a precise error; a stale socket left by a kill -9 replaced."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from gateway import control
from gateway.buffer import lock as buffer_lock
from gateway.buffer.queue import VerbResult
from gateway.commands import CommandResult
from gateway.control import ControlError, ControlServer, NoService, Verb, request


def _echo(drive: str) -> CommandResult:
    if drive == "nowhere":
        return CommandResult("eject", refused=f"eject: unknown drive {drive!r}", usage=True)
    return CommandResult("eject", summary=f"drive {drive}: medium released")


@pytest.fixture
def served(tmp_path):
    """A ControlServer on a buffer folder whose lock this process holds; its verbs: eject (as
    above), slow (waits for `release`), boom (raises), items (results and a failure)."""
    root = tmp_path / "buffer"
    root.mkdir()
    held = buffer_lock.acquire(root)
    release = threading.Event()

    def slow() -> CommandResult:
        release.wait(10)
        return CommandResult("slow", summary="slow done")

    def boom() -> CommandResult:
        raise RuntimeError("the drive\nexploded")

    def items(n: int) -> CommandResult:
        return CommandResult("items", (VerbResult(None, True, f"{n} read", changed=False),), "summary line",
                             failed=True)

    server = ControlServer(root, held, {"eject": Verb(_echo, {"drive": str}), "slow": Verb(slow, {}),
                                        "boom": Verb(boom, {}), "items": Verb(items, {"n": int})})
    server.start()
    yield root, server, release
    release.set()
    server.stop()
    held.close()


def _raw(root, data: bytes, shut: bool = True) -> dict:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(str(root / "control.sock"))
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        return json.loads(s.makefile("rb").readline())
    finally:
        s.close()


def test_a_request_gets_the_command_result_as_plain_data(served):
    root, server, _ = served
    mode = stat.S_IMODE(os.stat(root / "control.sock").st_mode)
    assert stat.S_ISSOCK(os.stat(root / "control.sock").st_mode) and mode == 0o600
    assert request(root, "eject", 5, drive="cd") == {
        "verb": "eject", "ok": True, "refused": "", "usage": False, "summary": "drive cd: medium released",
        "lines": ["drive cd: medium released"]}
    a = request(root, "eject", 5, drive="nowhere")
    assert a["refused"] == "eject: unknown drive 'nowhere'" and a["usage"] and not a["ok"]
    a = request(root, "items", 5, n=3)
    assert a["lines"] == ["3 read", "summary line"] and not a["ok"] and not a["refused"]


@pytest.mark.parametrize("data, words", [
    (b"eject cd\n", "control: the request is not JSON"),
    (b"\xff\xfe\n", "control: the request is not JSON"),
    (b'["eject"]\n', 'control: a request is one JSON object {"verb": NAME, "args": {...}}'),
    (b'{"verb": "eject", "args": ["cd"]}\n', 'control: a request is one JSON object'),
    (b'{"verb": "eject", "args": {"drive": "cd"}, "as": "root"}\n', "control: unknown request keys ['as']"),
    (b'{"verb": "format", "args": {}}\n', "control: unknown verb 'format' (verbs: boom, eject, items, slow)"),
    (b'{"verb": "eject", "args": {}}\n', "eject: argument 'drive' is missing"),
    (b'{"verb": "eject", "args": {"drive": 3}}\n', "eject: argument 'drive' must be a str"),
    (b'{"verb": "items", "args": {"n": true}}\n', "items: argument 'n' must be a int"),
    (b'{"verb": "eject", "args": {"drive": "cd", "force": true}}\n',
     "eject: unknown arguments ['force'] (takes: drive)"),
])
def test_a_malformed_request_is_answered_in_one_line_and_nothing_runs(served, data, words):
    root, _, _ = served
    a = _raw(root, data)
    assert a["refused"].startswith(words) and "\n" not in a["refused"] and a["lines"] == [a["refused"]]
    assert a["usage"] and not a["ok"]


def test_an_oversized_request_is_refused_without_reading_it_all(served):
    root, _, _ = served
    a = _raw(root, b"{" + b" " * (control.MAX_REQUEST_BYTES + 10), shut=False)
    assert a["refused"] == f"control: request larger than {control.MAX_REQUEST_BYTES} bytes"


def test_a_silent_client_is_answered_after_the_read_timeout(served, monkeypatch):
    root, _, _ = served
    monkeypatch.setattr(control, "READ_TIMEOUT_S", 0.3)
    t0 = time.monotonic()
    a = _raw(root, b'{"verb": "eje', shut=False)
    assert a["refused"] == "control: no complete request within 0.3 s" and time.monotonic() - t0 < 5


def test_a_verb_that_raises_is_one_line_and_the_server_goes_on(served, caplog):
    root, _, _ = served
    a = request(root, "boom", 5)
    assert a["refused"] == "boom: internal error in the service: RuntimeError: the drive exploded"
    assert not a["usage"] and "Traceback" not in json.dumps(a)
    assert "control: boom failed" in caplog.text
    assert request(root, "eject", 5, drive="cd")["ok"]


def test_a_slow_verb_does_not_block_another_request(served):
    root, _, release = served
    answers = []
    t = threading.Thread(target=lambda: answers.append(request(root, "slow", 10)))
    t.start()
    time.sleep(0.2)
    # Answered while the slow verb still runs (no clock: the slow one waits for `release`).
    assert request(root, "eject", 5, drive="cd")["ok"]
    assert t.is_alive() and not answers
    release.set()
    t.join(10)
    assert answers[0]["summary"] == "slow done"


def test_requests_beyond_the_cap_are_told_to_try_again_and_the_cap_frees(served, monkeypatch):
    import gateway.control as control

    root, server, release = served
    server.stop()
    monkeypatch.setattr(control, "MAX_CONNECTIONS", 1)
    server.start()
    answers = []
    t = threading.Thread(target=lambda: answers.append(request(root, "slow", 10)))
    t.start()
    while not answers and server._server.slots._value:  # the slow request holds the only slot
        time.sleep(0.01)
    busy = request(root, "eject", 5, drive="cd")
    assert busy["refused"] == "control: 1 requests are already being served; try again" and not busy["ok"]
    release.set()
    t.join(10)
    assert answers[0]["summary"] == "slow done"
    # The slot is freed once the server's thread is done, just after the answer went out.
    deadline = time.monotonic() + 10
    while server._server.slots._value == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert request(root, "eject", 5, drive="cd")["ok"]


def test_a_client_timeout_is_a_precise_error(served):
    root, _, _ = served
    with pytest.raises(ControlError, match="^the service did not answer 'slow' within 0.3 s$"):
        request(root, "slow", 0.3)


def test_no_service_is_a_precise_error(tmp_path):
    with pytest.raises(NoService, match=f"^no service is listening on {tmp_path / 'control.sock'}$"):
        request(tmp_path, "eject", 5, drive="cd")
    with pytest.raises(NoService, match="no such folder"):
        request(tmp_path / "nowhere", "eject", 5, drive="cd")
    # A socket file nobody listens on (the service was killed): refused, said the same way.
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "control.sock"))
    s.close()
    with pytest.raises(NoService, match="^no service is listening on"):
        request(tmp_path, "eject", 5, drive="cd")


def test_a_stale_socket_from_a_killed_service_is_replaced_and_removed_at_stop(tmp_path):
    root = tmp_path / "buffer"
    root.mkdir()
    # A process that listens on control.sock and dies by SIGKILL: its socket file stays behind.
    child = subprocess.Popen([sys.executable, "-c", (
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()\n"
        "print('up', flush=True); time.sleep(60)\n"), str(root / "control.sock")], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"up\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    stale = os.stat(root / "control.sock")
    assert stat.S_ISSOCK(stale.st_mode)
    with pytest.raises(NoService):
        request(root, "eject", 5, drive="cd")

    held = buffer_lock.acquire(root)
    server = ControlServer(root, held, {"eject": Verb(_echo, {"drive": str})})
    try:
        server.start()
        # A new socket: bound beside the stale one and renamed over it.
        assert os.stat(root / "control.sock").st_ino != stale.st_ino
        assert request(root, "eject", 5, drive="cd")["ok"]
        assert sorted(p.name for p in root.iterdir()) == ["control.sock", "gateway.lock"]  # no temp name left
    finally:
        server.stop()
        held.close()
    assert not (root / "control.sock").exists()
    with pytest.raises(NoService):
        request(root, "eject", 5, drive="cd")


def test_the_server_needs_the_lock_of_its_own_buffer(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    held = buffer_lock.acquire(tmp_path / "a")
    try:
        with pytest.raises(ValueError, match="is not the lock of buffer"):
            ControlServer(tmp_path / "b", held, {})
    finally:
        held.close()


def test_a_buffer_folder_deeper_than_a_socket_path_holds(tmp_path):
    # sun_path holds 107 bytes; a buffer under a long state directory still gets its channel.
    root = tmp_path / ("d" * 100) / "buffer"
    root.mkdir(parents=True)
    assert len(str(root / "control.sock")) > 107
    held = buffer_lock.acquire(root)
    server = ControlServer(root, held, {"eject": Verb(_echo, {"drive": str})})
    try:
        server.start()
        assert request(root, "eject", 5, drive="usb")["summary"] == "drive usb: medium released"
    finally:
        server.stop()
        held.close()
    assert not (root / "control.sock").exists()
