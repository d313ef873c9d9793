"""`[print]`: the Print SCP's switch, its attached printer, and the printer profile every attribute a
client sends is checked against.

Defaults follow the seed conformance statement (../shared/SEED-CONFORMANCE.md, "Print SCU"): the display
formats, film sizes, medium types and destinations a modality of that kind sends all pass.

The schema lives here, at the bottom, and gateway/print/ imports it (gateway/print/profile.py
re-exports it under its old name): the config must load without the print domain, and a section
owned by its feature made the config import upward. Only image/ (film sizes, display formats, the
characteristic curve) is imported, and it is a floor below.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from gateway.config.base import (AETitle, DeviceKind, FloatRange, IntRange, Section, backoff_problems,
                                 check_device_kind)
from image.film_layout import FILM_SIZES_MM, parse_display_format


def _display_format(value: str) -> str:
    try:
        parse_display_format(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return value


def _film_size(value: str) -> str:
    if value not in FILM_SIZES_MM:
        raise ValueError(f"film size {value!r} is not one of {', '.join(FILM_SIZES_MM)}")
    return value


def _name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", value):
        raise ValueError(f"printer name {value!r}: 1-32 letters, digits, '-' or '_'")
    return value


DisplayFormat = Annotated[str, AfterValidator(_display_format)]
FilmSize = Annotated[str, AfterValidator(_film_size)]
_PrinterKind = DeviceKind("printer")

SEED_FORMATS = ["1,1", "1,2", "1,3", "2,1", "2,2", "2,3", "2,4", "3,1", "3,2", "3,3", "3,4", "3,5",
                "4,2", "4,3", "4,4", "4,5", "4,6", "5,3", "5,4", "5,5", "5,6", "6,4", "6,5"]
DEFAULT_FORMATS = [f"STANDARD\\{f}" for f in SEED_FORMATS] + [
    "ROW\\1,2", "ROW\\2,1", "ROW\\1,2,1", "ROW\\2,3", "ROW\\3,2", "COL\\1,2", "COL\\2,1",
    "COL\\1,2,1", "COL\\2,3", "COL\\3,2"]


class PrinterDevice(Section):
    """The printer attached to the box and how to reach it.

    `kind` is any printer kind in the device registry (drivers/registry.py): serial, usb and file
    from drivers/; serial-sim and usb-sim from hw-sim's entry points, which run the simulated device
    in the gateway's own process (what `make run` uses) under the real driver code."""
    kind: _PrinterKind = "serial-sim"
    language: Literal["raster", "postscript"] = "raster"
    # serial: a device path or pyserial URL (socket://127.0.0.1:PORT, rfc2217://...)
    url: str = ""
    baudrate: IntRange(300, 4_000_000) = 115200
    flow_control: Literal["none", "rtscts", "xonxoff"] = "none"
    # usb: vendor / product id (0 = the first printer-class device)
    vendor_id: IntRange(0, 0xFFFF) = 0
    product_id: IntRange(0, 0xFFFF) = 0
    # file: the folder each job is written to
    folder: str = ""
    dpi: FloatRange(ge=25, le=1200) = 150.0
    color: bool = False
    # seconds to wait for the device's verdict on one film (DRF/1 answers when the film is out)
    print_timeout_s: FloatRange(gt=0, le=3600) = 300.0
    # the simulators: where their PNGs go (relative to the config file), films in the supply
    sim_out: str = ""
    sim_films: IntRange(0, 100000) = 100
    # the simulators' control folder (`hw-sim printer jam`, relative to the config file)
    sim_dir: str = "hw-sim/printer"

    @model_validator(mode="after")
    def _where(self) -> "PrinterDevice":
        if self.kind == "serial" and not self.url:
            raise ValueError("printer.url is required for a serial printer")
        if self.kind == "file" and not self.folder:
            raise ValueError("printer.folder is required for a file printer")
        if self.kind in ("usb", "usb-sim") and self.language == "raster":
            raise ValueError("USB printers here speak postscript (set printer.language)")
        return self


class PrintSection(Section):
    enabled: bool = False
    # The print AE title; empty: the gateway's own title (ae.title) answers print requests.
    ae_title: AETitle | None = None
    # The printer's name in the job queue (`dicom-gateway queue list` TARGET) and in Printer Name.
    name: Annotated[str, AfterValidator(_name)] = "film"
    printer: PrinterDevice = PrinterDevice()

    # -- the profile: what the attached printer supports --------------------------------------
    display_formats: Annotated[list[DisplayFormat], Field(min_length=1)] = DEFAULT_FORMATS
    film_sizes: Annotated[list[FilmSize], Field(min_length=1)] = [
        "8INX10IN", "10INX12IN", "11INX14IN", "14INX14IN", "14INX17IN", "A4"]
    orientations: Annotated[list[Literal["PORTRAIT", "LANDSCAPE"]], Field(min_length=1)] = [
        "PORTRAIT", "LANDSCAPE"]
    medium_types: Annotated[list[str], Field(min_length=1)] = ["PAPER", "CLEAR FILM", "BLUE FILM"]
    destinations: Annotated[list[str], Field(min_length=1)] = ["MAGAZINE", "PROCESSOR", "BIN_1", "BIN_2"]
    magnification_types: Annotated[list[Literal["REPLICATE", "BILINEAR", "CUBIC", "NONE"]],
                                   Field(min_length=1)] = ["REPLICATE", "BILINEAR", "CUBIC", "NONE"]
    # Smoothing Type is SCP-specific; it is checked and reported, CUBIC magnification needs none.
    smoothing_types: list[str] = ["NONE", "SMOOTH", "MEDIUM", "SHARP"]
    # Configuration Information values accepted (SCP-specific); empty: none accepted.
    configuration_information: list[str] = []
    annotation_display_formats: list[str] = ["LABEL", "1", "2"]
    # the printer's density range, hundredths of OD (Min/Max Density outside it: B605, clamped)
    min_density: IntRange(0, 400) = 20
    max_density: IntRange(1, 500) = 300
    trim: bool = True
    requested_image_size: bool = True
    # Image larger than its box (Requested Image Size, or NONE magnification):
    # "fit" demagnifies / crops with a warning (B604 / B609 / B60A), "fail" refuses it (C603).
    oversize_image: Literal["fit", "fail"] = "fit"
    max_copies: IntRange(1, 999) = 99
    # defaults for what the client does not send
    default_film_size: FilmSize = "8INX10IN"
    default_medium_type: str = "BLUE FILM"
    default_destination: str = "MAGAZINE"
    default_magnification: Literal["REPLICATE", "BILINEAR", "CUBIC", "NONE"] = "CUBIC"
    illumination: FloatRange(gt=0, le=10000) = 2000.0
    reflected_ambient_light: FloatRange(ge=0, le=1000) = 10.0
    # Characteristic curve: [drive level, OD in hundredths] pairs measured from `dicom-gateway
    # print-test`; empty: a linear 8-bit curve from max_density (drive 0) to min_density (255).
    calibration: list[Annotated[list[int], Field(min_length=2, max_length=2)]] = []
    calibration_date: str = ""
    # Annotation Box text and, when listed, these attributes of each image (e.g. "PatientName"),
    # printed in the film's margin / the image box's top left in this height.
    annotate_image_attributes: list[str] = []
    annotation_height_mm: FloatRange(gt=1, le=20) = 4.0
    # identity reported by the Printer SOP instance
    manufacturer: str = "dicom-gateway"
    model_name: str = "edge film printer"
    serial_number: str = "0001"
    software_version: str = "0.1"

    # -- the spool -------------------------------------------------------------------------------
    max_queued_films: IntRange(1, 100000) = 500
    retry_initial_s: FloatRange(gt=0, le=3600) = 2.0
    retry_max_s: FloatRange(gt=0, le=24 * 3600) = 60.0
    poll_interval_s: FloatRange(gt=0, le=600) = 2.0
    # A film whose sending was interrupted by a crash (sent, no verdict received): when the printer
    # cannot say whether it came out, "hold" dead-letters it for an operator (`queue retry ID`
    # prints it again) -- never two films; "reprint" prints it again -- never zero films.
    on_interrupted: Literal["hold", "reprint"] = "hold"

    @field_validator("calibration")
    @classmethod
    def _curve(cls, pairs: list[list[int]]) -> list[list[int]]:
        if pairs:
            from image.density import CharacteristicCurve
            try:
                CharacteristicCurve([(d, od / 100.0) for d, od in pairs])
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        return pairs

    @model_validator(mode="after")
    def _consistent(self) -> "PrintSection":
        problems = []
        if self.min_density >= self.max_density:
            problems.append("min_density must be below max_density")
        if self.default_film_size not in self.film_sizes:
            problems.append(f"default_film_size {self.default_film_size!r} is not in film_sizes")
        if self.default_medium_type not in self.medium_types:
            problems.append(f"default_medium_type {self.default_medium_type!r} is not in medium_types")
        if self.default_destination not in self.destinations:
            problems.append(f"default_destination {self.default_destination!r} is not in destinations")
        if self.default_magnification not in self.magnification_types:
            problems.append("default_magnification is not in magnification_types")
        problems += backoff_problems(self.retry_initial_s, self.retry_max_s)
        # A kind the config names was checked with its key; the default is not (pydantic leaves
        # defaults alone), and without its entry points installed it would only fail at start-up.
        if self.enabled and "kind" not in self.printer.model_fields_set:
            try:
                check_device_kind("printer", self.printer.kind)
            except ValueError as exc:
                problems.append(f"printer.kind: the default {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def curve(self):
        """The characteristic curve the profile describes (measured, or linear over the density
        range). Kept on the section for its two callers (spooler, calibrate); it is arithmetic over
        the section's own values through image/, a floor below."""
        from image.density import CharacteristicCurve
        if self.calibration:
            return CharacteristicCurve([(d, od / 100.0) for d, od in self.calibration])
        return CharacteristicCurve.linear(255, self.min_density / 100.0, self.max_density / 100.0)
