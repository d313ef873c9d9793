"""Every attribute a print client sends, checked against the printer profile (PS3.4 Annex H).

Each check returns the values to use (normalised, defaults filled in) and the warnings raised, or
raises PrintFailure with the status, a comment and the offending attribute tags.  Status mapping:

  0x0105 No such attribute        an attribute the SOP class does not define for that operation
  0x0106 Invalid attribute value  a value the standard or the printer profile does not allow
                                  (unsupported film size, display format, medium, magnification...)
  0x0120 Missing attribute        a type 1 attribute absent (Image Display Format, pixel data...)
  0x0116 Value out of range (W)   Number of Copies beyond the profile's maximum: the maximum is used
  0xB600 (W)                      Memory Allocation requested: not supported, ignored
  0xB604 (W)                      Requested Image Size larger than the box: demagnified to fit
  0xB605 (W)                      Min / Max Density outside the printer's range: clamped to it
  0xB609 (W)                      image larger than its box, Requested Decimate/Crop CROP (or
                                  magnification NONE): the centre is printed
  0xB60A (W)                      image larger than its box, DECIMATE: shrunk to fit
  0xC603                          image larger than its box and FAIL requested (or the profile's
                                  oversize_image = "fail")
Film-level failures of N-ACTION (C600 no film box, C601 spool full, C602...) are raised by the
session model, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from gateway.print.profile import PrintSection
from image.film_layout import layout_boxes, film_matrix, mm_to_pixels, parse_display_format
from image.compose import TRIM_MM

INVALID_VALUE, NO_SUCH_ATTRIBUTE, MISSING_ATTRIBUTE, OUT_OF_RANGE = 0x0106, 0x0105, 0x0120, 0x0116
MEMORY_NOT_SUPPORTED, DEMAGNIFIED, DENSITY_CLAMPED, CROPPED, DECIMATED = 0xB600, 0xB604, 0xB605, 0xB609, 0xB60A
IMAGE_TOO_LARGE = 0xC603


class PrintFailure(Exception):
    def __init__(self, status: int, comment: str, tags: list[int] | None = None):
        super().__init__(comment)
        self.status, self.comment, self.tags = status, comment, tags or []


@dataclass
class Checked:
    values: dict = field(default_factory=dict)
    warnings: list[tuple[int, str]] = field(default_factory=list)

    @property
    def status(self) -> int:
        return self.warnings[0][0] if self.warnings else 0x0000


ALWAYS_ALLOWED = {"SpecificCharacterSet"}
SESSION_ATTRS = {"NumberOfCopies", "PrintPriority", "MediumType", "FilmDestination",
                 "FilmSessionLabel", "MemoryAllocation", "OwnerID"}
FILM_BOX_SET_ATTRS = {"MagnificationType", "SmoothingType", "BorderDensity", "EmptyImageDensity",
                      "MinDensity", "MaxDensity", "Trim", "ConfigurationInformation", "Illumination",
                      "ReflectedAmbientLight", "ReferencedPresentationLUTSequence"}
FILM_BOX_CREATE_ATTRS = FILM_BOX_SET_ATTRS | {
    "ImageDisplayFormat", "AnnotationDisplayFormatID", "FilmOrientation", "FilmSizeID",
    "RequestedResolutionID", "ReferencedFilmSessionSequence"}
IMAGE_BOX_ATTRS = {"ImageBoxPosition", "Polarity", "MagnificationType", "SmoothingType",
                   "ConfigurationInformation", "RequestedImageSize", "RequestedDecimateCropBehavior",
                   "BasicGrayscaleImageSequence", "BasicColorImageSequence",
                   "ReferencedPresentationLUTSequence"}
ANNOTATION_ATTRS = {"AnnotationPosition", "TextString"}
PLUT_ATTRS = {"PresentationLUTSequence", "PresentationLUTShape"}


def _tag(keyword: str) -> int:
    return int(Tag(keyword))


def check_known(ds: Dataset, allowed: set[str], what: str) -> None:
    unknown = [int(e.tag) for e in ds if (e.keyword or "") not in allowed | ALWAYS_ALLOWED
               and e.tag.group != 0x0000]
    if unknown:
        shown = ", ".join(f"({t >> 16:04X},{t & 0xFFFF:04X})" for t in unknown[:4])
        raise PrintFailure(NO_SUCH_ATTRIBUTE, f"{what} has no attribute {shown}", unknown)


def _text(ds: Dataset, keyword: str) -> str | None:
    if keyword not in ds:
        return None
    value = ds[keyword].value
    if value is None or value == "":
        return None
    return str(value).strip()


def _one_of(ds: Dataset, keyword: str, allowed, what: str) -> str | None:
    value = _text(ds, keyword)
    if value is None:
        return None
    if value.upper() not in [a.upper() for a in allowed]:
        raise PrintFailure(INVALID_VALUE, f"{what} {value!r} not supported", [_tag(keyword)])
    return value.upper()


def _number(ds: Dataset, keyword: str, what: str) -> float | None:
    if keyword not in ds or ds[keyword].value in (None, ""):
        return None
    try:
        return float(ds[keyword].value)
    except (TypeError, ValueError):
        raise PrintFailure(INVALID_VALUE, f"{what} {ds[keyword].value!r} is not a number",
                           [_tag(keyword)]) from None


def _density(value: str | None, keyword: str, what: str) -> str | None:
    if value is None:
        return None
    v = value.upper()
    if v in ("BLACK", "WHITE"):
        return v
    if v.isdigit() and int(v) <= 500:
        return v
    raise PrintFailure(INVALID_VALUE, f"{what} {value!r} is not BLACK, WHITE or hundredths of OD",
                       [_tag(keyword)])


# -- Basic Film Session ------------------------------------------------------------------------

def check_film_session(ds: Dataset, p: PrintSection, creating: bool) -> Checked:
    check_known(ds, SESSION_ATTRS, "Basic Film Session")
    out = Checked()
    v = out.values
    copies = _number(ds, "NumberOfCopies", "Number of Copies")
    if copies is not None:
        if copies != int(copies) or copies < 1:
            raise PrintFailure(INVALID_VALUE, f"Number of Copies {copies:g} must be 1 or more",
                               [_tag("NumberOfCopies")])
        if copies > p.max_copies:
            out.warnings.append((OUT_OF_RANGE, f"Number of Copies {copies:g} above {p.max_copies}; "
                                               f"{p.max_copies} used"))
            copies = p.max_copies
        v["copies"] = int(copies)
    for key, kw, allowed, what in (
            ("priority", "PrintPriority", ("HIGH", "MED", "LOW"), "Print Priority"),
            ("medium", "MediumType", p.medium_types, "Medium Type"),
            ("destination", "FilmDestination", p.destinations, "Film Destination")):
        value = _one_of(ds, kw, allowed, what)
        if value is not None:
            v[key] = value
    label = _text(ds, "FilmSessionLabel")
    if label is not None:
        v["label"] = label
    if _text(ds, "OwnerID") is not None:
        v["owner"] = _text(ds, "OwnerID")
    if "MemoryAllocation" in ds and ds.MemoryAllocation not in (None, ""):
        out.warnings.append((MEMORY_NOT_SUPPORTED, "Memory Allocation is not supported"))
    if creating:
        v.setdefault("copies", 1)
        v.setdefault("priority", "MED")
        v.setdefault("medium", p.default_medium_type)
        v.setdefault("destination", p.default_destination)
        v.setdefault("label", "")
    return out


# -- Basic Film Box ----------------------------------------------------------------------------

def _ref_uid(ds: Dataset, keyword: str) -> str | None:
    if keyword not in ds:
        return None
    seq = ds[keyword].value
    if not seq:
        return ""
    return str(getattr(seq[0], "ReferencedSOPInstanceUID", "") or "")


def check_film_box(ds: Dataset, p: PrintSection, creating: bool, current: dict | None = None) -> Checked:
    check_known(ds, FILM_BOX_CREATE_ATTRS if creating else FILM_BOX_SET_ATTRS, "Basic Film Box")
    out = Checked()
    v = out.values
    if creating:
        fmt = _text(ds, "ImageDisplayFormat")
        if fmt is None:
            raise PrintFailure(MISSING_ATTRIBUTE, "Image Display Format is required",
                               [_tag("ImageDisplayFormat")])
        norm = fmt.upper().replace(" ", "")
        supported = {f.upper().replace(" ", ""): f for f in p.display_formats}
        if norm not in supported:
            raise PrintFailure(INVALID_VALUE, f"Image Display Format {fmt!r} not supported",
                               [_tag("ImageDisplayFormat")])
        v["display_format"] = supported[norm]
        v["annotation_format"] = _one_of(ds, "AnnotationDisplayFormatID",
                                         p.annotation_display_formats, "Annotation Display Format ID")
        v["orientation"] = _one_of(ds, "FilmOrientation", p.orientations, "Film Orientation") or "PORTRAIT"
        v["film_size"] = _one_of(ds, "FilmSizeID", p.film_sizes, "Film Size ID") or p.default_film_size
        res = _one_of(ds, "RequestedResolutionID", ("STANDARD",), "Requested Resolution ID")
        v["resolution"] = res or "STANDARD"
        ref = _ref_uid(ds, "ReferencedFilmSessionSequence")
        if not ref:
            raise PrintFailure(MISSING_ATTRIBUTE, "Referenced Film Session Sequence is required",
                               [_tag("ReferencedFilmSessionSequence")])
        v["film_session_uid"] = ref
    mag = _one_of(ds, "MagnificationType", p.magnification_types, "Magnification Type")
    if mag or creating:
        v["magnification"] = mag or p.default_magnification
    smoothing = _one_of(ds, "SmoothingType", p.smoothing_types, "Smoothing Type")
    if smoothing or creating:
        v["smoothing"] = smoothing or ""
    for key, kw, what, default in (("border_density", "BorderDensity", "Border Density", "BLACK"),
                                   ("empty_density", "EmptyImageDensity", "Empty Image Density", "BLACK")):
        d = _density(_text(ds, kw), kw, what)
        if d or creating:
            v[key] = d or default
    for key, kw, what, limit in (("min_density", "MinDensity", "Min Density", p.min_density),
                                 ("max_density", "MaxDensity", "Max Density", p.max_density)):
        value = _number(ds, kw, what)
        if value is None:
            if creating:
                v[key] = limit
            continue
        if value < 0 or value != int(value):
            raise PrintFailure(INVALID_VALUE, f"{what} {value:g} is not hundredths of OD", [_tag(kw)])
        clamped = min(max(int(value), p.min_density), p.max_density)
        if clamped != value:
            out.warnings.append((DENSITY_CLAMPED, f"{what} {value:g} outside the printer's "
                                                  f"{p.min_density}-{p.max_density}; {clamped} used"))
        v[key] = clamped
    lo = v.get("min_density", (current or {}).get("min_density", p.min_density))
    hi = v.get("max_density", (current or {}).get("max_density", p.max_density))
    if lo >= hi:
        raise PrintFailure(INVALID_VALUE, f"Min Density {lo} is not below Max Density {hi}",
                           [_tag("MinDensity"), _tag("MaxDensity")])
    trim = _one_of(ds, "Trim", ("YES", "NO"), "Trim")
    if trim == "YES" and not p.trim:
        raise PrintFailure(INVALID_VALUE, "Trim is not supported by this printer", [_tag("Trim")])
    if trim or creating:
        v["trim"] = trim == "YES"
    config = _text(ds, "ConfigurationInformation")
    if config is not None:
        if config not in p.configuration_information:
            raise PrintFailure(INVALID_VALUE, f"Configuration Information {config!r} not supported",
                               [_tag("ConfigurationInformation")])
        v["configuration"] = config
    for key, kw, what, default in (("illumination", "Illumination", "Illumination", p.illumination),
                                   ("ambient", "ReflectedAmbientLight", "Reflected Ambient Light",
                                    p.reflected_ambient_light)):
        value = _number(ds, kw, what)
        if value is not None and (value < 0 or (kw == "Illumination" and value == 0)):
            raise PrintFailure(INVALID_VALUE, f"{what} {value:g} out of range", [_tag(kw)])
        if value is not None or creating:
            v[key] = value if value is not None else default
    plut = _ref_uid(ds, "ReferencedPresentationLUTSequence")
    if plut is not None:
        v["plut_uid"] = plut or None
    if creating:
        # The layout must be printable at this resolution (every box at least a pixel or so).
        rows, cols = film_matrix(v["film_size"], v["orientation"], p.printer.dpi)
        try:
            layout_boxes(v["display_format"], rows, cols)
        except ValueError as exc:
            raise PrintFailure(INVALID_VALUE, str(exc)[:64], [_tag("ImageDisplayFormat")]) from None
    return out


def box_count(display_format: str) -> int:
    return sum(parse_display_format(display_format)[1])


def box_size_px(film: dict, position: int, dpi: float) -> tuple[int, int]:
    """(rows, cols) of the room for the image in box ``position``, trim line excluded."""
    rows, cols = film_matrix(film["film_size"], film["orientation"], dpi)
    box = layout_boxes(film["display_format"], rows, cols)[position - 1]
    trim_px = max(1, mm_to_pixels(TRIM_MM, dpi)) if film.get("trim") else 0
    return box.rows - 2 * trim_px, box.cols - 2 * trim_px


# -- Image Box -----------------------------------------------------------------------------------

def _little_endian(ds: Dataset) -> bool:
    """OB/OW values stay in the byte order they were received in (pydicom does not swap them)."""
    enc = getattr(ds, "original_encoding", None)
    return True if not enc or enc[1] is None else bool(enc[1])


def _pixels(item: Dataset, colour: bool, little: bool = True) -> tuple[np.ndarray, int, str]:
    """(array, bits stored, photometric) of a Basic Grayscale / Color Image Sequence item."""
    seq_kw = "BasicColorImageSequence" if colour else "BasicGrayscaleImageSequence"
    tag = [_tag(seq_kw)]
    for kw in ("SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated",
               "BitsStored", "HighBit", "PixelRepresentation", "PixelData"):
        if kw not in item or item[kw].value in (None, b"", ""):
            raise PrintFailure(MISSING_ATTRIBUTE, f"image sequence item lacks {kw}", tag)
    try:
        rows, cols = int(item.Rows), int(item.Columns)
        spp, alloc, stored, high = (int(item.SamplesPerPixel), int(item.BitsAllocated),
                                    int(item.BitsStored), int(item.HighBit))
    except (TypeError, ValueError):
        raise PrintFailure(INVALID_VALUE, "image pixel description is not numeric", tag) from None
    photometric = str(item.PhotometricInterpretation).strip().upper()
    if rows < 1 or cols < 1 or rows > 16384 or cols > 16384:
        raise PrintFailure(INVALID_VALUE, f"image {rows}x{cols} out of range", tag)
    if int(item.PixelRepresentation) != 0:
        raise PrintFailure(INVALID_VALUE, "Pixel Representation must be 0 (unsigned)", tag)
    data = item.PixelData
    if colour:
        if spp != 3 or photometric != "RGB" or alloc != 8 or stored != 8 or high != 7:
            raise PrintFailure(INVALID_VALUE, "colour image must be RGB, 3 samples, 8 bits", tag)
        planar = int(getattr(item, "PlanarConfiguration", 1) or 0)
        need = rows * cols * 3
        if len(data) < need:
            raise PrintFailure(INVALID_VALUE, f"Pixel Data has {len(data)} bytes, {need} needed", tag)
        flat = np.frombuffer(data, dtype=np.uint8, count=need)
        px = (flat.reshape(3, rows, cols).transpose(1, 2, 0) if planar == 1
              else flat.reshape(rows, cols, 3))
        return np.ascontiguousarray(px), 8, "RGB"
    if spp != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise PrintFailure(INVALID_VALUE, f"grayscale image must be 1 sample MONOCHROME1/2, "
                                          f"got {spp} {photometric}", tag)
    if (alloc, stored) not in ((8, 8), (16, 12)) or high != stored - 1:
        raise PrintFailure(INVALID_VALUE, f"grayscale image must be 8 or 12 bits "
                                          f"(allocated {alloc}, stored {stored}, high bit {high})", tag)
    nbytes = rows * cols * (alloc // 8)
    if len(data) < nbytes:
        raise PrintFailure(INVALID_VALUE, f"Pixel Data has {len(data)} bytes, {nbytes} needed", tag)
    if alloc == 8:
        px = np.frombuffer(data, dtype=np.uint8, count=rows * cols).reshape(rows, cols).copy()
    else:
        px = np.frombuffer(data, dtype="<u2" if little else ">u2", count=rows * cols).reshape(rows, cols).astype(np.uint16)
        px &= 0x0FFF
    if photometric == "MONOCHROME1":
        px = ((1 << stored) - 1 - px).astype(px.dtype)  # print in the MONOCHROME2 sense
    return px, stored, photometric


def check_image_box(ds: Dataset, p: PrintSection, colour: bool, film: dict, position: int) -> Checked:
    check_known(ds, IMAGE_BOX_ATTRS, "Image Box")
    out = Checked()
    v = out.values
    seq_kw = "BasicColorImageSequence" if colour else "BasicGrayscaleImageSequence"
    wrong_kw = "BasicGrayscaleImageSequence" if colour else "BasicColorImageSequence"
    if wrong_kw in ds:
        raise PrintFailure(NO_SUCH_ATTRIBUTE, f"{wrong_kw} on a {'colour' if colour else 'grayscale'} "
                                              "image box", [_tag(wrong_kw)])
    if "ImageBoxPosition" in ds and ds.ImageBoxPosition not in (None, "") \
            and int(ds.ImageBoxPosition) != position:
        raise PrintFailure(INVALID_VALUE, f"Image Box Position {ds.ImageBoxPosition} is not this "
                                          f"box's {position}", [_tag("ImageBoxPosition")])
    polarity = _one_of(ds, "Polarity", ("NORMAL", "REVERSE"), "Polarity")
    if polarity:
        v["polarity"] = polarity
    mag = _one_of(ds, "MagnificationType", p.magnification_types, "Magnification Type")
    if mag:
        v["magnification"] = mag
    smoothing = _one_of(ds, "SmoothingType", p.smoothing_types, "Smoothing Type")
    if smoothing:
        v["smoothing"] = smoothing
    config = _text(ds, "ConfigurationInformation")
    if config is not None and config not in p.configuration_information:
        raise PrintFailure(INVALID_VALUE, f"Configuration Information {config!r} not supported",
                           [_tag("ConfigurationInformation")])
    plut = _ref_uid(ds, "ReferencedPresentationLUTSequence")
    if plut is not None:
        v["plut_uid"] = plut or None
    behaviour = _one_of(ds, "RequestedDecimateCropBehavior", ("DECIMATE", "CROP", "FAIL"),
                        "Requested Decimate/Crop Behavior")
    if p.oversize_image == "fail":
        behaviour = "FAIL"
    room_rows, room_cols = box_size_px(film, position, p.printer.dpi)
    size = _number(ds, "RequestedImageSize", "Requested Image Size")
    if size is not None:
        if not p.requested_image_size:
            raise PrintFailure(INVALID_VALUE, "Requested Image Size is not supported",
                               [_tag("RequestedImageSize")])
        if size <= 0:
            raise PrintFailure(INVALID_VALUE, f"Requested Image Size {size:g} mm must be positive",
                               [_tag("RequestedImageSize")])
        if mm_to_pixels(size, p.printer.dpi) > room_cols:
            if behaviour == "FAIL":
                raise PrintFailure(IMAGE_TOO_LARGE, f"Requested Image Size {size:g} mm is wider "
                                                    "than the image box")
            out.warnings.append((DEMAGNIFIED, f"Requested Image Size {size:g} mm larger than the "
                                              "box: demagnified to fit"))
        v["requested_size_mm"] = size
    if seq_kw in ds and ds[seq_kw].value:
        item = ds[seq_kw].value[0]
        px, bits, photometric = _pixels(item, colour, _little_endian(ds))
        v.update(pixels=px, bits_stored=bits, photometric=photometric)
        labels = {}
        for kw in p.annotate_image_attributes:
            if kw in item and item[kw].value not in (None, ""):
                labels[kw] = str(item[kw].value)
            elif kw in ds and ds[kw].value not in (None, ""):
                labels[kw] = str(ds[kw].value)
        v["labels"] = labels
        method = v.get("magnification") or film.get("magnification") or p.default_magnification
        if px.shape[0] > room_rows or px.shape[1] > room_cols:
            if behaviour == "FAIL":
                raise PrintFailure(IMAGE_TOO_LARGE, f"image {px.shape[1]}x{px.shape[0]} larger than "
                                                    f"its box {room_cols}x{room_rows}")
            if behaviour == "CROP" or method == "NONE":
                v["magnification"] = "NONE"
                out.warnings.append((CROPPED, "image larger than its box: cropped to fit"))
            elif behaviour == "DECIMATE" or method == "REPLICATE":
                out.warnings.append((DECIMATED, "image larger than its box: decimated to fit"))
    elif seq_kw in ds:
        v.update(pixels=None)  # an empty sequence clears the box
    return out


# -- Annotation Box, Presentation LUT --------------------------------------------------------------

def check_annotation(ds: Dataset, position: int) -> Checked:
    check_known(ds, ANNOTATION_ATTRS, "Basic Annotation Box")
    out = Checked()
    if "AnnotationPosition" in ds and ds.AnnotationPosition not in (None, "") \
            and int(ds.AnnotationPosition) != position:
        raise PrintFailure(INVALID_VALUE, f"Annotation Position {ds.AnnotationPosition} is not "
                                          f"this box's {position}", [_tag("AnnotationPosition")])
    if "TextString" in ds:
        out.values["text"] = str(ds.TextString or "")
    return out


def check_presentation_lut(ds: Dataset) -> Checked:
    check_known(ds, PLUT_ATTRS, "Presentation LUT")
    out = Checked()
    shape = _text(ds, "PresentationLUTShape")
    seq = ds.get("PresentationLUTSequence")
    if shape and seq:
        raise PrintFailure(INVALID_VALUE, "Presentation LUT Shape and Sequence are exclusive",
                           [_tag("PresentationLUTShape")])
    if shape:
        if shape.upper() not in ("IDENTITY", "LIN OD"):
            raise PrintFailure(INVALID_VALUE, f"Presentation LUT Shape {shape!r} not supported",
                               [_tag("PresentationLUTShape")])
        out.values.update(shape=shape.upper(), lut=None, lut_bits=None)
        return out
    if not seq:
        raise PrintFailure(MISSING_ATTRIBUTE, "Presentation LUT Shape or Sequence is required",
                           [_tag("PresentationLUTShape")])
    item = seq[0]
    tag = [_tag("PresentationLUTSequence")]
    try:
        entries, first, bits = (int(x) for x in item.LUTDescriptor)
    except (AttributeError, TypeError, ValueError):
        raise PrintFailure(INVALID_VALUE, "LUT Descriptor must be 3 numbers", tag) from None
    entries = entries or 65536
    if entries not in (256, 4096, 65536) or first != 0 or not 10 <= bits <= 16:
        raise PrintFailure(INVALID_VALUE, f"LUT Descriptor {entries}\\{first}\\{bits}: needs 256, "
                                          "4096 or 65536 entries from 0, 10-16 bits", tag)
    data = item.get("LUTData")
    if data is None:
        raise PrintFailure(MISSING_ATTRIBUTE, "LUT Data is required", tag)
    if isinstance(data, (bytes, bytearray)):
        lut = np.frombuffer(bytes(data), dtype="<u2" if _little_endian(ds) else ">u2")
    else:
        lut = np.asarray(list(data) if hasattr(data, "__iter__") else [data], dtype=np.int64)
    if lut.size < entries:
        raise PrintFailure(INVALID_VALUE, f"LUT Data has {lut.size} entries, {entries} declared", tag)
    lut = lut[:entries].astype(np.uint16)
    if int(lut.max()) >= (1 << bits):
        raise PrintFailure(INVALID_VALUE, f"LUT Data exceeds {bits} bits", tag)
    out.values.update(shape=None, lut=lut, lut_bits=bits)
    return out
