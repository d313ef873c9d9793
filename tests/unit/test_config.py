"""The config is strict: every problem named with its dotted key; defaults run the appliance."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gateway import config

ROOT = Path(__file__).resolve().parents[2]


def _problems(overrides: list[str], text: str | None = None) -> list[str]:
    with tempfile.TemporaryDirectory() as d:
        path = None
        if text is not None:
            path = Path(d) / "gateway.toml"
            path.write_text(text)
        try:
            config.load(path, overrides)
        except config.ConfigError as exc:
            return exc.problems
    return []


def test_shipped_default_config_is_valid_and_listens_on_loopback():
    loaded = config.load(ROOT / "config" / "gateway.toml")
    assert loaded.config.ae.bind == "127.0.0.1"
    assert loaded.buffer_dir == (ROOT / "var" / "buffer").resolve()  # relative to the config file
    assert not loaded.config.ae.accept_unknown_callers


def test_unknown_keys_are_named():
    assert _problems(["ae.prot=1", "buffer.pth=\"x\""]) == ["ae.prot: unknown key", "buffer.pth: unknown key"]


def test_every_problem_is_listed_not_just_the_first():
    problems = _problems(["ae.port=70000", "ae.title=\"A\\\\B\"", "timers.association_s=0",
                          "buffer.duplicate_policy=\"newest\""])
    keys = sorted(p.split(":")[0] for p in problems)
    assert keys == ["ae.port", "ae.title", "buffer.duplicate_policy", "timers.association_s"]
    assert any("70000" in p for p in problems)


@pytest.mark.parametrize("override,key", [
    ("ae.title=\"WAYTOOLONGAETITLE17\"", "ae.title"),
    ("ae.title=\"   \"", "ae.title"),
    ("ae.bind=\"not a host!\"", "ae.bind"),
    ("ae.max_pdu=100", "ae.max_pdu"),
    ("ae.port=\"104\"", "ae.port"),  # strict: a string is not a port
    ("timers.session_s=1", "timers.session_s"),
    ("buffer.reserve_mb=-1", "buffer.reserve_mb"),
    ("logging.level=\"LOUD\"", "logging.level"),
])
def test_bad_values_name_their_key(override, key):
    problems = _problems([override])
    assert len(problems) == 1 and problems[0].startswith(key + ":"), problems


def test_destination_and_route_checks():
    text = """
[destinations.pacs]
ae_title = "PACS"
port = 104
retry_initial_s = 100
retry_max_s = 10

[[routes]]
to = ["nowhere"]
"""
    problems = _problems([], text)
    assert any(p.startswith("destinations.pacs:") and "retry_max_s" in p for p in problems), problems
    text_ok_dest = text.replace("retry_initial_s = 100", "retry_initial_s = 1")
    problems = _problems([], text_ok_dest)
    assert problems == ["(top level): routes[0].to: unknown destination 'nowhere'"]


def test_set_overrides_parse_toml_values():
    loaded = config.load(None, ["ae.port=11119", "ae.title=GW2", "buffer.delete_when_done=true",
                                "peers.ct.ae_title=\"CT1\""])
    c = loaded.config
    assert (c.ae.port, c.ae.title, c.buffer.delete_when_done) == (11119, "GW2", True)
    assert c.peer_by_ae("CT1") is not None


def test_check_config_command(tmp_path):
    good = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", "--config",
                           str(ROOT / "config" / "gateway.toml")], capture_output=True, text=True, cwd=ROOT)
    assert good.returncode == 0 and good.stdout.startswith("ok")
    bad = tmp_path / "bad.toml"
    bad.write_text("[ae]\nport = 0\ncolour = 'blue'\n")
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", "--config", str(bad)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "ae.port:" in r.stderr and "ae.colour: unknown key" in r.stderr
    missing = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", "--config",
                              str(tmp_path / "none.toml")], capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2 and "no such config file" in missing.stderr
