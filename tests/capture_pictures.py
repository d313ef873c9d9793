"""What the capture tests feed the IOD code: an ultrasound-like video frame (a speckled sector on
black with white text and a coloured scale bar, not a flat image, so that JPEG has real work), the
PSNR between two frames, and worklist procedures in Latin-1, ISO 2022 Japanese and unscheduled."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset

from gateway.buffer.procedure import Procedure, encode_identifier


def ultrasound_frame(rows: int = 480, columns: int = 640, seed: int = 0) -> np.ndarray:
    """(rows, columns, 3) uint8 RGB: a Rayleigh-speckled sector fading with depth, white text
    (an ID and acoustic indices), an orange scale bar; ``seed`` changes the speckle."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:columns]
    apex_y, apex_x = 20, columns // 2
    r = np.hypot(yy - apex_y, xx - apex_x)
    angle = np.arctan2(xx - apex_x, yy - apex_y)
    sector = (r > 30) & (r < rows - 40) & (np.abs(angle) < 0.7)
    speckle = rng.rayleigh(0.35, (rows, columns)) * (0.6 + 0.4 * np.cos(r / 25.0))
    gray = np.clip(speckle * 160 * np.exp(-r / (rows * 1.2)), 0, 255)
    plane = np.zeros((rows, columns), np.uint8)
    plane[sector] = gray[sector].astype(np.uint8)
    picture = Image.fromarray(np.repeat(plane[:, :, None], 3, axis=2))
    draw = ImageDraw.Draw(picture)
    draw.text((10, 10), f"ID 12345  MI 0.9  TIS 0.4  #{seed}", fill=(255, 255, 255))
    draw.text((columns - 120, rows - 20), "15 cm  45 Hz", fill=(255, 255, 255))
    draw.rectangle((columns - 30, 40, columns - 20, 200), fill=(200, 120, 40))
    return np.asarray(picture).copy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of b against a, dB (8-bit peak 255); inf when equal."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _worklist_item(charset, name: str, patient_id: str, modality: str, description: str) -> Dataset:
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.77.1"
    ds.AccessionNumber = "ACC-0042"
    ds.ReferringPhysicianName = "Ref^Doc"
    ds.RequestedProcedureID = "RP-7"
    ds.RequestedProcedureDescription = description
    sps = Dataset()
    sps.ScheduledProcedureStepID = "SPS-9"
    sps.ScheduledProcedureStepDescription = description
    sps.Modality = modality
    sps.ScheduledStationAETitle = "GRABBER"
    sps.ScheduledProcedureStepStartDate = "20261129"
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def procedure(kind: str = "latin1", modality: str = "US") -> Procedure:
    """A worklist Procedure: kind "latin1" (ISO_IR 100, a German name), "japanese" (ISO 2022 IR
    87, the PS3.5 H.3.1 example name), "ascii" (no Specific Character Set) or "unscheduled" (a
    generated patient ID, no study, scheduled=False)."""
    if kind == "unscheduled":
        ds = Dataset()
        ds.PatientID = "UNSCHED-0001"
        ds.PatientName = None
        return Procedure(key="UNSCHEDULED-0001", identifier=encode_identifier(ds), scheduled=False,
                         patient_id="UNSCHED-0001", modality=modality)
    if kind == "latin1":
        ds = _worklist_item("ISO_IR 100", "Müller^Jürgen", "PID-LAT", modality, "Sonographie Abdomen")
    elif kind == "japanese":
        ds = _worklist_item(["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう", "PID-JP", modality,
                            "Abdomen")
    else:
        ds = _worklist_item(None, "Doe^Jane", "PID-ASC", modality, "Abdomen")
    identifier = encode_identifier(ds)
    return Procedure(key=f"SPS-9|ACC-0042|{ds.StudyInstanceUID}", identifier=identifier,
                     patient_name=str(ds.PatientName), patient_id=ds.PatientID, accession_number="ACC-0042",
                     study_uid=ds.StudyInstanceUID, modality=modality, description="Abdomen")
