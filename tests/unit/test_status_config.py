"""`[status_http]` is strict like every section: defaults serve on loopback, a bind address off
loopback needs a token, and check-config refuses what run would refuse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway import config
from gateway.config.status_http import is_loopback

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token-of-24-chars"


def _problems(overrides: list[str]) -> list[str]:
    try:
        config.load(None, overrides)
    except config.ConfigError as exc:
        return exc.problems
    return []


def test_defaults_serve_on_loopback_without_a_token():
    c = config.load(None, []).config.status_http
    assert (c.enabled, c.bind, c.port, c.token, c.sse_max_clients) == (True, "127.0.0.1", 8080, "", 4)
    shipped = config.load(ROOT / "config" / "gateway.toml").config.status_http
    assert shipped.bind == "127.0.0.1" and not shipped.token


@pytest.mark.parametrize("override,problem", [
    ("status_http.port=0", "status_http.port: Input should be greater than or equal to 1 (got 0)"),
    ("status_http.port=70000", "status_http.port: Input should be less than or equal to 65535 (got 70000)"),
    ('status_http.port="8080"', "status_http.port: Input should be a valid integer (got '8080')"),
    ("status_http.sse_max_clients=0", "status_http.sse_max_clients: Input should be greater than or equal to 1 (got 0)"),
    ("status_http.sse_max_clients=1000", "status_http.sse_max_clients: Input should be less than or equal to 32 (got 1000)"),
    ("status_http.colour=1", "status_http.colour: unknown key"),
    ('status_http.bind="999.1.1.1"', "status_http.bind: '999.1.1.1' is not a valid IPv4 address"),
    ('status_http.enabled="yes"', "status_http.enabled: Input should be a valid boolean (got 'yes')"),
])
def test_bad_values_name_their_key(override, problem):
    assert _problems([override]) == [problem]


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.0.2.7", "::", "gateway.example.org"])
def test_off_loopback_needs_a_token(bind):
    (problem,) = _problems([f'status_http.bind="{bind}"'])
    assert problem.startswith(f"status_http.bind: {bind} is not loopback: set status_http.token")
    assert not _problems([f'status_http.bind="{bind}"', f'status_http.token="{TOKEN}"'])
    # Off, it may say anything: nothing listens.
    assert not _problems([f'status_http.bind="{bind}"', "status_http.enabled=false"])


def test_a_weak_token_is_refused_without_being_shown():
    (problem,) = _problems(['status_http.token="short secret"'])
    assert problem.startswith("status_http.token: must be at least 16") and "short" not in problem.split(":", 1)[1]


def test_the_dicom_port_is_not_the_status_port():
    assert _problems(["status_http.port=11112"]) == [
        "status_http.port: 11112 is also the DICOM port (ae.port) on that address"]
    assert not _problems(["status_http.port=11112", "ae.port=11113"])


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True),
                                           ("localhost", True), ("0.0.0.0", False), ("::", False),
                                           ("10.0.0.1", False), ("box.local", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_check_config_refuses_a_non_loopback_bind_without_a_token(tmp_path):
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[buffer]\npath = "buf"\n[status_http]\nbind = "0.0.0.0"\n')
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", "--config", str(cfg)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "config: status_http.bind: 0.0.0.0 is not loopback: set status_http.token (every request must then "
        "send 'Authorization: Bearer <token>'), or bind 127.0.0.1"], r.stderr
