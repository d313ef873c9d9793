"""The print domain's data sets as a client reads them: Printer, Printer Configuration, Print Job,
the Film Box an N-CREATE returns, and the Event Information of the N-EVENT-REPORTs.

Pure builders (pydicom Datasets from the profile, the printer's status and the spool's rows): no
DIMSE, no network; gateway.dicom.print_scp puts them into responses and reports.
"""

from __future__ import annotations

import datetime

from pydicom.dataset import Dataset

from gateway.print import session as S
from gateway.print.profile import PrintSection


def printer(profile: PrintSection, status: tuple[str, str]) -> Dataset:
    """The Printer SOP instance (PS3.4 H.4.2.2.2 N-GET; attributes PS3.3 C.13.9): `status` is
    (Printer Status, Printer Status Info), e.g. ("NORMAL", "NORMAL")."""
    p = profile
    ds = Dataset()
    ds.PrinterStatus, ds.PrinterStatusInfo = status
    ds.PrinterName = p.name
    ds.Manufacturer = p.manufacturer
    ds.ManufacturerModelName = p.model_name
    ds.DeviceSerialNumber = p.serial_number
    ds.SoftwareVersions = p.software_version
    if p.calibration_date:
        ds.DateOfLastCalibration = p.calibration_date
    return ds


def printer_configuration(profile: PrintSection) -> Dataset:
    """The Printer Configuration Retrieval SOP instance (PS3.4 H.4.2.3.1 N-GET; PS3.3 C.13.10):
    one Printer Configuration Sequence item; densities in hundredths of OD, Printer Pixel Spacing
    in mm (row, column) from the printer's dpi."""
    p = profile
    item = Dataset()
    item.SoftwareVersions = p.software_version
    item.Manufacturer = p.manufacturer
    item.ManufacturerModelName = p.model_name
    item.DeviceSerialNumber = p.serial_number
    item.PrinterResolutionID = "STANDARD"
    item.DefaultPrinterResolutionID = "STANDARD"
    item.MaximumMemoryAllocation = 0
    item.MinDensity = p.min_density
    item.MaxDensity = p.max_density
    item.PrinterPixelSpacing = [25.4 / p.printer.dpi, 25.4 / p.printer.dpi]
    ds = Dataset()
    ds.PrinterConfigurationSequence = [item]
    return ds


def print_job(job: dict) -> Dataset:
    """The Print Job SOP instance (PS3.4 H.4.2.1.2 N-GET; PS3.3 C.13.8) from a PrintStore.print_job
    row: keys status, info, created (Unix seconds, local time in the data set), priority, printer,
    calling_ae."""
    ds = Dataset()
    ds.ExecutionStatus = job["status"]
    ds.ExecutionStatusInfo = job["info"]
    created = datetime.datetime.fromtimestamp(job["created"])
    ds.CreationDate = created.strftime("%Y%m%d")
    ds.CreationTime = created.strftime("%H%M%S")
    ds.PrintPriority = job["priority"]
    ds.PrinterName = job["printer"]
    ds.Originator = job["calling_ae"]
    return ds


def film_box(film: S.FilmBox, request: Dataset) -> Dataset:
    """The Basic Film Box an N-CREATE answers with (PS3.4 H.4.1.2.1.2): the values in force
    (the client's or the profile's defaults), the Referenced Film Session, the client's Presentation
    LUT reference as sent (`request`), and the Image Box / Annotation Box references it created."""
    v = film.values
    out = Dataset()
    out.ImageDisplayFormat = v["display_format"]
    out.FilmOrientation = v["orientation"]
    out.FilmSizeID = v["film_size"]
    out.MagnificationType = v["magnification"]
    if v.get("smoothing"):
        out.SmoothingType = v["smoothing"]
    out.BorderDensity = v["border_density"]
    out.EmptyImageDensity = v["empty_density"]
    out.MinDensity = v["min_density"]
    out.MaxDensity = v["max_density"]
    out.Trim = "YES" if v["trim"] else "NO"
    if v.get("configuration"):
        out.ConfigurationInformation = v["configuration"]
    if v.get("annotation_format"):
        out.AnnotationDisplayFormatID = v["annotation_format"]
    out.Illumination = int(v["illumination"])
    out.ReflectedAmbientLight = int(v["ambient"])
    out.RequestedResolutionID = v["resolution"]
    out.ReferencedFilmSessionSequence = [reference(S.FILM_SESSION, v["film_session_uid"])]
    if "ReferencedPresentationLUTSequence" in request:
        out.ReferencedPresentationLUTSequence = request.ReferencedPresentationLUTSequence
    out.ReferencedImageBoxSequence = [reference(b.sop_class, b.uid) for b in film.image_boxes]
    if film.annotations:
        out.ReferencedBasicAnnotationBoxSequence = [reference(S.ANNOTATION_BOX, a.uid) for a in film.annotations]
    return out


def print_job_reference(uid: str) -> Dataset:
    """An N-ACTION Print's answer (PS3.4 H.4.1.1.4.1.2, H.4.1.2.4.1.2): Referenced Print Job
    Sequence (2100,0500) naming the Print Job SOP instance `uid`."""
    reply = Dataset()
    reply.ReferencedPrintJobSequencePullStoredPrint = [reference(S.PRINT_JOB, uid)]
    return reply


def print_job_event_information(info: str, printer_name: str) -> Dataset:
    """Event Information of a Print Job N-EVENT-REPORT (PS3.4 H.4.2.1.4.1): Execution Status Info
    (`info`, a defined term such as "NORMAL") and Printer Name."""
    ds = Dataset()
    ds.ExecutionStatusInfo = info
    ds.PrinterName = printer_name
    return ds


def printer_event_information(status: str, info: str, printer_name: str) -> Dataset | None:
    """Event Information of a Printer N-EVENT-REPORT (PS3.4 H.4.2.2.4.1): none for NORMAL, else
    Printer Status Info (`info`) and Printer Name."""
    if status == "NORMAL":
        return None
    ds = Dataset()
    ds.PrinterStatusInfo = info
    ds.PrinterName = printer_name
    return ds


def reference(sop_class: str, uid: str) -> Dataset:
    """One Referenced SOP Class UID / Referenced SOP Instance UID item."""
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = uid
    return item
