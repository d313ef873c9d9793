"""Serial transport (pyserial): a device path or any pyserial URL (socket://, loop://, rfc2217://).

Flow control is chosen per printer: "rtscts" (hardware), "xonxoff" (software; pair it with a
language that keeps 0x11/0x13 out of the data, e.g. RasterLanguage(escaped=True)) or "none".
A write that the device holds off longer than ``write_timeout`` fails with PrinterError rather
than hanging the spooler.
"""

from __future__ import annotations

import time

import serial

from drivers.printer.interface import DeviceStatus, PrinterError

FLOW_CONTROLS = ("none", "rtscts", "xonxoff")
_CHUNK = 4096


class SerialTransport:
    def __init__(self, url: str, baudrate: int = 115200, flow_control: str = "none",
                 write_timeout: float = 30.0):
        if flow_control not in FLOW_CONTROLS:
            raise ValueError(f"flow control {flow_control!r} is not one of {FLOW_CONTROLS}")
        self.url = url
        try:
            self.port = serial.serial_for_url(
                url, baudrate=baudrate, rtscts=flow_control == "rtscts",
                xonxoff=flow_control == "xonxoff", timeout=0.1, write_timeout=write_timeout)
        except (serial.SerialException, ValueError) as exc:
            raise PrinterError(f"cannot open serial printer {url}: {exc}") from exc

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            for i in range(0, len(view), _CHUNK):
                self.port.write(view[i:i + _CHUNK])
            self.port.flush()
        except serial.SerialTimeoutException as exc:
            raise PrinterError(f"serial printer {self.url} stopped accepting data "
                               f"(held off longer than the write timeout)") from exc
        except (serial.SerialException, OSError) as exc:
            raise PrinterError(f"serial printer {self.url}: {exc}") from exc

    def read(self, size: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        buf = bytearray()
        try:
            while len(buf) < size:
                if time.monotonic() > deadline:
                    raise PrinterError(f"serial printer {self.url} did not answer within "
                                       f"{timeout:g} s ({len(buf)} of {size} bytes)")
                buf += self.port.read(size - len(buf))
        except (serial.SerialException, OSError) as exc:
            raise PrinterError(f"serial printer {self.url}: {exc}") from exc
        return bytes(buf)

    def status(self) -> DeviceStatus:
        # A serial line says little by itself: open or not.  The language asks the device.
        if not self.port.is_open:
            return DeviceStatus(online=False, detail=f"{self.url} closed")
        return DeviceStatus()

    def close(self) -> None:
        self.port.close()
