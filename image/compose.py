"""Compose a film: image boxes laid out, magnified, mapped to drive levels, on a border.

The result is the array the printer driver sends: drive levels (uint8 or uint16 per the printer's
characteristic curve), rows x cols for grayscale films and rows x cols x 3 (uint8) for colour.

Order of work per image: magnify the stored values (the P-value domain, where interpolation is
perceptually even), then one LUT lookup (stored value -> P-value -> OD -> drive level) written
straight into the film array, so the full-size float image is touched once.

Sizing: Requested Image Size is the image width in mm; the height follows the aspect ratio, and
the image is never larger than its box.  Without it the image fills the box.  REPLICATE enlarges
by a whole factor only (that is what replication means); NONE prints 1:1 and crops the centre of
an image larger than its box.  The image is centred in its box.  Trim draws a line about 0.3 mm
wide around the image, in the density opposite the border (black on a white border and vice
versa), in room reserved inside the box so it never covers image pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from image.density import CharacteristicCurve, build_lut, parse_density
from image.film_layout import Box, film_matrix, layout_boxes, mm_to_pixels
from image.magnify import resize

TRIM_MM = 0.3


@dataclass
class ImageBox:
    """One Image Box's content: grayscale stored values (2-D) or RGB (H x W x 3 uint8)."""
    position: int
    pixels: np.ndarray
    bits_stored: int = 8
    polarity: str = "NORMAL"
    magnification: str | None = None
    requested_size_mm: float | None = None


@dataclass
class FilmSpec:
    """Film Box attributes and the printer's resolution; densities in OD, light in cd/m^2.

    min_density / max_density default to the ends of the printer's characteristic curve.
    """
    film_size: str = "8INX10IN"
    orientation: str = "PORTRAIT"
    dpi: float = 300.0
    display_format: str = "STANDARD\\1,1"
    magnification: str = "CUBIC"
    border_density: str = "BLACK"
    empty_image_density: str = "BLACK"
    trim: bool = False
    min_density: float | None = None
    max_density: float | None = None
    illumination: float = 2000.0
    ambient: float = 10.0
    colour: bool = False
    presentation_lut: np.ndarray | None = field(default=None, repr=False)
    presentation_lut_bits: int | None = None


def _densities(spec: FilmSpec, curve: CharacteristicCurve) -> tuple[float, float]:
    lo, hi = curve.od_range
    dmin = lo if spec.min_density is None else spec.min_density
    dmax = hi if spec.max_density is None else spec.max_density
    return dmin, dmax


def fitted_size(img_rows: int, img_cols: int, box_rows: int, box_cols: int, method: str,
                requested_mm: float | None, dpi: float) -> tuple[int, int]:
    """Printed size (rows, cols) of an image in its box; see the module docstring for the rules."""
    if method == "NONE":
        return min(img_rows, box_rows), min(img_cols, box_cols)
    fit = min(box_rows / img_rows, box_cols / img_cols)
    scale = fit
    if requested_mm is not None:
        if requested_mm <= 0:
            raise ValueError(f"Requested Image Size {requested_mm} mm must be positive")
        scale = min(mm_to_pixels(requested_mm, dpi) / img_cols, fit)
    if method == "REPLICATE" and scale >= 1.0:
        scale = math.floor(scale + 1e-9)
    rows = min(box_rows, max(1, int(round(img_rows * scale))))
    cols = min(box_cols, max(1, int(round(img_cols * scale))))
    return rows, cols


def _centre_crop(img: np.ndarray, rows: int, cols: int) -> np.ndarray:
    top, left = (img.shape[0] - rows) // 2, (img.shape[1] - cols) // 2
    return img[top:top + rows, left:left + cols]


def _put_gray(target: np.ndarray, img: np.ndarray, lut: np.ndarray, method: str) -> None:
    rows, cols = target.shape[:2]
    top_value = lut.size - 1
    if method == "NONE":
        idx = np.minimum(_centre_crop(img, rows, cols), top_value)
    else:
        mag = resize(img, rows, cols, method)
        if mag.dtype == np.float32:
            np.clip(mag, 0.0, float(top_value), out=mag)
            mag += 0.5
            idx = mag.astype(np.uint16)
        else:
            idx = np.minimum(mag, top_value)
    if target.ndim == 3:
        target[...] = lut[idx][..., None]
    else:
        np.take(lut, idx, out=target)


def _put_rgb(target: np.ndarray, img: np.ndarray, polarity: str, method: str) -> None:
    rows, cols = target.shape[:2]
    if method == "NONE":
        out = _centre_crop(img, rows, cols)
    else:
        out = resize(img, rows, cols, method)
        if out.dtype != np.uint8:
            out = np.rint(np.clip(out, 0, 255)).astype(np.uint8)
    target[...] = 255 - out if polarity == "REVERSE" else out


def _trim(film: np.ndarray, top: int, left: int, rows: int, cols: int, width: int, value) -> None:
    t0, l0 = max(top - width, 0), max(left - width, 0)
    film[t0:top, l0:left + cols + width] = value
    film[top + rows:top + rows + width, l0:left + cols + width] = value
    film[t0:top + rows + width, l0:left] = value
    film[t0:top + rows + width, left + cols:left + cols + width] = value


def compose_film(spec: FilmSpec, images, curve: CharacteristicCurve) -> np.ndarray:
    """The film as drive levels.  ``images``: iterable of ImageBox; positions not given are empty."""
    rows, cols = film_matrix(spec.film_size, spec.orientation, spec.dpi)
    boxes = {b.position: b for b in layout_boxes(spec.display_format, rows, cols)}
    dmin, dmax = _densities(spec, curve)
    level = lambda density: curve.drive_levels_for(parse_density(density, dmin, dmax))[()]
    shape = (rows, cols, 3) if spec.colour else (rows, cols)
    if spec.colour and curve.drive_dtype() != np.uint8:
        raise ValueError("colour films need an 8-bit characteristic curve")
    film = np.empty(shape, dtype=curve.drive_dtype())
    film.fill(level(spec.border_density))
    by_position = {}
    for ib in images:
        if ib.position not in boxes:
            raise ValueError(f"Image Position {ib.position} does not exist in Image Display "
                             f"Format {spec.display_format!r} ({len(boxes)} boxes)")
        if ib.position in by_position:
            raise ValueError(f"Image Position {ib.position} given twice")
        by_position[ib.position] = ib
    empty = level(spec.empty_image_density)
    trim_value = level("WHITE" if parse_density(spec.border_density, dmin, dmax)
                       > (dmin + dmax) / 2 else "BLACK")
    trim_px = max(1, mm_to_pixels(TRIM_MM, spec.dpi)) if spec.trim else 0
    luts: dict = {}
    for pos, box in boxes.items():
        ib = by_position.get(pos)
        if ib is None:
            film[box.top:box.top + box.rows, box.left:box.left + box.cols] = empty
            continue
        _place(film, box, ib, spec, curve, (dmin, dmax), luts, trim_px, trim_value)
    return film


def _place(film, box: Box, ib: ImageBox, spec: FilmSpec, curve, dens, luts, trim_px, trim_value):
    px = np.asarray(ib.pixels)
    rgb = px.ndim == 3
    if rgb and (px.shape[2] != 3 or px.dtype != np.uint8 or not spec.colour):
        raise ValueError(f"Image Position {ib.position}: colour images must be H x W x 3 uint8 "
                         "on a colour film")
    if not rgb and (px.ndim != 2 or px.dtype.kind not in "ui"):
        raise ValueError(f"Image Position {ib.position}: grayscale pixels must be a 2-D integer "
                         f"array, got {px.dtype} {px.shape}")
    if px.shape[0] < 1 or px.shape[1] < 1:
        raise ValueError(f"Image Position {ib.position}: empty image")
    method = ib.magnification or spec.magnification
    room_r, room_c = box.rows - 2 * trim_px, box.cols - 2 * trim_px
    if room_r < 1 or room_c < 1:
        raise ValueError(f"Image Position {ib.position}: box too small for a trim line")
    h, w = fitted_size(px.shape[0], px.shape[1], room_r, room_c, method,
                       ib.requested_size_mm, spec.dpi)
    top = box.top + (box.rows - h) // 2
    left = box.left + (box.cols - w) // 2
    if trim_px:
        _trim(film, top, left, h, w, trim_px, trim_value)
    target = film[top:top + h, left:left + w]
    if rgb:
        _put_rgb(target, px, ib.polarity, method)
        return
    key = (ib.bits_stored, ib.polarity)
    if key not in luts:
        luts[key] = build_lut(ib.bits_stored, curve, dens[0], dens[1], spec.illumination,
                              spec.ambient, ib.polarity, spec.presentation_lut,
                              spec.presentation_lut_bits)
    _put_gray(target, px, luts[key], method)
