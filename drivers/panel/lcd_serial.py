"""A serial character LCD speaking SparkFun's SerLCD command set (SerLCD v2.5 and OpenLCD), over pyserial.

The SerLCD backpack drives an HD44780 (ROM A00) and takes on its UART (9600 8N1 by default):

  text bytes       shown at the cursor, which moves right
  0xFE, command    one HD44780 instruction: 0x01 clear, 0x80 | address set the cursor (DDRAM
                   address: row 1 at 0x00, row 2 at 0x40, for 16- and 20-column modules alike)
  0x7C, setting    a backpack setting (backlight, width, baud rate); stored in its EEPROM, so this
                   driver never sends one: set the module's width once (0x7C 0x03 = 20, 0x04 = 16)

So two data bytes can never be shown: 0x7C and 0xFE would start a command.  Text is encoded with
RPLCD's A00 table (the same ROM as the I2C display, so the panel logic's text fits both) and those
two codes become spaces.  Only rows that changed are sent: a row is 2 + columns bytes, ~23 ms at
9600 baud for 20 columns.

``port`` is a device (/dev/ttyUSB0, /dev/serial0) or any pyserial URL (loop:// in the tests).
"""

from __future__ import annotations

import threading
from typing import Any

import serial

from drivers.panel.interface import COLUMNS, PanelError, fit

CHARSET = "hd44780-a00"
COMMAND = 0xFE
SETTING = 0x7C
CLEAR = 0x01
SET_DDRAM = 0x80
ROW_ADDRESS = (0x00, 0x40)
_UNSHOWABLE = {COMMAND, SETTING}


def encode_a00(text: str) -> bytes:
    """``text`` as HD44780 ROM A00 codes (RPLCD's table; a character the ROM lacks is a space),
    with the SerLCD command prefixes 0x7C / 0xFE replaced by spaces."""
    from RPLCD.codecs import A00Codec  # noqa: PLC0415 - a pure table; RPLCD.i2c would import smbus2

    codes = [c for c in A00Codec().encode(text) if c >= 0]  # CR / LF are negative markers
    return bytes(0x20 if c in _UNSHOWABLE else c for c in codes)


class SerLcd:
    """A SerLCD-class display on ``port`` at ``baudrate``, ``columns`` 16 or 20, two rows."""

    charset = CHARSET

    def __init__(self, port: str, baudrate: int = 9600, columns: int = 16, opener: Any = serial.serial_for_url):
        if columns not in COLUMNS:
            raise ValueError(f"columns {columns}: a SerLCD panel here has {' or '.join(map(str, COLUMNS))}")
        self.port_name = port
        self.baudrate = baudrate
        self.columns = columns
        self.opener = opener
        self.port = None
        self._rows: list[bytes | None] = [None, None]
        self._lock = threading.Lock()

    def start(self) -> None:
        """Open the port and clear the display; PanelError (one line) when the port cannot be opened."""
        try:
            self.port = self.opener(self.port_name, baudrate=self.baudrate, write_timeout=2.0)
        except (serial.SerialException, ValueError) as exc:
            raise PanelError(f"serial display {self.port_name}: cannot open: {exc}") from None
        self._rows = [None, None]
        self._send(bytes((COMMAND, CLEAR)))

    def _send(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as exc:
            raise PanelError(f"serial display {self.port_name}: write failed: {exc}") from None

    def show(self, line1: str, line2: str) -> None:
        """Both lines, fitted to ``columns``; a row that did not change is not sent.  PanelError
        when the port fails."""
        if self.port is None:
            raise PanelError(f"serial display {self.port_name}: not started")
        with self._lock:
            out = bytearray()
            for row, line in enumerate((line1, line2)):
                data = encode_a00(fit(line, self.columns))[: self.columns].ljust(self.columns, b" ")
                if data != self._rows[row]:
                    out += bytes((COMMAND, SET_DDRAM | ROW_ADDRESS[row])) + data
                    self._rows[row] = data
            if out:
                self._send(bytes(out))

    def stop(self) -> None:
        """Clear the display and close the port; a port already gone is not an error here."""
        if self.port is None:
            return
        try:
            self._send(bytes((COMMAND, CLEAR)))
        except PanelError:
            pass
        self.port.close()
        self.port = None
