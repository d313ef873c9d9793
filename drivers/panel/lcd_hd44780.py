"""An HD44780-class character display (2 x 16 or 2 x 20) on I2C through a PCF8574 "backpack".

RPLCD's ``i2c.CharLCD`` speaks the HD44780 protocol (4-bit initialisation by instruction, Hitachi
HD44780U datasheet p. 46; DDRAM addressing, row 2 at 0x40; only changed characters are sent) and
encodes text into the ROM's codes with its A00 table (ASCII plus JIS X 0201 katakana, the ROM the
panel logic fits its text to).  smbus2 is its I2C bus: one ``write_byte`` per PCF8574 output state
(D7-D4, backlight, E, RW, RS on P7..P0).

``bus_factory(bus_number)`` returns the SMBus-like object RPLCD writes to (smbus2.SMBus on the box;
hw-sim's HD44780 that decodes the bytes back into characters, or a test's recorder).  RPLCD opens
its bus itself, so the factory is given to it by overriding its ``_init_connection`` (PCF8574 only:
the MCP230xx expanders need register set-up that RPLCD does there too).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from drivers.panel.interface import COLUMNS, ROWS, PanelError, fit

CHARSET = "hd44780-a00"
DEFAULT_ADDRESS = 0x27  # PCF8574T backpacks; 0x3F on the PCF8574AT


def _smbus(bus: int) -> Any:
    from smbus2 import SMBus  # noqa: PLC0415 - only the box opens a real bus
    return SMBus(bus)


def _char_lcd_class():
    from RPLCD.i2c import CharLCD  # noqa: PLC0415 - importing RPLCD imports smbus2: only when used

    class CharLcdOnBus(CharLCD):
        """RPLCD's CharLCD on a bus from ``bus_factory`` instead of one it opens itself."""

        def __init__(self, bus_factory: Callable[[int], Any], **kwargs: Any):
            self._bus_factory = bus_factory
            super().__init__(**kwargs)

        def _init_connection(self) -> None:
            self.bus = self._bus_factory(self._port)
            time.sleep(0.05)  # RPLCD's own PCF8574 wait: the controller's power-on reset (>40 ms)

    return CharLcdOnBus


class Hd44780I2c:
    """The display at ``address`` on I2C bus ``bus`` (/dev/i2c-<bus>), ``columns`` 16 or 20, two
    rows, ROM A00.  ValueError for columns or an address outside 0x03-0x77 (7-bit, reserved ones
    excluded)."""

    charset = CHARSET

    def __init__(self, bus: int = 1, address: int = DEFAULT_ADDRESS, columns: int = 16,
                 bus_factory: Callable[[int], Any] = _smbus):
        if columns not in COLUMNS:
            raise ValueError(f"columns {columns}: an HD44780 panel here has {' or '.join(map(str, COLUMNS))}")
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"I2C address 0x{address:02x} is not a 7-bit device address (0x03-0x77)")
        self.bus = bus
        self.address = address
        self.columns = columns
        self.bus_factory = bus_factory
        self.lcd = None
        self._lock = threading.Lock()

    def _where(self) -> str:
        return f"display on I2C bus {self.bus} address 0x{self.address:02x}"

    def start(self) -> None:
        """Open the bus and initialise the controller; PanelError (one line) when the bus device is
        missing or nothing answers at the address."""
        try:
            self.lcd = _char_lcd_class()(self.bus_factory, i2c_expander="PCF8574", address=self.address,
                                         port=self.bus, cols=self.columns, rows=ROWS, charmap="A00",
                                         auto_linebreaks=False, backlight_enabled=True)
        except FileNotFoundError:
            raise PanelError(f"{self._where()}: no /dev/i2c-{self.bus} (enable I2C: dtparam=i2c_arm=on, "
                             f"modprobe i2c-dev)") from None
        except OSError as exc:
            raise PanelError(f"{self._where()}: {exc.strerror or exc} (nothing answers there? i2cdetect -y "
                             f"{self.bus})") from None

    def show(self, line1: str, line2: str) -> None:
        """Both lines fitted to ``columns`` (interface.fit); RPLCD sends only the changed
        characters.  Characters the ROM lacks show as spaces (RPLCD's A00 replacement).
        PanelError when the bus fails."""
        if self.lcd is None:
            raise PanelError(f"{self._where()}: not started")
        with self._lock:
            try:
                for row, line in enumerate((line1, line2)):
                    self.lcd.cursor_pos = (row, 0)
                    self.lcd.write_string(fit(line, self.columns))
            except OSError as exc:
                raise PanelError(f"{self._where()}: {exc.strerror or exc}") from None

    def stop(self) -> None:
        """Blank the display and close the bus; a bus already gone is not an error here."""
        if self.lcd is None:
            return
        with self._lock:
            try:
                self.lcd.close(clear=True)
                self.lcd.backlight_enabled = False
                close = getattr(self.lcd.bus, "close", None)
                if close is not None:
                    close()
            except OSError:
                pass
            self.lcd = None
