"""USB printer-class transport (pyusb): interface class 7, bulk OUT for data, class requests for
status, per the USB Device Class Definition for Printing Devices 1.1.

  GET_DEVICE_ID    bmRequestType 0xA1, bRequest 0, wValue config index,
                   wIndex interface << 8 | alternate setting; reply: 2-byte big-endian length
                   (including itself) then the IEEE 1284 Device ID ("MFG:..;MDL:..;CMD:..;")
  GET_PORT_STATUS  bmRequestType 0xA1, bRequest 1, wIndex interface; one byte:
                   0x20 Paper Empty, 0x10 Select (online), 0x08 Not Error
  SOFT_RESET       bmRequestType 0x21, bRequest 2, wIndex interface

pyusb picks the platform backend (libusb1) unless ``backend`` is given: that is where
hwsim.usb_printer plugs in.  A bulk OUT write that times out means the printer stopped taking
data (offline, out of film); it becomes PrinterError with the port status attached.
"""

from __future__ import annotations

import usb.core
import usb.util

from drivers.printer.interface import DeviceStatus, PrinterError

PRINTER_CLASS = 7
GET_DEVICE_ID, GET_PORT_STATUS, SOFT_RESET = 0, 1, 2
PAPER_EMPTY, SELECT, NOT_ERROR = 0x20, 0x10, 0x08
_CLASS_IN, _CLASS_OUT = 0xA1, 0x21


def _printer_interface(dev):
    for cfg in dev:
        for intf in cfg:
            if intf.bInterfaceClass == PRINTER_CLASS:
                return cfg, intf
    return None, None


def parse_device_id(text: str) -> dict[str, str]:
    """IEEE 1284 Device ID 'KEY:value;KEY:value;' as a dict; long keys get their short names."""
    aliases = {"MANUFACTURER": "MFG", "MODEL": "MDL", "COMMAND SET": "CMD", "CLASS": "CLS"}
    out = {}
    for item in text.split(";"):
        key, sep, value = item.partition(":")
        if sep:
            key = key.strip().upper()
            out[aliases.get(key, key)] = value.strip()
    return out


class UsbTransport:
    def __init__(self, vendor_id: int | None = None, product_id: int | None = None,
                 backend=None, timeout_ms: int = 10000, chunk: int = 16384):
        def match(dev):
            if vendor_id is not None and dev.idVendor != vendor_id:
                return False
            if product_id is not None and dev.idProduct != product_id:
                return False
            return _printer_interface(dev)[1] is not None

        try:
            dev = usb.core.find(backend=backend, custom_match=match)
        except usb.core.NoBackendError as exc:
            raise PrinterError("no USB backend (libusb) available") from exc
        if dev is None:
            raise PrinterError("no USB printer (interface class 7) found"
                               + (f" for {vendor_id:04x}:{product_id or 0:04x}"
                                  if vendor_id is not None else ""))
        self.dev, self.timeout_ms, self.chunk = dev, timeout_ms, chunk
        cfg, intf = _printer_interface(dev)
        self.intf_number, self.alt, self.cfg_index = (intf.bInterfaceNumber,
                                                      intf.bAlternateSetting, cfg.index)
        try:
            if dev.is_kernel_driver_active(self.intf_number):  # usblp holds it on Linux
                dev.detach_kernel_driver(self.intf_number)
        except (NotImplementedError, usb.core.USBError):
            pass
        try:
            dev.set_configuration(cfg.bConfigurationValue)
            usb.util.claim_interface(dev, self.intf_number)
        except usb.core.USBError as exc:
            raise PrinterError(f"cannot claim USB printer interface: {exc}") from exc
        direction = lambda d: lambda e: (
            usb.util.endpoint_type(e.bmAttributes) == usb.util.ENDPOINT_TYPE_BULK
            and usb.util.endpoint_direction(e.bEndpointAddress) == d)
        self.ep_out = usb.util.find_descriptor(intf, custom_match=direction(usb.util.ENDPOINT_OUT))
        self.ep_in = usb.util.find_descriptor(intf, custom_match=direction(usb.util.ENDPOINT_IN))
        if self.ep_out is None:
            raise PrinterError("USB printer interface has no bulk OUT endpoint")

    def _class_in(self, request: int, value: int, index: int, length: int) -> bytes:
        try:
            return bytes(self.dev.ctrl_transfer(_CLASS_IN, request, value, index, length,
                                                timeout=self.timeout_ms))
        except usb.core.USBError as exc:
            raise PrinterError(f"USB printer class request {request} failed: {exc}") from exc

    def device_id(self) -> str:
        raw = self._class_in(GET_DEVICE_ID, self.cfg_index,
                             (self.intf_number << 8) | self.alt, 1023)
        if len(raw) < 2:
            raise PrinterError("USB printer sent a short Device ID")
        length = int.from_bytes(raw[:2], "big")
        return raw[2:max(2, min(length, len(raw)))].decode("latin-1")

    def status(self) -> DeviceStatus:
        try:
            bits = self._class_in(GET_PORT_STATUS, 0, self.intf_number, 1)[0]
        except (PrinterError, IndexError) as exc:
            return DeviceStatus(online=False, error=True, detail=f"no port status: {exc}")
        return DeviceStatus(online=bool(bits & SELECT), supply_empty=bool(bits & PAPER_EMPTY),
                            error=not bits & NOT_ERROR)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        sent = 0
        try:
            while sent < len(view):
                sent += self.ep_out.write(view[sent:sent + self.chunk], timeout=self.timeout_ms)
        except usb.core.USBError as exc:
            raise PrinterError(f"USB printer stopped taking data after {sent} of {len(view)} "
                               f"bytes ({exc}); port status: {self.status()}") from exc

    def read(self, size: int, timeout: float) -> bytes:
        if self.ep_in is None:
            raise PrinterError("USB printer is unidirectional (no bulk IN endpoint)")
        buf = bytearray()
        try:
            while len(buf) < size:
                buf += bytes(self.ep_in.read(max(size - len(buf), self.ep_in.wMaxPacketSize),
                                             timeout=int(timeout * 1000)))
        except usb.core.USBError as exc:
            raise PrinterError(f"USB printer did not answer: {exc}") from exc
        return bytes(buf)

    def soft_reset(self) -> None:
        try:
            self.dev.ctrl_transfer(_CLASS_OUT, SOFT_RESET, 0, self.intf_number, None,
                                   timeout=self.timeout_ms)
        except usb.core.USBError as exc:
            raise PrinterError(f"USB printer soft reset failed: {exc}") from exc

    def close(self) -> None:
        usb.util.dispose_resources(self.dev)
