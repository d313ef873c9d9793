"""The IHE PDI layout (README.TXT, INDEX.HTM, IHE_PDI/) read back as a reader would: the pages parsed
as XML, every link and image followed, the JPEGs opened by Pillow, the names of pydicom's charset
files found in the text, and README.TXT searched for patient data."""

from __future__ import annotations

import io
import logging
import subprocess
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from gateway.identity import IMPLEMENTATION_VERSION_NAME
from gateway.media.pdi import (PdiError, PdiSeries, PdiStudy, readable_name, render_preview,
                               unexpected_root_entries, write_pdi)
from tests.peers import TEST_FILES, require

CHARSETS = TEST_FILES.parent / "charset_files"
NS = {"x": "http://www.w3.org/1999/xhtml"}
NAME_83 = re.compile(r"[A-Z0-9_]{1,8}(\.[A-Z0-9_]{1,3})?")


def _series(path: Path | None, number: str = "1", modality: str = "", description: str = "",
            count: int = 1, folder: tuple[str, ...] = ("DICOM", "P0000001", "S0000001", "S0000001")) -> PdiSeries:
    ids = tuple(folder + (f"I{i:07d}",) for i in range(1, count + 1))
    return PdiSeries(modality, number, description, count, path, ids)


def _study(path: Path, *more: PdiSeries) -> PdiStudy:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    first = _series(path, str(ds.get("SeriesNumber", "1")), str(ds.get("Modality", "")),
                    str(ds.get("SeriesDescription", "")))
    return PdiStudy.from_dataset(ds, [first, *more])


def _xhtml(path: Path) -> ET.Element:
    raw = path.read_bytes()
    raw.decode("utf-8")  # strict: the meta charset says UTF-8
    root = ET.fromstring(raw)
    assert root.tag == "{http://www.w3.org/1999/xhtml}html"
    assert raw.startswith(b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN"')
    metas = root.findall("x:head/x:meta", NS)
    assert any(m.get("content", "").lower() == "text/html; charset=utf-8" for m in metas)
    assert root.find(".//x:script", NS) is None
    return root


def _text(el: ET.Element) -> str:
    return " ".join("".join(el.itertext()).split())


@pytest.fixture
def two_studies(tmp_path):
    root = tmp_path / "medium"
    root.mkdir()
    studies = [
        _study(CHARSETS / "chrH31.dcm", _series(None, "99", "SR", "report")),
        _study(TEST_FILES / "CT_small.dcm", _series(TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm", "2", "OT", "colour", 3,
                                                    ("DICOM", "P0000002", "S0000001", "S0000002"))),
    ]
    written = write_pdi(root, studies, volume_label="EDGE0001", institution="Clinic North, phone 0301234")
    return root, studies, written


def test_layout_is_what_pdi_allows_and_what_was_returned(two_studies):
    root, _, written = two_studies
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert sorted(written) == on_disk
    assert {"README.TXT", "INDEX.HTM", "IHE_PDI/INDEX.HTM"} <= set(written)
    assert sorted(p.name for p in root.iterdir()) == ["IHE_PDI", "INDEX.HTM", "README.TXT"]
    for rel in written:  # ISO 9660 8.3, upper case (RAD TF-3 4.47)
        assert all(NAME_83.fullmatch(part) for part in rel.split("/")), rel
    (root / "DICOMDIR").write_bytes(b"")
    (root / "DICOM").mkdir()
    assert unexpected_root_entries(root) == []
    (root / "AUTORUN.INF").write_text("")
    assert unexpected_root_entries(root) == ["AUTORUN.INF"]


def test_pages_are_well_formed_and_every_link_and_image_resolves(two_studies):
    root, studies, _ = two_studies
    for page in (root / "INDEX.HTM", root / "IHE_PDI" / "INDEX.HTM"):
        html = _xhtml(page)
        for a in html.iterfind(".//x:a", NS):
            assert (page.parent / a.get("href")).resolve().is_file(), a.get("href")
        for img in html.iterfind(".//x:img", NS):
            assert (page.parent / img.get("src")).is_file() and img.get("alt")
    home = _xhtml(root / "INDEX.HTM")
    hrefs = {a.get("href") for a in home.iterfind(".//x:a", NS)}
    assert hrefs == {"IHE_PDI/INDEX.HTM", "README.TXT"}
    text = _text(home)
    assert "Clinic North" in text and IMPLEMENTATION_VERSION_NAME in text
    assert "cannot be imported" in text  # the manifest's note on the web content (RAD TF-3 4.47)
    # the manifest names each series' folder of File IDs
    rows = {tr.get("id"): [_text(td) for td in tr] for tr in home.iterfind(".//x:tr[@id]", NS)}
    assert rows["m2-se2"] == ["2", "OT", "colour", "3", "DICOM/P0000002/S0000001/S0000002"]


def test_every_series_has_a_row_and_each_preview_is_a_jpeg_of_bounded_size(two_studies):
    root, studies, _ = two_studies
    web = _xhtml(root / "IHE_PDI" / "INDEX.HTM")
    rows = web.findall(".//x:tr[@class='series']", NS)
    assert len(rows) == sum(len(s.series) for s in studies) == 4
    assert [r.get("id") for r in rows] == ["st1-se1", "st1-se2", "st2-se1", "st2-se2"]
    images = {r.get("id"): r.find(".//x:img", NS) for r in rows}
    assert images["st1-se2"] is None and "no image" in _text(rows[1])  # the SR series
    for rid in ("st1-se1", "st2-se1", "st2-se2"):
        img = images[rid]
        with Image.open(root / "IHE_PDI" / img.get("src")) as im:
            im.load()
            assert im.format == "JPEG"
            assert (str(im.width), str(im.height)) == (img.get("width"), img.get("height"))
            assert max(im.size) <= 256
    with Image.open(root / "IHE_PDI" / images["st2-se1"].get("src")) as ct:
        assert ct.size == (128, 128) and ct.mode == "L"  # CT_small is 128 x 128: never enlarged
    with Image.open(root / "IHE_PDI" / images["st2-se2"].get("src")) as rgb:
        assert rgb.mode == "RGB"


def test_readme_holds_no_patient_data_and_says_what_the_medium_is(two_studies):
    root, studies, _ = two_studies
    raw = (root / "README.TXT").read_bytes()
    text = raw.decode("utf-8")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    assert all(len(line) <= 80 for line in text.split("\r\n"))
    for study in studies:
        tokens = [study.patient_id, study.birth_date, readable_name(study.patient_name)]
        tokens += [p for group in study.patient_name.split("=") for p in group.split("^") if p]
        for token in filter(None, tokens):
            assert token.casefold() not in text.casefold(), token
    for needed in ("DICOM", "DICOMDIR", "INDEX.HTM", "web browser", IMPLEMENTATION_VERSION_NAME, "Clinic North"):
        assert needed in text


@pytest.mark.parametrize("filename,shown", [
    ("chrH31.dcm", ["YAMADA, Tarou", "山田 太郎", "やまだ たろう"]),   # ISO 2022 IR 87
    ("chrH32.dcm", ["ﾔﾏﾀﾞ, ﾀﾛｳ", "山田 太郎"]),                      # ISO 2022 IR 13 + IR 87
    ("chrFren.dcm", ["BUC, Jérôme"]),                                # ISO_IR 100 (Latin-1)
    ("chrGerm.dcm", ["ÄNEAS, Rüdiger"]),
    ("chrX1.dcm", ["WANG, XiaoDong", "王 小東"]),                      # ISO_IR 192 (UTF-8)
])
def test_names_from_their_character_sets_appear_on_both_pages(tmp_path, filename, shown):
    write_pdi(tmp_path, [_study(CHARSETS / filename)], volume_label="CHARSET")
    for page in (tmp_path / "INDEX.HTM", tmp_path / "IHE_PDI" / "INDEX.HTM"):
        text = _text(_xhtml(page))
        for name in shown:
            assert name in text, (name, text[:300])


def test_text_is_escaped_not_interpreted(tmp_path):
    study = PdiStudy("O'Brien^<b>Tom</b>", "ID&1", "", "", "20240102", "", "<script>alert(1)</script>", "",
                     (_series(None, "1", "SR", 'a "quoted" & <odd> description'),))
    write_pdi(tmp_path, [study], volume_label="ESC")
    for page in (tmp_path / "INDEX.HTM", tmp_path / "IHE_PDI" / "INDEX.HTM"):
        html = _xhtml(page)
        text = _text(html)
        assert "O'BRIEN, <b>Tom</b>" in text and "<script>alert(1)</script>" in text
        assert 'a "quoted" & <odd> description' in text and "ID&1" in text
        assert html.find(".//x:b", NS) is None


def test_an_image_that_cannot_be_decoded_gets_a_note_not_a_crash(tmp_path, caplog):
    not_dicom = tmp_path / "notdicom"
    not_dicom.write_bytes(b"\x00" * 300)
    root = tmp_path / "medium"
    root.mkdir()
    study = _study(CHARSETS / "chrFren.dcm",
                   _series(TEST_FILES / "MR_truncated.dcm", "2", "MR", "truncated"),
                   _series(not_dicom, "3", "CT", "garbage"),
                   # 12-bit JPEG Extended that neither pylibjpeg nor Pillow decodes
                   _series(TEST_FILES / "JPEG-lossy.dcm", "4", "CT", "undecodable"))
    with caplog.at_level(logging.WARNING, logger="gateway.media.pdi"):
        written = write_pdi(root, [study], volume_label="BROKEN")
    assert len([w for w in written if w.endswith(".JPG")]) == 1  # only the good series
    rows = {r.get("id"): r for r in _xhtml(root / "IHE_PDI" / "INDEX.HTM").iterfind(".//x:tr[@class='series']", NS)}
    for rid in ("st1-se2", "st1-se3", "st1-se4"):
        assert rows[rid].find(".//x:img", NS) is None
        note = rows[rid].find("x:td[@class='note']", NS)
        assert note is not None and _text(note).startswith("no preview:")
    assert "not a DICOM Part-10 file" in _text(rows["st1-se3"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and all("series" in w for w in warnings)
    assert not any("Buc" in w or "Jérôme" in w or "BUC" in w for w in warnings)  # no patient names in logs


# One file per transfer syntax and photometric interpretation that pydicom's test data covers.
PREVIEW_FILES = [
    "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm",
    "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "JPGExtended.dcm",
    "JPEG2000.dcm", "JPEGLSNearLossless_16.dcm", "rtdose_rle.dcm",
    "SC_rgb_small_odd.dcm", "SC_ybr_full_422_uncompressed.dcm", "SC_rgb_small_odd_jpeg.dcm",
    "SC_rgb_jpeg_gdcm.dcm", "SC_rgb_gdcm_KY.dcm", "GDCMJ2K_TextGBR.dcm", "SC_rgb_jls_lossy_line.dcm",
    "SC_rgb_rle_16bit.dcm", "examples_palette.dcm",
]


@pytest.mark.parametrize("filename", PREVIEW_FILES)
def test_preview_of_every_transfer_syntax(filename):
    path = TEST_FILES / filename
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    jpeg, width, height = render_preview(path, 64)
    with Image.open(io.BytesIO(jpeg)) as im:
        im.load()
        assert im.format == "JPEG" and im.size == (width, height) and max(im.size) <= 64
        colour = ds.SamplesPerPixel == 3 or ds.PhotometricInterpretation == "PALETTE COLOR"
        assert im.mode == ("RGB" if colour else "L")
        if min(ds.Rows, ds.Columns) > 8:
            assert np.asarray(im).std() > 5, "a preview should not be flat"


@pytest.mark.parametrize("lossless", ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                      "MR_small_jp2klossless.dcm", "MR_small_bigendian.dcm"])
def test_a_lossless_encoding_gives_the_same_preview_as_the_native_one(lossless):
    assert render_preview(TEST_FILES / lossless) == render_preview(TEST_FILES / "MR_small.dcm")


def test_monochrome1_preview_is_the_negative(tmp_path):
    ds = pydicom.dcmread(TEST_FILES / "MR_small.dcm")
    ds.PhotometricInterpretation = "MONOCHROME1"
    inverted = tmp_path / "m1.dcm"
    ds.save_as(inverted)
    m2 = np.asarray(Image.open(io.BytesIO(render_preview(TEST_FILES / "MR_small.dcm")[0])), float)
    m1 = np.asarray(Image.open(io.BytesIO(render_preview(inverted)[0])), float)
    assert np.abs((255 - m2) - m1).mean() < 2  # JPEG rounding only


def test_split_study_is_labelled_part_n_of_total(tmp_path):
    write_pdi(tmp_path, [_study(TEST_FILES / "CT_small.dcm")], volume_label="EDGE0002", part_of=(2, 3))
    assert "part 2 of 3" in _text(_xhtml(tmp_path / "INDEX.HTM"))
    assert "part 2 of 3" in _text(_xhtml(tmp_path / "IHE_PDI" / "INDEX.HTM"))
    assert "Part:     2 of 3" in (tmp_path / "README.TXT").read_text()


def test_refusals_are_one_line_and_write_nothing(tmp_path):
    study = _study(TEST_FILES / "CT_small.dcm")
    cases = [
        (dict(studies=[]), "no studies"),
        (dict(part_of=(3, 2)), "part_of"),
        (dict(part_of=(0, 1)), "part_of"),
        (dict(volume_label=f"X_{study.patient_id}"), "patient"),
        (dict(institution="for COMPRESSEDSAMPLES only"), "patient"),
    ]
    for extra, words in cases:
        kwargs = dict(studies=[study], volume_label="EDGE0003") | extra
        with pytest.raises(PdiError, match=words) as err:
            write_pdi(tmp_path, **kwargs)
        assert "\n" not in str(err.value)
        assert list(tmp_path.iterdir()) == []
    with pytest.raises(PdiError, match="does not exist"):
        write_pdi(tmp_path / "missing", [study], volume_label="X")
    (tmp_path / "INDEX.HTM").write_text("old")
    with pytest.raises(PdiError, match="INDEX.HTM already"):
        write_pdi(tmp_path, [study], volume_label="X")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["INDEX.HTM"]


@pytest.mark.parametrize("pn,shown", [
    ("Doe^John", "DOE, John"),
    ("Doe^John^Q^Dr.^Jr.", "Dr. DOE, John Q, Jr."),
    ("Doe", "DOE"),
    ("^John", "John"),
    ("Yamada^Tarou=山田^太郎=やまだ^たろう", "YAMADA, Tarou / 山田 太郎 / やまだ たろう"),
    ("=山田^太郎", "山田 太郎"),
    ("", ""),
])
def test_readable_name(pn, shown):
    assert readable_name(pn) == shown


def test_index_opens_in_a_real_browser(two_studies, browser):
    """Headless Chromium loads INDEX.HTM from file://, follows the link and decodes a preview."""
    from selenium.webdriver.common.by import By

    root, _, _ = two_studies
    browser.get((root / "INDEX.HTM").as_uri())
    browser.find_element(By.LINK_TEXT, "Overview of the studies with preview images").click()
    assert "YAMADA" in browser.find_element(By.ID, "st1").text
    img = browser.find_element(By.CSS_SELECTOR, "#st2-se1 img")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0


def test_colour_is_scaled_by_bits_stored(tmp_path):
    # 12-bit RGB in 16-bit words: 4095 is full white, not a sixteenth of it.
    ds = pydicom.dcmread(TEST_FILES / "SC_rgb_small_odd.dcm")
    ds.set_pixel_data(np.full((16, 16, 3), 4095, np.uint16), "RGB", 12)
    path = tmp_path / "rgb12.dcm"
    ds.save_as(path)
    jpeg, _, _ = render_preview(path)
    assert np.asarray(Image.open(io.BytesIO(jpeg))).min() >= 250


def test_the_layout_survives_iso9660_level1_unmangled(two_studies, tmp_path):
    """xorriso masters the staged root as ISO 9660 level 1 (as the optical driver will, PEERS.md):
    every PDI name comes out as written, no name shortened or mapped."""
    xorriso = require("xorriso", "xorriso")
    isoinfo = require("isoinfo", "genisoimage")
    root, _, written = two_studies
    iso = tmp_path / "pdi.iso"
    done = subprocess.run([xorriso, "-md5", "on", "-outdev", f"stdio:{iso}", "-volid", "EDGE0001", "-compliance",
                "iso_9660_level=1", "-joliet", "off", "-map", str(root), "/", "-commit"],
               capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    listing = subprocess.run([isoinfo, "-f", "-i", str(iso)], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    names = {line.strip().lstrip("/").removesuffix(";1") for line in listing.stdout.splitlines() if line.strip()}
    assert set(written) <= names, sorted(set(written) - names)
