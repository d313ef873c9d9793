"""A simulated frame grabber: a legacy ultrasound's video, fed into the real driver's decode path.

There is no v4l2loopback here (nor on CI machines), so the simulator stands where the device node
would be: a Unix socket that drivers/grabber/pipe.py's PipeSource reads with ffmpeg's rawvideo (or
mjpeg) demuxer, then the same decoder and swscale conversion as on the box (pipe.py says exactly
what differs).  The stream is the device's pixel format: yuyv422 (BT.601 limited range, as
swscale converts it back) or mjpeg (one JPEG a frame).

The picture (``Picture``): a fan-shaped sector of speckle with depth markers in cm, a cyst, a
bright reflector and a colour Doppler box (red and blue), under a black band with burned-in text (a patient-ish label, the date and time,
the frame counter) and the counter as a row of black and white blocks (``burned_counter`` reads it
back from a decoded frame: the tests match a frame the driver read to the frame the simulator
drew).  A few speckle variants are drawn once per format and the band is drawn per frame; for
yuyv422 the band's rows are converted and sent before the variant's rows, which were converted
once: 1920x1080 at 30 fps costs little more than the copy into the socket.

The simulator owns a folder ``<sim_dir>/``:

  video.sock          the stream (a Linux abstract socket when the path is too long for AF_UNIX)
  grabber.json        {"grabber": view_name, "address"}: written at start, read by `hw-sim grabber`
  commands/, results/ `hw-sim grabber signal-off` drops one JSON command; the watcher applies it
                      and answers ({"ok", "error", "state"}), as hwsim/panel.py does

Faults: signal off (the connection stays, no frame comes, as a grabber whose source went dark),
signal on, a resolution change (the stream ends and the next connection's header has the new size,
as a V4L2 source change ends streaming).

``state()`` and the view_* methods make it a view of the simulated box's page
(gateway/status/views.py): kind "grabber", actions signal-off / signal-on / resolution
({"size": "800x600"}), ``view_film()`` the last frame sent as PNG (encoded at most once a second).
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import io
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from drivers.grabber.pipe import PipeSource
from drivers.grabber.v4l2 import PIXEL_FORMATS, V4l2Grabber
from hwsim import control_folder
from hwsim.control_folder import POLL_S, SimError, serve_pending, write_json

log = logging.getLogger("hwsim.grabber")

COUNTER_BITS = 24
VARIANTS = 6               # speckle pictures drawn per format; frames cycle through them
HISTORY = 256              # frames whose picture frame_rgb() can draw again
MIN_SIZE, MAX_SIZE = (160, 120), (4096, 4096)
LABEL = "HW-SIM US  PID SIM-0001"
FILM_EVERY_S = 1.0         # view_film and the page's change signal: at most this often
SEND_TIMEOUT_S = 2.0       # a client that takes no data this long is dropped
FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
ACTIONS = ("status", "signal-off", "signal-on", "resolution")


def _font(size: int) -> Any:
    for path in FONTS:
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def parse_size(text: str) -> tuple[int, int]:
    """"800x600" -> (800, 600).  SimError (one line) for anything else or a size the simulator does
    not draw (from 160x120 to 4096x4096, even width: YUYV pairs pixels)."""
    try:
        w, h = (int(part) for part in str(text).lower().split("x"))
    except ValueError:
        raise SimError(f"resolution {text!r} is not WIDTHxHEIGHT (e.g. 800x600)") from None
    if not (MIN_SIZE[0] <= w <= MAX_SIZE[0] and MIN_SIZE[1] <= h <= MAX_SIZE[1]):
        raise SimError(f"resolution {w}x{h} is outside {MIN_SIZE[0]}x{MIN_SIZE[1]} .. {MAX_SIZE[0]}x{MAX_SIZE[1]}")
    if w % 2:
        raise SimError(f"resolution {w}x{h}: the width must be even (YUYV pairs pixels)")
    return w, h


class Picture:
    """The synthetic ultrasound picture at ``width`` x ``height``: VARIANTS speckle pictures (RGB,
    (h, w, 3) uint8, gray) and the band with text and counter blocks drawn per frame."""

    def __init__(self, width: int, height: int, label: str = LABEL, seed: int = 7):
        self.width, self.height, self.label = width, height, label
        self.band = max(24, height // 12)
        # Counter blocks: square, a multiple of 8 px where it fits (JPEG blocks), in the band's
        # bottom-right corner.
        self.block = max(4, min(self.band // 2, (width // 3) // COUNTER_BITS) // 4 * 4)
        self.font = _font(max(10, self.band * 2 // 5))
        rng = np.random.default_rng(seed)
        self.variants = [self._speckle(rng) for _ in range(VARIANTS)]

    def _speckle(self, rng: np.random.Generator) -> np.ndarray:
        h, w = self.height, self.width
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        apex_x, apex_y = w / 2, self.band + 4
        r = np.hypot(x - apex_x, y - apex_y)
        theta = np.arctan2(x - apex_x, y - apex_y)
        depth = h - self.band - 12
        fan = (np.abs(theta) < np.radians(38)) & (r < depth) & (r > depth * 0.06)
        # Rayleigh speckle on a coarse grid (a speckle cell is a few pixels), attenuated with depth.
        cell = max(1, min(h, w) // 240)
        coarse = rng.rayleigh(0.5, size=(h // cell + 1, w // cell + 1)).astype(np.float32)
        speckle = np.repeat(np.repeat(coarse, cell, 0), cell, 1)[:h, :w]
        tissue = 150 * speckle * np.exp(-1.2 * r / depth)
        # A cyst (dark, round) and a reflector (a bright arc), fixed in the tissue.
        cyst = np.hypot(x - apex_x - 0.12 * depth, y - apex_y - 0.55 * depth) < 0.08 * depth
        tissue[cyst] *= 0.12
        arc = np.abs(r - 0.35 * depth) < max(2, depth // 150)
        tissue[arc & (np.abs(theta) < np.radians(20))] = 235
        gray = np.where(fan, np.clip(tissue, 0, 255), 0).astype(np.uint8)
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        # A colour Doppler box: flow towards the probe red, away blue (and a test of the channel
        # order: a gray picture would hide swapped R and B).
        y0, y1, x0, x1 = self.doppler_box()
        box = rgb[y0:y1, x0:x1]
        half = (x1 - x0) // 2
        box[:, :half] = (200, 40, 30)
        box[:, half:] = (30, 60, 210)
        img = Image.fromarray(rgb)
        draw = ImageDraw.Draw(img)
        # Depth markers: a tick and its centimetres every tenth of the depth (the scale is 20 cm).
        tick_x = int(apex_x + np.sin(np.radians(38)) * depth) + 8
        small = _font(max(9, self.band // 3))
        for i in range(1, 10):
            yy = int(apex_y + i * depth / 10)
            draw.line([(tick_x, yy), (tick_x + 6, yy)], fill=(200, 200, 200), width=2)
            draw.text((tick_x + 9, yy - small.size // 2), f"{i * 2}", fill=(200, 200, 200), font=small)
        return np.asarray(img).copy()

    def doppler_box(self) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) of the colour Doppler box, inside the fan."""
        h, w = self.height, self.width
        y0 = self.band + (h - self.band) * 9 // 20
        return y0, y0 + (h - self.band) // 6, w // 2 - w // 5, w // 2 - w // 40

    def band_rgb(self, counter: int, when: str) -> np.ndarray:
        """The band (rows 0..band) for frame ``counter`` at ``when`` ("YYYY-MM-DD HH:MM:SS")."""
        img = Image.new("RGB", (self.width, self.band), (0, 0, 0))
        draw = ImageDraw.Draw(img)
        pad = max(2, self.band // 12)
        draw.text((pad, pad), self.label, fill=(255, 255, 255), font=self.font)
        draw.text((pad, self.band // 2), f"{when}  #{counter:07d}", fill=(255, 220, 0), font=self.font)
        band = np.asarray(img).copy()
        b = self.block
        x0, y0 = self.width - COUNTER_BITS * b - pad, self.band - b - 1
        for bit in range(COUNTER_BITS):
            if counter >> (COUNTER_BITS - 1 - bit) & 1:
                band[y0:y0 + b, x0 + bit * b: x0 + (bit + 1) * b] = 255
        return band

    def frame_rgb(self, counter: int, when: str, variant: int) -> np.ndarray:
        """The whole picture of one frame, (h, w, 3) uint8 RGB."""
        out = self.variants[variant].copy()
        out[: self.band] = self.band_rgb(counter, when)
        return out

    def counter_of(self, pixels: np.ndarray) -> int:
        """The frame counter read back from a decoded frame's blocks (the centre of each block,
        thresholded: survives YUV 4:2:2 and JPEG)."""
        b, pad = self.block, max(2, self.band // 12)
        x0, yc = self.width - COUNTER_BITS * b - pad, self.band - b - 1 + b // 2
        value = 0
        for bit in range(COUNTER_BITS):
            value = value << 1 | int(pixels[yc, x0 + bit * b + b // 2].mean() > 128)
        return value


def to_yuyv(rgb: np.ndarray) -> bytes:
    """(h, w, 3) uint8 RGB -> packed YUYV 4:2:2 bytes, BT.601 limited range (swscale, as the
    driver's conversion back assumes)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuyv422")
    plane = frame.planes[0]
    row = rgb.shape[1] * 2
    if plane.line_size == row:
        return bytes(plane)
    data = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: rgb.shape[0], :row]
    return data.tobytes()


def to_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """One MJPEG frame (baseline JPEG, 4:2:2 as UVC grabbers send)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling=1)
    return buf.getvalue()


def _address(folder: Path) -> str:
    path = str(folder / "video.sock")
    if len(os.fsencode(path)) < 100:
        return path
    # sockaddr_un holds 108 bytes; a deep folder gets a Linux abstract name derived from it.
    return "\0hwsim-grabber-" + hashlib.sha1(path.encode()).hexdigest()[:16]


class SimulatedGrabber:
    """The frame source in ``folder``: ``width`` x ``height`` at ``fps`` in ``pixel_format``.
    start() listens and sends; stop() ends it.  Thread-safe."""

    view_name = "grabber"
    view_kind = "grabber"
    view_action_args = {"resolution": ("size",)}

    def __init__(self, folder: str | os.PathLike, width: int = 640, height: int = 480, fps: float = 30.0,
                 pixel_format: str = "yuyv422", label: str = LABEL):
        if pixel_format not in PIXEL_FORMATS:
            raise SimError(f"pixel format {pixel_format!r} is not one of {', '.join(PIXEL_FORMATS)}")
        parse_size(f"{width}x{height}")
        self.folder = Path(folder)
        self.address = _address(self.folder)
        self.fps, self.pixel_format, self.label = float(fps), pixel_format, label
        self.picture = Picture(width, height, label)
        self._variant_yuyv: list[bytes] | None = None
        self.signal = True
        self.frames_sent = 0
        self.late = 0              # frame slots skipped because the client read too slowly
        self.connections = 0       # streams a driver opened
        self._history: collections.OrderedDict[int, tuple[Picture, int, str]] = collections.OrderedDict()
        self._last: tuple[Picture, int, int, str] | None = None
        self._film: tuple[int, bytes] | None = None
        self._film_at = 0.0
        self._notified_at = 0.0
        self._lock = threading.RLock()
        self._client: socket.socket | None = None
        self._closing: list[socket.socket] = []
        self._server: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listeners: list[Callable[[], None]] = []

    # -- life -------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Listen on the socket, publish grabber.json, send frames, watch commands/.  Idempotent."""
        if self.pixel_format == "yuyv422":
            self._yuyv_variants(self.picture)  # converted once, before the first frame is due
        with self._lock:
            if self._server is not None:
                return
            control_folder.prepare(self.folder)
            if not self.address.startswith("\0"):
                Path(self.address).unlink(missing_ok=True)
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(self.address)
            server.listen(2)
            server.settimeout(POLL_S)
            self._server = server
            write_json(self.folder / "grabber.json", {"grabber": self.view_name, "address": self.address})
            self._stop.clear()
            self._threads = [threading.Thread(target=self._send_loop, name="hwsim-grabber", daemon=True),
                             threading.Thread(target=self._watch, name="hwsim-grabber-control", daemon=True)]
        for t in self._threads:
            t.start()
        log.info("simulated frame grabber: %dx%d at %g fps, %s", self.picture.width, self.picture.height,
                 self.fps, self.pixel_format)

    def stop(self) -> None:
        """Stop sending and watching; close the socket.  Safe twice."""
        self._stop.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(5)
        self._threads = []
        with self._lock:
            self._drop_client()
        self._close_dropped()
        with self._lock:
            if self._server is not None:
                self._server.close()
                self._server = None
                if not self.address.startswith("\0"):
                    Path(self.address).unlink(missing_ok=True)

    # -- faults -----------------------------------------------------------------------------------
    def set_signal(self, on: bool) -> None:
        """Signal on (frames flow) or off (the connection stays, nothing is sent)."""
        with self._lock:
            changed, self.signal = self.signal != on, on
        if changed:
            log.info("simulated frame grabber: signal %s", "on" if on else "off")
            self._changed()

    def set_resolution(self, width: int, height: int, end_stream: bool = True) -> None:
        """Another size: the stream ends; the next connection's header has the new one.  With
        ``end_stream`` False (mjpeg only: a JPEG carries its size, raw YUYV does not) the stream
        goes on with frames of the new size, as a UVC MJPEG grabber may.  SimError for a size the
        simulator does not draw, or end_stream False with yuyv422."""
        parse_size(f"{width}x{height}")
        if not end_stream and self.pixel_format != "mjpeg":
            raise SimError("only an mjpeg stream can change its size without ending")
        picture = Picture(width, height, self.label)  # drawn outside the lock: frames keep going
        converted = [to_yuyv(v) for v in picture.variants] if self.pixel_format == "yuyv422" else None
        with self._lock:
            self.picture, self._variant_yuyv = picture, converted
            if end_stream:
                self._drop_client()
        log.info("simulated frame grabber: resolution %dx%d", width, height)
        self._changed()

    # -- what it shows ----------------------------------------------------------------------------
    def state(self) -> dict:
        """{"signal": bool, "format": {"width", "height", "fps", "pixel_format"}, "frames_sent",
        "late" (slots skipped for a slow reader), "connected" (a driver reads the stream), "running"}."""
        with self._lock:
            p = self.picture
            return {"signal": self.signal, "running": self.running, "connected": self._client is not None,
                    "format": {"width": p.width, "height": p.height, "fps": self.fps,
                               "pixel_format": self.pixel_format},
                    "frames_sent": self.frames_sent, "late": self.late}

    def frame_rgb(self, counter: int) -> np.ndarray | None:
        """The picture the simulator drew for frame ``counter`` (one of the last HISTORY it began to
        send), (h, w, 3) uint8 RGB; None when it was not sent or is too old."""
        with self._lock:
            entry = self._history.get(counter)
        if entry is None:
            return None
        picture, variant, when = entry
        return picture.frame_rgb(counter, when, variant)

    def counter_of(self, pixels: np.ndarray) -> int:
        """The counter burned into a decoded frame of the current size (Picture.counter_of)."""
        return self.picture.counter_of(pixels)

    # -- sending ----------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        start = time.monotonic()
        next_slot = 0
        while not self._stop.is_set():
            self._close_dropped()
            self._accept()
            slot = int((time.monotonic() - start) * self.fps)
            if slot < next_slot:
                self._stop.wait(min(POLL_S, (next_slot - slot) / self.fps))
                continue
            if slot > next_slot:
                with self._lock:
                    if self._client is not None and self.signal:
                        self.late += slot - next_slot
            next_slot = slot + 1
            with self._lock:
                client, picture, signal = self._client, self.picture, self.signal
            if client is None or not signal:
                continue
            self._send_frame(client, picture, slot)

    def _accept(self) -> None:
        server = self._server
        if server is None:
            return
        try:
            client, _ = server.accept() if self._client is None else self._accept_now(server)
        except (TimeoutError, BlockingIOError, OSError):
            return
        if client is None:
            return
        with self._lock:
            self._drop_client()
            p = self.picture
            header = {"width": p.width, "height": p.height, "fps": self.fps, "pixel_format": self.pixel_format}
            try:
                client.settimeout(SEND_TIMEOUT_S)
                client.sendall(json.dumps(header).encode() + b"\n")
            except OSError:
                client.close()
                return
            self._client = client
            self.connections += 1
        self._changed()

    @staticmethod
    def _accept_now(server: socket.socket) -> tuple[socket.socket | None, Any]:
        # A second connection (a reopened driver) replaces the first: look without waiting.
        server.settimeout(0)
        try:
            return server.accept()
        except (BlockingIOError, OSError):
            return None, None
        finally:
            server.settimeout(POLL_S)

    def _send_frame(self, client: socket.socket, picture: Picture, counter: int) -> None:
        counter %= 1 << COUNTER_BITS
        variant = counter % VARIANTS
        when = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        with self._lock:
            # Before it is sent: the driver may decode it before sendall returns here.
            self._history[counter] = (picture, variant, when)
            while len(self._history) > HISTORY:
                self._history.popitem(last=False)
        try:
            if self.pixel_format == "yuyv422":
                rest = self._yuyv_variants(picture)[variant]
                band = to_yuyv(picture.band_rgb(counter, when))
                client.sendall(band)
                client.sendall(memoryview(rest)[len(band):])
            else:
                client.sendall(to_jpeg(picture.frame_rgb(counter, when, variant)))
        except OSError:
            # The driver went away (closed, or stopped reading): it reconnects when it wants more.
            with self._lock:
                if self._client is client:
                    self._drop_client()
            self._changed()
            return
        with self._lock:
            self.frames_sent += 1
            self._last = (picture, counter, variant, when)
        if time.monotonic() - self._notified_at >= FILM_EVERY_S:
            self._changed()

    def _yuyv_variants(self, picture: Picture) -> list[bytes]:
        with self._lock:
            if self._variant_yuyv is not None and picture is self.picture:
                return self._variant_yuyv
        converted = [to_yuyv(v) for v in picture.variants]
        with self._lock:
            if picture is self.picture:
                self._variant_yuyv = converted
        return converted

    def _drop_client(self) -> None:
        """End the stream (the driver sees EOF).  Only shut down here: the send loop may be inside
        sendall on it in another thread; shutdown wakes it, and the loop closes it."""
        if self._client is not None:
            try:
                self._client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._closing.append(self._client)
            self._client = None

    def _close_dropped(self) -> None:
        with self._lock:
            dropped, self._closing = self._closing, []
        for sock in dropped:
            sock.close()

    # -- the simulated box's page (gateway/status/views.py) ---------------------------------------
    def view_state(self) -> dict:
        """state(): signal, format, frames sent."""
        return self.state()

    def view_actions(self) -> list[str]:
        """"signal-off", "signal-on", "resolution" ({"size": "800x600"})."""
        return [a for a in ACTIONS if a != "status"]

    def view_act(self, action: str, args: Mapping[str, Any] | None = None) -> str:
        """One action; returns e.g. "grabber: signal off".  ValueError (one line) for another action
        or a bad size."""
        try:
            self.apply({"verb": action, **dict(args or {})})
        except SimError as exc:
            raise ValueError(f"grabber: {exc}") from None
        s = self.state()
        return f"grabber: signal {'on' if s['signal'] else 'off'}, {s['format']['width']}x{s['format']['height']}"

    def view_subscribe(self, listener: Callable[[], None]) -> None:
        """listener() after every change of signal, format or connection, and at most once every
        FILM_EVERY_S while frames are sent (the page's picture and count)."""
        self._listeners.append(listener)

    def view_film(self) -> bytes | None:
        """The last frame sent as PNG (re-encoded at most once every FILM_EVERY_S); None before the
        first."""
        with self._lock:
            last, film = self._last, self._film
            if last is None:
                return None
            if film is not None and (film[0] == last[1] or time.monotonic() - self._film_at < FILM_EVERY_S):
                return film[1]
            self._film_at = time.monotonic()
        picture, counter, variant, when = last
        buf = io.BytesIO()
        Image.fromarray(picture.frame_rgb(counter, when, variant)).save(buf, "PNG", compress_level=1)
        with self._lock:
            self._film = (counter, buf.getvalue())
            return self._film[1]

    def _changed(self) -> None:
        self._notified_at = time.monotonic()
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001 - a page's listener must not break the source
                log.exception("hw-sim grabber: a listener failed")

    # -- control folder ---------------------------------------------------------------------------
    def apply(self, command: Mapping[str, Any]) -> None:
        """{"verb": "status"}, {"verb": "signal-off"}, {"verb": "signal-on"}, {"verb": "resolution",
        "size": "800x600"}.  SimError (one line) when refused."""
        verb = command.get("verb")
        if verb == "signal-off":
            self.set_signal(False)
        elif verb == "signal-on":
            self.set_signal(True)
        elif verb == "resolution":
            self.set_resolution(*parse_size(str(command.get("size", ""))))
        elif verb != "status":
            raise SimError(f"unknown command {verb!r} (one of {', '.join(ACTIONS)})")

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            serve_pending(self.folder, self.apply, self.state, (SimError, ValueError, OSError))


class SimGrabber(V4l2Grabber):
    """The real driver (drivers/grabber/v4l2.py) on a SimulatedGrabber through PipeSource;
    ``simulator`` is it.  open() starts the simulator first, close() stops it last."""

    def __init__(self, simulator: SimulatedGrabber, cfg: Any, name: str = "grabber"):
        self.simulator = simulator
        super().__init__(name, f"hw-sim {simulator.folder}", cfg.width, cfg.height, cfg.fps, cfg.pixel_format,
                         cfg.analog, open_timeout_s=cfg.signal_timeout_s,
                         source=PipeSource(simulator.address, "hw-sim frame source"))

    def open(self):
        """The simulator, then the driver on it."""
        self.simulator.start()
        try:
            return super().open()
        except Exception:
            self.simulator.stop()
            raise

    def close(self) -> None:
        """The driver, then the simulator."""
        super().close()
        self.simulator.stop()


def sim_grabber(name: str, cfg: Any, resolve: Callable[[str], Path]) -> SimGrabber:
    """Kind ``sim`` (entry point ``grabber.sim``; drivers/grabber/devices.py's factory signature):
    grabber ``name`` over the [capture.grabber] table ``cfg``, on a simulated frame source in
    ``resolve(cfg.sim_dir)``."""
    sim = SimulatedGrabber(resolve(cfg.sim_dir), cfg.width, cfg.height, cfg.fps, cfg.pixel_format)
    return SimGrabber(sim, cfg, name)


# -- the hw-sim command line's side ----------------------------------------------------------------

def send(folder: Path, command: dict, timeout: float = 10.0) -> dict:
    """Drop ``command`` in ``folder``/commands and wait for the answer; the source's state().
    SimError when refused or when nobody picks it up within ``timeout`` seconds."""
    folder = Path(folder)
    if not (folder / "grabber.json").exists():
        raise SimError(f"no simulated frame grabber in {folder} (is the service running with [capture.grabber] "
                       f"kind = \"sim\" and this sim_dir?)")
    return control_folder.send(folder, command, timeout,
                               f"is the service running with [capture.grabber] kind = \"sim\" and sim_dir {folder}?")


def describe(state: dict) -> str:
    """The source as one terminal line."""
    f = state["format"]
    return (f"grabber: signal {'on' if state['signal'] else 'off'}; {f['width']}x{f['height']} at {f['fps']:g} fps "
            f"{f['pixel_format']}; frames sent {state['frames_sent']}"
            + ("" if state.get("connected") else "; no driver connected"))
