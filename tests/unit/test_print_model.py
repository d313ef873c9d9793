"""Print profile, attribute checks (statuses), the association object model, rendering helpers and
the spool's interrupted-film resolution, without a network."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydicom.dataset import Dataset

from gateway import config
from gateway.print import session as S
from gateway.print import validate as v
from gateway.print.profile import PrintSection
from gateway.print.render import lin_od_lut, render_film
from gateway.print.session import PrintSession
from gateway.print.store import execution_status
from gateway.print.validate import PrintFailure
from image.gsdf import od_from_p_values

P = PrintSection(enabled=True)


def ds(**kw) -> Dataset:
    d = Dataset()
    for k, val in kw.items():
        setattr(d, k, val)
    return d


def status_of(fn, *args, **kw) -> int:
    try:
        return fn(*args, **kw).status
    except PrintFailure as exc:
        return exc.status


# -- profile -----------------------------------------------------------------------------------

def test_profile_defaults_cover_the_seed_statement_and_bad_values_are_named():
    assert "STANDARD\\6,5" in P.display_formats and "A4" in P.film_sizes
    assert P.curve().od_range == (0.2, 3.0)
    with pytest.raises(config.ConfigError) as err:
        config.load(None, ["print.film_sizes=[\"35MM\"]", "print.min_density=400",
                           "print.printer.kind=\"serial\"", "print.display_formats=[\"DIAMOND\\\\1\"]"])
    text = "\n".join(err.value.problems)
    assert "print.film_sizes" in text and "print.display_formats" in text and "print.printer" in text


def test_calibration_must_be_monotone():
    with pytest.raises(config.ConfigError):
        config.load(None, ["print.calibration=[[0, 300], [128, 310], [255, 20]]"])
    assert config.load(None, ["print.calibration=[[0, 300], [128, 150], [255, 20]]"]).config.print.curve()


# -- Film Session ----------------------------------------------------------------------------------

def test_film_session_statuses():
    assert v.check_film_session(ds(NumberOfCopies=2, MediumType="PAPER"), P, True).values["copies"] == 2
    c = v.check_film_session(ds(NumberOfCopies=500), P, True)
    assert c.status == 0x0116 and c.values["copies"] == 99
    assert status_of(v.check_film_session, ds(MediumType="PARCHMENT"), P, True) == 0x0106
    assert status_of(v.check_film_session, ds(FilmDestination="BIN_9"), P, True) == 0x0106
    assert status_of(v.check_film_session, ds(MemoryAllocation=100), P, True) == 0xB600
    assert status_of(v.check_film_session, ds(PatientName="X"), P, True) == 0x0105


# -- Film Box --------------------------------------------------------------------------------------

def film_box(**kw):
    ref = ds(ReferencedSOPClassUID=S.FILM_SESSION, ReferencedSOPInstanceUID="1.2.3")
    return ds(ReferencedFilmSessionSequence=[ref], **kw)


@pytest.mark.parametrize("attrs, code", [
    ({"ImageDisplayFormat": "STANDARD\\2,2"}, 0x0000),
    ({"ImageDisplayFormat": "ROW\\1,2,1"}, 0x0000),
    ({"ImageDisplayFormat": "COL\\2,3", "FilmOrientation": "LANDSCAPE", "Trim": "YES"}, 0x0000),
    ({}, 0x0120),
    ({"ImageDisplayFormat": "STANDARD\\7,7"}, 0x0106),
    ({"ImageDisplayFormat": "STANDARD\\1,1", "FilmSizeID": "24CMX30CM"}, 0x0106),
    ({"ImageDisplayFormat": "STANDARD\\1,1", "FilmOrientation": "DIAGONAL"}, 0x0106),
    ({"ImageDisplayFormat": "STANDARD\\1,1", "MagnificationType": "LANCZOS"}, 0x0106),
    ({"ImageDisplayFormat": "STANDARD\\1,1", "ConfigurationInformation": "X"}, 0x0106),
    ({"ImageDisplayFormat": "STANDARD\\1,1", "BorderDensity": "GREY"}, 0x0106),
    ({"ImageDisplayFormat": "STANDARD\\1,1", "MaxDensity": 450}, 0xB605),
    ({"ImageDisplayFormat": "STANDARD\\1,1", "MinDensity": 5}, 0xB605),
    ({"ImageDisplayFormat": "STANDARD\\1,1", "MinDensity": 250, "MaxDensity": 100}, 0x0106),
])
def test_film_box_statuses(attrs, code):
    assert status_of(v.check_film_box, film_box(**attrs), P, True) == code


def test_density_clamped_and_trim_unsupported():
    c = v.check_film_box(film_box(ImageDisplayFormat="STANDARD\\1,1", MaxDensity=450), P, True)
    assert c.values["max_density"] == 300
    no_trim = PrintSection(trim=False)
    assert status_of(v.check_film_box, film_box(ImageDisplayFormat="STANDARD\\1,1", Trim="YES"),
                     no_trim, True) == 0x0106


# -- Image Box ------------------------------------------------------------------------------------

FILM = {"film_size": "8INX10IN", "orientation": "PORTRAIT", "display_format": "STANDARD\\1,1",
        "trim": False, "magnification": "CUBIC"}


def gray_item(px, bits=12, photometric="MONOCHROME2"):
    return ds(SamplesPerPixel=1, PhotometricInterpretation=photometric, Rows=px.shape[0],
              Columns=px.shape[1], BitsAllocated=8 if bits == 8 else 16, BitsStored=bits,
              HighBit=bits - 1, PixelRepresentation=0,
              PixelData=px.astype(np.uint8 if bits == 8 else "<u2").tobytes())


def test_image_box_pixels_and_monochrome1():
    px = np.arange(12, dtype=np.uint16).reshape(3, 4) * 300
    c = v.check_image_box(ds(BasicGrayscaleImageSequence=[gray_item(px)]), P, False, FILM, 1)
    assert np.array_equal(c.values["pixels"], px) and c.values["bits_stored"] == 12
    c = v.check_image_box(ds(BasicGrayscaleImageSequence=[gray_item(px, photometric="MONOCHROME1")]),
                          P, False, FILM, 1)
    assert np.array_equal(c.values["pixels"], 4095 - px)
    c = v.check_image_box(ds(BasicGrayscaleImageSequence=[gray_item(px.astype(np.uint8), 8)]), P, False, FILM, 1)
    assert c.values["pixels"].dtype == np.uint8


@pytest.mark.parametrize("attrs, code", [
    ({"Polarity": "SIDEWAYS"}, 0x0106),
    ({"ImageBoxPosition": 2}, 0x0106),
    ({"RequestedImageSize": 500}, 0xB604),
    ({"RequestedImageSize": -3}, 0x0106),
    ({"RequestedImageSize": 500, "RequestedDecimateCropBehavior": "FAIL"}, 0xC603),
    ({"BasicColorImageSequence": []}, 0x0105),
    ({"TextString": "x"}, 0x0105),
])
def test_image_box_statuses(attrs, code):
    assert status_of(v.check_image_box, ds(**attrs), P, False, FILM, 1) == code


def test_oversized_image_crop_decimate_fail():
    big = np.zeros((2000, 2000), np.uint16)
    item = gray_item(big)
    assert status_of(v.check_image_box, ds(BasicGrayscaleImageSequence=[item],
                                           RequestedDecimateCropBehavior="CROP"), P, False, FILM, 1) == 0xB609
    assert status_of(v.check_image_box, ds(BasicGrayscaleImageSequence=[item],
                                           RequestedDecimateCropBehavior="DECIMATE"), P, False, FILM, 1) == 0xB60A
    assert status_of(v.check_image_box, ds(BasicGrayscaleImageSequence=[item],
                                           RequestedDecimateCropBehavior="FAIL"), P, False, FILM, 1) == 0xC603
    bad = gray_item(np.zeros((4, 4), np.uint16))
    bad.BitsStored, bad.HighBit = 10, 9
    assert status_of(v.check_image_box, ds(BasicGrayscaleImageSequence=[bad]), P, False, FILM, 1) == 0x0106
    short = gray_item(np.zeros((4, 4), np.uint16))
    short.PixelData = b"\0" * 10
    assert status_of(v.check_image_box, ds(BasicGrayscaleImageSequence=[short]), P, False, FILM, 1) == 0x0106


# -- Presentation LUT --------------------------------------------------------------------------------

def test_presentation_lut_checks():
    assert v.check_presentation_lut(ds(PresentationLUTShape="LIN OD")).values["shape"] == "LIN OD"
    assert status_of(v.check_presentation_lut, ds(PresentationLUTShape="LOG"), ) == 0x0106
    assert status_of(v.check_presentation_lut, ds()) == 0x0120
    lut = ds(LUTDescriptor=[4096, 0, 12], LUTData=list(range(4096)))
    c = v.check_presentation_lut(ds(PresentationLUTSequence=[lut]))
    assert c.values["lut_bits"] == 12 and c.values["lut"][4095] == 4095
    assert status_of(v.check_presentation_lut, ds(PresentationLUTSequence=[lut],
                                                  PresentationLUTShape="IDENTITY")) == 0x0106
    assert status_of(v.check_presentation_lut, ds(PresentationLUTSequence=[
        ds(LUTDescriptor=[100, 0, 12], LUTData=[0] * 100)])) == 0x0106


def test_lin_od_lut_makes_density_linear():
    lut = lin_od_lut(8, 0.2, 3.0, 2000, 10)
    od = od_from_p_values(lut, 65535, 0.2, 3.0, 2000, 10)
    assert np.allclose(od, 3.0 - 2.8 * np.arange(256) / 255, atol=2e-3)


# -- the object model --------------------------------------------------------------------------------

def make_session(fmt="STANDARD\\2,2", annotations=True, **film_attrs):
    s = PrintSession(P, "MOD")
    uid, _ = s.create_film_session(ds(NumberOfCopies=1))
    ref = ds(ReferencedSOPClassUID=S.FILM_SESSION, ReferencedSOPInstanceUID=uid)
    film, _ = s.create_film_box(ds(ImageDisplayFormat=fmt, ReferencedFilmSessionSequence=[ref],
                                   **film_attrs), False, annotations)
    return s, uid, film


def test_film_box_creates_boxes_for_the_layout_and_annotations():
    s, _, film = make_session("ROW\\1,2,1", AnnotationDisplayFormatID="2")
    assert [b.position for b in film.image_boxes] == [1, 2, 3, 4]
    assert {b.sop_class for b in film.image_boxes} == {S.GRAYSCALE_IMAGE_BOX}
    assert len(film.annotations) == 2
    s2, _, film2 = make_session("STANDARD\\1,1", annotations=False, AnnotationDisplayFormatID="LABEL")
    assert film2.annotations == []


def test_print_statuses_and_cleanup():
    s, uid, film = make_session()
    assert s.films_to_print(S.FILM_BOX, film.uid)[1] == 0xB603  # empty page
    box = film.image_boxes[0]
    s.set_image_box(box.uid, ds(BasicGrayscaleImageSequence=[gray_item(np.ones((4, 4), np.uint16))]))
    films, warning = s.films_to_print(S.FILM_SESSION, uid)
    assert films == [film] and warning == 0
    desc, arrays = s.film_description(film)
    json.dumps(desc)
    assert list(arrays) == ["image-1"] and desc["images"][0]["position"] == 1
    plut, _ = s.create_presentation_lut(ds(PresentationLUTShape="IDENTITY"))
    s.delete_film_box(film.uid)
    with pytest.raises(PrintFailure) as err:
        s.films_to_print(S.FILM_SESSION, uid)
    assert err.value.status == 0xC600
    s.delete_film_session(uid)
    s.delete_presentation_lut(plut)  # a Presentation LUT outlives the Film Session
    with pytest.raises(PrintFailure) as err:
        s.set_image_box(box.uid, ds())
    assert err.value.status == 0x0112


def test_second_session_and_unknown_references_fail():
    s, uid, _ = make_session()
    with pytest.raises(PrintFailure):
        s.create_film_session(ds())
    ref = ds(ReferencedSOPClassUID=S.FILM_SESSION, ReferencedSOPInstanceUID="9.9")
    with pytest.raises(PrintFailure) as err:
        s.create_film_box(ds(ImageDisplayFormat="STANDARD\\1,1", ReferencedFilmSessionSequence=[ref]),
                          False, False)
    assert err.value.status == 0x0106


def test_rendered_film_has_the_composed_image_and_annotation():
    from image.density import CharacteristicCurve

    s, _, film = make_session("STANDARD\\1,1", AnnotationDisplayFormatID="LABEL")
    s.set_image_box(film.image_boxes[0].uid,
                    ds(BasicGrayscaleImageSequence=[gray_item(np.full((8, 8), 4095, np.uint16))]))
    s.set_annotation(film.annotations[0].uid, ds(TextString="Müller"))
    desc, arrays = s.film_description(film)
    curve = CharacteristicCurve.linear(255, 0.2, 3.0)
    out = render_film(desc, arrays, curve, 30)
    assert out.shape == (300, 240) and out[150, 120] == 255  # white image centre
    no_text = render_film(dict(desc, annotations=[]), arrays, curve, 30)
    assert (out != no_text).sum() > 20  # the text is inked into the bottom border


# -- spool ---------------------------------------------------------------------------------------------

def test_execution_status():
    row = lambda phase, state, err="": {"phase": phase, "state": state, "last_error": err}
    assert execution_status([row("queued", "queued")]) == ("PENDING", "QUEUED")
    assert execution_status([row("queued", "queued", "printer not ready")])[1] == "PRINTER NOT READY"
    assert execution_status([row("printed", "done"), row("sending", "in_flight")])[0] == "PRINTING"
    assert execution_status([row("printed", "done")]) == ("DONE", "NORMAL")
    assert execution_status([row("held", "dead")]) == ("FAILURE", "QUEUE HELD")


@pytest.mark.parametrize("name", ["chrH31.dcm", "chrGerm.dcm"])
def test_patient_names_from_the_image_data_are_printed_in_their_script(name):
    """Japanese (ISO 2022 IR 87) and Latin-1 (ISO_IR 100) names, decoded by pydicom from the bytes
    the client sent, are rendered with glyphs of the right font (IPA Gothic / DejaVu)."""
    import pydicom
    from pydicom.filebase import DicomBytesIO
    from gateway.print.glyphs import render_text, needs_cjk
    from image.density import CharacteristicCurve

    src = pydicom.dcmread(pydicom.data.get_charset_files(name)[0]) if hasattr(pydicom.data, "get_charset_files") \
        else None
    if src is None:
        pytest.skip("pydicom charset files not available")
    profile = PrintSection(annotate_image_attributes=["PatientName"])
    n_set = ds(SpecificCharacterSet=src.SpecificCharacterSet,
               BasicGrayscaleImageSequence=[gray_item(np.full((8, 8), 0, np.uint16))])
    n_set.BasicGrayscaleImageSequence[0].PatientName = src.PatientName
    # Over the wire and back, as the SCP sees it: encoded in the client's character set.
    from pydicom.filewriter import write_dataset
    from pydicom.filereader import read_dataset
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, n_set)
    received = read_dataset(DicomBytesIO(buf.getvalue()), False, True)
    c = v.check_image_box(received, profile, False, FILM, 1)
    text = c.values["labels"]["PatientName"]
    assert text == str(src.PatientName)
    if name == "chrH31.dcm":
        assert needs_cjk(text)
    s, _, film = make_session("STANDARD\\1,1")
    film.image_boxes[0].values.update(c.values)
    desc, arrays = s.film_description(film)
    out = render_film(desc, arrays, CharacteristicCurve.linear(255, 0.2, 3.0), 60)
    assert (out > 0).sum() > 20  # light text on the black image
    assert render_text(text.replace("^", " "), 12).max() == 255


# -- data sets a client reads (gateway.print.attributes) -------------------------------------------

def test_printer_and_print_job_data_sets():
    from gateway.print import attributes

    printer = attributes.printer(P, ("WARNING", "SUPPLY LOW"))
    assert (printer.PrinterStatus, printer.PrinterStatusInfo, printer.PrinterName) == ("WARNING", "SUPPLY LOW", P.name)
    item = attributes.printer_configuration(P).PrinterConfigurationSequence[0]
    assert float(item.PrinterPixelSpacing[0]) == pytest.approx(25.4 / P.printer.dpi)
    job = attributes.print_job({"status": "DONE", "info": "NORMAL", "created": 0, "priority": "MED",
                                "printer": "film", "calling_ae": "SCU"})
    assert (job.ExecutionStatus, job.Originator, len(job.CreationDate)) == ("DONE", "SCU", 8)
    assert attributes.printer_event_information("NORMAL", "NORMAL", "film") is None
    assert attributes.printer_event_information("FAILURE", "SUPPLY EMPTY", "film").PrinterStatusInfo == "SUPPLY EMPTY"
    ref = attributes.print_job_reference("1.2.3").ReferencedPrintJobSequencePullStoredPrint[0]
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (S.PRINT_JOB, "1.2.3")
