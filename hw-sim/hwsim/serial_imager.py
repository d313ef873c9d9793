"""A simulated serial film imager speaking DRF/1 (see drivers/printer/raster.py), behind a pty or
a loopback TCP port, so the real SerialTransport drives it (by the pty's path, or by
``socket://127.0.0.1:PORT``).

Fault switches (attributes; in the CLI, type the command name on stdin):
  jammed          film jam: STATUS shows FILM JAM, prints fail, until ``clear``
  jam_next        the next print jams (the job fails, the imager stays jammed)
  cover_open      COVER OPEN, prints fail
  offline         OFFLINE, prints fail (STATUS still answers)
  films           films left (``load N``); 0 is SUPPLY EMPTY, <= low_mark SUPPLY LOW.  A job
                  with more copies than films left prints what it can, then stops SUPPLY EMPTY
                  and answers "partly printed" with the count (the host owes the rest)
  receiver        films in the output tray; at receiver_capacity RECEIVER FULL (``unload``)
  slow_bps        read at most this many bytes per second (None: as fast as they come): a slow
                  imager that makes the host's writes block and, past its write timeout, fail
  mute            answer nothing at all (a dead or unplugged imager)
  xonxoff         the line uses XON/XOFF: like a real UART set up so, the imager takes every
                  0x11/0x13 it receives as flow control and drops it from the data

In-process:  im = SerialFilmImager(out_dir=...); url = im.start_pty()  (or im.start_tcp());
             ...; im.stop().  Printed films: im.printed (one hwsim.film_decode.RasterFilm per
             print command that put film out, ``copies`` = sheets it made), im.sheets (sheets
             of film out in all); out_dir gets one PNG per sheet, never overwriting one.
Seen and driven from outside (hwsim/printer_view.py): the /sim/ page's view (status, films, jam /
             un-jam / out of film / load, the last film as PNG) and `hw-sim printer ...` through
             the control folder ``watch_control(folder)`` watches (hwsim/devices.py starts it).
CLI:         python -m hwsim.serial_imager --pty | --tcp PORT [--out DIR] [--films N]
             prints "url: ..." and then reads fault commands from stdin: jam, jam-next, clear,
             cover-open, cover-close, offline, online, load N, unload, slow BPS, fast, mute,
             unmute, status, quit.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys
import threading
import time
import tty
from dataclasses import replace
from pathlib import Path

from hwsim.film_decode import (RasterFilm, body_size, decode_raster_body, parse_header, unescape,
                               write_film)
from hwsim.printer_view import PrinterView

MAGIC = b"DRF1"
FILM_JAM, SUPPLY_EMPTY, SUPPLY_LOW, COVER_OPEN = 0x01, 0x02, 0x04, 0x08
OFFLINE, RECEIVER_FULL, BUSY, ERROR = 0x10, 0x20, 0x40, 0x80
PRINTED, REFUSED, FAULT, PARTLY = 0, 1, 2, 3


class _Closed(Exception):
    pass


_FAULT_NAMES = ((FILM_JAM, "FILM JAM"), (SUPPLY_EMPTY, "SUPPLY EMPTY"), (SUPPLY_LOW, "SUPPLY LOW"),
                (COVER_OPEN, "COVER OPEN"), (OFFLINE, "OFFLINE"), (RECEIVER_FULL, "RECEIVER FULL"))


class SerialFilmImager(PrinterView):
    """The imager; its view on the simulated box's page and `hw-sim printer` come from PrinterView."""

    model = "DRF/1 serial film imager"

    def __init__(self, out_dir: str | Path | None = None, films: int = 100, low_mark: int = 10,
                 receiver_capacity: int = 50, print_seconds: float = 0.0):
        self.out_dir = Path(out_dir) if out_dir else None
        self.films, self.low_mark = films, low_mark
        self.full_supply = films  # what "load" puts back
        self.receiver, self.receiver_capacity = 0, receiver_capacity
        self.print_seconds = print_seconds
        self.printing = False  # a complete job is on the drum (tests kill the host at this moment)
        self.jammed = self.jam_next = self.cover_open = self.offline = self.mute = False
        self.slow_bps: float | None = None
        self.xonxoff = False
        self.printed: list[RasterFilm] = []
        self.sheets = 0
        self.refused = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fds: list[int] = []
        self._sock: socket.socket | None = None
        self._raw = bytearray()
        self._init_view()

    # --- the view (hwsim/printer_view.py) ------------------------------------------------------
    def status_text(self) -> str:
        """"NORMAL", or the status bits' names ("FILM JAM, SUPPLY EMPTY")."""
        bits = self.status_bits()
        return ", ".join(name for bit, name in _FAULT_NAMES if bits & bit) or "NORMAL"

    def films_left(self) -> int:
        return max(self.films, 0)

    def printed_count(self) -> int:
        return self.sheets

    def last_png(self) -> bytes | None:
        return self.printed[-1].png() if self.printed else None

    def set_jammed(self, jammed: bool) -> None:
        if jammed:
            self.jammed = True
        else:
            self.clear()

    def set_out_of_film(self, out: bool) -> None:
        self.films = 0 if out else self.full_supply

    # --- state ---------------------------------------------------------------------------------
    def status_bits(self) -> int:
        return ((FILM_JAM if self.jammed else 0) | (SUPPLY_EMPTY if self.films <= 0 else 0)
                | (SUPPLY_LOW if 0 < self.films <= self.low_mark else 0)
                | (COVER_OPEN if self.cover_open else 0) | (OFFLINE if self.offline else 0)
                | (RECEIVER_FULL if self.receiver >= self.receiver_capacity else 0))

    def clear(self):
        self.jammed = self.jam_next = False

    def load(self, films: int):
        self.films = films

    def unload(self):
        self.receiver = 0

    # --- transports ----------------------------------------------------------------------------
    def start_pty(self) -> str:
        """Serve on a new pty; returns the device path for SerialTransport."""
        master, slave = os.openpty()
        tty.setraw(slave)
        self._fds = [master, slave]  # holding the slave open keeps the master readable
        self._run(lambda n: self._read_fd(master, n), lambda b: self._write_fd(master, b))
        return os.ttyname(slave)

    def start_tcp(self, port: int = 0) -> str:
        """Serve one connection at a time on 127.0.0.1; returns a pyserial socket:// URL."""
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(1)
        self._sock.settimeout(0.1)  # so stop() is seen: closing does not wake a blocked accept()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name="serial-imager")
        self._thread.start()
        return f"socket://127.0.0.1:{self._sock.getsockname()[1]}"

    def stop(self):
        self.stop_control()
        self._stop.set()
        if self._sock:
            self._sock.close()
        if self._thread:
            self._thread.join(timeout=5)
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def _run(self, recv, send):
        def loop():
            try:
                self._serve(recv, send)
            except (_Closed, OSError):
                pass
        self._thread = threading.Thread(target=loop, daemon=True, name="serial-imager")
        self._thread.start()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(0.1)
                self._raw.clear()
                try:
                    self._serve(lambda n: self._recv_sock(conn, n), conn.sendall)
                except (_Closed, OSError):
                    pass

    def _read_fd(self, fd, n):
        while not self._stop.is_set():
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    return os.read(fd, n)
                except OSError:  # EIO: nobody has the slave open right now
                    time.sleep(0.05)
        raise _Closed

    @staticmethod
    def _write_fd(fd, data):
        while data:
            data = data[os.write(fd, data):]

    def _recv_sock(self, conn, n):
        while not self._stop.is_set():
            try:
                data = conn.recv(n)
            except socket.timeout:
                continue
            if not data:
                raise _Closed
            return data
        raise _Closed

    # --- protocol ------------------------------------------------------------------------------
    def _take(self, recv, n: int) -> bytes:
        """Exactly n raw bytes, throttled to slow_bps."""
        while len(self._raw) < n:
            want = 65536
            if self.slow_bps:
                want = max(1, int(self.slow_bps / 10))
                time.sleep(0.1)
            data = recv(want)
            if self.xonxoff:
                data = data.replace(b"\x11", b"").replace(b"\x13", b"")
            self._raw += data
        out = bytes(self._raw[:n])
        del self._raw[:n]
        return out

    def _take_body(self, recv, n: int, escaped: bool) -> bytes:
        if not escaped:
            return self._take(recv, n)
        out = bytearray()
        while len(out) < n:
            # Each raw byte yields at most one byte, so asking for what is missing never overreads;
            # an escape cut in two is completed with its second byte.
            raw = self._take(recv, n - len(out))
            if raw.endswith(b"\x7d"):
                raw += self._take(recv, 1)
            out += unescape(raw)
        return bytes(out)

    def _serve(self, recv, send):
        while not self._stop.is_set():
            head = self._take(recv, 5)
            if head[:4] != MAGIC:
                self._raw.clear()  # out of step: drop what is buffered and resynchronise
                continue
            if head[4] == 0x05:
                if not self.mute:
                    send(MAGIC + b"\x85" + b"%04X%04X" % (self.status_bits(), max(self.films, 0)))
            elif head[4] == 0x01:
                result, made = self._print(recv, self._take(recv, 1)[0] & 1)
                self._view_changed()
                if not self.mute:
                    tail = b"%04X" % made if result == PARTLY else b""
                    send(MAGIC + b"\x81" + b"%04X%02X" % (self.status_bits(), result) + tail)

    def _print(self, recv, escaped: bool) -> tuple[int, int]:
        """(result, sheets made) for one PRINT command."""
        header = self._take_body(recv, 12, escaped)
        try:
            width, height, bits, channels, copies = parse_header(header)
            film = decode_raster_body(header, self._take_body(
                recv, body_size(width, height, bits, channels) + 4, escaped))
        except ValueError:
            self.refused += 1
            self._raw.clear()
            return REFUSED, 0
        if self.status_bits() & (FILM_JAM | SUPPLY_EMPTY | COVER_OPEN | OFFLINE | RECEIVER_FULL):
            return FAULT, 0
        if self.jam_next:
            self.jam_next, self.jammed = False, True
            self.films -= 1  # the jammed sheet is lost
            return FAULT, 0
        self.printing = True
        time.sleep(self.print_seconds)
        self.printing = False
        # Sheet by sheet, as a real imager: it stops where the supply (or the tray) runs out.
        made = 0
        png = film.png() if self.out_dir else b""
        while made < copies and self.films > 0 and self.receiver < self.receiver_capacity:
            self.films -= 1
            self.receiver += 1
            self.sheets += 1
            made += 1
            if self.out_dir:
                write_film(self.out_dir, png)
        if made:
            self.printed.append(replace(film, copies=made))
        if made == copies:
            return PRINTED, made
        return (PARTLY, made) if made else (FAULT, 0)


def _command(im: SerialFilmImager, line: str) -> bool:
    words = line.split()
    if not words:
        return True
    cmd, arg = words[0], (words[1] if len(words) > 1 else None)
    flags = {"jam": ("jammed", True), "jam-next": ("jam_next", True),
             "cover-open": ("cover_open", True), "cover-close": ("cover_open", False),
             "offline": ("offline", True), "online": ("offline", False),
             "mute": ("mute", True), "unmute": ("mute", False), "fast": ("slow_bps", None)}
    if cmd in flags:
        setattr(im, *flags[cmd])
    elif cmd == "clear":
        im.clear()
    elif cmd == "load" and arg:
        im.load(int(arg))
    elif cmd == "unload":
        im.unload()
    elif cmd == "slow" and arg:
        im.slow_bps = float(arg)
    elif cmd == "quit":
        return False
    elif cmd != "status":
        print(f"unknown command {line.strip()!r}", flush=True)
    print(f"status 0x{im.status_bits():04x} films {im.films} receiver {im.receiver} "
          f"printed {len(im.printed)} sheets {im.sheets}", flush=True)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hwsim.serial_imager", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve on a new pty")
    where.add_argument("--tcp", type=int, metavar="PORT", help="serve on 127.0.0.1:PORT (0: any)")
    ap.add_argument("--out", type=Path, help="write a PNG per printed film here")
    ap.add_argument("--films", type=int, default=100)
    ap.add_argument("--print-seconds", type=float, default=0.0)
    args = ap.parse_args(argv)
    im = SerialFilmImager(out_dir=args.out, films=args.films, print_seconds=args.print_seconds)
    url = im.start_pty() if args.pty else im.start_tcp(args.tcp)
    print(f"url: {url}", flush=True)
    try:
        for line in sys.stdin:
            if not _command(im, line):
                break
        else:
            im._stop.wait()  # stdin closed (running as a service): serve until killed
    except KeyboardInterrupt:
        pass
    finally:
        im.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
