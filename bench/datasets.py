"""Benchmark data, generated once into the cache folder (bench/.cache/data, git-ignored).

  ct   500 × CT 512×512, 16-bit, Explicit VR Little Endian          (~0.5 MB each)
  dx    20 × DX 2800×2800, 16-bit                                   (~15.7 MB each)
  us     5 × US multi-frame 600×800 RGB 8-bit × 60 frames           (~86 MB each)
  big    1 × multi-frame grayscale 1024×1024 8-bit × 1000 frames    (~1.05 GB, for bench_memory)

BENCH_SCALE multiplies the counts (at least 1 object per set) and the frame count of `big`; the
per-object sizes of ct/dx/us stay the same, because the per-object cost is what is measured.
Files are written header first and pixel data streamed frame by frame, so generating the 1 GB
object never holds it in memory. A set is generated only where files are missing; names and UIDs
are deterministic, so a larger scale later adds files to the same folders.

    python bench/datasets.py            # generate everything the current BENCH_SCALE needs
"""

from __future__ import annotations

import io
import os
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, SCALE, scaled  # noqa: E402

DATA = CACHE / "data"

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
SC_MULTIFRAME_BYTE = "1.2.840.10008.5.1.4.1.1.7.2"  # Multi-frame Grayscale Byte SC


@dataclass(frozen=True)
class Shape:
    name: str
    count: int  # at BENCH_SCALE = 1
    sop_class: str
    modality: str
    rows: int
    cols: int
    frames: int  # 0: single frame, no NumberOfFrames
    samples: int
    bits: int

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.cols * self.samples * self.bits // 8

    @property
    def pixel_bytes(self) -> int:
        return self.frame_bytes * max(1, self.frames)


SETS = {
    "ct": Shape("ct", 500, CT_STORAGE, "CT", 512, 512, 0, 1, 16),
    "dx": Shape("dx", 20, DX_STORAGE, "DX", 2800, 2800, 0, 1, 16),
    "us": Shape("us", 5, US_MULTIFRAME, "US", 600, 800, 60, 3, 8),
}
BIG = Shape("big", 1, SC_MULTIFRAME_BYTE, "OT", 1024, 1024, 1000, 1, 8)


def _uid(*parts: str) -> str:
    return generate_uid(entropy_srcs=["dicom-gateway-bench", *parts])


def _header(shape: Shape, i: int, frames: int) -> bytes:
    """Preamble, file meta and every element before Pixel Data, as pydicom writes them."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = shape.sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = _uid(shape.name, str(i), str(frames))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = shape.sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = _uid(shape.name, "study")
    ds.SeriesInstanceUID = _uid(shape.name, "series")
    ds.PatientName = "Bench^" + shape.name.upper()
    ds.PatientID = "BENCH-" + shape.name.upper()
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate, ds.StudyTime = "20261123", "120000"
    ds.AccessionNumber = "BENCH"
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.Modality = shape.modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = i + 1
    if shape.sop_class == CT_STORAGE:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    elif shape.sop_class == DX_STORAGE:
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.PresentationIntentType = "FOR PRESENTATION"
    elif shape.sop_class == SC_MULTIFRAME_BYTE:
        ds.ConversionType = "WSD"
    if frames:
        ds.NumberOfFrames = frames
        ds.FrameIncrementPointer = 0x00181063  # Frame Time
        ds.FrameTime = 33.3
    ds.SamplesPerPixel = shape.samples
    ds.PhotometricInterpretation = "RGB" if shape.samples == 3 else "MONOCHROME2"
    if shape.samples == 3:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = shape.rows, shape.cols
    ds.BitsAllocated = shape.bits
    ds.BitsStored = 12 if shape.bits == 16 else 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _pixel_element_header(shape: Shape, length: int) -> bytes:
    # (7FE0,0010) in Explicit VR Little Endian: tag, VR, 2 reserved bytes, 4-byte length.
    if length % 2 or length > 0xFFFFFFFE:
        raise ValueError(f"native Pixel Data of {length} bytes cannot be encoded")
    vr = b"OW" if shape.bits == 16 else b"OB"
    return struct.pack("<HH", 0x7FE0, 0x0010) + vr + b"\x00\x00" + struct.pack("<I", length)


def _frames(shape: Shape, i: int, frames: int):
    rng = np.random.default_rng([int.from_bytes(shape.name.encode(), "little"), i])
    for _ in range(max(1, frames)):
        if shape.bits == 16:
            yield (rng.integers(0, 4096, shape.rows * shape.cols, dtype=np.uint16)).tobytes()
        else:
            yield rng.bytes(shape.frame_bytes)


def write_object(path: Path, shape: Shape, i: int, frames: int | None = None) -> Path:
    """Write one object: header with pydicom, then Pixel Data streamed frame by frame."""
    frames = shape.frames if frames is None else frames
    length = shape.frame_bytes * max(1, frames)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(_header(shape, i, frames))
        fh.write(_pixel_element_header(shape, length))
        written = 0
        for chunk in _frames(shape, i, frames):
            fh.write(chunk)
            written += len(chunk)
        if written != length:
            raise AssertionError(f"wrote {written} pixel bytes, declared {length}")
    os.replace(tmp, path)
    return path


def files(name: str, count: int | None = None) -> list[Path]:
    """The first `count` objects of a set (default: the scaled count), generated if missing."""
    shape = SETS[name]
    count = scaled(shape.count) if count is None else count
    folder = DATA / name
    folder.mkdir(parents=True, exist_ok=True)
    out, made, t0 = [], 0, time.monotonic()
    for i in range(count):
        p = folder / f"{name}{i:05d}.dcm"
        if not p.exists():
            write_object(p, shape, i)
            made += 1
        out.append(p)
    if made:
        print(f"  generated {made} {name.upper()} objects in {folder} ({time.monotonic() - t0:.1f} s)", flush=True)
    return out


def big_object(frames: int | None = None) -> Path:
    """The memory benchmark's single large multi-frame object (~1.05 GB at full scale)."""
    frames = scaled(BIG.frames) if frames is None else frames
    folder = DATA / "big"
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"big_{frames}f.dcm"
    if not p.exists():
        t0 = time.monotonic()
        write_object(p, BIG, 0, frames)
        print(f"  generated {p} ({p.stat().st_size / 1e9:.2f} GB, {time.monotonic() - t0:.1f} s)", flush=True)
    return p


def total_bytes(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def main() -> int:
    print(f"bench data in {DATA} (BENCH_SCALE={SCALE})")
    for name in SETS:
        fs = files(name)
        print(f"  {name}: {len(fs)} objects, {total_bytes(fs) / 1e6:.0f} MB")
    b = big_object()
    print(f"  big: {b.stat().st_size / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
