"""The checkout's entry points, visible even in a venv installed before pyproject declared them.

The device registry finds hw-sim's simulators (``kind = "serial-sim"``) only through the
``dicom_gateway.devices`` entry points, which pip writes into the venv at install time.  A fresh
venv (``make test``, CI) has them; a venv installed from an older pyproject.toml does not, and the
suite would then fail for a stale install rather than for the code.  So, only when some declared
entry point is missing, the conftest puts a small stand-in distribution (a ``.dist-info`` holding
pyproject's entry-point table, nothing else) on ``sys.path`` and on ``PYTHONPATH`` for the gateway
processes the tests start.  The production lookup is the same in both cases: importlib.metadata.
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import sys
import tempfile
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

DIST_NAME = "dicom_gateway_source_entry_points"


def declared(pyproject: Path) -> dict[str, dict[str, str]]:
    """group -> name -> value, as pyproject.toml's [project.entry-points] declares them."""
    with open(pyproject, "rb") as f:
        return tomllib.load(f).get("project", {}).get("entry-points", {})


def missing(groups: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The declared entry points that importlib.metadata does not see (same name and value)."""
    out = {}
    for group, eps in groups.items():
        seen = {(ep.name, ep.value) for ep in entry_points(group=group)}
        lost = {n: v for n, v in eps.items() if (n, v) not in seen}
        if lost:
            out[group] = lost
    return out


def write_dist_info(folder: Path, groups: dict[str, dict[str, str]], name: str = DIST_NAME) -> Path:
    """A minimal installed-distribution record under `folder` carrying `groups`.  (importlib.metadata
    shows one distribution per name, the first on sys.path: two stand-ins need two names.)"""
    info = folder / f"{name}-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0\n")
    lines = []
    for group, eps in groups.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in eps.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    return info


def ensure(root: Path) -> Path | None:
    """Make pyproject's entry points visible here and in child processes; the folder added, or
    None when the installed distribution already has them all."""
    lost = missing(declared(root / "pyproject.toml"))
    if not lost:
        return None
    folder = Path(tempfile.mkdtemp(prefix="gw-entry-points-"))
    atexit.register(shutil.rmtree, folder, True)
    write_dist_info(folder, lost)
    sys.path.append(str(folder))
    importlib.invalidate_caches()  # importlib.metadata caches what each sys.path entry holds
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(folder)) if p)
    return folder
