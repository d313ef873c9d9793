"""A foot pedal on a Linux input device (evdev): one key.

A USB foot switch is an HID keyboard that sends one key (KEY_B on many PCsensor-style switches, or
KEY_F13.. once reprogrammed); a GPIO pedal is a gpio-keys node like the panel's buttons.  Either
way the pedal is one key code on an input device (``/dev/input/by-id/...-event-kbd``), and the
decoding is the panel's: EvdevButtons (drivers/panel/buttons_evdev.py) with a one-key map, so the
input_event decoding, the kernel-stamp-to-monotonic conversion, the capability check and the
reader thread are one piece of code for both.

The device is grabbed (EVIOCGRAB, python-evdev's ``InputDevice.grab()``, which EvdevButtons calls
when not raw): a foot switch is a keyboard, and without the grab every press would also type its
key into whatever console or login prompt has the focus.  While grabbed, no other program (X, a
getty) sees the pedal; it is ungrabbed at stop().

``raw=True``: ``device`` is a FIFO of ``struct input_event`` records (hw-sim, tests): no capability
check and no grab, the same decoding.
"""

from __future__ import annotations

from collections.abc import Callable

from drivers.panel.buttons_evdev import KEY_MAX, EvdevButtons
from drivers.panel.interface import ButtonEvent, PanelError
from drivers.pedal.interface import PedalError, PedalEvent

_NAME = "pedal"


class EvdevPedal:
    """Key ``key_code`` (1..KEY_MAX, linux/input-event-codes.h) on input device ``device``.
    ``raw``: a FIFO / char device of input_event records (no capability check, no grab).
    ValueError (one line) for a key code out of range."""

    def __init__(self, device: str, key_code: int, *, raw: bool = False, grab: bool = True):
        if not (isinstance(key_code, int) and 0 < key_code <= KEY_MAX):
            raise ValueError(f"pedal key code {key_code!r} is not 1-{KEY_MAX}")
        self.device = device
        self.key_code = key_code
        self._keys = EvdevButtons(device, {_NAME: key_code}, raw=raw, grab=grab, what=_NAME,
                                  config_key="[capture.pedal] key_code")

    def start(self, on_press: Callable[[PedalEvent], None]) -> None:
        """Open (and grab) the device, start the reader thread; PedalError (one line naming the
        device) when it is missing, not readable, has no such key or is grabbed elsewhere."""
        def edge(ev: ButtonEvent) -> None:
            on_press(PedalEvent(ev.pressed, ev.at))

        try:
            self._keys.start(edge)
        except PanelError as exc:
            raise PedalError(str(exc)) from None

    def stop(self) -> None:
        """Stop the reader thread, ungrab and close the device."""
        self._keys.stop()
