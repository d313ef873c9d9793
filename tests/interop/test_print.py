"""Print SCP against real print clients: DCMTK dcmpsprt + dcmprscu (the way a modality drives a Print
SCP), printing to the hw-sim serial film imager through the real DRF/1 driver.

Every printed film is checked pixel by pixel against image.compose.compose_film of the pixels the
client sent (the Hardcopy Grayscale images dcmpsprt wrote and dcmprscu transmitted), with the film
parameters the test asked for.  Tolerance: 1 drive level (the imager's PNG holds the drive levels
the driver sent, so anything above 0 is a bug in layout, LUT or transport).

The imager runs in the test process (SerialFilmImager.start_tcp) so faults can be switched and it
outlives a gateway killed with -9; the gateway reaches it as a `serial` printer at socket://.
"""

from __future__ import annotations

import glob
import re
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from hwsim.serial_imager import SerialFilmImager
from image.compose import FilmSpec, ImageBox, compose_film
from image.density import CharacteristicCurve
from dicom_bytes import jobs
from peers import TEST_FILES, require, wait_until

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

DPI = 40
CURVE = CharacteristicCurve.linear(255, 0.20, 3.00)
TOLERANCE = 1  # drive levels
CT = TEST_FILES / "CT_small.dcm"
MR = TEST_FILES / "MR_small.dcm"


@pytest.fixture
def imager(tmp_path):
    im = SerialFilmImager(out_dir=tmp_path / "films")
    im.url = im.start_tcp()
    yield im
    im.stop()


def print_config(imager_url: str, **extra) -> dict:
    prn = {"kind": "serial", "url": imager_url, "dpi": DPI}
    prn.update(extra.pop("printer", {}))
    section = {"enabled": True, "printer": prn, "retry_initial_s": 0.2, "retry_max_s": 1.0,
               "poll_interval_s": 0.3}
    section.update(extra)
    return {"peers": {"printscu": {"ae_title": "PRINTSCU", "may_print": True},
                      "colorscu": {"ae_title": "COLORSCU", "may_print": True},
                      "nopriv": {"ae_title": "NOPRINT", "may_print": False}},
            "print": section}


@pytest.fixture
def print_gateway(gateway_factory, imager):
    def make(name="gw", **extra):
        return gateway_factory(print_config(imager.url, **extra), name=name)
    return make


class DcmtkPrintClient:
    """dcmpsprt renders a Stored Print + Hardcopy Grayscale images; dcmprscu sends them."""

    def __init__(self, workdir: Path, port: int, aet: str = "PRINTSCU", called: str = "EDGE",
                 supports_12bit: bool = True, annotation: bool = True, extra_cfg: str = "",
                 film_sizes: str = "8INX10IN\\14INX17IN\\24CMX30CM", general_cfg: str = ""):
        self.dcmpsprt = require("dcmpsprt", "dcmtk")
        self.dcmprscu = require("dcmprscu", "dcmtk")
        self.dir = workdir
        (workdir / "db").mkdir(parents=True, exist_ok=True)
        (workdir / "spool").mkdir(exist_ok=True)
        self.cfg = workdir / "scu.cfg"
        annotation_line = "Annotation = 1\\LABEL" if annotation else ""
        # Comments on their own line only: a trailing "# ..." becomes part of the value.
        self.cfg.write_text(f"""[[GENERAL]]
[NETWORK]
Aetitle = {aet}
[DATABASE]
Directory = {workdir / 'db'}
[PRINT]
Spooler = {self.dcmprscu}
Directory = {workdir / 'spool'}
{general_cfg}
[[COMMUNICATION]]
[TARGET]
Type = PRINTER
Hostname = 127.0.0.1
Port = {port}
Aetitle = {called}
MaxPDU = 32768
Timeout = 20
DisplayFormat = 1,1\\1,2\\2,1\\2,2\\2,3\\3,3\\3,4\\4,4\\4,5\\5,4
FilmSizeID = {film_sizes}
Supports12Bit = {'true' if supports_12bit else 'false'}
SupportsPresentationLUT = true
PresentationLUTMatchRequired = false
PresentationLUTPreferSCPRendering = true
SupportsImageSize = true
SupportsTrim = true
{annotation_line}
{extra_cfg}
""")

    def _run(self, args: list[str]) -> str:
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        return done.stdout + done.stderr

    def render(self, files, *options) -> tuple[str, Path]:
        before = set(self.dir.glob("db/SP_*.dcm"))
        out = self._run([self.dcmpsprt, "-c", str(self.cfg), "-p", "TARGET", *options, *map(str, files)])
        new = sorted(set(self.dir.glob("db/SP_*.dcm")) - before)
        assert new, f"dcmpsprt made no stored print:\n{out}"
        return out, new[0]

    def send(self, sp: Path, *options) -> str:
        return self._run([self.dcmprscu, "-c", str(self.cfg), "-p", "TARGET", "-v", *options, str(sp)])

    def print(self, files, render_opts=(), send_opts=()) -> tuple[Path, str]:
        out, sp = self.render(files, *render_opts)
        assert not errors(out), out
        out = self.send(sp, *send_opts)
        return sp, out

    def sent_images(self, sp: Path) -> list[np.ndarray]:
        """The hardcopy images of a stored print, in image box order, MONOCHROME2 sense."""
        ds = pydicom.dcmread(sp)
        out = []
        for item in ds.ImageBoxContentSequence:
            uid = item.ReferencedImageSequence[0].ReferencedSOPInstanceUID
            for f in self.dir.glob("db/HG_*.dcm"):
                hg = pydicom.dcmread(f)
                if hg.SOPInstanceUID == uid:
                    px = hg.pixel_array
                    if hg.PhotometricInterpretation == "MONOCHROME1":
                        px = (1 << hg.BitsStored) - 1 - px
                    out.append((int(item.ImageBoxPosition), px, int(hg.BitsStored)))
        return out


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("E:")]


def film_png(imager: SerialFilmImager, n: int) -> np.ndarray:
    return np.asarray(imager.printed[n].image())


def expected_film(images, film_size="8INX10IN", orientation="PORTRAIT", fmt="STANDARD\\1,1",
                  polarity="NORMAL", trim=False, requested=None, **spec) -> np.ndarray:
    fs = FilmSpec(film_size=film_size, orientation=orientation, dpi=DPI, display_format=fmt,
                  magnification="CUBIC", trim=trim, min_density=0.20, max_density=3.00, **spec)
    boxes = [ImageBox(pos, px, bits_stored=bits, polarity=polarity, requested_size_mm=requested)
             for pos, px, bits in images]
    return compose_film(fs, boxes, CURVE)


def assert_film(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    diff = np.abs(actual.astype(np.int32) - expected.astype(np.int32))
    assert diff.max() <= TOLERANCE, f"{(diff > TOLERANCE).sum()} pixels differ, max by {diff.max()}"


# -- the client matrix ---------------------------------------------------------------------------

CASES = {
    "1x1": dict(files=[CT], opts=[], spec={}),
    "2x2-14x17": dict(files=[CT, MR, CT, MR], opts=["--layout", "2", "2", "--filmsize", "14INX17IN"],
                      spec=dict(fmt="STANDARD\\2,2", film_size="14INX17IN")),
    "4x5-partly-filled": dict(files=[CT, MR, CT], opts=["--layout", "4", "5", "--filmsize", "14INX17IN"],
                              spec=dict(fmt="STANDARD\\4,5", film_size="14INX17IN")),
    "landscape-trim": dict(files=[CT, MR], opts=["--layout", "2", "1", "--landscape", "--trim"],
                           spec=dict(fmt="STANDARD\\2,1", orientation="LANDSCAPE", trim=True)),
    "reverse-polarity": dict(files=[MR], opts=["--img-polarity", "REVERSE"], spec=dict(polarity="REVERSE")),
    "requested-size": dict(files=[CT], opts=["--img-request-size", "60"], spec=dict(requested=60.0)),
    "monochrome1": dict(files=[CT], opts=["--monochrome1"], spec={}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_dcmtk_prints_film_matching_composition(case, print_gateway, imager, tmp_path):
    c = CASES[case]
    gw = print_gateway()
    client = DcmtkPrintClient(tmp_path / "scu", gw.port)
    # --monochrome1 is dcmprscu's: it transmits the images inverted, as MONOCHROME1.
    render_opts = [a for a in c["opts"] if a != "--monochrome1"]
    send_opts = ["--monochrome1"] if "--monochrome1" in c["opts"] else []
    sp, out = client.print(c["files"], render_opts, send_opts)
    assert not errors(out), out
    wait_until(lambda: len(imager.printed) == 1, 30, what="one film printed")
    expected = expected_film(client.sent_images(sp), **c["spec"])
    assert_film(film_png(imager, 0), expected)
    # The job is done only after the printer confirmed and the preview was kept: after that,
    # nothing more can come out of the printer for it.
    wait_until(lambda: [state for _, _, state, _, _ in jobs(gw.buffer)] == ["done"], 30, what="job done")
    previews = list((gw.buffer / "print" / "previews").glob("*.png"))
    assert len(previews) == 1
    assert_film(np.asarray(Image.open(previews[0])), expected)
    assert len(imager.printed) == 1, "printed more than once"


def test_dcmtk_8bit_images(print_gateway, imager, tmp_path):
    gw = print_gateway()
    client = DcmtkPrintClient(tmp_path / "scu", gw.port, supports_12bit=False)
    sp, out = client.print([MR], ["--layout", "1", "2"])
    assert not errors(out), out
    # dcmprscu keeps 12-bit hardcopy images and sends their top 8 bits to an 8-bit printer.
    images = [(pos, (px >> 4).astype(np.uint8), 8) for pos, px, bits in client.sent_images(sp)]
    wait_until(lambda: len(imager.printed) == 1, 30, what="one film printed")
    films = list((gw.buffer / "print" / "spool").glob("*/film-1/image-1.npy"))
    assert np.load(films[0]).dtype == np.uint8  # the SCP received 8-bit pixels
    assert_film(film_png(imager, 0), expected_film(images, fmt="STANDARD\\1,2"))


def test_dcmtk_session_print_with_copies(print_gateway, imager, tmp_path):
    gw = print_gateway()
    client = DcmtkPrintClient(tmp_path / "scu", gw.port)
    sp, out = client.print([CT, MR], ["--layout", "2", "1"], ["--session-print", "--copies", "2"])
    assert not errors(out), out
    wait_until(lambda: len(imager.printed) == 1, 30, what="one film printed")
    assert imager.printed[0].copies == 2
    assert_film(film_png(imager, 0), expected_film(client.sent_images(sp), fmt="STANDARD\\2,1"))


def test_dcmtk_noprint_prints_nothing_and_cleans_up(print_gateway, imager, tmp_path):
    gw = print_gateway()
    client = DcmtkPrintClient(tmp_path / "scu", gw.port)
    _, out = client.print([CT], [], ["--noprint"])
    assert not errors(out), out
    time.sleep(1.5)
    assert imager.printed == []
    assert "print job" not in gw.log


def test_dcmtk_annotation(print_gateway, imager, tmp_path):
    from gateway.print.glyphs import render_text
    from gateway.print.render import annotation_origins
    from image.annotate import composite_mask
    from image.film_layout import mm_to_pixels

    gw = print_gateway()
    client = DcmtkPrintClient(tmp_path / "scu", gw.port)
    sp, out = client.print([CT], ["-a", "EDGE TEST", "-pd", "-pn", "-pl"])
    assert not errors(out), out
    wait_until(lambda: len(imager.printed) == 1, 30, what="one film printed")
    expected = expected_film(client.sent_images(sp))
    desc = {"film_size": "8INX10IN", "orientation": "PORTRAIT"}
    top, left = annotation_origins(desc, DPI, 4.0, 1)[0]
    composite_mask(expected, render_text("EDGE TEST", mm_to_pixels(4.0, DPI)), top, left,
                   int(CURVE.drive_levels_for(0.20)[()]))  # white text on the black border
    assert_film(film_png(imager, 0), expected)


def test_dcmtk_lin_od_presentation_lut(print_gateway, imager, tmp_path):
    """LIN OD: printed density is linear in the stored value (checked through the curve)."""
    gw = print_gateway()
    client = DcmtkPrintClient(tmp_path / "scu", gw.port)
    sp, out = client.print([MR], ["--lin-od", "--magnification", "REPLICATE"])
    assert not errors(out), out
    wait_until(lambda: len(imager.printed) == 1, 30, what="one film printed")
    (pos, px, bits), = client.sent_images(sp)
    film = film_png(imager, 0)
    from gateway.print.render import lin_od_lut
    lut = lin_od_lut(bits, 0.20, 3.00, 2000.0, 10.0)
    fs = FilmSpec(film_size="8INX10IN", dpi=DPI, magnification="REPLICATE", min_density=0.2,
                  max_density=3.0, presentation_lut=lut, presentation_lut_bits=16)
    expected = compose_film(fs, [ImageBox(pos, px, bits_stored=bits, magnification="REPLICATE")], CURVE)
    assert_film(film, expected)
    # Independent check: with a linear curve, LIN OD makes drive level linear in the stored value.
    centre = film[film.shape[0] // 2, film.shape[1] // 2]
    value = px[px.shape[0] // 2, px.shape[1] // 2]
    od = 3.0 - 2.8 * value / ((1 << bits) - 1)
    assert abs(int(centre) - int(CURVE.drive_levels_for(od)[()])) <= 2


def test_dcmtk_density_out_of_range_is_a_warning_with_uid(print_gateway, imager, tmp_path):
    """B605 on the Film Box N-CREATE: dcmprscu needs the instance UID in that Warning response."""
    gw = print_gateway()
    client = DcmtkPrintClient(tmp_path / "scu", gw.port)
    sp, out = client.print([CT], ["--max-density", "450"])
    assert not errors(out), out
    wait_until(lambda: len(imager.printed) == 1, 30, what="one film printed")
    assert "0xB605" in gw.log or "warning 0xB605" in gw.log
    assert_film(film_png(imager, 0), expected_film(client.sent_images(sp)))  # clamped to 3.00


def test_dcmtk_unsupported_film_size_is_an_error_at_the_client(print_gateway, imager, tmp_path):
    gw = print_gateway()
    client = DcmtkPrintClient(tmp_path / "scu", gw.port)
    _, out = client.print([CT], ["--filmsize", "24CMX30CM"])
    assert errors(out), out
    assert re.search(r"0x0106|Invalid Attribute Value|106", out), out
    time.sleep(1)
    assert imager.printed == []
    # The gateway keeps serving: the next print works.
    _, out = client.print([CT])
    assert not errors(out), out
    wait_until(lambda: len(imager.printed) == 1, 30, what="film after the refused one")


def test_two_dcmtk_clients_at_once(print_gateway, imager, tmp_path):
    gw = print_gateway()
    a = DcmtkPrintClient(tmp_path / "a", gw.port)
    b = DcmtkPrintClient(tmp_path / "b", gw.port)
    spa = a.render([CT], "--layout", "1", "1")[1]
    spb = b.render([MR, MR], "--layout", "2", "1")[1]
    outs = {}
    threads = [threading.Thread(target=lambda k, c, s: outs.__setitem__(k, c.send(s)), args=args)
               for args in (("a", a, spa), ("b", b, spb))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors(outs["a"]) and not errors(outs["b"]), outs
    wait_until(lambda: len(imager.printed) == 2, 30, what="two films printed")
    films = [film_png(imager, i) for i in range(2)]
    want = [expected_film(a.sent_images(spa)), expected_film(b.sent_images(spb), fmt="STANDARD\\2,1")]
    for w in want:
        assert any(f.shape == w.shape and np.abs(f.astype(int) - w).max() <= TOLERANCE for f in films)


def test_postscript_rendered_by_ghostscript_matches_composition(gateway_factory, imager, tmp_path):
    """PostScript printer (file transport): Ghostscript's rendering of the job, at the printer's
    resolution, is the composed film within 1 level."""
    gs = require("gs", "ghostscript")
    folder = tmp_path / "ps"
    folder.mkdir()
    gw = gateway_factory(print_config("", printer={"kind": "file", "language": "postscript",
                                                   "folder": str(folder), "url": ""}))
    client = DcmtkPrintClient(tmp_path / "scu", gw.port)
    sp, out = client.print([CT, MR, MR], ["--layout", "2", "2", "--trim"])
    assert not errors(out), out
    jobs = wait_until(lambda: list(folder.glob("*.ps")), 30, what="PostScript job file")
    png = tmp_path / "gs.png"
    subprocess.run([gs, "-q", "-dSAFER", "-dNOPAUSE", "-dBATCH", "-sDEVICE=pnggray", f"-r{DPI}",
                    f"-sOutputFile={png}", str(jobs[0])], check=True, timeout=120)
    expected = expected_film(client.sent_images(sp), fmt="STANDARD\\2,2", trim=True)
    assert_film(np.asarray(Image.open(png)), expected)
