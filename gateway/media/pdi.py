"""The IHE PDI layout of a file-set: README.TXT, INDEX.HTM and the IHE_PDI web content.

IHE Portable Data for Imaging (IHE RAD TF-1 15, RAD TF-3 4.47, Distribute Imaging Information on
Media) puts beside DICOMDIR and the DICOM folder, in the root of the medium:
- README.TXT: what the medium is, who made it with which application and version, how to view
  it; general, never about the patient (a reader of the bare file list sees it first).
- INDEX.HTM: the entry page, with a header naming the institution that made the medium, a link
  to the IHE_PDI web content and to README.TXT, and a manifest of the DICOM data a Portable
  Media Importer can import, with a note that the web content itself cannot be imported.
- IHE_PDI/: web content only (XHTML and JPEG), corresponding to the DICOM content: here one
  page of the studies, a row and a JPEG preview per series.
All names are upper case ISO 9660 8.3 (README.TXT, INDEX.HTM, IHE_PDI/T0000001.JPG); nothing
else goes in the root (ROOT_ENTRIES, unexpected_root_entries).

This module writes those files into a staging folder that the file-set creator fills with
DICOMDIR and DICOM/ (gateway/media/fileset.py); it takes PdiStudy / PdiSeries, not the FSC's
records, so the two meet in one small type. Pixels: pydicom (with pylibjpeg for compressed
syntaxes) decodes one frame, image/thumbnail.py maps it to 8 bits and shrinks it, Pillow encodes
the JPEG. A series whose frame cannot be decoded gets a note instead of a preview, never an
exception. Patient names arrive decoded (pydicom applies Specific Character Set, PS3.5 6.1) and
are written as UTF-8 with a meta charset; every text goes through html.escape.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pydicom.pixels import apply_color_lut, pixel_array

from gateway.identity import IMPLEMENTATION_VERSION_NAME
from image.thumbnail import VOI_FUNCTIONS, downscale, to_display_8bit

log = logging.getLogger("gateway.media.pdi")

README = "README.TXT"
INDEX = "INDEX.HTM"
WEB_DIR = "IHE_PDI"
# What may sit in the root of a PDI medium (RAD TF-3 4.47): the DICOM file-set and the PDI
# files. PDI would allow other content beside them; issue 8 allows none, so anything else there
# is a layout error, reported by unexpected_root_entries.
ROOT_ENTRIES = frozenset({"DICOMDIR", "DICOM", README, INDEX, WEB_DIR})
THUMBNAIL_SIDE = 256
JPEG_QUALITY = 85
_XHTML_DOCTYPE = ('<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
                  '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">')
_SEX = {"M": "male", "F": "female", "O": "other"}


class PdiError(ValueError):
    """The PDI layout cannot be written as asked; the message is one line naming why."""


@dataclass(frozen=True)
class PdiSeries:
    """One series as the web content shows it.

    modality: Modality (0008,0060), e.g. "CT". series_number: Series Number (0020,0011) as text
    ("" when absent). description: Series Description (0008,103E). instance_count: instances of
    the series on this medium. thumbnail_source: a Part-10 file of the series to take the preview
    from (its middle frame), None for a series without images (SR, KO, PR...). file_ids: the
    File IDs of the instances on this medium (PS3.10 8.2), each as its components, root first,
    e.g. ("DICOM", "P0000001", "S0000001", "S0000001", "I0000001").
    """

    modality: str
    series_number: str
    description: str
    instance_count: int
    thumbnail_source: Path | None = None
    file_ids: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class PdiStudy:
    """One study as the web content shows it; texts as pydicom decodes them (str, not bytes).

    patient_name: Patient's Name (0010,0010) as a PN string, "FAMILY^Given=ideographic=phonetic".
    patient_id (0010,0020), birth_date (0010,0030) YYYYMMDD, sex (0010,0040) M/F/O,
    study_date (0008,0020) YYYYMMDD, study_time (0008,0030) HHMMSS.frac, study_description
    (0008,1030), accession (0008,0050); "" for any that is absent. series: in display order.
    """

    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    study_date: str
    study_time: str
    study_description: str
    accession: str
    series: tuple[PdiSeries, ...] = field(default_factory=tuple)

    @classmethod
    def from_dataset(cls, ds: Dataset, series: Sequence[PdiSeries]) -> "PdiStudy":
        """The study's attributes from any instance of it (a pydicom Dataset, read with its
        Specific Character Set so that names are already decoded, PS3.5 6.1)."""
        def text(keyword: str) -> str:
            value = ds.get(keyword)
            return "" if value is None else str(value).strip()
        return cls(patient_name=text("PatientName"), patient_id=text("PatientID"),
                   birth_date=text("PatientBirthDate"), sex=text("PatientSex"),
                   study_date=text("StudyDate"), study_time=text("StudyTime"),
                   study_description=text("StudyDescription"), accession=text("AccessionNumber"),
                   series=tuple(series))


def readable_name(pn: str) -> str:
    """A PN value (PS3.5 6.2, Table 6.2-1) as a reader expects it.

    Each component group (alphabetic = ideographic = phonetic) becomes "FAMILY, Given Middle"
    for the alphabetic group (family upper-cased, prefix before and suffix after) and
    "Family Given Middle" for the others, where upper case means nothing; the groups are joined
    with " / ". "Yamada^Tarou=山田^太郎=やまだ^たろう" -> "YAMADA, Tarou / 山田 太郎 / やまだ たろう".
    An empty name gives "".
    """
    shown = []
    for i, group in enumerate(pn.split("=")):
        family, given, middle, prefix, suffix = ([p.strip() for p in group.split("^")] + [""] * 5)[:5]
        if i == 0:
            first = " ".join(p for p in (given, middle) if p)
            core = ", ".join(p for p in (family.upper(), first) if p)
            name = " ".join(p for p in (prefix, core) if p) + (f", {suffix}" if suffix and core else suffix)
        else:
            name = " ".join(p for p in (prefix, family, given, middle, suffix) if p)
        if name:
            shown.append(name)
    return " / ".join(shown)


def unexpected_root_entries(root: Path) -> list[str]:
    """Names in the root of a staged medium that IHE PDI does not allow there (sorted).

    Allowed: DICOMDIR, DICOM, README.TXT, INDEX.HTM, IHE_PDI (RAD TF-3 4.47; this product puts
    no other content on its media).
    Raises OSError when root cannot be listed."""
    return sorted(name for name in os.listdir(root) if name not in ROOT_ENTRIES)


def write_pdi(staging_dir: Path, studies: Sequence[PdiStudy], *, volume_label: str,
              part_of: tuple[int, int] = (1, 1), producer: str = IMPLEMENTATION_VERSION_NAME,
              institution: str = "", created: dt.date | None = None,
              thumbnail_side: int = THUMBNAIL_SIDE) -> list[str]:
    """Write README.TXT, INDEX.HTM and IHE_PDI/ (INDEX.HTM, one JPEG a series) into staging_dir.

    staging_dir: the medium's root as staged (DICOMDIR and DICOM/ are the FSC's, written before
    or after). studies: what is on this medium, in display order. volume_label: the medium's
    label as printed on it (shown in README.TXT and the pages). part_of: (n, total) for a study
    split over media, shown as "part n of total" (each part a file-set of its own, issue 8).
    producer: the application that wrote the medium (README.TXT names it, RAD TF-3 4.47).
    institution: the institution that made the medium and how to reach it (INDEX.HTM header,
    README.TXT contact). created: the creation date shown (default: today, UTC).
    thumbnail_side: the longer side of a preview, pixels.

    Returns the paths written, relative to staging_dir with "/" separators, in writing order.
    Raises PdiError (one line) for: no studies, a bad part_of, a missing staging_dir, a PDI
    file already present, a volume label or institution that carries a patient's name or ID
    (README.TXT holds no patient data). OSError from writing propagates and leaves a partial
    layout: start again in a fresh staging folder. A series whose image cannot be decoded or
    encoded gets a note on the page and a WARNING (no patient data), never an exception.
    """
    root = Path(staging_dir)
    n, total = part_of
    if not studies:
        raise PdiError("no studies to describe: a PDI medium lists at least one study")
    if not (isinstance(n, int) and isinstance(total, int) and 1 <= n <= total):
        raise PdiError(f"part_of must be (n, total) with 1 <= n <= total, got {part_of!r}")
    if not root.is_dir():
        raise PdiError(f"staging folder {str(root)!r} does not exist or is not a folder")
    present = [name for name in (README, INDEX, WEB_DIR) if (root / name).exists()]
    if present:
        raise PdiError(f"{', '.join(present)} already in {str(root)!r}: the PDI layout is written once")
    _refuse_patient_data({"volume label": volume_label, "institution": institution}, studies)
    created = created or dt.datetime.now(dt.timezone.utc).date()

    (root / WEB_DIR).mkdir()
    written: list[str] = []
    previews: dict[tuple[int, int], tuple[str, int, int] | str] = {}
    counter = 0
    for si, study in enumerate(studies, 1):
        for ri, series in enumerate(study.series, 1):
            if series.thumbnail_source is None:
                previews[si, ri] = "no image in this series"
                continue
            try:
                jpeg, width, height = render_preview(series.thumbnail_source, thumbnail_side)
            except Exception as exc:  # noqa: BLE001 - decoders raise many kinds; a preview is optional
                reason = _one_line(exc)
                log.warning("PDI: no preview for series %s of study %d on %s: %s",
                            series.series_number or ri, si, volume_label, reason)
                previews[si, ri] = f"no preview: {reason}"
                continue
            counter += 1
            name = f"T{counter:07d}.JPG"
            (root / WEB_DIR / name).write_bytes(jpeg)
            written.append(f"{WEB_DIR}/{name}")
            previews[si, ri] = (name, width, height)

    header = _Header(volume_label, n, total, producer, institution, created)
    (root / WEB_DIR / INDEX).write_text(_web_index(studies, previews, header), encoding="utf-8")
    written.append(f"{WEB_DIR}/{INDEX}")
    (root / INDEX).write_text(_root_index(studies, header), encoding="utf-8")
    written.append(INDEX)
    # CRLF: README.TXT is read on every kind of machine, Notepad on old Windows included.
    (root / README).write_bytes(_readme(header).replace("\n", "\r\n").encode("utf-8"))
    written.append(README)
    return written


def render_preview(path: Path, max_side: int = THUMBNAIL_SIDE) -> tuple[bytes, int, int]:
    """A JPEG preview of one Part-10 image file: (JPEG bytes, width, height).

    The middle frame is decoded (pydicom; pylibjpeg for JPEG, JPEG-LS, JPEG 2000 and RLE), with
    YBR_* converted to RGB and PALETTE COLOR through its palette (PS3.3 C.7.6.3.1.5), shrunk to
    at most max_side pixels by area averaging, and mapped to 8 bits by
    image.thumbnail.to_display_8bit with the object's Rescale Slope / Intercept and first Window
    Center / Width (PS3.3 C.11.2.1.2; min-max without one). Raises whatever pydicom or Pillow
    raise for a file that is not DICOM, holds no image, or cannot be decoded (write_pdi turns
    that into a note).
    """
    header = pydicom.dcmread(path, stop_before_pixels=True)
    if "Rows" not in header or "Columns" not in header:
        raise ValueError("the object holds no image (no Rows / Columns)")
    frames = int(header.get("NumberOfFrames") or 1)
    index = (frames - 1) // 2
    if header.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        # pixel_array(path) reads the Pixel Data element straight from the file and cannot inflate
        # it; a deflated object is read whole (it is small: deflate is not used for big images).
        frame = pixel_array(pydicom.dcmread(path), index=index)
    else:
        # From a path pydicom reads and decodes only what the one frame needs (its documented
        # low-memory way), not the whole multi-frame object.
        frame = pixel_array(path, index=index)
    photometric = str(header.get("PhotometricInterpretation", "")).strip()
    if photometric == "PALETTE COLOR":
        frame = apply_color_lut(frame, header)
    # Shrink the stored values first: the display mapping then runs on a preview-sized array, so
    # a 4k x 4k frame never exists as floats (averaging before the VOI window is a preview's
    # licence: at 256 pixels the difference does not show).
    small = downscale(frame, max_side)
    if small.ndim == 3:
        # pydicom returns YBR_FULL / YBR_FULL_422 / YBR_ICT / YBR_RCT as RGB by default; a palette's
        # output depth is its LUT entries' (8 or 16 bits), anything else's is Bits Stored.
        bits = 8 * small.dtype.itemsize if photometric == "PALETTE COLOR" else int(header.get("BitsStored") or 8)
        display = to_display_8bit(small, photometric="RGB", bits_stored=bits)
    else:
        display = to_display_8bit(small, photometric="MONOCHROME1" if photometric == "MONOCHROME1" else "MONOCHROME2",
                                  window=_window(header), rescale=_rescale(header),
                                  voi_function=_voi_function(header))
    buf = io.BytesIO()
    Image.fromarray(display, "RGB" if display.ndim == 3 else "L").save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), display.shape[1], display.shape[0]


def _first(value) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        value = value[0] if len(value) else None
    return None if value is None else float(value)


def _window(ds: Dataset) -> tuple[float, float] | None:
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    # A width below 1 is not a window (PS3.3 C.11.2.1.2); the frame's min-max is better than nothing.
    if center is None or width is None or width < 1:
        return None
    return center, width


def _rescale(ds: Dataset) -> tuple[float, float]:
    slope, intercept = _first(ds.get("RescaleSlope")), _first(ds.get("RescaleIntercept"))
    return (1.0 if slope is None else slope), (0.0 if intercept is None else intercept)


def _voi_function(ds: Dataset) -> str:
    value = str(ds.get("VOILUTFunction", "") or "LINEAR").strip().upper()
    # An unknown function is read as the default (PS3.3 C.11.2.1.3: LINEAR when absent).
    return value if value in VOI_FUNCTIONS else "LINEAR"


def _one_line(exc: Exception) -> str:
    if isinstance(exc, InvalidDicomError):
        return "not a DICOM Part-10 file"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _refuse_patient_data(fields: dict[str, str], studies: Sequence[PdiStudy]) -> None:
    # README.TXT shows the label and institution: a label made from a patient's name or ID would
    # put patient data in the one file PDI keeps free of it. Short IDs ("1") and one-letter name
    # parts are not checked: they occur in any text.
    for what, value in fields.items():
        folded = value.casefold()
        if not folded:
            continue
        for study in studies:
            parts = [p for group in study.patient_name.split("=") for p in group.split("^")]
            tokens = [study.patient_id] + parts
            if any(len(t.strip()) >= 3 and t.strip().casefold() in folded for t in tokens):
                raise PdiError(f"the {what} contains a patient's name or ID; README.TXT must hold no patient data")


@dataclass(frozen=True)
class _Header:
    volume_label: str
    n: int
    total: int
    producer: str
    institution: str
    created: dt.date

    @property
    def part(self) -> str:
        return f"part {self.n} of {self.total}" if self.total > 1 else ""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _date(value: str) -> str:
    v = value.strip()
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if len(v) == 8 and v.isdigit() else v


def _time(value: str) -> str:
    v = value.strip()
    return f"{v[:2]}:{v[2:4]}" if len(v) >= 4 and v[:4].isdigit() else v


def _page(title: str, body: list[str]) -> str:
    head = [
        _XHTML_DOCTYPE,
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">',
        "<head>",
        '<meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />',
        f"<title>{_e(title)}</title>",
        '<style type="text/css">body{font-family:sans-serif;margin:1em}'
        "table{border-collapse:collapse;margin-bottom:1.5em}"
        "th,td{border:1px solid #999;padding:0.3em 0.6em;text-align:left;vertical-align:middle}"
        "th{background:#eee}.note{color:#666;font-style:italic}</style>",
        "</head>",
        "<body>",
    ]
    return "\n".join(head + body + ["</body>", "</html>", ""])


def _made_by(h: _Header) -> str:
    parts = [f"Volume {_e(h.volume_label)}"] + ([_e(h.part)] if h.part else [])
    parts.append(f"created {h.created.isoformat()}")
    if h.institution:
        parts.append(f"by {_e(h.institution)}")
    parts.append(f"with {_e(h.producer)}")
    return "<p>" + ", ".join(parts) + ".</p>"


def _study_heading(study: PdiStudy) -> str:
    name = readable_name(study.patient_name) or "(no name)"
    return f"{_e(name)} &#8212; {_e(_date(study.study_date) or 'no date')} {_e(study.study_description)}".rstrip()


def _study_facts(study: PdiStudy) -> str:
    facts = [("Patient ID", study.patient_id), ("Birth date", _date(study.birth_date)),
             ("Sex", _SEX.get(study.sex.strip().upper(), study.sex)),
             ("Study date", f"{_date(study.study_date)} {_time(study.study_time)}".strip()),
             ("Accession number", study.accession)]
    return "<p>" + "; ".join(f"{k}: {_e(v)}" for k, v in facts if v) + "</p>"


def _web_index(studies: Sequence[PdiStudy], previews: dict, h: _Header) -> str:
    body = [f"<h1>Studies on this medium{' (' + _e(h.part) + ')' if h.part else ''}</h1>", _made_by(h),
            '<p><a href="../INDEX.HTM">Back to the start page</a>. The previews are small and not meant '
            "for diagnosis: open DICOMDIR in a DICOM viewer for the images.</p>"]
    for si, study in enumerate(studies, 1):
        body.append(f'<div class="study" id="st{si}">')
        body.append(f"<h2>{_study_heading(study)}</h2>")
        body.append(_study_facts(study))
        body.append('<table class="series">')
        body.append("<tr><th>Preview</th><th>Series</th><th>Modality</th><th>Description</th><th>Images</th></tr>")
        for ri, series in enumerate(study.series, 1):
            preview = previews[si, ri]
            if isinstance(preview, tuple):
                name, width, height = preview
                cell = (f'<td><img src="{_e(name)}" width="{width}" height="{height}" '
                        f'alt="Preview of series {_e(series.series_number or ri)}" /></td>')
            else:
                cell = f'<td class="note">{_e(preview)}</td>'
            body.append(f'<tr class="series" id="st{si}-se{ri}">{cell}<td>{_e(series.series_number)}</td>'
                        f"<td>{_e(series.modality)}</td><td>{_e(series.description)}</td>"
                        f"<td>{series.instance_count}</td></tr>")
        body.append("</table>")
        body.append("</div>")
    return _page(f"Studies on {h.volume_label}", body)


def _folder(file_ids: tuple[tuple[str, ...], ...]) -> str:
    if not file_ids:
        return ""
    common = list(file_ids[0][:-1])
    for fid in file_ids[1:]:
        while common and tuple(fid[:len(common)]) != tuple(common):
            common.pop()
    return "/".join(common)


def _root_index(studies: Sequence[PdiStudy], h: _Header) -> str:
    body = [f"<h1>DICOM images{' &#8212; ' + _e(h.part) if h.part else ''}</h1>", _made_by(h),
            "<p>This medium holds medical images and personal health information: keep it safe.</p>",
            "<ul>",
            f'<li><a href="{WEB_DIR}/{INDEX}">Overview of the studies with preview images</a></li>',
            f'<li><a href="{README}">About this medium ({README})</a></li>',
            "</ul>",
            "<h2>Manifest</h2>",
            "<p>Every series below is stored as DICOM files, listed in DICOMDIR, and can be imported "
            f"by a DICOM system. The web content in {WEB_DIR} (these pages and their JPEG previews) is "
            "not DICOM and cannot be imported.</p>"]
    for si, study in enumerate(studies, 1):
        body.append(f'<h3 id="m{si}">{_study_heading(study)}</h3>')
        body.append(_study_facts(study))
        body.append('<table class="manifest">')
        body.append("<tr><th>Series</th><th>Modality</th><th>Description</th><th>Files</th><th>Folder</th></tr>")
        for ri, series in enumerate(study.series, 1):
            body.append(f'<tr id="m{si}-se{ri}"><td>{_e(series.series_number)}</td><td>{_e(series.modality)}</td>'
                        f"<td>{_e(series.description)}</td><td>{series.instance_count}</td>"
                        f"<td>{_e(_folder(series.file_ids))}</td></tr>")
        body.append("</table>")
    return _page(f"DICOM images on {h.volume_label}", body)


def _readme(h: _Header) -> str:
    lines = [
        "README.TXT - about this medium",
        "",
        "This medium holds medical images in DICOM format: a DICOM file-set",
        "(DICOM PS3.10) made as IHE Portable Data for Imaging (PDI) media.",
        "",
        f"Volume:   {h.volume_label}",
    ]
    if h.part:
        lines += [f"Part:     {h.n} of {h.total}. Each part can be read on its own; a study",
                  "          too large for one medium continues on the next part."]
    lines += [
        f"Created:  {h.created.isoformat()}",
        f"Software: {h.producer}",
    ]
    if h.institution:
        lines += [f"Made by:  {h.institution}", "          (ask there about the contents of this medium)"]
    lines += [
        "",
        "Contents",
        "  DICOMDIR     the DICOM directory: lists every image on this medium",
        "  DICOM\\       the images, as DICOM files (names without extensions)",
        "  INDEX.HTM    the start page: open it in a web browser",
        "  IHE_PDI\\     overview pages with small preview pictures (JPEG)",
        "  README.TXT   this file",
        "",
        "How to view the images",
        "  - For a quick look, open INDEX.HTM in a web browser. The preview",
        "    pictures are small and are not meant for diagnosis.",
        "  - For diagnostic viewing and for import into a PACS, open DICOMDIR",
        "    with a DICOM viewer or import program (often called \"Open DICOMDIR\"",
        "    or \"Import from CD/DVD/USB\").",
        "  - No viewer program is on this medium, and nothing on it starts by",
        "    itself.",
        "",
        "This file holds no patient information.",
        "",
    ]
    return "\n".join(lines)
