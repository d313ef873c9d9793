"""The real USB transport and PostScript driver against the simulated USB printer (a pyusb backend)."""

import io

import numpy as np
import pytest
from PIL import Image

from drivers.printer.interface import Printer, PrinterError, PrinterNotReady, PrintJob
from drivers.printer.postscript import PostScriptLanguage
from drivers.printer.raster import RasterLanguage
from drivers.printer.status_map import dicom_printer_status
from drivers.printer.transport_usb import UsbTransport, parse_device_id
from hwsim.usb_printer import PRODUCT_ID, VENDOR_ID, SimulatedUsbPrinter
from peers import require


def _need_gs():
    require("gs", "ghostscript")


@pytest.fixture
def sim():
    return SimulatedUsbPrinter(dpi=40)


def _printer(sim, **kw):
    return Printer(UsbTransport(backend=sim, timeout_ms=200, **kw), PostScriptLanguage())


def test_finds_printer_class_device_and_reads_device_id(sim):
    t = UsbTransport(vendor_id=VENDOR_ID, product_id=PRODUCT_ID, backend=sim)
    ids = parse_device_id(t.device_id())
    assert ids["CLS"] == "PRINTER" and "POSTSCRIPT" in ids["CMD"] and ids["MFG"] == "hwsim"
    assert t.ep_in is None  # unidirectional printer


def test_wrong_ids_find_nothing(sim):
    with pytest.raises(PrinterError, match="class 7"):
        UsbTransport(vendor_id=0xDEAD, backend=sim)


def test_port_status_faults_map_to_dicom_terms(sim):
    p = _printer(sim)
    assert dicom_printer_status(p.status()) == ("NORMAL", "NORMAL")
    sim.paper_empty = True
    assert dicom_printer_status(p.status()) == ("FAILURE", "SUPPLY EMPTY")
    sim.paper_empty, sim.offline = False, True
    assert dicom_printer_status(p.status()) == ("FAILURE", "PRINTER OFFLINE")
    sim.offline, sim.jammed = False, True
    assert dicom_printer_status(p.status()) == ("FAILURE", "CHECK PRINTER")


def test_printed_film_matches_composed_film(sim):
    _need_gs()
    rng = np.random.default_rng(5)
    film = rng.integers(0, 256, (400, 320), dtype=np.uint8)
    _printer(sim).print_film(PrintJob(film, 40))
    assert len(sim.printed) == 1
    page = np.asarray(Image.open(io.BytesIO(sim.printed[0])))
    assert page.shape == film.shape and np.max(np.abs(page.astype(int) - film)) <= 1


def test_raster_over_usb_is_decoded_too(sim):
    film = np.arange(600, dtype=np.uint16).reshape(20, 30)
    t = UsbTransport(backend=sim)
    t.write(RasterLanguage().encode(PrintJob(film, 40)))
    page = np.asarray(Image.open(io.BytesIO(sim.printed[0])))
    assert np.array_equal(page, film)


def test_refuses_to_print_when_out_of_film(sim):
    sim.films = 0
    with pytest.raises(PrinterNotReady) as info:
        _printer(sim).print_film(PrintJob(np.zeros((40, 32), np.uint8), 4))
    assert info.value.status.supply_empty and sim.printed == []


def test_jam_mid_job_is_a_transport_error_with_status(sim):
    sim.jam_next_job = True
    film = np.random.default_rng(6).integers(0, 256, (400, 320), dtype=np.uint8)
    with pytest.raises(PrinterError, match="stopped taking data"):
        _printer(sim).print_film(PrintJob(film, 40))
    assert sim.jammed and sim.printed == []
    assert dicom_printer_status(_printer(sim).status())[0] == "FAILURE"


def test_supply_counts_down(sim):
    _need_gs()
    sim.films = 1
    p = _printer(sim)
    p.print_film(PrintJob(np.zeros((40, 32), np.uint8), 40))
    assert sim.films == 0 and p.status().supply_empty
