"""Print SCP acceptance matrix: display formats, film sizes, an explicit Presentation LUT, the
usb-sim printer, Printer Configuration Retrieval, Print Job N-EVENT-REPORT order and
`dicom-gateway print-test`.

Every printed film is checked pixel by pixel against image.compose.compose_film of what the client
sent (test_print.expected_film / assert_film: tolerance 1 drive level), as in test_print.py.
Clients: DCMTK dcmpsprt + dcmprscu where they can express the case, pynetdicom where they cannot
(ROW\\ / COL\\ formats, Printer Configuration Retrieval, Print Job events).
"""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pydicom
import pytest
from PIL import Image
from pynetdicom import AE

from dicom_bytes import jobs
from gateway.print.profile import PrintSection
from image.compose import FilmSpec, ImageBox, compose_film
from peers import require, wait_until
from test_print import (CT, CURVE, DPI, MR, DcmtkPrintClient, assert_film, errors, expected_film,  # noqa: F401
                        film_png, imager, print_config)
from test_print_pynetdicom import GRAY_BOX, PRINT_JOB, Client, gradient

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

PRINTER_CONFIGURATION = "1.2.840.10008.5.1.1.16.376"
PRINTER_CONFIGURATION_INSTANCE = "1.2.840.10008.5.1.1.17.376"


@pytest.fixture
def print_gateway(gateway_factory, imager):  # noqa: F811
    def make(name="gw", **extra):
        return gateway_factory(print_config(imager.url, **extra), name=name)
    return make


def _job_done(gw, count=1):
    wait_until(lambda: [state for _, _, state, _, _ in jobs(gw.buffer)] == ["done"] * count, 60,
               what=f"{count} print job(s) done")


# -- 1. STANDARD\C,R layouts through DCMTK ------------------------------------------------------------

LAYOUTS = {  # columns, rows, images sent (full, or partly filled for the large ones)
    "1x1": (1, 1, 1), "1x2": (1, 2, 2), "2x2": (2, 2, 4), "2x3": (2, 3, 6), "3x3": (3, 3, 9),
    "3x4": (3, 4, 10), "4x4": (4, 4, 16), "4x5": (4, 5, 17),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_dcmtk_layouts(layout, print_gateway, imager, tmp_path):
    cols, rows, n = LAYOUTS[layout]
    gw = print_gateway()
    client = DcmtkPrintClient(tmp_path / "scu", gw.port)
    files = [(CT, MR)[i % 2] for i in range(n)]
    sp, out = client.print(files, ["--layout", str(cols), str(rows), "--filmsize", "14INX17IN"])
    assert not errors(out), out
    wait_until(lambda: len(imager.printed) == 1, 60, what="one film printed")
    sent = client.sent_images(sp)
    assert sorted(pos for pos, _, _ in sent) == list(range(1, n + 1))
    expected = expected_film(sent, film_size="14INX17IN", fmt=f"STANDARD\\{cols},{rows}")
    assert_film(film_png(imager, 0), expected)
    _job_done(gw)
    assert len(imager.printed) == 1


# -- 2. ROW\ and COL\ formats through pynetdicom --------------------------------------------------------

def _boxes(fmt: str) -> int:
    return sum(int(x) for x in fmt.split("\\")[1].split(","))


@pytest.mark.parametrize("fmt", ["ROW\\2,1", "ROW\\1,2,1", "COL\\1,3", "COL\\2,3"])
def test_row_and_col_display_formats(fmt, print_gateway, imager):
    # COL\1,3 is not in the default profile: the profile lists it here.
    gw = print_gateway(display_formats=["STANDARD\\1,1", "ROW\\2,1", "ROW\\1,2,1", "COL\\1,3", "COL\\2,3"])
    n = _boxes(fmt)
    images = [(i + 1, (gradient(40 + 8 * i, 56 + 4 * i) if i % 2 == 0
                       else gradient(40 + 8 * i, 56 + 4 * i)[::-1].copy()), 12) for i in range(n)]
    c = Client(gw.port)
    try:
        st, rsp = c.film(fmt=fmt)
        assert st.Status == 0, hex(st.Status)
        film_box = st.AffectedSOPInstanceUID
        assert rsp.ImageDisplayFormat == fmt
        refs = rsp.ReferencedImageBoxSequence
        assert len(refs) == n
        for ref, (pos, px, bits) in zip(refs, images):
            assert ref.ReferencedSOPClassUID == GRAY_BOX
            st = c.set_gray(ref.ReferencedSOPInstanceUID, px, bits, ImageBoxPosition=pos)
            assert st.Status == 0, (pos, hex(st.Status))
        st, _ = c.print_film_box(film_box)
        assert st.Status == 0, hex(st.Status)
    finally:
        c.close()
    wait_until(lambda: len(imager.printed) == 1, 30, what="one film printed")
    assert_film(film_png(imager, 0), expected_film(images, fmt=fmt))
    _job_done(gw)


# -- 3. every film size of the default profile through DCMTK ------------------------------------------

def test_dcmtk_every_profile_film_size(print_gateway, imager, tmp_path):
    sizes = PrintSection().film_sizes  # the default profile's
    gw = print_gateway()
    client = DcmtkPrintClient(tmp_path / "scu", gw.port, film_sizes="\\".join(sizes))
    for i, size in enumerate(sizes):
        sp, out = client.print([CT, MR], ["--layout", "2", "1", "--filmsize", size])
        assert not errors(out), (size, out)
        wait_until(lambda: len(imager.printed) == i + 1, 60, what=f"film {size} printed")
        expected = expected_film(client.sent_images(sp), film_size=size, fmt="STANDARD\\2,1")
        try:
            assert_film(film_png(imager, i), expected)
        except AssertionError as exc:
            raise AssertionError(f"film size {size}: {exc}") from None
    _job_done(gw, len(sizes))


# -- 4. an explicit Presentation LUT from DCMTK (LUT data as OW) ---------------------------------------

def test_dcmtk_explicit_presentation_lut(print_gateway, imager, tmp_path):
    dcmmklut = require("dcmmklut", "dcmtk")
    lut_dir = tmp_path / "lut"
    lut_dir.mkdir()
    # A gamma 2.2 Presentation LUT for 12-bit images: 4096 entries of 12-bit P-values.
    made = subprocess.run([dcmmklut, "+Tp", "+Cg", "2.2", "-b", "12", "-e", "4096",
                           str(lut_dir / "gamma.lut")], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    gw = print_gateway()
    client = DcmtkPrintClient(tmp_path / "scu", gw.port,
                              general_cfg=f"[LUT]\nDirectory = {lut_dir}",
                              extra_cfg="[[LUT]]\n[GAMMA]\ndescription = gamma 2.2\nfilename = gamma.lut")
    sp, out = client.print([MR], ["--plut", "GAMMA"])
    assert not errors(out), out
    assert not re.search(r"^W:.*(LUT|lut)", out, re.M), out  # not rendered in the client instead
    wait_until(lambda: len(imager.printed) == 1, 30, what="one film printed")

    item = pydicom.dcmread(lut_dir / "gamma.lut").PresentationLUTSequence[0]
    entries, _, lut_bits = (int(x) for x in item.LUTDescriptor)
    lut = np.frombuffer(item.LUTData if isinstance(item.LUTData, bytes) else
                        np.asarray(item.LUTData, "<u2").tobytes(), "<u2")
    assert entries == 4096 and lut_bits == 12
    # What the SCP received and spooled is that LUT (sent as data, not as a shape) ...
    spooled = list((gw.buffer / "print" / "spool").glob("*/film-1/plut-film.npy"))
    assert spooled, "no explicit Presentation LUT in the spooled film"
    np.testing.assert_array_equal(np.load(spooled[0]), lut)
    # ... and the film is compose_film with that LUT applied.
    (pos, px, bits), = client.sent_images(sp)
    assert bits == 12
    fs = FilmSpec(film_size="8INX10IN", dpi=DPI, magnification="CUBIC", min_density=0.2,
                  max_density=3.0, presentation_lut=lut, presentation_lut_bits=lut_bits)
    expected = compose_film(fs, [ImageBox(pos, px, bits_stored=bits)], CURVE)
    film = film_png(imager, 0)
    assert_film(film, expected)
    # and the LUT made a difference (gamma 2.2 is far from identity)
    plain = expected_film([(pos, px, bits)])
    assert np.abs(plain.astype(int) - expected).max() > 20
    _job_done(gw)


# -- 5. the usb-sim printer end to end ------------------------------------------------------------------

def test_usb_sim_printer_end_to_end(gateway_factory, tmp_path):
    require("gs", "ghostscript")
    out_dir = tmp_path / "usb-films"
    gw = gateway_factory(print_config("", printer={"kind": "usb-sim", "language": "postscript",
                                                   "url": "", "sim_out": str(out_dir)}))
    client = DcmtkPrintClient(tmp_path / "scu", gw.port)
    sp, out = client.print([CT, MR], ["--layout", "2", "1"])
    assert not errors(out), out
    _job_done(gw)
    pngs = sorted(out_dir.glob("film-*.png"))
    assert len(pngs) == 1, pngs
    expected = expected_film(client.sent_images(sp), fmt="STANDARD\\2,1")
    assert_film(np.asarray(Image.open(pngs[0]).convert("L")), expected)


# -- 6. Printer Configuration Retrieval N-GET -------------------------------------------------------------

def test_printer_configuration_retrieval_n_get(print_gateway):
    gw = print_gateway(manufacturer="ACME Imaging", model_name="DryView 42", serial_number="SN-77",
                       software_version="9.8", min_density=15, max_density=320,
                       printer={"dpi": 50.8})
    ae = AE(ae_title="PRINTSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    ae.add_requested_context(PRINTER_CONFIGURATION)
    assoc = ae.associate("127.0.0.1", gw.port, ae_title="EDGE")
    assert assoc.is_established
    try:
        st, ds = assoc.send_n_get([], PRINTER_CONFIGURATION, PRINTER_CONFIGURATION_INSTANCE)
        assert st.Status == 0, hex(st.Status)
        item, = ds.PrinterConfigurationSequence
        assert item.Manufacturer == "ACME Imaging"
        assert item.ManufacturerModelName == "DryView 42"
        assert item.DeviceSerialNumber == "SN-77"
        assert item.SoftwareVersions == "9.8"
        assert (item.MinDensity, item.MaxDensity) == (15, 320)
        assert [float(x) for x in item.PrinterPixelSpacing] == pytest.approx([0.5, 0.5])
        assert "PrinterResolutionID" in item
        # an Attribute Identifier List selects the sequence
        st, ds = assoc.send_n_get([0x2000001E], PRINTER_CONFIGURATION, PRINTER_CONFIGURATION_INSTANCE)
        assert st.Status == 0 and "PrinterConfigurationSequence" in ds
        # a wrong instance UID
        st, _ = assoc.send_n_get([], PRINTER_CONFIGURATION, "1.2.3.4")
        assert st.Status == 0x0112, hex(st.Status)
    finally:
        assoc.release()


# -- 7. Print Job N-EVENT-REPORTs PENDING -> PRINTING -> DONE -----------------------------------------------

class JobClient(Client):
    def _report(self, event):
        req = event.request
        self.reports.append((str(req.AffectedSOPClassUID), int(req.EventTypeID),
                             str(req.AffectedSOPInstanceUID)))
        return 0x0000, None


def test_print_job_events_pending_printing_done(print_gateway, imager):
    imager.print_seconds = 2.0  # PRINTING lasts long enough to be seen
    gw = print_gateway()
    c = JobClient(gw.port)
    try:
        px = gradient()
        st, rsp = c.film()
        assert st.Status == 0
        fb = st.AffectedSOPInstanceUID
        assert c.set_gray(rsp.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID, px).Status == 0
        st, reply = c.print_film_box(fb)
        assert st.Status == 0
        job_uid = reply[0x21000500].value[0].ReferencedSOPInstanceUID
        wait_until(lambda: any(r[0] == PRINT_JOB and r[1] == 3 for r in c.reports), 30,
                   what="Print Job N-EVENT-REPORT DONE")
        # the association is still open: a report sent after DONE would have arrived by now
        assert c.assoc.send_n_get([], PRINT_JOB, job_uid)[1].ExecutionStatus == "DONE"
    finally:
        c.close()
    job_reports = [(t, uid) for cls, t, uid in c.reports if cls == PRINT_JOB]
    assert job_reports == [(1, job_uid), (2, job_uid), (3, job_uid)], job_reports
    assert len(imager.printed) == 1


# -- 8. dicom-gateway print-test with the serial-sim imager -------------------------------------------------

@pytest.mark.parametrize("wedge", ["drive", "gsdf"])
def test_print_test_step_wedge_on_serial_sim(wedge, gateway_factory, tmp_path):
    from gateway.config import load
    from gateway.print.calibrate import step_wedge_film
    from image.gsdf import od_from_p_values
    from image.step_wedge import wedge_levels

    films = tmp_path / "films"
    steps = 11
    gw = gateway_factory({"print": {"enabled": True, "printer": {"kind": "serial-sim", "dpi": DPI,
                                                                 "sim_out": str(films)}}},
                         start=False)
    done = gw.cli("print-test", "--steps", str(steps), "--wedge", wedge)
    assert done.returncode == 0, done.stdout + done.stderr
    pngs = sorted(films.glob("film-*.png"))
    assert len(pngs) == 1, (pngs, done.stdout)
    png = np.asarray(Image.open(pngs[0]))

    profile = load(gw.config_path).config.print
    curve = profile.curve()
    expected, table = step_wedge_film(profile, steps, wedge)
    assert png.shape == expected.shape
    assert np.abs(png.astype(int) - expected.astype(int)).max() <= 1
    # The steps, read off the middle row of the film, left to right.
    row = png[png.shape[0] // 2]
    changes = np.flatnonzero(np.diff(row.astype(int)) != 0) + 1
    segments = np.split(row, changes)
    if wedge == "drive":
        levels = [int(s[0]) for s in segments]
        assert levels == [int(v) for v in wedge_levels(steps, 255)]
    else:
        # white border, then the wedge: keep the steps as wide as the wedge's bars
        bar = png.shape[1] // steps // 2
        levels = [int(s[0]) for s in segments if len(s) >= bar]
        assert len(levels) == steps, levels
        # the density chain: P-value -> GSDF OD -> drive level, and the printed table
        p = wedge_levels(steps, 4095)
        ods = od_from_p_values(p, 4095, 0.20, 3.00, profile.illumination, profile.reflected_ambient_light)
        assert levels == [int(v) for v in curve.drive_levels_for(ods)]
        assert np.all(np.abs(curve.od_at(np.array(levels)) - ods) <= 2.8 / 255 / 2 + 1e-6)
        printed = [float(x) for x in re.findall(r"expected OD (\d+\.\d+)", done.stdout)]
        assert printed == pytest.approx([od for _, od in table], abs=5e-4)
        assert printed == pytest.approx(list(ods), abs=5e-4)
        assert all(a > b for a, b in zip(printed, printed[1:]))  # density falls with P-value
    assert all(a < b for a, b in zip(levels, levels[1:])), levels  # monotone, every step distinct
