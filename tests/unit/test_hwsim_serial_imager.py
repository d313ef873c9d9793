"""The real serial transport and DRF/1 driver against the simulated film imager (pty and TCP)."""

import io

import numpy as np
import pytest
from PIL import Image

from drivers.printer.interface import Printer, PrinterError, PrinterNotReady, PrintJob
from drivers.printer.raster import RasterLanguage
from drivers.printer.status_map import dicom_printer_status
from drivers.printer.transport_serial import SerialTransport
from hwsim.serial_imager import SerialFilmImager, _command


@pytest.fixture(params=["pty", "tcp"])
def imager(request):
    im = SerialFilmImager(films=20, low_mark=2, receiver_capacity=5)
    im.url = im.start_pty() if request.param == "pty" else im.start_tcp()
    yield im
    im.stop()


def _printer(im, flow_control="none", escaped=False, write_timeout=30.0, **kw):
    transport = SerialTransport(im.url, flow_control=flow_control, write_timeout=write_timeout)
    return Printer(transport, RasterLanguage(escaped=escaped, status_timeout=5,
                                             print_timeout=10, **kw))


def _film(seed=0, shape=(120, 90), dtype=np.uint8):
    film = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    film.flat[:3] = [0x11, 0x13, 0x7D]
    return film


@pytest.mark.parametrize("flow_control,escaped", [("none", False), ("rtscts", False),
                                                  ("xonxoff", True)])
def test_prints_the_film_it_was_sent(imager, flow_control, escaped):
    imager.xonxoff = flow_control == "xonxoff"
    p = _printer(imager, flow_control, escaped)
    film = _film()
    try:
        assert p.print_film(PrintJob(film, 50, copies=2)).ready
    finally:
        p.close()
    printed = imager.printed[0]
    assert printed.copies == 2 and imager.films == 18 and imager.receiver == 2
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(printed.png()))), film)


def test_16_bit_and_colour_films(imager):
    p = _printer(imager)
    gray16 = _film(1, dtype=np.uint16)
    rgb = _film(2, shape=(40, 30, 3))
    p.print_film(PrintJob(gray16, 50))
    p.print_film(PrintJob(rgb, 50))
    p.close()
    assert np.array_equal(np.asarray(imager.printed[0].image()), gray16)
    assert np.array_equal(np.asarray(imager.printed[1].image()), rgb)


def test_status_faults_map_to_dicom_terms(imager):
    p = _printer(imager)
    assert dicom_printer_status(p.status()) == ("NORMAL", "NORMAL")
    cases = [("jam", "FILM JAM"), ("cover-open", "COVER OPEN"), ("offline", "PRINTER OFFLINE")]
    for command, info in cases:
        _command(imager, command)
        assert dicom_printer_status(p.status()) == ("FAILURE", info)
        with pytest.raises(PrinterNotReady):
            p.print_film(PrintJob(_film(), 50))
        _command(imager, {"jam": "clear", "cover-open": "cover-close",
                          "offline": "online"}[command])
    imager.films = 2
    assert dicom_printer_status(p.status()) == ("WARNING", "SUPPLY LOW")
    imager.films = 0
    assert dicom_printer_status(p.status()) == ("FAILURE", "SUPPLY EMPTY")
    imager.films, imager.receiver = 20, 5
    assert dicom_printer_status(p.status()) == ("FAILURE", "RECEIVER FULL")
    p.close()
    assert imager.printed == []


def test_jam_during_print_is_reported_by_the_job_reply(imager):
    p = _printer(imager)
    imager.jam_next = True
    with pytest.raises(PrinterNotReady) as info:
        p.print_film(PrintJob(_film(), 50))
    assert info.value.status.film_jam and imager.printed == []
    _command(imager, "clear")
    p.print_film(PrintJob(_film(), 50))  # recovers once the operator clears the jam
    p.close()
    assert len(imager.printed) == 1


def test_runs_out_of_film_mid_session(imager):
    imager.films = 3
    p = _printer(imager)
    p.print_film(PrintJob(_film(), 50, copies=3))
    with pytest.raises(PrinterNotReady) as info:
        p.print_film(PrintJob(_film(), 50))
    p.close()
    assert info.value.status.supply_empty


def test_mute_imager_is_a_timeout_not_a_hang(imager):
    imager.mute = True
    p = _printer(imager)
    p.language.status_timeout = 0.3
    with pytest.raises(PrinterError, match="did not answer"):
        p.status()
    p.close()


def test_slow_imager_makes_writes_fail_past_the_write_timeout():
    # Over a pty the kernel buffer fills while the imager reads slowly; the blocked write must
    # end with PrinterError (not hang the spooler).
    im = SerialFilmImager()
    url = im.start_pty()
    im.slow_bps = 1000
    transport = SerialTransport(url, write_timeout=0.5)
    try:
        with pytest.raises(PrinterError, match="stopped accepting"):
            transport.write(bytes(4 * 1024 * 1024))
    finally:
        transport.close()
        im.stop()


def test_unescaped_data_over_xonxoff_is_never_misprinted():
    # Why the ESCAPED flag exists: XON/XOFF eats 0x11/0x13 from raw data, so the imager waits for
    # bytes that never come (or its CRC check fails): the job fails, no wrong film comes out.
    im = SerialFilmImager()
    im.xonxoff = True
    url = im.start_pty()
    p = Printer(SerialTransport(url, flow_control="xonxoff"),
                RasterLanguage(escaped=False, print_timeout=1))
    try:
        with pytest.raises(PrinterError):
            p.print_film(PrintJob(_film(), 50))
    finally:
        p.close()
        im.stop()
    assert im.printed == []


def test_out_of_film_part_way_prints_what_it_can_and_says_how_many():
    """Two copies on one film: one sheet, then SUPPLY EMPTY and "partly printed, 1"; after
    loading, the owed copy alone -- two sheets in all."""
    from drivers.printer.interface import PartlyPrinted

    im = SerialFilmImager(films=1)
    im.url = im.start_tcp()
    p = _printer(im)
    try:
        with pytest.raises(PartlyPrinted) as info:
            p.print_film(PrintJob(_film(), 50, copies=2))
        assert info.value.copies_printed == 1
        assert dicom_printer_status(info.value.status) == ("FAILURE", "SUPPLY EMPTY")
        assert dicom_printer_status(p.status()) == ("FAILURE", "SUPPLY EMPTY")
        assert im.sheets == 1
        im.load(10)
        p.print_film(PrintJob(_film(), 50, copies=2 - info.value.copies_printed))
    finally:
        p.close()
        im.stop()
    assert im.sheets == 2 and [f.copies for f in im.printed] == [1, 1]


def test_films_are_never_overwritten_across_restarts(tmp_path):
    out = tmp_path / "films"
    written = []
    for seed in (1, 2):  # a restarted imager (a new process would start the same way)
        im = SerialFilmImager(out_dir=out)
        im.url = im.start_tcp()
        p = _printer(im)
        try:
            film = _film(seed)
            p.print_film(PrintJob(film, 50, copies=2 if seed == 2 else 1))
            written += [film] * (2 if seed == 2 else 1)
        finally:
            p.close()
            im.stop()
    pngs = sorted(out.glob("film-*.png"))
    assert [p.name for p in pngs] == ["film-000001.png", "film-000002.png", "film-000003.png"]
    for png, film in zip(pngs, written):
        assert np.array_equal(np.asarray(Image.open(png)), film)
