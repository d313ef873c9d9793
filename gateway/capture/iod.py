"""The objects a capture makes of grabbed video frames, and how their pixels are encoded.

Stills: Secondary Capture Image (PS3.3 A.8.1), or VL Endoscopic Image (A.32.1) when the settings
say still_sop = "auto" and the procedure's modality is ES.  Clips (gateway/capture/clip_file.py):
Multi-frame True Color SC (A.8.5), or Multi-frame Grayscale Byte SC (A.8.3) when color =
"grayscale".  All four share the modules built here: Patient, General Study and Patient Study from
the Procedure, General Series with the Request Attributes Sequence, General and SC Equipment,
General Image, Image Pixel, SOP Common.

Built by hand, not with highdicom's SCImage, because SCImage cannot do what a video capture needs:
it requires a coordinate system (PATIENT with a Patient Orientation a video grabber cannot know, or
SLIDE with specimens), fixes Conversion Type to DI (an analog input is DV, C.8.6.1) and the Date of
Secondary Capture to "now" (not the frame's time), encodes JPEG at a fixed quality 95 with 4:2:0
chroma, and takes the patient as decoded strings where this module copies the worklist's bytes.
highdicom has no multi-frame SC and no VL Endoscopic class at all.  Nor is its encode_frame
used: for RLE Lossless and JPEG-LS Lossless it checks its arguments and calls pydicom's
get_encoder, which this module calls itself (pylibjpeg-rle / pyjpegls plugins), because importing
highdicom costs ~20 MB of RSS (measured) on a box with 1 GB; for JPEG Baseline it fixes quality 95
and Pillow's 4:2:0 chroma, so JPEG Baseline is encoded with Pillow directly: jpeg_quality applies
and the chroma is 4:2:2, which is what YBR_FULL_422 says (PS3.5 8.2.1).

Patient and study: the elements of the Procedure's identifier (the worklist's C-FIND response)
are copied with their raw bytes and the identifier's Specific Character Set, so a name in ISO 2022
Japanese reaches the object byte for byte.  Study ID is the Requested Procedure ID and Study
Description the Requested Procedure Description (IHE RAD TF-2 Table 4.7-4's mapping).  An
unscheduled Procedure (scheduled=False) has no study: its Study Instance UID is made under
uid_root from a hash of the Procedure's key (the same study for all its objects), its Study ID is
"U-" and a hash of the key, Issuer of Patient ID says "UNSCHEDULED" (when the identifier gives
none) and Patient Comments says the identity was made at the capture box and needs reconciling;
no Request Attributes Sequence is written for it.

Text from the config or the equipment (series description, institution, manufacturer) is encoded
in the identifier's character set; when the identifier has none and the text is not ASCII, ISO_IR
192 (UTF-8) is declared, which keeps the identifier's ASCII bytes valid.  Text the identifier's
character set cannot hold is written by pydicom with its replacement character (not done: a
second, ISO 2022 code extension for it).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import Image
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_encoder
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
    RLELossless,
    SecondaryCaptureImageStorage,
    VLEndoscopicImageStorage,
    generate_uid,
)

from gateway.buffer.procedure import Procedure
from gateway.config.capture import CaptureSection
from gateway.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from image.video_frame import rgb_to_gray

SC = SecondaryCaptureImageStorage
VL_ENDOSCOPIC = VLEndoscopicImageStorage
MF_TRUE_COLOR_SC = MultiFrameTrueColorSecondaryCaptureImageStorage
MF_GRAYSCALE_BYTE_SC = MultiFrameGrayscaleByteSecondaryCaptureImageStorage

TRANSFER_SYNTAXES = {
    "uncompressed": ExplicitVRLittleEndian,
    "jpeg-baseline": JPEGBaseline8Bit,
    "rle": RLELossless,
    "jpeg-ls": JPEGLSLossless,
}

UNSCHEDULED_ISSUER = "UNSCHEDULED"
UNSCHEDULED_COMMENT = (
    "UNSCHEDULED capture: patient identity made at the capture box, not from the worklist; "
    "reconcile before reporting"
)

# Patient (C.7.1.1) and Patient Study (C.7.2.2) elements a worklist item may carry, copied raw.
_PATIENT_TAGS = (
    0x00100010,  # Patient's Name
    0x00100020,  # Patient ID
    0x00100021,  # Issuer of Patient ID
    0x00100024,  # Issuer of Patient ID Qualifiers Sequence
    0x00100030,  # Patient's Birth Date
    0x00100032,  # Patient's Birth Time
    0x00100040,  # Patient's Sex
    0x00101000,  # Other Patient IDs
    0x00101001,  # Other Patient Names
    0x00101002,  # Other Patient IDs Sequence
    0x00102160,  # Ethnic Group
    0x00104000,  # Patient Comments
    0x00101010,  # Patient's Age
    0x00101020,  # Patient's Size
    0x00101030,  # Patient's Weight
)
# General Study (C.7.2.1) elements copied raw.
_STUDY_TAGS = (
    0x0020000D,  # Study Instance UID
    0x00080050,  # Accession Number
    0x00080051,  # Issuer of Accession Number Sequence
    0x00080090,  # Referring Physician's Name
)
_REQUESTED_PROCEDURE_ID = 0x00401001
_REQUESTED_PROCEDURE_DESCRIPTION = 0x00321060
_REQUESTED_PROCEDURE_CODE_SEQUENCE = 0x00321064
_SPS_SEQUENCE = 0x00400100
_SPS_ID = 0x00400009
_SPS_DESCRIPTION = 0x00400007
_SCHEDULED_PROTOCOL_CODE_SEQUENCE = 0x00400008
_STUDY_ID = 0x00200010
_STUDY_DESCRIPTION = 0x00081030
_CHARSET = 0x00080005


@dataclass(frozen=True)
class SeriesInfo:
    """The series a procedure's captures go in (General Series, C.7.3.1): uid (Series Instance
    UID), number (Series Number, 1..2^31-1), description ("" : the settings' series_description).
    One series a procedure; the caller keeps it for the procedure's life (new_series makes one)."""

    uid: str
    number: int
    description: str = ""


@dataclass(frozen=True)
class Equipment:
    """The capture box, the equipment that made the object (General Equipment C.7.5.1 and
    SC Equipment C.8.6.1).  manufacturer, model_name, software_versions: the Secondary Capture
    Device's (and General Equipment's Manufacturer / Model Name / Software Versions);
    device_serial_number, station_name: "" leaves them out.  analog: the grabber's input is analog
    video (Conversion Type DV, else DI), used for stills; a clip takes it from its FrameFormat."""

    manufacturer: str
    model_name: str
    software_versions: str
    device_serial_number: str = ""
    station_name: str = ""
    analog: bool = True


def new_uid(settings: CaptureSection) -> str:
    """A new UID under settings.uid_root (PS3.5 9: at most 64 characters; the rest random)."""
    return generate_uid(prefix=settings.uid_root + ".")


def new_series(settings: CaptureSection, number: int, description: str = "") -> SeriesInfo:
    """A new series for a procedure's captures: a UID under uid_root, the given Series Number
    (ValueError outside 1..2147483647, IS's range), the description ("" : the settings')."""
    if not 1 <= number <= 2**31 - 1:
        raise ValueError(f"series number {number} is outside 1..2147483647")
    return SeriesInfo(new_uid(settings), number, description or settings.series_description)


def study_uid_for(procedure: Procedure, settings: CaptureSection) -> str:
    """The Study Instance UID of a procedure the worklist gave none (an unscheduled capture): made
    under uid_root from a hash of procedure.key, so every still and clip of the procedure lands in
    one study without the caller keeping it.  A scheduled Procedure's own study_uid when it has one
    and is not unscheduled."""
    if procedure.scheduled and procedure.study_uid.strip():
        return procedure.study_uid.strip()
    return generate_uid(prefix=settings.uid_root + ".", entropy_srcs=["study", procedure.key])


def study_id_for(procedure: Procedure) -> str:
    """The Study ID (SH, 16 characters) of a procedure without a Requested Procedure ID: "U-" and
    12 hex digits of a hash of procedure.key (the same for all its objects)."""
    return "U-" + hashlib.sha256(procedure.key.encode()).hexdigest()[:12].upper()


def transfer_syntax(settings: CaptureSection) -> UID:
    """The Transfer Syntax UID of settings.encoding."""
    return TRANSFER_SYNTAXES[settings.encoding]


def photometric(settings: CaptureSection) -> str:
    """The Photometric Interpretation the encoded pixels have (PS3.5 8.2, PS3.3 C.7.6.3.1.2):
    MONOCHROME2 for grayscale; YBR_FULL_422 for colour JPEG Baseline, RGB otherwise (RLE and
    JPEG-LS Lossless keep RGB: no colour transform)."""
    if settings.color == "grayscale":
        return "MONOCHROME2"
    return "YBR_FULL_422" if settings.encoding == "jpeg-baseline" else "RGB"


def frame_pixels(frame: np.ndarray, settings: CaptureSection) -> np.ndarray:
    """A grabbed frame ((rows, columns, 3) uint8 RGB) as the object stores it: the same array for
    colour, its BT.601 luma (rows, columns) for grayscale.  ValueError (one line) for another
    shape or dtype."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"a frame must be (rows, columns, 3) uint8 RGB, got {got}")
    return rgb_to_gray(frame) if settings.color == "grayscale" else frame


def encode_pixels(pixels: np.ndarray, settings: CaptureSection) -> bytes:
    """One frame's pixels (from frame_pixels) encoded as settings.encoding says: native bytes
    (colour-by-pixel, PS3.5 8.1), or one JPEG Baseline / RLE / JPEG-LS Lossless stream (PS3.5
    8.2.1, G, 8.2.3) to be a fragment of encapsulated Pixel Data.  RuntimeError from pydicom when
    the encoder's plugin (pylibjpeg-rle or pydicom's own for RLE, pyjpegls) is not installed."""
    if settings.encoding == "uncompressed":
        return np.ascontiguousarray(pixels).tobytes()
    if settings.encoding == "jpeg-baseline":
        buf = io.BytesIO()
        # 4:2:2 chroma: what YBR_FULL_422 states (Pillow's default would be 4:2:0).
        options = {"subsampling": "4:2:2"} if pixels.ndim == 3 else {}
        Image.fromarray(pixels).save(buf, format="JPEG", quality=settings.jpeg_quality, **options)
        return buf.getvalue()
    colour = pixels.ndim == 3
    options = {"planar_configuration": 0} if colour else {}
    return get_encoder(transfer_syntax(settings)).encode(
        pixels,
        rows=pixels.shape[0],
        columns=pixels.shape[1],
        samples_per_pixel=3 if colour else 1,
        number_of_frames=1,
        bits_allocated=8,
        bits_stored=8,
        photometric_interpretation="RGB" if colour else "MONOCHROME2",
        pixel_representation=0,
        **options,
    )


def is_lossy(settings: CaptureSection) -> bool:
    """True when settings.encoding loses information (JPEG Baseline)."""
    return settings.encoding == "jpeg-baseline"


def file_meta(sop_class: str, sop_instance: str, settings: CaptureSection) -> FileMetaDataset:
    """The File Meta Information of a captured object (PS3.10 7.1)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax(settings)
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def _da(when: datetime) -> str:
    return when.strftime("%Y%m%d")


def _tm(when: datetime) -> str:
    return when.strftime("%H%M%S.%f")


def _copy_raw(src: Dataset, dst: Dataset, tag: int, as_tag: int | None = None) -> bool:
    """Copy src's element `tag` to dst (as `as_tag`), keeping its encoded bytes.  Sequences are
    copied decoded one level (their items' elements stay raw): a raw SQ's bytes cannot be put
    back behind a new length.  False when src has no such element."""
    if tag not in src:
        return False
    elem = src.get_item(tag)
    target = Tag(as_tag if as_tag is not None else tag)
    # The identifier came off the network and through a cache: a value shorter than its length
    # (pydicom reads it without complaint) or an unknown VR must not reach the object.
    if isinstance(elem, RawDataElement) and elem.length != 0xFFFFFFFF and len(elem.value or b"") != elem.length:
        raise ValueError(f"element {Tag(tag)} is {len(elem.value or b'')} bytes, its length says {elem.length}")
    try:
        src[tag]
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds for a bad value
        raise ValueError(f"element {Tag(tag)} does not decode: {exc}") from None
    if isinstance(elem, RawDataElement) and elem.VR != "SQ":
        dst[target] = elem._replace(tag=target)
    else:
        value = src[tag]
        dst.add_new(target, value.VR, value.value)
    return True


def _charset_for(src: Dataset, texts: list[str]) -> RawDataElement | str | None:
    if _CHARSET in src:
        return src.get_item(_CHARSET)
    if any(not t.isascii() for t in texts):
        return "ISO_IR 192"
    return None


def _request_attributes(src: Dataset) -> Sequence | None:
    """The Request Attributes Sequence (C.7.3.1, Table 10-9) of a worklist item: one item per
    Scheduled Procedure Step item.  None when the identifier lacks the Requested Procedure ID or
    an SPS ID (both Type 1C there: required for a scheduled procedure, so an item without them
    would be invalid)."""
    if _REQUESTED_PROCEDURE_ID not in src or _SPS_SEQUENCE not in src:
        return None
    items = []
    for sps in src[_SPS_SEQUENCE].value:
        if _SPS_ID not in sps:
            return None
        item = Dataset()
        _copy_raw(src, item, _REQUESTED_PROCEDURE_ID)
        _copy_raw(src, item, 0x00080050)  # Accession Number
        _copy_raw(src, item, 0x0020000D)  # Study Instance UID
        _copy_raw(src, item, _REQUESTED_PROCEDURE_DESCRIPTION)
        _copy_raw(src, item, _REQUESTED_PROCEDURE_CODE_SEQUENCE)
        _copy_raw(sps, item, _SPS_ID)
        _copy_raw(sps, item, _SPS_DESCRIPTION)
        _copy_raw(sps, item, _SCHEDULED_PROTOCOL_CODE_SEQUENCE)
        items.append(item)
    return Sequence(items) if items else None


def common_dataset(
    sop_class: str,
    procedure: Procedure,
    series: SeriesInfo,
    equipment: Equipment,
    settings: CaptureSection,
    instance_number: int,
    acquired: datetime,
    analog: bool,
) -> Dataset:
    """The modules every captured object has, without pixels: SOP Common (C.12.1), Patient
    (C.7.1.1), General Study (C.7.2.1), Patient Study (C.7.2.2), General Series (C.7.3.1, with the
    Request Attributes Sequence), General Equipment (C.7.5.1), General Image (C.7.6.1), and for the
    SC classes SC Equipment (C.8.6.1) and SC Image (C.8.6.2).  acquired: the (first) frame's time,
    local wall clock; an aware datetime also gives Timezone Offset From UTC.  ValueError (one line)
    when the Procedure's identifier does not decode or instance_number is outside 1..2^31-1."""
    if not 1 <= instance_number <= 2**31 - 1:
        raise ValueError(f"instance number {instance_number} is outside 1..2147483647")
    src = procedure.dataset()
    try:
        return _common(sop_class, src, procedure, series, equipment, settings, instance_number, acquired, analog)
    except ValueError as exc:
        raise ValueError(f"procedure {procedure.key}: {exc}") from None


def _common(sop_class, src, procedure, series, equipment, settings, instance_number, acquired, analog) -> Dataset:
    ds = Dataset()
    texts = [settings.series_description, series.description, settings.institution, equipment.manufacturer,
             equipment.model_name, equipment.software_versions, equipment.station_name]
    charset = _charset_for(src, texts)
    if isinstance(charset, RawDataElement):
        ds[Tag(_CHARSET)] = charset
    elif charset:
        ds.SpecificCharacterSet = charset

    # SOP Common
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = new_uid(settings)
    ds.InstanceCreationDate = _da(acquired)
    ds.InstanceCreationTime = _tm(acquired)
    ds.InstanceCreatorUID = IMPLEMENTATION_CLASS_UID
    if acquired.utcoffset() is not None:
        minutes = int(acquired.utcoffset().total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        ds.TimezoneOffsetFromUTC = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"

    # Patient, Patient Study: the worklist's bytes.
    for tag in _PATIENT_TAGS:
        _copy_raw(src, ds, tag)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):  # Type 2
        if keyword not in ds:
            setattr(ds, keyword, None)
    if not procedure.scheduled:
        if "IssuerOfPatientID" not in ds:
            ds.IssuerOfPatientID = UNSCHEDULED_ISSUER
        ds.PatientComments = UNSCHEDULED_COMMENT

    # General Study
    for tag in _STUDY_TAGS:
        _copy_raw(src, ds, tag)
    if not procedure.scheduled or not str(ds.get("StudyInstanceUID", "") or "").strip():
        ds.StudyInstanceUID = study_uid_for(procedure, settings)
    if not procedure.scheduled or not _copy_raw(src, ds, _REQUESTED_PROCEDURE_ID, _STUDY_ID):
        # Media export's DICOMDIR needs a Study ID (PS3.3 F.5.2 Type 1 there), so none is left empty.
        ds.StudyID = study_id_for(procedure)
    _copy_raw(src, ds, _REQUESTED_PROCEDURE_DESCRIPTION, _STUDY_DESCRIPTION)
    for keyword in ("AccessionNumber", "ReferringPhysicianName"):  # Type 2
        if keyword not in ds:
            setattr(ds, keyword, None)
    ds.StudyDate = _da(acquired)
    ds.StudyTime = _tm(acquired)

    # General Series
    es = sop_class == VL_ENDOSCOPIC
    ds.Modality = "ES" if es else (procedure.modality.strip() or "OT")
    ds.SeriesInstanceUID = series.uid
    ds.SeriesNumber = series.number
    ds.SeriesDescription = series.description or settings.series_description
    # Type 2C (required for a paired body part): the grabber cannot know which side, so empty
    # (dciodvfy cannot evaluate the condition and asks for it always).
    ds.Laterality = None
    if procedure.scheduled:
        request = _request_attributes(src)
        if request is not None:
            ds.RequestAttributesSequence = request

    # General Equipment: this box made the object.
    ds.Manufacturer = equipment.manufacturer
    ds.ManufacturerModelName = equipment.model_name
    ds.SoftwareVersions = equipment.software_versions
    if equipment.device_serial_number:
        ds.DeviceSerialNumber = equipment.device_serial_number
    if equipment.station_name:
        ds.StationName = equipment.station_name
    if settings.institution:
        ds.InstitutionName = settings.institution

    # General Image
    ds.InstanceNumber = instance_number
    ds.PatientOrientation = None  # Type 2C: a video frame has no known orientation
    ds.ContentDate = _da(acquired)
    ds.ContentTime = _tm(acquired)
    ds.AcquisitionDateTime = acquired.strftime("%Y%m%d%H%M%S.%f")
    ds.BurnedInAnnotation = "YES"  # the modality's screen: names, IDs, measurements in the pixels
    # A secondary capture of a modality's display is derived; an endoscope camera's own video is
    # the original acquisition (VL Image C.8.12.1.1.6).
    ds.ImageType = ["ORIGINAL", "PRIMARY"] if es else ["DERIVED", "SECONDARY"]

    if not es:
        # SC Equipment: the grabbing equipment.
        ds.ConversionType = "DV" if analog else "DI"
        # Its Modality (the original's) is General Series' element, set above.
        ds.SecondaryCaptureDeviceManufacturer = equipment.manufacturer
        ds.SecondaryCaptureDeviceManufacturerModelName = equipment.model_name
        ds.SecondaryCaptureDeviceSoftwareVersions = equipment.software_versions
        # SC Image
        ds.DateOfSecondaryCapture = _da(acquired)
        ds.TimeOfSecondaryCapture = _tm(acquired)
    return ds


def image_pixel(ds: Dataset, rows: int, columns: int, settings: CaptureSection) -> None:
    """Image Pixel (C.7.6.3) without Pixel Data: 8 bits a sample, unsigned, colour-by-pixel."""
    colour = settings.color == "rgb"
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric(settings)
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if colour:
        ds.PlanarConfiguration = 0


def lossy_compression(ds: Dataset, settings: CaptureSection, raw_bytes: int, encoded_bytes: int) -> None:
    """Lossy Image Compression (General Image C.7.6.1.1.5): "01" with ratio and method
    ISO_10918_1 for JPEG Baseline, "00" for the lossless encodings."""
    if is_lossy(settings):
        ds.LossyImageCompression = "01"
        ratio = raw_bytes / max(encoded_bytes, 1)
        ds.LossyImageCompressionRatio = f"{ratio:.4g}"[:16]
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    else:
        ds.LossyImageCompression = "00"


def still_sop_class(procedure: Procedure, settings: CaptureSection) -> str:
    """VL Endoscopic Image when still_sop is "auto" and the procedure's modality is ES, else SC."""
    if settings.still_sop == "auto" and procedure.modality.strip().upper() == "ES":
        return VL_ENDOSCOPIC
    return SC


def still(
    frame: np.ndarray,
    procedure: Procedure,
    series: SeriesInfo,
    equipment: Equipment,
    settings: CaptureSection,
    instance_number: int,
    acquired: datetime,
) -> Dataset:
    """One grabbed frame as a single-frame object: a Secondary Capture Image (PS3.3 A.8.1) or a
    VL Endoscopic Image (A.32.1, see still_sop_class), complete with file_meta, ready for
    ``dcmwrite(path, ds, enforce_file_format=True)``.

    frame: (rows, columns, 3) uint8 RGB.  acquired: when it was grabbed.  ValueError (one line)
    for a frame of another shape or dtype, a bad instance number or an undecodable identifier."""
    pixels = frame_pixels(frame, settings)
    sop_class = still_sop_class(procedure, settings)
    ds = common_dataset(sop_class, procedure, series, equipment, settings, instance_number, acquired,
                        equipment.analog)
    image_pixel(ds, pixels.shape[0], pixels.shape[1], settings)
    encoded = encode_pixels(pixels, settings)
    lossy_compression(ds, settings, pixels.nbytes, len(encoded))
    if sop_class == VL_ENDOSCOPIC:
        ds.AcquisitionContextSequence = []  # Type 2 (C.8.4.10): nothing known of the context
    if transfer_syntax(settings).is_encapsulated:
        ds.PixelData = encapsulate([encoded])
    else:
        ds.PixelData = encoded + b"\0" * (len(encoded) % 2)  # OB values have even length
    ds["PixelData"].VR = "OB"
    ds.file_meta = file_meta(sop_class, ds.SOPInstanceUID, settings)
    return ds
