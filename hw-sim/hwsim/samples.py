"""A sample study for a simulated medium "with data": a DICOM File-set (PS3.10 section 8, a
DICOMDIR and its files) of one small CT series, made with pydicom's FileSet so that the gateway's
media import reads what any CD burner would have written.

Synthetic: the patient is "HWSIM^SAMPLE" (no real person), the pixels a ramp. The UIDs are new
each time the folder is made; an existing folder is used as it is (the same study on every insert).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

IMAGES = 3
SIZE = 64


def _ct(study: str, series: str, number: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "HWSIM^SAMPLE", "HWSIM-1", "19700101", "O"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20260101", "120000", "HWSIM1", "1"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows = ds.Columns = SIZE
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ramp = (np.add.outer(np.arange(SIZE), np.arange(SIZE)) * 32 + number * 100) % 4096
    ds.PixelData = ramp.astype("<u2").tobytes()
    return ds


def sample_folder(folder: Path) -> Path:
    """`folder` holding the sample File-set (DICOMDIR at its top), made on first use; returns it."""
    folder = Path(folder)
    if (folder / "DICOMDIR").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fs = FileSet()
    study, series = generate_uid(), generate_uid()
    for n in range(1, IMAGES + 1):
        fs.add(_ct(study, series, n))
    fs.write(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder
