"""sd_notify through systemd-python: READY, STATUS, WATCHDOG, STOPPING. A no-op off systemd."""

from __future__ import annotations

import os

try:
    from systemd import daemon as _daemon  # type: ignore[import-not-found]
except ImportError:  # built without libsystemd (a laptop): nothing to notify
    _daemon = None


def notify(state: str) -> bool:
    """Send `state` ("READY=1", "STATUS=...", "WATCHDOG=1", "STOPPING=1"; several joined by "\n") to
    $NOTIFY_SOCKET (sd_notify(3)). True when sent; False off systemd or without systemd-python."""
    if _daemon is None or not os.environ.get("NOTIFY_SOCKET"):
        return False
    return bool(_daemon.notify(state))


def watchdog_interval() -> float | None:
    """Half of WatchdogSec, as systemd recommends, or None when no watchdog is armed."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000
