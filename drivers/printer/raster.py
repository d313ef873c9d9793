"""DRF/1: a raw raster protocol for serial film imagers (and the driver side of it).

Everything is big-endian.  The host sends commands; the imager answers each one.

Host -> imager
  STATUS   "DRF1" 0x05                                       (5 bytes)
  PRINT    "DRF1" 0x01 flags:u8, then the body:
             header  width:u32 height:u32 bits:u8 channels:u8 copies:u16   (12 bytes)
             rows    height rows, top row first, each width*channels samples,
                     channels interleaved (RGB); 1 byte per sample when bits <= 8,
                     else 2 bytes (big-endian); samples are drive levels 0..2**bits-1
             crc     CRC-32 (zlib/IEEE) of the row bytes:u32
           flags bit 0 (ESCAPED): the body is byte-stuffed so it never contains the XON (0x11)
           or XOFF (0x13) bytes, which a link with XON/XOFF flow control would swallow: 0x7D,
           0x11 and 0x13 are each sent as 0x7D followed by the byte XOR 0x20.  Other flag bits
           are 0.

Imager -> host (after the command byte, ASCII hex digits, so replies are XON/XOFF safe too)
  STATUS reply  "DRF1" 0x85 status:4 hex digits, films_left:4 hex digits       (13 bytes)
  PRINT reply   "DRF1" 0x81 status:4 hex digits, result:2 hex digits           (11 bytes)
                sent when the film (all copies) is out, or the job was refused.
                result 00 printed, 01 refused: malformed header or CRC mismatch,
                02 not printed: a fault in status (before or during printing),
                03 partly printed: followed by copies made:4 hex digits (15 bytes in all);
                   the imager stopped after them (the fault is in status, e.g. SUPPLY EMPTY)

Status bits
  0x0001 FILM JAM      0x0002 SUPPLY EMPTY   0x0004 SUPPLY LOW     0x0008 COVER OPEN
  0x0010 OFFLINE       0x0020 RECEIVER FULL  0x0040 BUSY           0x0080 ERROR (other)
"""

from __future__ import annotations

import struct
import zlib

from drivers.printer.interface import (DeviceStatus, PartlyPrinted, PrinterError, PrinterNotReady,
                                      PrintJob, Transport)

MAGIC = b"DRF1"
CMD_PRINT, CMD_STATUS = 0x01, 0x05
REPLY_PRINT, REPLY_STATUS = 0x81, 0x85
FLAG_ESCAPED = 0x01
HEADER = struct.Struct(">IIBBH")
STATUS_REPLY_LEN, PRINT_REPLY_LEN = 13, 11
RESULT_PRINTED, RESULT_REFUSED, RESULT_FAULT, RESULT_PARTLY = 0, 1, 2, 3
COPIES_LEN = 4

FILM_JAM, SUPPLY_EMPTY, SUPPLY_LOW, COVER_OPEN = 0x01, 0x02, 0x04, 0x08
OFFLINE, RECEIVER_FULL, BUSY, ERROR = 0x10, 0x20, 0x40, 0x80


def escape(body: bytes) -> bytes:
    return (body.replace(b"\x7d", b"\x7d\x5d").replace(b"\x11", b"\x7d\x31")
            .replace(b"\x13", b"\x7d\x33"))


def status_from_bits(bits: int, films_left: int | None = None) -> DeviceStatus:
    detail = f"{films_left} films left" if films_left is not None else ""
    return DeviceStatus(online=not bits & OFFLINE, film_jam=bool(bits & FILM_JAM),
                        supply_empty=bool(bits & SUPPLY_EMPTY), supply_low=bool(bits & SUPPLY_LOW),
                        cover_open=bool(bits & COVER_OPEN), receiver_full=bool(bits & RECEIVER_FULL),
                        busy=bool(bits & BUSY), error=bool(bits & ERROR), detail=detail)


def bits_from_status(s: DeviceStatus) -> int:
    return ((0 if s.online else OFFLINE) | (FILM_JAM if s.film_jam else 0)
            | (SUPPLY_EMPTY if s.supply_empty else 0) | (SUPPLY_LOW if s.supply_low else 0)
            | (COVER_OPEN if s.cover_open else 0) | (RECEIVER_FULL if s.receiver_full else 0)
            | (BUSY if s.busy else 0) | (ERROR if s.error else 0))


def _hex(text: bytes, what: str) -> int:
    try:
        return int(text.decode("ascii"), 16)
    except (UnicodeDecodeError, ValueError):
        raise PrinterError(f"imager sent a malformed {what}: {text!r}") from None


def parse_reply(data: bytes, command: int) -> tuple[int, int]:
    """(status bits, films left or result) from a STATUS or PRINT reply."""
    if data[:4] != MAGIC or data[4] != command:
        raise PrinterError(f"imager reply {data[:5]!r} is not a DRF1 reply 0x{command:02x}")
    return _hex(data[5:9], "status"), _hex(data[9:], "reply value")


class RasterLanguage:
    """DRF/1 over a readable transport (serial, or a USB printer with a bulk IN endpoint)."""

    def __init__(self, escaped: bool = False, status_timeout: float = 5.0,
                 print_timeout: float = 300.0):
        self.escaped = escaped  # set when the serial link uses XON/XOFF flow control
        self.status_timeout = status_timeout
        self.print_timeout = print_timeout  # an imager answers only once the film is out

    def encode(self, job: PrintJob) -> bytes:
        film = job.film
        rows, cols = film.shape[:2]
        channels = film.shape[2] if film.ndim == 3 else 1
        if channels not in (1, 3):
            raise ValueError(f"film has {channels} channels; DRF/1 takes 1 or 3")
        bits = 8 if film.dtype.itemsize == 1 else 16
        if not 1 <= job.copies <= 0xFFFF:
            raise ValueError(f"copies {job.copies} out of range 1..65535")
        samples = film.astype(">u2").tobytes() if bits == 16 else film.tobytes()
        body = (HEADER.pack(cols, rows, bits, channels, job.copies) + samples
                + struct.pack(">I", zlib.crc32(samples)))
        flags = FLAG_ESCAPED if self.escaped else 0
        return MAGIC + bytes([CMD_PRINT, flags]) + (escape(body) if self.escaped else body)

    def query_status(self, transport: Transport) -> DeviceStatus | None:
        transport.write(MAGIC + bytes([CMD_STATUS]))
        bits, left = parse_reply(transport.read(STATUS_REPLY_LEN, self.status_timeout),
                                 REPLY_STATUS)
        return status_from_bits(bits, left)

    def confirm(self, transport: Transport) -> DeviceStatus | None:
        bits, result = parse_reply(transport.read(PRINT_REPLY_LEN, self.print_timeout),
                                   REPLY_PRINT)
        status = status_from_bits(bits)
        if result == RESULT_REFUSED:
            raise PrinterError("imager refused the job (malformed header or CRC mismatch)")
        if result == RESULT_PARTLY:
            made = _hex(transport.read(COPIES_LEN, self.status_timeout), "copies count")
            if status.ready:
                status = status.merged(DeviceStatus(error=True))
            raise PartlyPrinted(status, made, f"{made} copies printed, then the imager stopped: "
                                              f"{status}")
        if result != RESULT_PRINTED:
            if status.ready:  # the imager failed without naming why
                status = status.merged(DeviceStatus(error=True))
            raise PrinterNotReady(status, f"film not printed: {status}")
        return status
