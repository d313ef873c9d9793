"""PostScript Level 3 for film and paper printers that take PostScript.

One page per film.  The page is exactly the film's pixel matrix at the job's resolution
(cols / dpi * 72 points wide), so the printer's raster and ours coincide and no resampling happens
on the way.  Grayscale films use ``image``, colour films ``colorimage``, 8 bits per sample: the
film's drive levels are the printer's gray (or RGB) sample values, 0 black, 255 white, and the
printer's characteristic curve is measured in those units.  Samples go either ASCII85 (safe on any
channel) or binary (a third smaller; only on 8-bit clean transports such as USB or a file).
"""

from __future__ import annotations

from drivers.printer.interface import DeviceStatus, PrintJob, Transport
from drivers.printer.ascii85 import ascii85_encode


class PostScriptLanguage:
    def __init__(self, binary: bool = False, title: str = "DICOM film"):
        self.binary = binary
        self.title = title

    def encode(self, job: PrintJob) -> bytes:
        film = job.film
        if film.dtype.itemsize != 1:
            raise ValueError("PostScript printers take 8-bit drive levels; this film is "
                             f"{film.dtype} (use an 8-bit characteristic curve)")
        colour = film.ndim == 3
        if colour and film.shape[2] != 3:
            raise ValueError(f"colour film must be rows x cols x 3, got {film.shape}")
        rows, cols = film.shape[:2]
        width_pt, height_pt = cols / job.dpi * 72.0, rows / job.dpi * 72.0
        samples = film.tobytes()
        data = samples if self.binary else ascii85_encode(samples)
        source = "currentfile" if self.binary else "currentfile /ASCII85Decode filter"
        paint = f"{source} false 3 colorimage" if colour else f"{source} image"
        head = "\n".join([
            "%!PS-Adobe-3.0",
            f"%%Title: {self.title}",
            "%%Creator: dicom-gateway",
            "%%LanguageLevel: 3",
            f"%%BoundingBox: 0 0 {round(width_pt)} {round(height_pt)}",
            f"%%HiResBoundingBox: 0 0 {width_pt:.4f} {height_pt:.4f}",
            "%%Pages: 1",
            "%%EndComments",
            "%%BeginSetup",
            f"<< /PageSize [{width_pt:.4f} {height_pt:.4f}] /NumCopies {int(job.copies)} >> "
            "setpagedevice",
            "%%EndSetup",
            "%%Page: 1 1",
            "gsave",
            f"{width_pt:.4f} {height_pt:.4f} scale",
            # Sample rows run top to bottom; the matrix flips them onto PostScript's y-up page.
            f"{cols} {rows} 8 [{cols} 0 0 -{rows} 0 {rows}] {paint}",
        ]).encode("ascii") + b"\n"
        tail = b"\ngrestore\nshowpage\n%%EOF\n"
        return head + data + tail

    def query_status(self, transport: Transport) -> DeviceStatus | None:
        return None  # status comes from the transport (USB port status, file folder)

    def confirm(self, transport: Transport) -> DeviceStatus | None:
        return None
