"""Turn the bytes a printer received into a PNG of the film it would have printed.

The DRF/1 decoder is written from the protocol description in drivers/printer/raster.py, not by
importing the driver, so a driver that drifts from its own documentation fails the simulator
tests.  PostScript is rasterised by Ghostscript, as a PostScript printer's RIP would.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

MAGIC = b"DRF1"
_FILM_NAME = re.compile(r"film-(\d+)\.png$")


def write_film(out_dir: Path, png: bytes) -> Path:
    """Keep one printed film as ``film-NNNNNN.png`` in `out_dir`, numbered after the highest
    number already there, and never over an existing file: a restarted simulator, or a second
    one writing to the same folder, adds films instead of replacing earlier ones."""
    out_dir.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for m in map(_FILM_NAME.match, os.listdir(out_dir)) if m]
    n = max(numbers, default=0)
    while True:
        n += 1
        path = out_dir / f"film-{n:06d}.png"
        try:
            with open(path, "xb") as fh:  # O_EXCL: taken by someone else -> the next number
                fh.write(png)
            return path
        except FileExistsError:
            continue


@dataclass
class RasterFilm:
    width: int
    height: int
    bits: int
    channels: int
    copies: int
    samples: bytes

    def image(self) -> Image.Image:
        size = (self.width, self.height)
        if self.channels == 3:
            if self.bits != 8:
                raise ValueError("simulated imager prints 8-bit colour only")
            return Image.frombytes("RGB", size, self.samples)
        if self.bits == 8:
            return Image.frombytes("L", size, self.samples)
        return Image.frombytes("I;16", size, self.samples, "raw", "I;16B")

    def png(self) -> bytes:
        out = io.BytesIO()
        self.image().save(out, format="PNG")
        return out.getvalue()


def unescape(data: bytes) -> bytes:
    parts = data.split(b"\x7d")
    return parts[0] + b"".join(bytes([p[0] ^ 0x20]) + p[1:] for p in parts[1:] if p)


def parse_header(header: bytes) -> tuple[int, int, int, int, int]:
    """(width, height, bits, channels, copies); ValueError when the imager would refuse it."""
    width, height, bits, channels, copies = struct.unpack(">IIBBH", header)
    if not (0 < width <= 20000 and 0 < height <= 20000):
        raise ValueError(f"film {width}x{height} out of range")
    if bits not in (8, 16) or channels not in (1, 3) or copies < 1:
        raise ValueError(f"bits {bits}, channels {channels}, copies {copies} not supported")
    return width, height, bits, channels, copies


def body_size(width: int, height: int, bits: int, channels: int) -> int:
    return width * height * channels * (1 if bits == 8 else 2)


def decode_raster_body(header: bytes, rows_and_crc: bytes) -> RasterFilm:
    width, height, bits, channels, copies = parse_header(header)
    size = body_size(width, height, bits, channels)
    samples, crc = rows_and_crc[:size], rows_and_crc[size:size + 4]
    if len(samples) != size or len(crc) != 4:
        raise ValueError("raster job is truncated")
    if zlib.crc32(samples) != struct.unpack(">I", crc)[0]:
        raise ValueError("raster job CRC mismatch")
    return RasterFilm(width, height, bits, channels, copies, samples)


def decode_raster_job(data: bytes) -> RasterFilm:
    """A whole DRF/1 PRINT command as bytes."""
    if data[:4] != MAGIC or len(data) < 6 or data[4] != 0x01:
        raise ValueError("not a DRF/1 PRINT command")
    body = unescape(data[6:]) if data[5] & 1 else data[6:]
    return decode_raster_body(body[:12], body[12:])


def render_postscript(data: bytes, dpi: float, colour: bool | None = None) -> bytes:
    """PNG of a PostScript job, rendered by Ghostscript at ``dpi``."""
    gs = shutil.which("gs")
    if gs is None:
        raise RuntimeError("Ghostscript (gs) is needed to render PostScript: "
                           "apt-get install ghostscript")
    if colour is None:
        colour = b"colorimage" in data[:4096]
    device = "png16m" if colour else "pnggray"
    done = subprocess.run([gs, "-q", "-dSAFER", "-dNOPAUSE", "-dBATCH", f"-sDEVICE={device}",
                           f"-r{dpi:g}", "-sOutputFile=-", "-"], input=data,
                          capture_output=True, timeout=300)
    if done.returncode != 0 or not done.stdout.startswith(b"\x89PNG"):
        raise RuntimeError(f"Ghostscript failed: {done.stderr.decode(errors='replace')[:500]}")
    return done.stdout
