"""Print SCP with pynetdicom as the client: colour meta class only, role selection, Printer and
Print Job N-EVENT-REPORTs during printer faults, kill -9 around printing, malformed requests.

The film imager runs in the test process (faults switched here; it outlives a killed gateway).
"""

from __future__ import annotations

import sqlite3
import threading
import time

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, build_role, evt

from image.compose import FilmSpec, ImageBox, compose_film
from image.density import CharacteristicCurve
from peers import wait_until
from test_print import DPI, assert_film, imager, print_config  # noqa: F401 - the imager fixture

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

GRAY_META, COLOR_META = "1.2.840.10008.5.1.1.9", "1.2.840.10008.5.1.1.18"
FILM_SESSION, FILM_BOX = "1.2.840.10008.5.1.1.1", "1.2.840.10008.5.1.1.2"
GRAY_BOX, COLOR_BOX = "1.2.840.10008.5.1.1.4", "1.2.840.10008.5.1.1.4.1"
PRINTER, PRINTER_INSTANCE = "1.2.840.10008.5.1.1.16", "1.2.840.10008.5.1.1.17"
PRINT_JOB = "1.2.840.10008.5.1.1.14"
CURVE = CharacteristicCurve.linear(255, 0.20, 3.00)


class Client:
    """A print SCU on pynetdicom that records the N-EVENT-REPORTs it receives."""

    def __init__(self, port: int, meta: str = GRAY_META, aet: str = "PRINTSCU", roles: bool = False,
                 syntax=ImplicitVRLittleEndian, print_job: bool = True):
        self.meta = meta
        self.syntax = syntax
        self.reports: list[tuple[str, int, Dataset | None]] = []
        ae = AE(ae_title=aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
        ae.add_requested_context(meta, [syntax])
        if print_job:
            ae.add_requested_context(PRINT_JOB, [syntax])
        ext = [build_role(meta, scu_role=True, scp_role=True)] if roles else []
        self.assoc = ae.associate("127.0.0.1", port, ae_title="EDGE", ext_neg=ext,
                                  evt_handlers=[(evt.EVT_N_EVENT_REPORT, self._report)])
        assert self.assoc.is_established, "association refused"

    def _report(self, event):
        req = event.request
        info = event.event_information if req.EventInformation is not None else None
        self.reports.append((str(req.AffectedSOPClassUID), int(req.EventTypeID), info))
        return 0x0000, None

    def create(self, cls, ds):
        """pynetdicom (as SCU) does not hand back the response's Affected SOP Instance UID, so this
        client proposes the UID itself (PS3.7 10.1.5: either side may) and puts it on the status."""
        uid = generate_uid()
        status, attrs = self.assoc.send_n_create(ds, cls, uid, meta_uid=self.meta)
        if "Status" in status:
            status.AffectedSOPInstanceUID = uid
        return status, attrs

    def film(self, fmt="STANDARD\\1,1", size="8INX10IN", **attrs):
        s = Dataset()
        s.NumberOfCopies = 1
        st, _ = self.create(FILM_SESSION, s)
        assert st.Status == 0, hex(st.Status)
        self.session_uid = st.AffectedSOPInstanceUID
        fb = Dataset()
        fb.ImageDisplayFormat = fmt
        fb.FilmSizeID = size
        for k, v in attrs.items():
            setattr(fb, k, v)
        ref = Dataset()
        ref.ReferencedSOPClassUID = FILM_SESSION
        ref.ReferencedSOPInstanceUID = self.session_uid
        fb.ReferencedFilmSessionSequence = [ref]
        st, rsp = self.create(FILM_BOX, fb)
        return st, rsp

    def set_gray(self, box_uid, px: np.ndarray, bits=12, photometric="MONOCHROME2", **extra):
        item = Dataset()
        item.SamplesPerPixel = 1
        item.PhotometricInterpretation = photometric
        item.Rows, item.Columns = px.shape
        item.BitsAllocated = 8 if bits == 8 else 16
        item.BitsStored = bits
        item.HighBit = bits - 1
        item.PixelRepresentation = 0
        # OW pixel data is in the transfer syntax's byte order (pydicom does not swap it).
        order = ">u2" if self.syntax == ExplicitVRBigEndian else "<u2"
        item.PixelData = px.astype(np.uint8 if bits == 8 else order).tobytes()
        ds = Dataset()
        ds.ImageBoxPosition = 1
        ds.BasicGrayscaleImageSequence = [item]
        for k, v in extra.items():
            setattr(ds, k, v)
        st, _ = self.assoc.send_n_set(ds, GRAY_BOX, box_uid, meta_uid=self.meta)
        return st

    def set_color(self, box_uid, rgb: np.ndarray):
        item = Dataset()
        item.SamplesPerPixel = 3
        item.PhotometricInterpretation = "RGB"
        item.PlanarConfiguration = 1
        item.Rows, item.Columns = rgb.shape[:2]
        item.BitsAllocated = item.BitsStored = 8
        item.HighBit = 7
        item.PixelRepresentation = 0
        item.PixelData = np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes()
        ds = Dataset()
        ds.ImageBoxPosition = 1
        ds.BasicColorImageSequence = [item]
        st, _ = self.assoc.send_n_set(ds, COLOR_BOX, box_uid, meta_uid=self.meta)
        return st

    def print_film_box(self, film_box_uid):
        st, reply = self.assoc.send_n_action(None, 1, FILM_BOX, film_box_uid, meta_uid=self.meta)
        return st, reply

    def printer_status(self):
        st, ds = self.assoc.send_n_get([0x21100010, 0x21100020], PRINTER, PRINTER_INSTANCE,
                                       meta_uid=self.meta)
        return st, ds

    def close(self):
        if not self.assoc.is_established:
            return
        # pynetdicom's release() spins until its own reactor pauses. A client reactor that died
        # answering an N-EVENT-REPORT that crossed its release (pynetdicom raises InvalidEventError
        # Evt9/Sta7 in that thread) never pauses, and release() would spin forever: bound it, then
        # abort, and let the spinning thread go.
        t = threading.Thread(target=self.assoc.release, name="client-release", daemon=True)
        t.start()
        t.join(30)
        if t.is_alive():
            self.assoc._is_paused = True  # ends release()'s spin (test client only)
            self.assoc.abort()


def gradient(rows=64, cols=80, bits=12) -> np.ndarray:
    top = (1 << bits) - 1
    return (np.add.outer(np.arange(rows) * cols, np.arange(cols)) * top // (rows * cols - 1)).astype(np.uint16)


@pytest.fixture
def gw(gateway_factory, imager):  # noqa: F811
    def make(**extra):
        return gateway_factory(print_config(imager.url, **extra), name="gw")
    return make


def gray_film(client: Client, px, bits=12):
    st, rsp = client.film()
    assert st.Status == 0, hex(st.Status)
    box = rsp.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
    assert client.set_gray(box, px, bits).Status == 0
    return st.AffectedSOPInstanceUID


def expected_gray(px, bits=12, fmt="STANDARD\\1,1"):
    spec = FilmSpec(film_size="8INX10IN", dpi=DPI, display_format=fmt, magnification="CUBIC",
                    min_density=0.2, max_density=3.0)
    return compose_film(spec, [ImageBox(1, px, bits_stored=bits)], CURVE)


# -- colour, role selection, transfer syntaxes -----------------------------------------------------

@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_colour_meta_only_with_role_selection(gw, imager, syntax):
    g = gw(printer={"color": True})
    c = Client(g.port, meta=COLOR_META, aet="COLORSCU", roles=True, syntax=syntax)
    try:
        st, rsp = c.film()
        assert st.Status == 0
        ref = rsp.ReferencedImageBoxSequence[0]
        assert ref.ReferencedSOPClassUID == COLOR_BOX
        rng = np.random.default_rng(3)
        rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        assert c.set_color(ref.ReferencedSOPInstanceUID, rgb).Status == 0
        st, reply = c.print_film_box(st.AffectedSOPInstanceUID)
        assert st.Status == 0
        job = reply[0x21000500].value[0]
        assert job.ReferencedSOPClassUID == PRINT_JOB
    finally:
        c.close()
    wait_until(lambda: len(imager.printed) == 1, 30, what="colour film")
    film = np.asarray(imager.printed[0].image())
    spec = FilmSpec(film_size="8INX10IN", dpi=DPI, magnification="CUBIC", min_density=0.2,
                    max_density=3.0, colour=True)
    assert_film(film, compose_film(spec, [ImageBox(1, rgb)], CURVE))


def test_grayscale_big_endian_12bit(gw, imager):
    g = gw()
    c = Client(g.port, syntax=ExplicitVRBigEndian)
    try:
        px = gradient()
        fb = gray_film(c, px)
        assert c.print_film_box(fb)[0].Status == 0
    finally:
        c.close()
    wait_until(lambda: len(imager.printed) == 1, 30, what="film")
    assert_film(np.asarray(imager.printed[0].image()), expected_gray(px))


# -- faults: Printer N-EVENT-REPORT, job kept, printed once --------------------------------------

def test_film_jam_during_job_reports_and_prints_once_when_cleared(gw, imager):
    g = gw()
    c = Client(g.port)
    try:
        st, ds = c.printer_status()
        assert ds.PrinterStatus == "NORMAL"
        imager.jam_next = True
        px = gradient()
        fb = gray_film(c, px)
        st, reply = c.print_film_box(fb)
        assert st.Status == 0
        job_uid = reply[0x21000500].value[0].ReferencedSOPInstanceUID
        wait_until(lambda: any(r[0] == PRINTER and r[1] == 3 for r in c.reports), 30,
                   what="Printer N-EVENT-REPORT FAILURE")
        info = next(r[2] for r in c.reports if r[0] == PRINTER and r[1] == 3)
        assert info.PrinterStatusInfo == "FILM JAM"
        assert c.printer_status()[1].PrinterStatusInfo == "FILM JAM"
        st, job = c.assoc.send_n_get([], PRINT_JOB, job_uid)
        assert job.ExecutionStatus in ("PENDING", "PRINTING")
        assert imager.printed == []
        imager.clear()
        wait_until(lambda: len(imager.printed) == 1, 30, what="film after the jam is cleared")
        wait_until(lambda: any(r[0] == PRINTER and r[1] == 1 for r in c.reports), 30,
                   what="Printer N-EVENT-REPORT NORMAL")
        wait_until(lambda: any(r[0] == PRINT_JOB and r[1] == 3 for r in c.reports), 30,
                   what="Print Job N-EVENT-REPORT DONE")
        assert c.assoc.send_n_get([], PRINT_JOB, job_uid)[1].ExecutionStatus == "DONE"
    finally:
        c.close()
    time.sleep(1)
    assert len(imager.printed) == 1
    assert_film(np.asarray(imager.printed[0].image()), expected_gray(px))


def test_supply_empty_waits_and_prints_after_loading(gw, imager):
    imager.films = 0
    g = gw()
    c = Client(g.port)
    try:
        assert c.printer_status()[1].PrinterStatusInfo == "SUPPLY EMPTY"
        fb = gray_film(c, gradient())
        assert c.print_film_box(fb)[0].Status == 0
        time.sleep(1.0)
        assert imager.printed == []
        imager.load(5)  # below the imager's low mark: prints, with a SUPPLY LOW warning
        wait_until(lambda: len(imager.printed) == 1, 30, what="film after loading")
        wait_until(lambda: any(r[0] == PRINTER and r[1] == 2 for r in c.reports), 30,
                   what="WARNING (supply low) report")
    finally:
        c.close()


# -- kill -9 -----------------------------------------------------------------------------------------

def _phase(g) -> list[tuple[str, str]]:
    db = sqlite3.connect(g.buffer / "index.sqlite", timeout=10)
    try:
        return db.execute("SELECT f.phase, j.state FROM print_films f JOIN jobs j ON j.id = f.job_id").fetchall()
    finally:
        db.close()


@pytest.mark.crash
def test_kill9_between_n_action_and_printing_prints_once_after_restart(gw, imager):
    imager.offline = True
    g = gw()
    c = Client(g.port)
    px = gradient()
    try:
        fb = gray_film(c, px)
        assert c.print_film_box(fb)[0].Status == 0  # answered: the job is durable now
    finally:
        c.close()
    time.sleep(0.5)
    g.kill9()
    imager.offline = False
    assert imager.printed == []
    g.start()
    wait_until(lambda: _phase(g) == [("printed", "done")], 30, what="film printed after restart")
    assert len(imager.printed) == 1
    assert_film(np.asarray(imager.printed[0].image()), expected_gray(px))
    assert "print" in g.cli("queue", "list", "--state", "done").stdout


@pytest.mark.crash
def test_kill9_while_the_film_is_printing_is_not_printed_twice(gw, imager):
    imager.print_seconds = 3.0
    g = gw()
    c = Client(g.port)
    try:
        fb = gray_film(c, gradient())
        assert c.print_film_box(fb)[0].Status == 0
    finally:
        c.close()
    wait_until(lambda: _phase(g) == [("sending", "in_flight")], 20, interval=0.05, what="film being sent")
    g.kill9()
    # The kill lands either after the whole job reached the imager (it prints it, and the supply
    # counter shows it) or in the middle of the transfer (the imager drops the partial job, and
    # the counter is unchanged). Either way exactly one film must come out.
    g.start()
    wait_until(lambda: _phase(g) == [("printed", "done")], 60, what="interrupted film resolved")
    assert len(imager.printed) == 1


@pytest.mark.crash
def test_kill9_while_printing_with_ambiguous_evidence_is_held_for_the_operator(gw, imager):
    imager.print_seconds = 3.0
    g = gw()
    c = Client(g.port)
    try:
        assert c.print_film_box(gray_film(c, gradient()))[0].Status == 0
    finally:
        c.close()
    # Ambiguous evidence: the whole job reached the imager (it is printing) but the gateway dies
    # before it hears the result. A kill in mid-transfer is the other test's case.
    wait_until(lambda: imager.printing, 20, interval=0.02, what="the imager printing the film")
    g.kill9()
    wait_until(lambda: len(imager.printed) == 1, 10, what="the imager finishing the film")
    imager.print_seconds = 0.0
    imager.load(80)  # films reloaded meanwhile: the counter proves nothing
    g.start()
    wait_until(lambda: _phase(g) == [("held", "dead")], 30, what="film held")
    out = g.cli("queue", "list").stdout
    assert "interrupted while sending" in out
    job_id = out.split("print")[0].split()[-1]
    assert g.cli("queue", "retry", job_id).returncode == 0
    wait_until(lambda: len(imager.printed) == 2, 30, what="reprint the operator asked for")


# -- malformed requests ------------------------------------------------------------------------------

def test_malformed_requests_get_precise_statuses_and_the_service_goes_on(gw, imager):
    g = gw()
    c = Client(g.port)
    try:
        # Film Box before any Film Session
        fb = Dataset()
        fb.ImageDisplayFormat = "STANDARD\\1,1"
        st, _ = c.create(FILM_BOX, fb)
        assert st.Status == 0x0110
        # an unsupported display format, a bad film size, an unknown attribute, missing format
        for attrs, code in (({"ImageDisplayFormat": "STANDARD\\9,9"}, 0x0106),
                            ({"FilmSizeID": "35MMX35MM"}, 0x0106),
                            ({"PatientName": "X"}, 0x0105)):
            if code == 0x0106 and "FilmSizeID" in attrs:
                st, _ = c.film(size=attrs["FilmSizeID"])
            elif "ImageDisplayFormat" in attrs:
                st, _ = c.film(fmt=attrs["ImageDisplayFormat"])
            else:
                st, _ = c.film(**attrs)
            assert st.Status == code, (attrs, hex(st.Status))
            c.assoc.send_n_delete(FILM_SESSION, c.session_uid, meta_uid=c.meta)
        # a film box, then bad image boxes
        st, rsp = c.film()
        assert st.Status == 0
        good_film_box = st.AffectedSOPInstanceUID
        box = rsp.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
        assert c.set_gray(box, gradient(bits=12), bits=10).Status == 0x0106  # 10-bit
        assert c.set_gray(box, gradient(), Polarity="SIDEWAYS").Status == 0x0106
        assert c.set_gray("1.2.3.4", gradient()).Status == 0x0112
        item_short = gradient()[:10]
        st = c.set_gray(box, item_short)
        assert st.Status == 0  # a smaller image is fine
        # Max Density above the printer's range is a warning; the UID comes back
        st, rsp = c.create(FILM_BOX, _film_box(c.session_uid, MaxDensity=450))
        assert st.Status == 0xB605 and rsp.MaxDensity == 300
        # N-ACTION on a session with no film box: C600 (new association, fresh session)
        c2 = Client(g.port)
        s = Dataset()
        s.NumberOfCopies = 1
        st, _ = c2.create(FILM_SESSION, s)
        st2, _ = c2.assoc.send_n_action(None, 1, FILM_SESSION, st.AffectedSOPInstanceUID, meta_uid=GRAY_META)
        assert st2.Status == 0xC600
        assert c2.assoc.send_n_get([], PRINT_JOB, "1.2.3")[0].Status == 0x0112
        c2.close()
        # A caller that may not print
        c3 = Client(g.port, aet="NOPRINT")
        st, _ = c3.create(FILM_SESSION, s)
        assert st.Status == 0x0124
        c3.close()
        # and the gateway still prints
        assert c.print_film_box(good_film_box)[0].Status == 0
    finally:
        c.close()
    wait_until(lambda: len(imager.printed) >= 1, 30, what="a film after the malformed requests")


def _film_box(session_uid, **attrs):
    fb = Dataset()
    fb.ImageDisplayFormat = "STANDARD\\1,1"
    for k, v in attrs.items():
        setattr(fb, k, v)
    ref = Dataset()
    ref.ReferencedSOPClassUID = FILM_SESSION
    ref.ReferencedSOPInstanceUID = session_uid
    fb.ReferencedFilmSessionSequence = [ref]
    return fb

