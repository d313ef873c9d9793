"""A simulated USB printer-class film printer, as a pyusb backend.

Pass an instance as ``backend=`` to pyusb (drivers.printer.transport_usb.UsbTransport does) and
the real driver enumerates it, reads its descriptors, asks GET_DEVICE_ID and GET_PORT_STATUS and
writes bulk OUT data to it.  Jobs are cut at the PostScript '%%EOF' line (or at the end of a DRF/1
raster command) and rendered to PNG: ``printed`` holds them, and ``out_dir`` gets a file each
(film-NNNNNN.png, numbered after the films already there, never overwriting one).

Fault switches (attributes, change them at any time):
  offline       not selected: GET_PORT_STATUS clears Select, bulk OUT NAKs (times out)
  paper_empty   out of film: Paper Empty set, bulk OUT NAKs; also set when ``films`` runs out
  jammed        Not Error cleared, bulk OUT NAKs, until cleared
  jam_next_job  the next job jams half-way through its data
  slow          seconds to sleep per bulk OUT transfer (a slow RIP)
  films         films left in the supply (None: endless)

Seen and driven from outside as the serial imager is (hwsim/printer_view.py: the /sim/ page's
view, `hw-sim printer ...`): "jam" is ``jammed``, "out-of-film" ``paper_empty``.

CLI:  python -m hwsim.usb_printer demo --out DIR      print a step wedge through the real driver
      python -m hwsim.usb_printer render JOB --dpi N --out PNG   render a captured job
"""

from __future__ import annotations

import argparse
import errno
import struct
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import usb.backend
import usb.core

from hwsim.film_decode import body_size, decode_raster_job, render_postscript, write_film
from hwsim.printer_view import PrinterView

VENDOR_ID, PRODUCT_ID = 0x1209, 0x0001  # pid.codes test IDs
EP_OUT = 0x01
DEFAULT_DEVICE_ID = "MFG:hwsim;MDL:FilmJet PS;CMD:POSTSCRIPT,DRF1;CLS:PRINTER;DES:simulated film printer;"


def _nak():
    return usb.core.USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)


class SimulatedUsbPrinter(usb.backend.IBackend, PrinterView):
    """The printer as a pyusb backend; its view on the simulated box's page and `hw-sim printer`
    come from PrinterView."""

    model = "USB PostScript film printer"

    def __init__(self, dpi: float = 320.0, out_dir: str | Path | None = None,
                 device_id: str = DEFAULT_DEVICE_ID, films: int | None = None):
        self.dpi = dpi
        self.out_dir = Path(out_dir) if out_dir else None
        self.device_id = device_id
        self.films = films
        self.offline = self.paper_empty = self.jammed = self.jam_next_job = False
        self.slow = 0.0
        self.printed: list[bytes] = []  # PNG per film
        self.jobs: list[bytes] = []  # raw bytes per job
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._token = object()
        self.full_supply = films  # what "load" puts back
        self._init_view()

    # --- the view (hwsim/printer_view.py) ----------------------------------------------------
    def status_text(self) -> str:
        """"NORMAL", or what GET_PORT_STATUS would show ("FILM JAM, OUT OF FILM, OFFLINE")."""
        names = [n for on, n in ((self.jammed, "FILM JAM"), (self.paper_empty or self.films == 0, "OUT OF FILM"),
                                 (self.offline, "OFFLINE")) if on]
        return ", ".join(names) or "NORMAL"

    def films_left(self) -> int | None:
        return self.films

    def printed_count(self) -> int:
        return len(self.printed)

    def last_png(self) -> bytes | None:
        return self.printed[-1] if self.printed else None

    def set_jammed(self, jammed: bool) -> None:
        self.jammed = jammed

    def set_out_of_film(self, out: bool) -> None:
        self.paper_empty = out
        if not out and self.films is not None:
            self.films = self.full_supply

    # --- descriptors -------------------------------------------------------------------------
    def enumerate_devices(self):
        yield self._token

    def get_device_descriptor(self, dev):
        return SimpleNamespace(
            bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0,
            bDeviceProtocol=0, bMaxPacketSize0=64, idVendor=VENDOR_ID, idProduct=PRODUCT_ID,
            bcdDevice=0x0100, iManufacturer=0, iProduct=0, iSerialNumber=0, bNumConfigurations=1,
            address=1, bus=1, port_number=1, port_numbers=(1,), speed=3)

    def get_configuration_descriptor(self, dev, config):
        return SimpleNamespace(bLength=9, bDescriptorType=2, wTotalLength=25, bNumInterfaces=1,
                               bConfigurationValue=1, iConfiguration=0, bmAttributes=0xC0,
                               bMaxPower=1, extra_descriptors=[])

    def get_interface_descriptor(self, dev, intf, alt, config):
        # Printer class 7, subclass 1; protocol 1 = unidirectional (bulk OUT only).
        return SimpleNamespace(bLength=9, bDescriptorType=4, bInterfaceNumber=0,
                               bAlternateSetting=0, bNumEndpoints=1, bInterfaceClass=7,
                               bInterfaceSubClass=1, bInterfaceProtocol=1, iInterface=0,
                               extra_descriptors=[])

    def get_endpoint_descriptor(self, dev, ep, intf, alt, config):
        return SimpleNamespace(bLength=7, bDescriptorType=5, bEndpointAddress=EP_OUT,
                               bmAttributes=0x02, wMaxPacketSize=512, bInterval=0, bRefresh=0,
                               bSynchAddress=0, extra_descriptors=[])

    # --- device handle -----------------------------------------------------------------------
    def open_device(self, dev):
        return self

    def close_device(self, dev_handle):
        pass

    def set_configuration(self, dev_handle, config_value):
        pass

    def get_configuration(self, dev_handle):
        return 1

    def set_interface_altsetting(self, dev_handle, intf, altsetting):
        pass

    def claim_interface(self, dev_handle, intf):
        pass

    def release_interface(self, dev_handle, intf):
        pass

    def is_kernel_driver_active(self, dev_handle, intf):
        return False

    def detach_kernel_driver(self, dev_handle, intf):
        pass

    def attach_kernel_driver(self, dev_handle, intf):
        pass

    def clear_halt(self, dev_handle, ep):
        pass

    def reset_device(self, dev_handle):
        with self._lock:
            self._buf.clear()

    # --- class requests and data -------------------------------------------------------------
    def port_status(self) -> int:
        empty = self.paper_empty or self.films == 0
        return ((0x20 if empty else 0) | (0 if self.offline else 0x10)
                | (0 if self.jammed else 0x08))

    def ctrl_transfer(self, dev_handle, bmRequestType, bRequest, wValue, wIndex, data, timeout):
        if bmRequestType == 0xA1 and bRequest == 0:
            raw = self.device_id.encode("latin-1")
            reply = struct.pack(">H", len(raw) + 2) + raw
        elif bmRequestType == 0xA1 and bRequest == 1:
            reply = bytes([self.port_status()])
        elif bmRequestType == 0x21 and bRequest == 2:
            self.reset_device(dev_handle)
            return 0
        else:
            raise usb.core.USBError("Pipe error (request not supported)", -9, errno.EPIPE)
        n = min(len(reply), len(data))
        data[:n] = type(data)(data.typecode, reply[:n])
        return n

    def bulk_write(self, dev_handle, ep, intf, data, timeout):
        if self.slow:
            time.sleep(self.slow)
        if self.offline or self.jammed or self.paper_empty or self.films == 0:
            raise _nak()
        chunk = bytes(data)
        with self._lock:
            self._buf += chunk
            if self.jam_next_job and len(self._buf) > 4096:
                self.jam_next_job, self.jammed = False, True
                self._buf.clear()  # the film in the printer is lost
                jammed_now = True
            else:
                jammed_now = False
                self._cut_jobs()
        if jammed_now:
            self._view_changed()
        return len(chunk)

    def bulk_read(self, dev_handle, ep, intf, buff, timeout):
        raise _nak()

    def _cut_jobs(self):
        while self._buf:
            if self._buf[:4] == b"DRF1":
                if len(self._buf) < 6 + 12:
                    return
                width, height, bits, channels = struct.unpack(">IIBB", self._buf[6:16])
                end = 6 + 12 + body_size(width, height, bits, channels) + 4
            else:
                # On a line of its own: ASCII85 text can contain "%%EOF" mid-line, never as a line.
                at = self._buf.find(b"\n%%EOF\n")
                if at < 0:
                    return
                end = at + 7
                while end < len(self._buf) and self._buf[end] in b"\r\n":
                    end += 1
            if len(self._buf) < end:
                return
            job = bytes(self._buf[:end])
            del self._buf[:end]
            self._finish(job)

    def _finish(self, job: bytes):
        if job[:4] == b"DRF1":
            film = decode_raster_job(job)
            png, copies = film.png(), film.copies
        else:
            png, copies = render_postscript(job, self.dpi), _ps_copies(job)
        self.jobs.append(job)
        self.printed.append(png)
        if self.films is not None:
            self.films = max(0, self.films - copies)
        if self.out_dir:
            write_film(self.out_dir, png)
        self._view_changed()


def _ps_copies(job: bytes) -> int:
    head = job[:4096]
    at = head.find(b"/NumCopies")
    try:
        return max(1, int(head[at + 10:].split()[0])) if at >= 0 else 1
    except ValueError:
        return 1


def _demo(out: Path, dpi: float) -> None:
    from drivers.printer.interface import Printer, PrintJob
    from drivers.printer.postscript import PostScriptLanguage
    from drivers.printer.transport_usb import UsbTransport
    from image.step_wedge import drive_wedge

    sim = SimulatedUsbPrinter(dpi=dpi, out_dir=out)
    transport = UsbTransport(backend=sim)
    print("device id:", transport.device_id())
    film = drive_wedge(16, int(10 * dpi), int(8 * dpi), 255)
    Printer(transport, PostScriptLanguage()).print_film(PrintJob(film, dpi))
    print("printed:", sorted(str(p) for p in out.glob("*.png")))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hwsim.usb_printer", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    demo = sub.add_parser("demo", help="print a step wedge through the real USB driver")
    demo.add_argument("--out", type=Path, required=True)
    demo.add_argument("--dpi", type=float, default=50.0)
    render = sub.add_parser("render", help="render a captured job (PostScript or DRF/1) to PNG")
    render.add_argument("job", type=Path)
    render.add_argument("--dpi", type=float, default=320.0)
    render.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "demo":
        _demo(args.out, args.dpi)
    else:
        sim = SimulatedUsbPrinter(dpi=args.dpi)
        sim._buf += args.job.read_bytes()
        sim._cut_jobs()
        if not sim.printed:
            ap.error(f"{args.job} holds no complete job")
        args.out.write_bytes(sim.printed[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
