"""Panel buttons from a Linux input device (evdev), as the gpio-keys driver presents GPIO buttons.

On the box each button is a gpio-keys node in the device tree (``linux,code = <59>`` for KEY_F1,
``debounce-interval`` in ms: the kernel debounces, not us); the keys arrive on
/dev/input/by-path/platform-gpio-keys-event as ``struct input_event`` records (EV_KEY, code, value
1 = down, 0 = up, 2 = autorepeat).  python-evdev (``evdev.InputDevice``) opens the device, checks
that it has every configured key, grabs it (EVIOCGRAB: a key must not also reach a console, where
Alt+F1 switches terminals) and decodes the records.

``raw=True`` reads the same records from a FIFO or a character device with no evdev ioctls (hw-sim's
panel, the tests): the decoding (evdev's own ``device_read_many``) and everything after it is the
code that runs on the box.  A FIFO is opened read-write so that it never reads as end-of-file while
no writer has it open (Linux fifo(7)).

The reader is one thread blocked in select() on the device and a wake-up pipe: no polling.

The foot pedal (drivers/pedal/evdev_pedal.py) is one more key on an input device: it uses this class
with a one-key map, and ``what`` / ``config_key`` make its one-line errors name the pedal and its
config table instead of the panel's buttons.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable, Mapping

from drivers.panel.interface import ButtonEvent, PanelError

log = logging.getLogger("drivers.panel")

EV_KEY = 0x01
KEY_MAX = 0x2FF   # linux/input-event-codes.h
DEFAULT_DEVICE = "/dev/input/by-path/platform-gpio-keys-event"


def load_evdev():
    """(the evdev module, its EventIO class); PanelError naming the package when it is missing."""
    try:
        import evdev  # noqa: PLC0415 - only a box with buttons needs it; config validation does not
        from evdev.eventio import EventIO  # noqa: PLC0415
    except ImportError as exc:
        raise PanelError(f"python-evdev is not installed ({exc}): pip install evdev, or apt-get install "
                         f"python3-evdev") from None
    return evdev, EventIO


def _raw_events(EventIO, fd: int):  # noqa: N803 - the class, passed in because evdev loads lazily
    """evdev's reader (EventIO.read: its C ``device_read_many``) on a plain fd, closed by close()."""
    class RawEvents(EventIO):
        def __init__(self, fd: int):
            self.fd = fd

        def close(self) -> None:
            os.close(self.fd)

    return RawEvents(fd)


def key_name(code: int) -> str:
    """The kernel's name of key ``code`` ("KEY_F1"), or the number when evdev is not there."""
    try:
        evdev, _ = load_evdev()
    except PanelError:
        return str(code)
    name = evdev.ecodes.KEY.get(code, str(code))
    return name[0] if isinstance(name, list) else name


def to_monotonic(sec: int, usec: int, now_mono: float, now_real: float) -> float:
    """An input event's CLOCK_REALTIME stamp (evdev's default clock) on CLOCK_MONOTONIC, never
    later than ``now_mono``."""
    return min(now_mono, sec + usec / 1e6 - (now_real - now_mono))


class EvdevButtons:
    """Buttons ``keymap`` (logical name -> key code, the device tree's ``linux,code``) on the input
    device ``device``.  ``raw``: ``device`` is a FIFO / char device of input_event records, not an
    evdev node (no capability check, no grab).  ``what`` ("button", "pedal") and ``config_key``
    (the table holding the key codes) are the words of the errors and the log lines, and the reader
    thread is named ``<what>-input``.  ValueError for a bad keymap."""

    def __init__(self, device: str, keymap: Mapping[str, int], *, raw: bool = False, grab: bool = True,
                 what: str = "button", config_key: str = "[panel.buttons]"):
        codes = list(keymap.values())
        if len(set(codes)) != len(codes):
            raise ValueError(f"two buttons share one key code in {dict(keymap)}")
        bad = [f"{n}={c}" for n, c in keymap.items() if not (isinstance(c, int) and 0 < c <= KEY_MAX)]
        if bad:
            raise ValueError(f"key codes must be 1-{KEY_MAX}: {', '.join(bad)}")
        self.device = device
        self.by_code = {code: name for name, code in keymap.items()}
        self.names = tuple(keymap)
        self.raw = raw
        self.grab = grab
        self.what = what
        self.config_key = config_key
        self._io = None
        self._thread: threading.Thread | None = None
        self._wake_r = self._wake_w = -1

    def start(self, on_button: Callable[[ButtonEvent], None]) -> None:
        """Open the device and start the reader thread; PanelError (one line) when the device is
        missing, not readable, lacks a configured key or is grabbed by another program."""
        evdev, EventIO = load_evdev()
        try:
            if self.raw:
                io = _raw_events(EventIO, os.open(self.device, os.O_RDWR | os.O_NONBLOCK))
            else:
                io = evdev.InputDevice(self.device)
                have = set(io.capabilities().get(EV_KEY, []))
                missing = [f"{self.by_code[c]} ({key_name(c)}, code {c})" for c in self.by_code if c not in have]
                if missing:
                    io.close()
                    raise PanelError(f"input device {self.device} ({io.name}) has no key for {self.what} "
                                     f"{', '.join(missing)}: check {self.config_key} against the device "
                                     f"tree's linux,code values")
                if self.grab:
                    io.grab()
        except OSError as exc:
            raise PanelError(f"{self.what} input device {self.device}: {exc.strerror or exc}") from None
        self._io = io
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, args=(on_button,), name=f"{self.what}-input", daemon=True)
        self._thread.start()

    def _run(self, on_button: Callable[[ButtonEvent], None]) -> None:
        io = self._io
        while True:
            ready, _, _ = select.select([io.fileno(), self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                events = list(io.read())
            except BlockingIOError:
                continue
            except OSError as exc:
                # ENODEV: the device went away (an overlay unloaded); the panel has no buttons now.
                log.error("%s input: reading %s failed: %s; it stops", self.what, self.device, exc.strerror or exc)
                return
            now_mono, now_real = time.monotonic(), time.time()
            for ev in events:
                for edge in self.decode(ev.type, ev.code, ev.value, ev.sec, ev.usec, now_mono, now_real):
                    try:
                        on_button(edge)
                    except Exception:  # noqa: BLE001 - one bad handler call must not kill the buttons
                        log.exception("%s input: the handler failed on %s", self.what, edge)

    def decode(self, type_: int, code: int, value: int, sec: int, usec: int, now_mono: float,
               now_real: float) -> list[ButtonEvent]:
        """One input event -> the ButtonEvent it means ([] for EV_SYN, autorepeat, other keys)."""
        if type_ != EV_KEY or value not in (0, 1):
            return []
        name = self.by_code.get(code)
        if name is None:
            return []
        return [ButtonEvent(name, value == 1, to_monotonic(sec, usec, now_mono, now_real))]

    def stop(self) -> None:
        """Stop the reader thread (wakes its select at once) and close the device."""
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join(5)
            self._thread = None
        if self._io is not None:
            try:
                if not self.raw and self.grab:
                    self._io.ungrab()
            except OSError:
                pass
            self._io.close()
            self._io = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
