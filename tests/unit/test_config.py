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


def test_shipped_default_config_is_valid_and_listens_on_loopback(monkeypatch):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    loaded = config.load(ROOT / "config" / "gateway.toml")
    assert loaded.config.ae.bind == "127.0.0.1"
    assert loaded.buffer_dir == ROOT / "config" / "buffer"  # a checkout: the config file's folder
    assert not loaded.config.ae.accept_unknown_callers


def test_shipped_config_under_the_unit_keeps_its_data_in_the_state_directory(monkeypatch, tmp_path):
    """Installed as /etc/dicom-gateway/gateway.toml and run by the shipped unit (StateDirectory=,
    which sets $STATE_DIRECTORY): buffer and films land there, never in read-only /etc/var/..."""
    state = tmp_path / "var-lib-dicom-gateway"
    monkeypatch.setenv("STATE_DIRECTORY", str(state))
    loaded = config.load(ROOT / "config" / "gateway.toml")
    assert loaded.buffer_dir == state / "buffer"
    assert loaded.resolve(loaded.config.print.printer.sim_out) == state / "films"
    # A CLI command run by hand has no $STATE_DIRECTORY: the installed config still finds the
    # service's buffer.
    monkeypatch.delenv("STATE_DIRECTORY")
    assert config.state_directory(Path("/etc/dicom-gateway/gateway.toml")) == Path("/var/lib/dicom-gateway")
    assert config.state_directory(tmp_path / "gw.toml") == tmp_path


def test_logging_level_in_any_case():
    assert config.load(None, ['logging.level="debug"']).config.logging.level == "DEBUG"
    assert config.load(None, ['logging.level="Warning"']).config.logging.level == "WARNING"


@pytest.mark.parametrize("override,value", [
    ('ae.title="WAYTOOLONGAETITLE17"', "WAYTOOLONGAETITLE17"),
    ('ae.bind="999.1.1.1"', "999.1.1.1"),
    ('ae.port=70000', "70000"),
])
def test_a_problem_shows_the_value_once(override, value):
    [problem] = _problems([override])
    assert problem.count(value) == 1, problem


def test_bind_address_that_is_no_ipv4_address():
    assert _problems(['ae.bind="999.1.1.1"']) == ["ae.bind: '999.1.1.1' is not a valid IPv4 address"]


def test_duplicate_peer_titles_and_a_destination_that_is_the_gateway():
    problems = _problems(['peers.ct.ae_title="CT1"', 'peers.ct2.ae_title="CT1"',
                          'destinations.loop.ae_title="EDGE"', 'destinations.loop.port=11112',
                          'destinations.loop.host="localhost"', 'destinations.pacs.ae_title="EDGE"',
                          'destinations.pacs.port=11113', 'destinations.other.ae_title="PACS"',
                          'destinations.other.port=11112'])
    # The address decides, not the AE title: whatever title a destination names, on the gateway's
    # own host and port it is the gateway that answers.
    assert problems == ["peers.ct2.ae_title: 'CT1' is also the AE title of peers.ct",
                        "destinations.loop: localhost:11112 is this gateway's own listening address (ae.bind, "
                        "ae.port): forwarding there would loop",
                        "destinations.other: 127.0.0.1:11112 is this gateway's own listening address (ae.bind, "
                        "ae.port): forwarding there would loop"]


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
    assert problems == ["routes[0].to: unknown destination 'nowhere'"]


def test_set_overrides_parse_toml_values():
    loaded = config.load(None, ["ae.port=11119", "ae.title=GW2", "buffer.delete_when_done=true",
                                "peers.ct.ae_title=\"CT1\""])
    c = loaded.config
    assert (c.ae.port, c.ae.title, c.buffer.delete_when_done) == (11119, "GW2", True)
    assert c.peer_by_ae("CT1") is not None


def _check_config(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", *args], capture_output=True,
                          text=True, cwd=kw.pop("cwd", ROOT), timeout=60, **kw)


def test_check_config_command(tmp_path):
    good = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", "--config",
                           str(ROOT / "config" / "gateway.toml"), "--set", f"ae.port={_free_port()}"],
                          capture_output=True, text=True, cwd=ROOT)
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_config_prints_what_the_readme_says(tmp_path):
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f'[ae]\nport = {_free_port()}\n[buffer]\npath = "buf"\n'
                   '[destinations.pacs]\nae_title = "PACS"\nport = 104\n')
    r = _check_config("--config", str(cfg))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"ok: {cfg}"
    assert any(line.strip() == f"buffer {tmp_path / 'buf'} (relative paths against {tmp_path})" for line in lines)
    assert any("listens as EDGE on 127.0.0.1:" in line for line in lines)
    assert any(line.strip() == "forwards to pacs: PACS@127.0.0.1:104" for line in lines)
    assert not any("captures" in line or "worklist" in line or "MPPS" in line for line in lines)
    # A box that captures says from what, and whom it asks and tells.
    cfg.write_text(cfg.read_text() + '[capture]\nenabled = true\n[capture.grabber]\nkind = "v4l2"\n'
                   '[worklist]\nenabled = true\nport = 11104\n[mpps]\nenabled = true\nport = 11105\n')
    r = _check_config("--config", str(cfg))
    assert r.returncode == 0, r.stderr
    lines = [line.strip() for line in r.stdout.splitlines()]
    assert "captures from grabber v4l2 /dev/video0 640x480 at 30 fps yuyv422, encoded jpeg-baseline" in lines
    assert "worklist from RIS@127.0.0.1:11104 every 120 s" in lines and "MPPS to RIS@127.0.0.1:11105" in lines
    readme = (ROOT / "README.md").read_text()
    assert "`ok: FILE`" in readme and "check-config" in readme


def _one_line(r: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_config_that_cannot_be_read_is_one_line(tmp_path):
    r = _check_config("--config", str(tmp_path))
    assert r.returncode == 2 and _one_line(r) == f"config: {tmp_path}: is a folder, not a config file"
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    r = _check_config("--config", str(binary))
    assert r.returncode == 2 and "not valid TOML" in _one_line(r)


def test_config_without_read_permission_is_one_line(tmp_path):
    import os
    import pwd

    if os.geteuid() != 0:
        pytest.skip("needs root, to read the config as another user")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    os.chmod(tmp_path, 0o755)
    cfg = tmp_path / "gateway.toml"
    cfg.write_text("[ae]\n")
    os.chmod(cfg, 0o600)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: as nobody, load the config root wrote
        try:
            os.close(read_end)
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            try:
                config.load(cfg)
                out = "loaded"
            except config.ConfigError as exc:
                out = "\n".join(exc.problems)
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                out = f"raised {type(exc).__name__}: {exc}"
            os.write(write_end, out.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        out = fh.read().decode()
    os.waitpid(pid, 0)
    assert out == f"{cfg}: cannot be read (permission denied for user nobody)"


@pytest.mark.parametrize("override,expected", [
    # What `run` refuses at start, `check-config` (the unit's ExecStartPre) refuses too.
    ('ae.bind="192.0.2.1"', "config: ae.bind: 192.0.2.1 is not an address of this host"),
    ('buffer.path="/proc/gw-buffer"', "config: buffer.path: cannot create /proc/gw-buffer: creating anything in /proc fails"),
    ('buffer.path="/etc/passwd/buffer"', "config: buffer.path: cannot create /etc/passwd/buffer: /etc/passwd is a file"),
    ('ae.bind="no-such-host.invalid"', "config: ae.bind: cannot resolve 'no-such-host.invalid'"),
])
def test_check_config_refuses_what_run_refuses(tmp_path, override, expected):
    r = _check_config("--config", str(_minimal(tmp_path)), "--set", override)
    assert r.returncode == 2 and _one_line(r).startswith(expected), r.stderr


def test_check_config_refuses_a_port_in_use(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = _check_config("--config", str(_minimal(tmp_path)), "--set", f"ae.port={port}")
    assert r.returncode == 2 and _one_line(r) == f"config: ae.port: 127.0.0.1:{port} is in use by another program"


def _minimal(tmp_path: Path) -> Path:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f'[ae]\nport = {_free_port()}\n[buffer]\npath = "buf"\n')
    return cfg


def test_may_retrieve_follows_may_query_and_never_goes_without_it(tmp_path):
    # Issue 11: only peers that may query may retrieve; may_retrieve = false takes retrieving away.
    from gateway.config.peers import PeerSection

    assert PeerSection(ae_title="WS", may_query=True).retrieves
    assert not PeerSection(ae_title="WS").retrieves
    assert not PeerSection(ae_title="WS", may_query=True, may_retrieve=False).retrieves
    r = _check_config("--config", str(_minimal(tmp_path)), "--set", 'peers.ws.ae_title="WS"',
                      "--set", "peers.ws.may_retrieve=true")
    assert r.returncode == 2, r.stdout
    assert "peers.ws: may_retrieve = true needs may_query = true" in _one_line(r), r.stderr
