"""The control folder: how `hw-sim` in another terminal talks to a simulator inside the running service.

The simulators (media drives, the front panel, the printers) live in the gateway's process, created
by the device registry; the `hw-sim` command line is another process. They meet in a folder of the
simulator's own (its `sim_dir`):

    <folder>/commands/<name>.json   a command, dropped whole (written beside it, then renamed)
    <folder>/results/<name>.json    the simulator's answer: {"ok": bool, "error": str, "state": {...}}

Why files and not a socket: the folder is already the simulator's (its images, its LED tree), so
there is no port or path to configure twice, and a command dropped while the service restarts is
picked up by the next one. The simulator looks every POLL_S seconds (a person typing, not a
data path).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

POLL_S = 0.1


class SimError(Exception):
    """A simulator refused a command, or none answered; one line for the terminal."""


def write_json(path: Path, data: Any) -> None:
    """Write `data` as JSON at `path` whole: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def prepare(folder: Path) -> None:
    """Make the commands/ and results/ folders (the simulator's side, at its start)."""
    (folder / "commands").mkdir(parents=True, exist_ok=True)
    (folder / "results").mkdir(exist_ok=True)


def serve_pending(folder: Path, apply: Callable[[dict], Any], state: Callable[[], dict],
                  refused: tuple[type[BaseException], ...]) -> None:
    """Apply each command waiting in folder/commands (oldest name first) and answer it in results/.
    An exception of the `refused` types is the answer's one-line error; any other propagates."""
    for path in sorted((folder / "commands").glob("*.json")):
        try:
            apply(json.loads(path.read_text()))
            result = {"ok": True, "error": ""}
        except refused as exc:
            result = {"ok": False, "error": str(exc)}
        result["state"] = state()
        write_json(folder / "results" / path.name, result)
        path.unlink(missing_ok=True)


def send(folder: Path, command: dict, timeout: float, nobody: str) -> dict:
    """Drop `command` into folder/commands and wait for the answer; returns its state. SimError with
    the simulator's error when it refused, or `nobody` (what to check) when no simulator answered
    within `timeout` seconds."""
    name = f"{time.time_ns()}-{os.getpid()}.json"
    path, result_path = folder / "commands" / name, folder / "results" / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(command))
    os.replace(tmp, path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result_path.exists():
            result = json.loads(result_path.read_text())
            result_path.unlink(missing_ok=True)
            if not result["ok"]:
                raise SimError(result["error"])
            return result["state"]
        time.sleep(0.05)
    path.unlink(missing_ok=True)
    raise SimError(f"no simulator picked the command up within {timeout:.0f} s: {nobody}")
