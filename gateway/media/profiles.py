"""The general-purpose application profiles' transfer syntax rules, and the conversions they force.

PS3.11 D, the General Purpose profiles (STD-GEN-CD, STD-GEN-DVD-JPEG, STD-GEN-USB-JPEG): the CD
profile takes Explicit VR Little Endian only; the JPEG profiles add JPEG Baseline (Process 1),
JPEG Extended (Process 2 & 4) and JPEG Lossless SV1 (Process 14, selection value 1), the same set
DCMTK's dcmmkdir checks with -Pdv and -Pfl. Anything else is decompressed (pydicom with pylibjpeg)
or re-encoded (Implicit VR LE, Deflated, Explicit VR Big Endian) into Explicit VR Little Endian;
what cannot be decoded is left out with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    UID,
)

EXPLICIT_LE = str(ExplicitVRLittleEndian)
_JPEG = frozenset({str(JPEGBaseline8Bit), str(JPEGExtended12Bit), str(JPEGLosslessSV1)})
# JPEG Baseline, Extended and JPEG-LS near-lossless: lossy by definition of the syntax.
_ALWAYS_LOSSY = frozenset({str(JPEGBaseline8Bit), str(JPEGExtended12Bit), "1.2.840.10008.1.2.4.81"})
_UNCOMPRESSED = frozenset({str(ImplicitVRLittleEndian), EXPLICIT_LE, str(ExplicitVRBigEndian),
                           str(DeflatedExplicitVRLittleEndian)})


class ProfileError(ValueError):
    """An unknown profile name; one line."""


class ConversionError(Exception):
    """An instance could not be converted to the profile's transfer syntax; one line naming why."""


@dataclass(frozen=True)
class Profile:
    """One application profile: its PS3.11 name, DCMTK's dcmmkdir option, and the transfer syntaxes it allows."""

    name: str
    dcmmkdir_option: str
    allowed: frozenset[str]


PROFILES: dict[str, Profile] = {
    p.name: p for p in (
        Profile("STD-GEN-CD", "-Pgp", frozenset({EXPLICIT_LE})),
        Profile("STD-GEN-DVD-JPEG", "-Pdv", frozenset({EXPLICIT_LE}) | _JPEG),
        Profile("STD-GEN-USB-JPEG", "-Pfl", frozenset({EXPLICIT_LE}) | _JPEG),
    )
}


def get_profile(name: str | Profile) -> Profile:
    """The Profile named name (e.g. "STD-GEN-CD"); raises ProfileError naming the known ones."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise ProfileError(f"unknown application profile {name!r} (known: {', '.join(PROFILES)})") from None


@dataclass(frozen=True)
class Decision:
    """What a profile does with one transfer syntax: "copy" as is, "convert" to target, or "omit" (reason)."""

    action: str
    target: str
    reason: str = ""


def decide(profile: Profile, transfer_syntax: str) -> Decision:
    """The profile's rule for an instance stored in transfer_syntax (a UID string), PS3.11 D.

    Never raises: an unknown or undecodable syntax is an "omit" decision with the reason.
    """
    if transfer_syntax in profile.allowed:
        return Decision("copy", transfer_syntax)
    if transfer_syntax in _UNCOMPRESSED:
        return Decision("convert", EXPLICIT_LE)
    uid = UID(transfer_syntax)
    if uid.is_transfer_syntax and uid.is_compressed:
        if _can_decode(uid):
            return Decision("convert", EXPLICIT_LE)
        return Decision("omit", "", f"{profile.name} does not allow {uid.name or transfer_syntax} "
                        "and no installed decoder decompresses it")
    return Decision("omit", "", f"{profile.name} does not allow transfer syntax {transfer_syntax}")


def _can_decode(uid: UID) -> bool:
    try:
        from pydicom.pixels.decoders.base import get_decoder
        return get_decoder(uid).is_available
    except (NotImplementedError, ValueError, ImportError):
        return False


# Bytes per value of the VRs whose values pydicom keeps as raw bytes in the file's byte order
# (PS3.5 7.3: OW, OF, OL, OD and OV are byte-swapped per value in Big Endian; OB and UN are not).
_WORD = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _to_little_endian(ds: pydicom.Dataset) -> None:
    """Make a data set read as Explicit VR Big Endian (retired, PS3.5 A.3) writable as Little
    Endian: every value is decoded (numbers become Python numbers, re-encoded on writing), the
    OW/OF/OL/OD/OV values are swapped per word, and each (nested) data set forgets the encoding
    it was read with, which pydicom otherwise refuses to change (it never swaps OW itself:
    filewriter.write_OWvalue)."""
    for elem in list(ds):
        if elem.VR == "SQ":
            for item in elem.value:
                _to_little_endian(item)
        elif elem.VR in _WORD and isinstance(elem.value, (bytes, bytearray)) and elem.value:
            width = _WORD[elem.VR]
            if len(elem.value) % width:
                raise ConversionError(f"{elem.keyword or elem.tag} has {len(elem.value)} bytes, not whole "
                                      f"{elem.VR} values of {width} bytes")
            elem.value = np.frombuffer(elem.value, dtype=f">u{width}").astype(f"<u{width}").tobytes()
    ds.set_original_encoding(None, None)


def convert(source: Path, dest: Path, target: str = EXPLICIT_LE) -> int:
    """Write source as a Part-10 file in target (Explicit VR LE) at dest, fsynced; returns its size in bytes.

    Compressed pixel data is decoded (pydicom + pylibjpeg; YBR colour becomes RGB, PS3.5 8.2) and
    Lossy Image Compression stays as the source says. The SOP Instance UID is kept: a transfer
    syntax change is not a new instance (PS3.5 10). Raises ConversionError with one line.
    """
    if target != EXPLICIT_LE:
        raise ConversionError(f"conversion to {target} is not supported")
    try:
        ds = pydicom.dcmread(source)
        ts = UID(ds.file_meta.TransferSyntaxUID)
        if str(ts) in _ALWAYS_LOSSY and "LossyImageCompression" not in ds:
            # PS3.3 C.7.6.1.1.5: once lossy compressed, always flagged, also after decompression.
            ds.LossyImageCompression = "01"
        if ts == ExplicitVRBigEndian:
            _to_little_endian(ds)
        if ts.is_compressed and "PixelData" in ds:
            # pydicom makes a new SOP Instance UID by default; the instance is the same image in
            # another encoding, and the DICOMDIR and any PACS must see it as the same instance.
            ds.decompress(as_rgb=True, generate_instance_uid=False)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as fh:
            ds.save_as(fh, enforce_file_format=True, implicit_vr=False, little_endian=True)
            fh.flush()
            os.fsync(fh.fileno())
    except (OSError, ValueError, TypeError, AttributeError, NotImplementedError, RuntimeError,
            KeyError, pydicom.errors.InvalidDicomError) as exc:
        # pydicom's decoder errors span lines (one per plugin tried): fold them into one.
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ConversionError(f"cannot convert to Explicit VR Little Endian: {text}") from exc
    return dest.stat().st_size
