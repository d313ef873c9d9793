"""A stored film description (session.film_description) -> the film as the printer's drive levels.

All pixel work is image/'s (compose_film, density, GSDF); this only translates DICOM terms:
- Presentation LUT: IDENTITY is no LUT; an explicit LUT maps stored values to P-values of its
  own depth; LIN OD is turned into the explicit LUT that makes density linear in the stored value
  (0 -> Max Density, top value -> Min Density, in the MONOCHROME2 sense where larger is lighter).
  A film-level LUT goes to FilmSpec (compose's single LUT pass); an image whose own LUT differs
  is mapped to P-values first and composed as identity.
- Annotation Box text goes in the bottom margin, box i of n in the i-th n-th of the width; image
  labels (print.annotate_image_attributes, e.g. PatientName) in the top left of their image box.
  Text is drawn in the density opposite the border (the trim colour), with glyphs from
  gateway.print.glyphs (DejaVu for Latin, IPA Gothic / Noto CJK for Japanese).
"""

from __future__ import annotations

import numpy as np

from image.annotate import composite_mask
from image.compose import FilmSpec, ImageBox, compose_film
from image.density import CharacteristicCurve, parse_density
from image.film_layout import film_matrix, layout_boxes, mm_to_pixels
from image.gsdf import od_from_p_values

LIN_OD_BITS = 16


def lin_od_lut(in_bits: int, dmin: float, dmax: float, illumination: float, ambient: float) -> np.ndarray:
    """P-values (16 bit) whose GSDF density is linear in the stored value."""
    p_max = (1 << LIN_OD_BITS) - 1
    p = np.arange(p_max + 1)
    od_of_p = od_from_p_values(p, p_max, dmin, dmax, illumination, ambient)  # falls with p
    n = 1 << in_bits
    target = dmax - (dmax - dmin) * np.arange(n) / (n - 1)
    # np.interp wants rising x: reverse both.
    return np.rint(np.interp(target, od_of_p[::-1], p[::-1].astype(np.float64))).astype(np.uint16)


def _plut_array(plut: dict | None, arrays: dict, in_bits: int, dens, light) -> tuple[np.ndarray | None, int | None]:
    """(LUT of 2**in_bits entries to P-values, P-value bits) or (None, None) for identity."""
    if plut is None or plut.get("shape") == "IDENTITY":
        return None, None
    if plut.get("shape") == "LIN OD":
        return lin_od_lut(in_bits, dens[0], dens[1], *light), LIN_OD_BITS
    lut = np.asarray(arrays[plut["lut"]])
    n = 1 << in_bits
    if lut.size != n:  # a LUT of another depth: index it in proportion
        lut = lut[(np.arange(n) * lut.size) // n]
    return lut.astype(np.uint16), int(plut["lut_bits"])


def spec_for(desc: dict, dpi: float) -> FilmSpec:
    return FilmSpec(
        film_size=desc["film_size"], orientation=desc["orientation"], dpi=dpi,
        display_format=desc["display_format"], magnification=desc["magnification"],
        border_density=desc["border_density"], empty_image_density=desc["empty_density"],
        trim=bool(desc["trim"]), min_density=desc["min_density"] / 100.0,
        max_density=desc["max_density"] / 100.0, illumination=float(desc["illumination"]),
        ambient=float(desc["ambient"]), colour=bool(desc["colour"]))


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Luma (ITU-R BT.601) of an RGB image, for colour image boxes on a grayscale printer."""
    y = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.rint(y).astype(np.uint8)


def render_film(desc: dict, arrays: dict, curve: CharacteristicCurve, dpi: float,
                text_height_mm: float = 4.0, colour_printer: bool = True) -> np.ndarray:
    if desc["colour"] and (not colour_printer or curve.drive_dtype() != np.uint8):
        desc = dict(desc, colour=False)
        arrays = {k: (to_gray(a) if a.ndim == 3 else a) for k, a in arrays.items()}
    spec = spec_for(desc, dpi)
    dens = (spec.min_density, spec.max_density)
    light = (spec.illumination, spec.ambient)
    film_plut = desc.get("plut")
    boxes = []
    shared = None
    for im in desc["images"]:
        px = np.asarray(arrays[im["pixels"]])
        bits = int(im["bits_stored"])
        polarity = im["polarity"]
        plut = im.get("plut") or film_plut
        if px.ndim == 2 and plut is not None and plut.get("shape") != "IDENTITY":
            if im.get("plut") is None:
                shared = (bits, *_plut_array(film_plut, arrays, bits, dens, light))
            else:
                lut, p_bits = _plut_array(plut, arrays, bits, dens, light)
                values = px if polarity == "NORMAL" else ((1 << bits) - 1 - px)
                px, bits, polarity = lut[values], p_bits, "NORMAL"
        boxes.append(ImageBox(position=int(im["position"]), pixels=px, bits_stored=bits,
                              polarity=polarity, magnification=im.get("magnification"),
                              requested_size_mm=im.get("requested_size_mm")))
    if shared is not None:
        # compose applies one film-level LUT to every grayscale image of one depth.
        bits, lut, p_bits = shared
        if all(b.bits_stored == bits for b in boxes if b.pixels.ndim == 2):
            spec.presentation_lut, spec.presentation_lut_bits = lut, p_bits
        else:
            for b in boxes:
                if b.pixels.ndim == 2:
                    l2, pb = _plut_array(film_plut, arrays, b.bits_stored, dens, light)
                    vals = b.pixels if b.polarity == "NORMAL" else ((1 << b.bits_stored) - 1 - b.pixels)
                    b.pixels, b.bits_stored, b.polarity = l2[vals], pb, "NORMAL"
    film = compose_film(spec, boxes, curve)
    annotate(film, desc, curve, dpi, text_height_mm)
    return film


def text_value(desc: dict, curve: CharacteristicCurve):
    """Drive level (or RGB triple) of annotation text: the density opposite the border."""
    dmin, dmax = desc["min_density"] / 100.0, desc["max_density"] / 100.0
    dark_border = parse_density(desc["border_density"], dmin, dmax) > (dmin + dmax) / 2
    level = int(curve.drive_levels_for(dmin if dark_border else dmax)[()])
    return (level,) * 3 if desc["colour"] else level


def annotation_origins(desc: dict, dpi: float, text_height_mm: float, count: int) -> list[tuple[int, int]]:
    """(top, left) of annotation boxes 1..count: a row along the film's bottom margin."""
    rows, cols = film_matrix(desc["film_size"], desc["orientation"], dpi)
    h = mm_to_pixels(text_height_mm, dpi)
    top = rows - 2 * h
    return [(top, (cols * i) // count + h // 2) for i in range(count)]


def annotate(film: np.ndarray, desc: dict, curve: CharacteristicCurve, dpi: float,
             text_height_mm: float) -> None:
    from gateway.print.glyphs import render_text  # Pillow + fonts: only when text is printed

    notes = [a for a in desc.get("annotations", []) if a.get("text")]
    labelled = [im for im in desc["images"] if im.get("labels")]
    if not notes and not labelled:
        return
    value = text_value(desc, curve)
    h = max(4, mm_to_pixels(text_height_mm, dpi))
    if notes:
        count = max(a["position"] for a in notes)
        origins = annotation_origins(desc, dpi, text_height_mm, count)
        for a in notes:
            top, left = origins[a["position"] - 1]
            composite_mask(film, render_text(a["text"], h), top, left, value)
    if labelled:
        rows, cols = film.shape[:2]
        boxes = {b.position: b for b in layout_boxes(desc["display_format"], rows, cols)}
        for im in labelled:
            box = boxes[int(im["position"])]
            top = box.top + h // 2
            for text in im["labels"].values():
                mask = render_text(text.replace("^", " ").strip(), h)
                composite_mask(film, mask, top, box.left + h // 2, value)
                top += mask.shape[0] + h // 4
