from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import GatewayProcess, Orthanc  # noqa: E402


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
    for gw in started:
        gw.stop(timeout=15)


@pytest.fixture
def orthanc_factory(tmp_path):
    started: list[Orthanc] = []

    def make(gateway_port: int, name: str = "orthanc", **kw) -> Orthanc:
        o = Orthanc(tmp_path / name, gateway_port, **kw)
        started.append(o)
        return o.start()

    yield make
    for o in started:
        o.stop()
