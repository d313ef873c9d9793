from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from leak_check import pytest_configure, pytest_sessionfinish  # noqa: E402,F401  (the run's last check)
from peers import GatewayProcess, Orthanc, kill_group  # noqa: E402
from source_entry_points import ensure as _ensure_entry_points  # noqa: E402

# hw-sim's device kinds are entry points; a venv installed before they were declared lacks them.
_ensure_entry_points(Path(__file__).resolve().parents[1])


def _stop_all(started: list, stop) -> None:
    """Stop every peer even when stopping one of them fails; then raise the first failure."""
    errors = []
    for peer in started:
        try:
            stop(peer)
        except Exception as exc:  # noqa: BLE001 - the others must still be stopped
            errors.append(exc)
            if peer.proc is not None and peer.proc.poll() is None:
                kill_group(peer.proc)
    if errors:
        raise errors[0]


@pytest.fixture
def gateway_factory(tmp_path):
    """Start real `dicom-gateway run` processes; every one is stopped at the end of the test."""
    started: list[GatewayProcess] = []

    def make(config: dict | None = None, name: str = "gw", port: int | None = None, start: bool = True):
        workdir = tmp_path / name
        workdir.mkdir(exist_ok=True)
        gw = GatewayProcess(workdir, config, port)
        started.append(gw)
        return gw.start() if start else gw

    yield make
    _stop_all(started, lambda gw: gw.stop(timeout=15))


@pytest.fixture
def orthanc_factory(tmp_path):
    started: list[Orthanc] = []

    def make(gateway_port: int, name: str = "orthanc", **kw) -> Orthanc:
        o = Orthanc(tmp_path / name, gateway_port, **kw)
        started.append(o)
        return o.start()

    yield make
    _stop_all(started, lambda o: o.stop())


@pytest.fixture
def late_orthanc(tmp_path):
    """An Orthanc whose ports are known before it runs (the PACS starts later in the test)."""
    made: list[Orthanc] = []

    def make(gateway_port: int) -> Orthanc:
        o = Orthanc(tmp_path / "orthanc", gateway_port)
        made.append(o)
        return o

    yield make
    _stop_all(made, lambda o: o.stop())


@pytest.fixture
def browser():
    """Headless Chromium (tests/browser_support.py), quit after the test whatever happened."""
    from browser_support import chromium

    b = chromium()
    yield b
    b.quit()
