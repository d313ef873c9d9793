"""`dicom-gateway query` / `retrieve` as a new user meets them, without a PACS: hints name the
verb's own options, one-line errors carry the verb like the other verbs' (`dicom-gateway: VERB:`
for a usage error, `VERB:` for a failure), the query table never cuts a UID and names the SOP
class, a retrieve ends with one summary shape whether by C-MOVE or C-GET, and a refused move says
what to do about the destination."""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import write_toml
from pydicom.dataset import Dataset

from gateway import cli
from gateway.dicom.qr_scu import RetrieveResult

PACS = {"ae_title": "PACS", "port": 11122}


def _config(tmp_path: Path, **extra) -> str:
    path = tmp_path / "gateway.toml"
    write_toml(path, {"buffer": {"path": str(tmp_path / "buffer"), "reserve_mb": 0},
                      "destinations": {"pacs": PACS}, **extra})
    return str(path)


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, option", [
    (["--level", "series"], "--study UID"),
    (["--level", "image", "--study", "1.2"], "--series UID"),
    (["--level", "study", "--patient-root"], "--patient-id ID"),
])
def test_hierarchy_hints_name_the_verbs_own_options(tmp_path, capsys, argv, option):
    code, err = _run(capsys, "query", *argv, "--config", _config(tmp_path))
    assert code == 2 and err.startswith("dicom-gateway: query: ") and err.count("\n") == 1, err
    assert option in err and "-k " not in err, err


def test_retrieve_export_hint_names_drive(tmp_path, capsys):
    sim = str(tmp_path / "sim")
    cfg = _config(tmp_path, media={"drives": {"cd": {"kind": "optical-sim", "sim_dir": sim},
                                              "usb": {"kind": "optical-sim", "sim_dir": sim}}})
    code, err = _run(capsys, "retrieve", "--priors-of", "1.2", "--export", "--config", cfg)
    assert code == 2 and err.startswith("dicom-gateway: retrieve: ") and "--drive" in err, err
    assert "--to" not in err, err


def test_which_pacs_errors_carry_the_verb(tmp_path, capsys):
    cfg = _config(tmp_path)
    code, err = _run(capsys, "query", "--destination", "nope", "--config", cfg)
    assert code == 2 and err.startswith("dicom-gateway: query: unknown destination 'nope'"), err
    code, err = _run(capsys, "retrieve", "--study", "1.2", "--destination", "nope", "--config", cfg)
    assert code == 2 and err.startswith("dicom-gateway: retrieve: unknown destination 'nope'"), err
    path = tmp_path / "two.toml"
    write_toml(path, {"buffer": {"path": str(tmp_path / "buffer")},
                      "destinations": {"pacs": PACS, "archive": dict(PACS, ae_title="ARCH")}})
    code, err = _run(capsys, "query", "--config", str(path))
    assert code == 2 and err.startswith("dicom-gateway: query: which PACS?"), err


LONG_UID = "1.2.826.0.1.3680043.8.498.12345678901234567890123456789012345678"  # 64 characters


def _image(sop_class: str, number: int) -> Dataset:
    ds = Dataset()
    ds.InstanceNumber = number
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = f"{LONG_UID[:-2]}{number:02d}"
    ds.StudyInstanceUID = LONG_UID
    return ds


def test_table_shows_uids_whole_and_sop_class_names(capsys):
    from gateway.cli_query import _columns, _table

    private = "1.2.826.0.1.3680043.8.498.999999999999.1"  # no name known: the UID itself, whole
    columns = _columns("IMAGE", {"StudyInstanceUID": LONG_UID, "SeriesInstanceUID": "1.2.3"})
    _table(columns, [_image("1.2.840.10008.5.1.4.1.1.4", 1), _image(private, 2)])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "~" not in out, out
    assert "MR Image Storage" in lines[1] and "1.2.840.10008.5.1.4.1.1.4" not in out, out
    assert private in lines[2], out
    for line, n in ((lines[1], 1), (lines[2], 2)):
        assert f"{LONG_UID[:-2]}{n:02d}" in line and LONG_UID in line, out
    # The columns line up: each row's SOP Instance UID starts where its heading does.
    at = lines[0].index("SOP INSTANCE UID")
    assert lines[1][at:].startswith(LONG_UID[:-2]) and lines[2][at:].startswith(LONG_UID[:-2]), out


def test_one_summary_shape_for_move_and_get():
    from gateway.cli_query import _summary

    result = RetrieveResult(completed=3, failed=1, warning=1)
    assert _summary(result, "the buffer") == "retrieved 4 of 5 instances (1 failed, 1 warning) into the buffer"
    result = RetrieveResult(status=0xFE00, completed=2, remaining=18, cancelled=True)
    assert _summary(result, "the buffer") == ("retrieved 2 of 20 instances (0 failed, 0 warning) into the buffer"
                                              ": cancelled, 18 not retrieved")
    result = RetrieveResult(status=0xA702, failed=1)
    assert _summary(result, "the buffer") == ("retrieved 0 of 1 instance (1 failed, 0 warning) into the buffer"
                                              ": final status 0xA702 (refused: out of resources, unable to "
                                              "perform sub-operations)")


def test_move_destination_hints():
    from gateway.cli_query import _move_hint

    assert _move_hint(0xA801, "EDGE", here=True) == (
        "the PACS does not know EDGE as a move destination: add it to the PACS's modality list, or use --get")
    assert _move_hint(0xA801, "ARCH", here=False) == (
        "the PACS does not know ARCH as a move destination: add it to the PACS's modality list")
    # Orthanc answers C000 with no sub-operation for an unknown destination (and for one it could
    # not reach): the hint says both.
    hint = _move_hint(0xC000, "EDGE", here=True)
    assert "may not know EDGE as a move destination (or could not connect to it)" in hint and "or use --get" in hint
    assert _move_hint(0xA900, "EDGE", here=True) == ""


def test_cancelled_before_any_counts_claims_none():
    from gateway.cli_query import _summary

    result = RetrieveResult(status=0xFE00, cancelled=True, unreported=True)
    assert _summary(result, "the buffer") == ("cancelled before the PACS reported progress; what it had sent into "
                                              "the buffer is not known")


@pytest.mark.parametrize("argv, option", [
    (["query", "--study", "notauid"], "--study"),
    (["query", "--level", "image", "--study", "1.2", "--series", "x"], "--series"),
    (["retrieve", "--study", "1.2", "--study", "1.2.x"], "--study"),
    (["retrieve", "--series", "x", "--in-study", "1.2"], "--series"),
    (["retrieve", "--series", "1.2", "--in-study", "1..2"], "--in-study"),
    (["retrieve", "--priors-of", "1.2." + "3" * 70], "--priors-of"),
    (["query", "-k", "StudyInstanceUID=abc"], "StudyInstanceUID"),
])
def test_a_bad_uid_is_a_usage_error_naming_the_option(tmp_path, capsys, argv, option):
    """Refused before any association (the PACS port here has nothing behind it: a query that ran
    would fail with exit 1), with no raw pydicom warning on the terminal."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a pydicom UserWarning fails the test
        try:
            code, err = _run(capsys, *argv, "--config", _config(tmp_path))
        except SystemExit as exc:  # argparse's usage error
            code, err = exc.code, capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and option in err and "not a UID" in err, err
    assert err.startswith(f"dicom-gateway {argv[0]}: ") or err.startswith(f"dicom-gateway: {argv[0]}: "), err


def test_identifiers_are_never_cut_and_headings_are_spelled_alike(capsys):
    from gateway.cli_query import _columns, _table

    ds = Dataset()
    ds.StudyDate, ds.PatientID, ds.PatientName = "20080504", "PID-0123456789012345", "DOE^JOHN"
    ds.AccessionNumber = "2008050417123456"  # 16 characters, the VR's maximum
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.StudyID = LONG_UID, "1.2.3", "STUDY-ID-123456"
    columns = _columns("STUDY", {"SeriesInstanceUID": "", "StudyID": "", "PatientBirthDate": ""})
    _table(columns, [ds])
    head, row = capsys.readouterr().out.splitlines()
    assert "~" not in row, row
    for value in ("PID-0123456789012345", "2008050417123456", "STUDY-ID-123456", LONG_UID):
        assert value in row, row
    # The added keys are headed like the level's own: words, UIDs as "... UID".
    assert "SERIES UID" in head and "STUDY ID" in head and "PATIENT BIRTH DATE" in head, head
    assert "SERIESINSTANCEUID" not in head and "STUDYID" not in head, head


@pytest.mark.parametrize("argv, words", [
    (["query", "-k", "PatientBirthDate=foo"], "PatientBirthDate: Invalid value for VR DA: 'foo'"),
    (["query", "--accession", "A" * 20], "AccessionNumber: The value length (20) exceeds the maximum length of 16"),
    (["retrieve", "--patient", "P" * 70], "PatientID: The value length (70) exceeds the maximum length of 64"),
])
def test_a_value_its_vr_refuses_is_one_usage_line(tmp_path, capsys, argv, words):
    """pydicom only warns (its source path on the terminal) and sends it: refused by name instead."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, err = _run(capsys, *argv, "--config", _config(tmp_path))
    raw = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]  # pydicom's kind
    assert not raw, raw
    assert code == 2 and err.startswith(f"dicom-gateway: {argv[0]}: ") and err.count("\n") == 1, err
    assert words in err, err
