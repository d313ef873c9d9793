"""`dicom-gateway query` and `dicom-gateway retrieve`: the Query/Retrieve SCU against the PACS
(gateway/dicom/qr_scu.py; config `[qr_scu]`), as verbs of the command line (gateway/cli.py adds them
with `add_parsers`; they live here so that cli.py does not grow).

query: one C-FIND at a level, the matches as a table (default) or JSON (--json: a list of objects,
keyword -> value as text, decoded with the response's Specific Character Set).

retrieve: the study, series or patient (every study the PACS has for that Patient ID) is looked up
first by C-FIND (an unknown UID is one clear line, exit 1, before anything moves), then
- by C-MOVE (default, `[qr_scu] retrieve = "move"`): the PACS is told to send to
  `qr_scu.move_destination` (default: this box's AE title) and opens its own association to the
  running service's STORE SCP, where the instances are ingested like any C-STORE. So a move to this
  box needs the service running on this buffer (refused with the reason otherwise) and the PACS's
  AE title in [peers] with may_store (a note says so otherwise);
- by C-GET (--get): the instances come back on this command's association and are ingested here,
  beside the running service (as `dicom-gateway import` does, with the writer's lock) or without
  one (holding the buffer's lock), each C-STORE answered only once its file is fsynced and indexed.
Either way they are recorded as received from the PACS's AE title and never routed back to it.

Pending responses print a progress line; Ctrl-C sends C-CANCEL (a second one aborts) and the
command ends with the counts so far (or says none came), exit 130. With no request on the wire
yet (the association being set up) or during a retrieve's look-up, Ctrl-C aborts at once and the
command says which step it stopped, exit 130. Exit 0: done; 1: failed (PACS down, rejected, a
failure status, an unknown UID, sub-operations failed); 2: bad command line or config.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from contextlib import contextmanager

from gateway import exit_codes

LEVEL_CHOICES = ("PATIENT", "STUDY", "SERIES", "IMAGE")

# Columns of the table per level: (keyword, heading, width; 0 = as wide as its longest value).
# UIDs and identifiers are never cut (a cut one cannot be pasted into the next command, nor
# matched against a request form): their width is 0.
_COLUMNS = {
    "PATIENT": [("PatientID", "PATIENT ID", 0), ("PatientName", "NAME", 24), ("PatientBirthDate", "BIRTH", 8),
                ("PatientSex", "SEX", 3), ("NumberOfPatientRelatedStudies", "STUDIES", 7)],
    "STUDY": [("StudyDate", "DATE", 8), ("PatientID", "PATIENT ID", 0), ("PatientName", "NAME", 22),
              ("ModalitiesInStudy", "MOD", 6), ("AccessionNumber", "ACCESSION", 0),
              ("NumberOfStudyRelatedInstances", "IMAGES", 6), ("StudyDescription", "DESCRIPTION", 20),
              ("StudyInstanceUID", "STUDY UID", 0)],
    "SERIES": [("Modality", "MOD", 4), ("SeriesNumber", "NUMBER", 6), ("NumberOfSeriesRelatedInstances", "IMAGES", 6),
               ("SeriesDescription", "DESCRIPTION", 24), ("SeriesInstanceUID", "SERIES UID", 0)],
    "IMAGE": [("InstanceNumber", "NUMBER", 6), ("SOPClassUID", "SOP CLASS", 0), ("SOPInstanceUID", "SOP INSTANCE UID", 0)],
}


# The query verb's own option for each unique key a hierarchical query needs from a level above.
_KEY_OPTION = {"PatientID": "--patient-id ID", "StudyInstanceUID": "--study UID", "SeriesInstanceUID": "--series UID"}


def _usage(message: str):
    from gateway.commands import Refused

    return Refused(message, usage=True)


def _key_value(text: str) -> tuple[str, str]:
    from gateway.dicom.qr_scu import keyword_of

    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: write KEY=VALUE (KEY= asks for it as a return key)")
    try:
        return keyword_of(name), value
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _uid(text: str) -> str:
    """A UID option's value (PS3.5 9.1: digits and dots, at most 64 characters); argparse names
    the option in its usage error, before any association (pydicom would only warn, on the
    terminal, and send it)."""
    from gateway.config.base import is_uid

    if not is_uid(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a UID (digits and dots, at most 64 characters, "
                                         "e.g. 1.2.840.113619.2.55.3)")
    return text


def _date_range(text: str) -> str:
    import re

    if not re.fullmatch(r"(\d{8})?(-(\d{8})?)?", text) or text in ("", "-"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a date or a range: YYYYMMDD, YYYYMMDD-YYYYMMDD, "
                                         "YYYYMMDD- or -YYYYMMDD (PS3.4 C.2.2.2.5)")
    return text


def _max_priors(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of priors (1 to 100)")
    return int(text)


def _level(text: str) -> str:
    if text.upper() not in LEVEL_CHOICES:
        raise argparse.ArgumentTypeError(f"{text!r}: one of {', '.join(LEVEL_CHOICES)}")
    return text.upper()


def add_parsers(add) -> None:
    """Add `query` and `retrieve` to the command line; `add(name, func, help)` is cli.py's helper
    (it adds --config and --set)."""
    sp = add("query", cmd_query, "C-FIND the PACS: patients, studies, series or images, as a table or JSON")
    sp.add_argument("--level", type=_level, default="STUDY", metavar="LEVEL",
                    help="PATIENT, STUDY (default), SERIES or IMAGE (any case)")
    sp.add_argument("-k", "--key", dest="keys", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                    help="a matching key by keyword or tag, e.g. -k PatientName='DOE^*' -k 0008,0050=A123; "
                         "KEY= adds a return key (repeatable)")
    sp.add_argument("--patient-id", metavar="ID", help="Patient ID (-k PatientID=ID)")
    sp.add_argument("--name", metavar="NAME", help="Patient's Name, * and ? as wildcards (-k PatientName=NAME)")
    sp.add_argument("--date", type=_date_range, metavar="RANGE",
                    help="Study Date: YYYYMMDD or a range YYYYMMDD-YYYYMMDD (open ends allowed)")
    sp.add_argument("--modality", metavar="MOD",
                    help="Modalities in Study (STUDY level) or Modality (SERIES level), e.g. CT")
    sp.add_argument("--accession", metavar="NUMBER", help="Accession Number")
    sp.add_argument("--study", type=_uid, metavar="UID", help="Study Instance UID (needed for SERIES and IMAGE levels)")
    sp.add_argument("--series", type=_uid, metavar="UID", help="Series Instance UID (needed for the IMAGE level)")
    sp.add_argument("--patient-root", action="store_true",
                    help="use the Patient Root model (default Study Root; PATIENT level always uses it)")
    sp.add_argument("--json", action="store_true", help="print the matches as JSON (a list of objects)")
    sp.add_argument("--destination", metavar="NAME",
                    help="the PACS: a destination or peer name, or AET@host:port (default: qr_scu.destination, "
                         "else the only destination)")
    sp = add("retrieve", cmd_retrieve, "fetch a study, series or patient from the PACS into the buffer "
                                       "(C-MOVE to this box, or C-GET)")
    what = sp.add_mutually_exclusive_group(required=True)
    what.add_argument("--study", type=_uid, metavar="UID", action="append", help="a Study Instance UID (repeatable)")
    what.add_argument("--series", type=_uid, metavar="UID", help="a Series Instance UID (with --in-study)")
    what.add_argument("--patient", metavar="ID", help="every study the PACS has for this Patient ID")
    what.add_argument("--priors-of", type=_uid, metavar="STUDY_UID",
                      help="the other studies the PACS has for the patient of this study (held in the buffer): "
                           "same Patient ID; one whose Issuer of Patient ID or Birth Date differs is left out")
    sp.add_argument("--in-study", type=_uid, metavar="UID", help="the Study Instance UID of --series")
    how = sp.add_mutually_exclusive_group()
    how.add_argument("--get", action="store_true", help="C-GET: the instances come back on this association "
                                                        "and are stored by this command")
    how.add_argument("--move", action="store_true", help="C-MOVE (the default unless qr_scu.retrieve = \"get\")")
    sp.add_argument("--to", metavar="AET", help="C-MOVE to this AE title, which the PACS must know "
                                                "(default: qr_scu.move_destination, else this box)")
    sp.add_argument("--patient-root", action="store_true", help="use the Patient Root model (default Study Root)")
    sp.add_argument("--max-priors", type=_max_priors, default=10, metavar="N",
                    help="--priors-of: the N most recent priors (1-100, default 10)")
    sp.add_argument("--export", action="store_true",
                    help="--priors-of: then queue the study and its priors for one medium, as `export` does")
    sp.add_argument("--drive", metavar="DRIVE", help="--export: a drive of [media.drives] (default: the only one)")
    sp.add_argument("--destination", metavar="NAME",
                    help="the PACS: a destination or peer name, or AET@host:port (default: qr_scu.destination, "
                         "else the only destination)")


# -- shared ------------------------------------------------------------------------------------------

def _peer(loaded, verb: str, name: str | None, session_s: float):
    """The PACS asked by `verb` ("query", "retrieve"; its usage errors carry it, as the other verbs'
    do: `dicom-gateway: VERB: ...`)."""
    from gateway import cli
    from gateway.dicom.qr_scu import QrPeer

    cfg = loaded.config
    q = cfg.qr_scu
    name = name or q.destination
    if not name:
        if len(cfg.destinations) != 1:
            known = ", ".join(cfg.destinations) or "none configured"
            raise _usage(f"{verb}: which PACS? give --destination NAME or set qr_scu.destination "
                         f"(destinations: {known})")
        name = next(iter(cfg.destinations))
    try:
        d = cli._resolve_dest(loaded, name)
    except Exception as exc:  # cli.UsageError, which may be __main__'s copy of the class
        raise _usage(f"{verb}: {exc}") from None
    return QrPeer(d.ae_title, d.host, d.port, q.calling_ae or cfg.ae.title, q.association_s, q.inactivity_s,
                  session_s)


@contextmanager
def _cancel_on_sigint(cancel):
    """Ctrl-C during the operation asks `cancel` (C-CANCEL, then abort) instead of raising. Only
    a C-CANCEL or an abort of an operation under way is announced here; an interrupted set-up or
    lookup is said once by the command when it ends (qr_scu.Interrupted). Once asked, further
    Ctrl-Cs are ignored until the command ends: it is ending already, and a KeyboardInterrupt
    while the interpreter joins pynetdicom's threads would print a traceback."""
    def on_sigint(signum, frame):
        cancel.request()
        if not cancel.announced:
            return
        print("aborting the association" if cancel.aborted
              else "cancelling: C-CANCEL sent (Ctrl-C again aborts the association)", file=sys.stderr, flush=True)

    before = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN if cancel.requested else before)


def _text(ds, kw: str) -> str:
    value = ds.get(kw)
    if value is None:
        return ""
    if not isinstance(value, str) and hasattr(value, "__iter__") and not hasattr(value, "family_name"):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


# -- query -------------------------------------------------------------------------------------------

def _query_keys(args) -> dict[str, str]:
    keys = dict(args.keys)
    shortcuts = {"PatientID": args.patient_id, "PatientName": args.name, "StudyDate": args.date,
                 "AccessionNumber": args.accession, "StudyInstanceUID": args.study,
                 "SeriesInstanceUID": args.series}
    if args.modality is not None:
        shortcuts["Modality" if args.level in ("SERIES", "IMAGE") else "ModalitiesInStudy"] = args.modality
    for kw, value in shortcuts.items():
        if value is not None:
            keys[kw] = value
    return keys


def cmd_query(args) -> int:
    from gateway import cli
    from gateway.dicom.qr_scu import Cancel, Interrupted, MissingKey, QrError, find, identifier

    loaded = cli._load(args)
    model = "patient" if args.patient_root or args.level == "PATIENT" else "study"
    keys = _query_keys(args)
    try:
        ident = identifier(args.level, keys, model)
    except MissingKey as exc:
        # The verb's own option for the key (-k works too, but a new user reads --help's options).
        raise _usage(f"query: {exc}: give {_KEY_OPTION[exc.key]}") from None
    except ValueError as exc:
        raise _usage(f"query: {exc}") from None
    peer = _peer(loaded, "query", args.destination, loaded.config.qr_scu.find_session_s)
    cancel = Cancel()
    try:
        with _cancel_on_sigint(cancel):
            result = find(peer, ident, model, loaded.config.qr_scu.max_results, cancel)
    except Interrupted as exc:
        print(f"query: {exc}; nothing was asked", file=sys.stderr)
        return exit_codes.INTERRUPTED
    except QrError as exc:
        print(f"query: {exc}", file=sys.stderr)
        return exit_codes.FAILED
    columns = _columns(args.level, keys)
    if args.json:
        rows = []
        for m in result.matches:
            rows.append({elem.keyword: _text(m, elem.keyword) for elem in m
                         if elem.keyword and elem.keyword not in ("QueryRetrieveLevel", "SpecificCharacterSet")
                         and elem.VR != "SQ"})
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        _table(columns, result.matches)
    what = {"PATIENT": "patient", "STUDY": "study", "SERIES": "series", "IMAGE": "image"}[args.level]
    n = len(result.matches)
    plural = what if n == 1 or what == "series" else ("studies" if what == "study" else what + "s")
    tail = " (cancelled: the matches so far)" if result.cancelled else ""
    print(f"{n} {plural} on {peer.ae_title}{tail}", file=sys.stderr if args.json else sys.stdout)
    return exit_codes.INTERRUPTED if result.cancelled else exit_codes.OK


# Identifiers among the keys a user may add: never cut, like UIDs.
_WHOLE = {"PatientID", "AccessionNumber", "StudyID", "IssuerOfPatientID", "OtherPatientIDs"}
# Headings of the UID columns as the level tables spell them; any other added key is spelled
# out from its keyword ("PatientBirthDate" -> "PATIENT BIRTH DATE").
_HEADINGS = {"StudyInstanceUID": "STUDY UID", "SeriesInstanceUID": "SERIES UID",
             "SOPInstanceUID": "SOP INSTANCE UID", "SOPClassUID": "SOP CLASS"}


def _heading(kw: str) -> str:
    import re

    return _HEADINGS.get(kw) or re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", kw).upper()


def _columns(level: str, keys) -> list[tuple[str, str, int]]:
    """The table's columns for `level`, and one before the last for each key the user asked for
    that the level's columns lack (a UID or identifier one as wide as its values, any other 16
    wide), headed like the level's own columns."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    columns = list(_COLUMNS[level])
    shown = {kw for kw, _, _ in columns}
    columns[-1:-1] = [(kw, _heading(kw), 0 if kw in _WHOLE or dictionary_VR(tag_for_keyword(kw)) == "UI" else 16)
                      for kw in keys if kw not in shown and kw != "SpecificCharacterSet"]
    return columns


def _shown(ds, kw: str) -> str:
    """A value as the table shows it: a SOP class by its name in pydicom's dictionary (the UID when
    it has none, e.g. a private class; --json keeps the UIDs), anything else as _text."""
    if kw in ("SOPClassUID", "SOPClassesInStudy"):
        from pydicom.uid import UID

        return "\\".join(UID(str(v)).name for v in _values(ds, kw))
    return _text(ds, kw)


def _table(columns, matches) -> None:
    """Print `columns` ((keyword, heading, width)) of `matches`: a text cut to its width ends in
    "~"; a width-0 column (UIDs, identifiers, SOP class names) is as wide as its longest value,
    never cut; a heading is never cut either (its column is at least as wide)."""
    rows = [[_shown(m, kw) or "-" for kw, _, _ in columns] for m in matches]
    widths = [max(w, len(head)) if w else max([len(head)] + [len(row[i]) for row in rows])
              for i, (_, head, w) in enumerate(columns)]

    def cell(text: str, width: int) -> str:
        return (text if len(text) <= width else text[:width - 1] + "~").ljust(width)

    print(" ".join(cell(head, w) for (_, head, _), w in zip(columns, widths)).rstrip())
    for row in rows:
        print(" ".join(cell(text, w) for text, w in zip(row, widths)).rstrip())


# -- retrieve ----------------------------------------------------------------------------------------

def _patient_of(loaded, study_uid: str):
    """(Patient ID, Issuer of Patient ID, Birth Date) of a study the buffer holds, or None."""
    from gateway.buffer.index import Index

    path = loaded.buffer_dir / "index.sqlite"
    if not path.exists():
        return None
    index = Index(path)
    try:
        rows = index.query("SELECT p.patient_id, p.issuer, p.birth_date FROM studies st"
                           " JOIN patients p ON p.id = st.patient_fk WHERE st.study_uid = ? AND EXISTS"
                           " (SELECT 1 FROM series se JOIN instances i ON i.series_fk = se.id WHERE se.study_fk = st.id)",
                           (study_uid,))
    finally:
        index.close()
    return (rows[0]["patient_id"] or "", rows[0]["issuer"] or "", rows[0]["birth_date"] or "") if rows else None


def _other_patient(held: tuple[str, str, str], match) -> str:
    """Why a PACS study with the same Patient ID is not this patient's, or "": a Patient ID is
    unique only within its issuer, and a prior of another patient on the medium is an incident."""
    _, issuer, birth = held
    theirs = _text(match, "IssuerOfPatientID")
    if issuer and theirs and theirs != issuer:
        return f"Issuer of Patient ID {theirs!r} is not {issuer!r}"
    born = _text(match, "PatientBirthDate")
    if birth and born and born != birth:
        return "Patient's Birth Date differs (same Patient ID, another patient?)"
    return ""


def _prior_targets(args, peer, model: str, max_results: int, lookup):
    """The priors of --priors-of: the PACS's other studies of the held study's patient, newest
    first, at most --max-priors, those the buffer already holds whole left out."""
    from gateway.dicom.qr_scu import QrError, find, identifier

    loaded = args.loaded
    held = _patient_of(loaded, args.priors_of)
    if held is None:
        raise QrError(f"study {args.priors_of}: not held in the buffer (its patient is taken from there)")
    patient_id = held[0]
    if not patient_id:
        raise QrError(f"study {args.priors_of} has no Patient ID: its priors cannot be matched")
    found = find(peer, identifier("STUDY", {"PatientID": patient_id, "IssuerOfPatientID": ""}, model),
                 model, max_results, lookup)
    priors = []
    for m in found.matches:
        uid = _text(m, "StudyInstanceUID")
        if not uid or uid == args.priors_of:
            continue
        why = _other_patient(held, m)
        if why:
            print(f"left out: study {uid}: {why}")
            continue
        priors.append(m)
    priors.sort(key=lambda m: (_text(m, "StudyDate"), _text(m, "StudyTime")), reverse=True)
    priors = priors[:args.max_priors]
    args.prior_uids = [_text(m, "StudyInstanceUID") for m in priors]
    print(f"{len(priors)} prior stud{'y' if len(priors) == 1 else 'ies'} of Patient ID {patient_id} on {peer.ae_title}"
          + (": " + ", ".join(f"{_text(m, 'StudyDate') or '-'} {_text(m, 'StudyInstanceUID')}" for m in priors)
             if priors else ""))
    targets = []
    for m in priors:
        uid = _text(m, "StudyInstanceUID")
        on_pacs = _text(m, "NumberOfStudyRelatedInstances")
        if on_pacs.isdigit() and _study_counts(loaded, [uid]) >= int(on_pacs) > 0:
            print(f"  {uid}: already in the buffer")
            continue
        keys = {"StudyInstanceUID": uid}
        if model == "patient":
            keys["PatientID"] = patient_id
        targets.append(("STUDY", keys))
    return targets


def _targets(args, peer, model: str, max_results: int, lookup):
    """The identifiers to retrieve, each checked by a C-FIND first: a list of (level, keys).
    `lookup`: the Cancel of these C-FINDs (at_once: Ctrl-C aborts, nothing is kept)."""
    from gateway.dicom.qr_scu import QrError, find, identifier

    if args.series and not args.in_study:
        raise _usage("retrieve: --series needs --in-study STUDY_UID (a hierarchical retrieve names the study)")
    if args.priors_of:
        return _prior_targets(args, peer, model, max_results, lookup)
    if model == "patient" and not args.patient:
        raise _usage("retrieve: with --patient-root, give --patient ID (the whole patient)")
    if args.patient is not None and model == "patient":
        keys = {"PatientID": args.patient}
        found = find(peer, identifier("PATIENT", keys, model), model, max_results, lookup)
        if not found.matches:
            raise QrError(f"patient {args.patient!r}: not found on {peer.ae_title}")
        return [("PATIENT", keys)]
    if args.patient is not None:
        found = find(peer, identifier("STUDY", {"PatientID": args.patient}, model), model, max_results, lookup)
        uids = [str(m.get("StudyInstanceUID", "")) for m in found.matches if m.get("StudyInstanceUID")]
        if not uids:
            raise QrError(f"patient {args.patient!r}: no studies on {peer.ae_title}")
        return [("STUDY", {"StudyInstanceUID": uid}) for uid in uids]
    if args.series:
        keys = {"StudyInstanceUID": args.in_study, "SeriesInstanceUID": args.series}
        found = find(peer, identifier("SERIES", keys, model), model, max_results, lookup)
        if not found.matches:
            raise QrError(f"series {args.series}: not found on {peer.ae_title} in study {args.in_study}")
        return [("SERIES", keys)]
    targets = []
    for uid in args.study:
        found = find(peer, identifier("STUDY", {"StudyInstanceUID": uid}, model), model, max_results, lookup)
        if not found.matches:
            raise QrError(f"study {uid}: not found on {peer.ae_title}")
        targets.append(("STUDY", {"StudyInstanceUID": uid}))
    return targets


def _sop_classes(peer, targets, model: str, max_results: int, lookup) -> set[str]:
    """The SOP classes of the instances to C-GET (the storage contexts must be proposed before the
    C-GET; PS3.4 C.4.3.1): the study's SOP Classes in Study (0008,0062) when the PACS returns it
    (Orthanc does; for a SERIES target a superset, which costs only contexts), else from C-FINDs
    at the IMAGE level, series by series, allowed up to 100 times `max_results` (a series of
    thousands of images is ordinary; the query limit is for listings)."""
    from gateway.dicom.qr_scu import find, identifier

    classes: set[str] = set()
    for level, keys in targets:
        study = {k: v for k, v in keys.items() if k in ("PatientID", "StudyInstanceUID")}
        found = find(peer, identifier("STUDY", dict(study, SOPClassesInStudy=""), model), model, max_results, lookup)
        listed = {str(v) for m in found.matches for v in _values(m, "SOPClassesInStudy") if str(v)}
        if listed:
            classes |= listed
            continue
        series = [keys["SeriesInstanceUID"]] if level == "SERIES" else None
        if series is None:
            found = find(peer, identifier("SERIES", study, model), model, max_results * 100, lookup)
            series = [str(m.SeriesInstanceUID) for m in found.matches if m.get("SeriesInstanceUID")]
        for uid in series:
            found = find(peer, identifier("IMAGE", dict(study, SeriesInstanceUID=uid), model), model,
                         max_results * 100, lookup)
            classes |= {str(m.SOPClassUID) for m in found.matches if m.get("SOPClassUID")}
    return classes


def _values(ds, kw: str) -> list:
    value = ds.get(kw)
    if value is None or value == "":
        return []
    return [value] if isinstance(value, str) else list(value)


def _progress(result) -> None:
    print(f"  pending: {result.completed} completed, {result.failed} failed, {result.warning} warning, "
          f"{result.remaining} remaining", flush=True)


def _study_counts(loaded, study_uids: list[str]) -> int:
    """Instances of these studies in the buffer's index (0 when there is no index yet)."""
    from gateway.buffer.index import Index

    path = loaded.buffer_dir / "index.sqlite"
    if not path.exists() or not study_uids:
        return 0
    index = Index(path)
    try:
        marks = ",".join("?" * len(study_uids))
        row = index.query(f"SELECT COUNT(*) AS n FROM instances i JOIN series se ON se.id = i.series_fk"
                          f" JOIN studies st ON st.id = se.study_fk WHERE st.study_uid IN ({marks})",
                          tuple(study_uids))
        return int(row[0]["n"])
    finally:
        index.close()


def cmd_retrieve(args) -> int:
    from gateway import cli
    from gateway.dicom.qr_scu import Cancel, Interrupted, QrError

    loaded = cli._load(args)
    cfg = loaded.config
    model = "patient" if args.patient_root else "study"
    use_get = args.get or (cfg.qr_scu.retrieve == "get" and not args.move)
    if use_get and args.to:
        raise _usage("retrieve: --to is for a C-MOVE; a C-GET always brings the instances here")
    if (args.export or args.drive) and not args.priors_of:
        raise _usage("retrieve: --export and --drive go with --priors-of")
    if args.export:
        args.drive = _export_drive(cfg, args.drive)  # a usage error before anything moves
    args.loaded, args.prior_uids = loaded, []
    peer = _peer(loaded, "retrieve", args.destination, cfg.qr_scu.retrieve_session_s)
    find_peer = peer.__class__(**{**peer.__dict__, "session_s": cfg.qr_scu.find_session_s})
    cancel, lookup = Cancel(), Cancel(at_once=True)
    # What Ctrl-C interrupts, for its line ("" once the retrieve's own association is set up).
    step = ["looking up " + _looked_up(args)]
    try:
        with _cancel_on_sigint(lookup):
            try:
                targets = _targets(args, find_peer, model, cfg.qr_scu.max_results, lookup)
            except ValueError as exc:  # identifier(): a value its VR does not allow (--patient)
                raise _usage(f"retrieve: {exc}") from None
        if lookup.requested:  # between two look-ups, or after the last: stop all the same
            raise Interrupted(find_peer, established=True)
        step[0] = "looking up the SOP classes to ask for" if use_get else ""
        if not targets:
            code = exit_codes.OK
        elif use_get:
            code = _get(loaded, peer, find_peer, targets, model, cancel, lookup, step)
        else:
            code = _move(loaded, peer, targets, model, cancel, args.to)
    except Interrupted as exc:
        # Nothing asked to move yet: no counts to give, and nothing retrieved.
        print(f"retrieve: interrupted {'while ' + step[0] if step[0] else str(exc).removeprefix('interrupted ')}; "
              "nothing retrieved", file=sys.stderr)
        return exit_codes.INTERRUPTED
    except QrError as exc:
        print(f"retrieve: {exc}", file=sys.stderr)
        return exit_codes.FAILED
    if not args.export:
        return code
    if code != exit_codes.OK:
        print("retrieve: not exported: the retrieve did not complete (retry it; the instances already stored "
              "stay)", file=sys.stderr)
        return code
    return _export_with_priors(loaded, args.priors_of, args.prior_uids, args.drive)


def _looked_up(args) -> str:
    """What the C-FINDs before a retrieve look up, for "interrupted while looking up ..."."""
    if args.priors_of:
        return "the priors of the study"
    if args.patient is not None:
        return "the patient's studies"
    if args.series:
        return "the series"
    return "the study" if len(args.study) == 1 else "the studies"


def _export_drive(cfg, name: str | None) -> str:
    """commands.export_drive, its refusals in this verb's words: its drive option is --drive
    (`export`'s is --to)."""
    from gateway import commands

    drives = cfg.media.drives
    if name is None and len(drives) > 1:
        raise _usage(f"retrieve: --export: {len(drives)} drives are configured; choose one with --drive: "
                     f"{', '.join(sorted(drives))}")
    try:
        return commands.export_drive(cfg, name)
    except commands.Refused as exc:
        raise _usage(f"retrieve: --export: {str(exc).removeprefix('export: ')}") from None


def _export_with_priors(loaded, study: str, priors: list[str], drive: str) -> int:
    """Queue the study and its priors held in the buffer for one medium (commands.export: split at
    series boundaries only when they do not fit), and wake the service that writes it."""
    from gateway import cli, commands

    held = [uid for uid in priors if _study_counts(loaded, [uid])]
    missing = [uid for uid in priors if uid not in held]
    if missing:
        print(f"retrieve: not exported: prior {missing[0]} did not arrive in the buffer", file=sys.stderr)
        return exit_codes.FAILED
    result = commands.export(cli._queue(loaded), loaded.config, [study, *held], drive, 1)
    for line in result.lines():
        print(line)
    cli._wake_service(loaded.buffer_dir)
    return exit_codes.OK


def _summary(result, into: str) -> str:
    """The closing line of a retrieve, the same for C-MOVE and C-GET: "retrieved N of M instances
    (F failed, W warning) into the buffer", N the sub-operations that stored an instance
    (completed, and warning: stored with a warning, PS3.4 C.4.2.1.5), M all of them (and those
    never attempted); then why it ended early, if it did. Cancelled before any response gave
    counts, nothing is known of what the PACS had sent: it is not written as "0 of 0"."""
    from gateway.dicom.qr_scu import status_words

    if result.cancelled and result.unreported and not (result.completed or result.failed or result.warning):
        return f"cancelled before the PACS reported progress; what it had sent into {into} is not known"
    got = result.completed + result.warning
    total = got + result.failed + result.remaining
    line = (f"retrieved {got} of {total} instance{'' if total == 1 else 's'} ({result.failed} failed, "
            f"{result.warning} warning) into {into}")
    if result.cancelled:
        return f"{line}: cancelled, {result.remaining} not retrieved"
    if result.status not in (0x0000, 0xFE00):
        return f"{line}: final status {status_words(result.status)}"
    return line


def _report(result, into: str) -> int:
    print(_summary(result, into))
    for uid in result.failed_uids:
        print(f"  failed: {uid}")
    if result.cancelled:
        return exit_codes.INTERRUPTED
    return exit_codes.OK if result.ok else exit_codes.FAILED


def _move_hint(status: int, move_ae: str, here: bool) -> str:
    """What to do when the PACS refused a C-MOVE as a whole, or "": 0xA801 says it does not know
    the Move Destination; Orthanc says 0xC000 with no sub-operation for that (and for a known one
    it could not connect to: its log tells which). `here`: the destination is this box, which a
    C-GET reaches without the PACS knowing it."""
    if status == 0xA801:
        hint = f"the PACS does not know {move_ae} as a move destination: add it to the PACS's modality list"
    elif status & 0xF000 == 0xC000:
        hint = (f"the PACS may not know {move_ae} as a move destination (or could not connect to it): add it "
                "to the PACS's modality list, with its host and port")
    else:
        return ""
    return hint + (", or use --get" if here else "")


def _move(loaded, peer, targets, model, cancel, to: str | None) -> int:
    from gateway.config import _check_ae_title
    from gateway.dicom.qr_scu import Interrupted, QrError, move, retrieve_identifier

    cfg = loaded.config
    move_ae = to or cfg.qr_scu.move_destination or cfg.ae.title
    try:
        move_ae = _check_ae_title(move_ae)
    except ValueError as exc:
        raise _usage(f"retrieve: --to: {exc}") from None
    here = move_ae == cfg.ae.title
    if here:
        from gateway import cli

        if cli._service_pid(loaded.buffer_dir) is None:
            print(f"retrieve: a C-MOVE to {move_ae} lands at the running service, and none runs on this buffer "
                  "(start it: dicom-gateway run; or retrieve with --get)", file=sys.stderr)
            return exit_codes.FAILED
        if cfg.peer_by_ae(peer.ae_title) is None and not cfg.ae.accept_unknown_callers:
            print(f"note: {peer.ae_title} is not in [peers]: the service refuses its C-STOREs unless the PACS "
                  "sends under the title of a peer that may store", file=sys.stderr)
    idents = [retrieve_identifier(level, keys) for level, keys in targets]
    print(f"C-MOVE from {peer.ae_title} to {move_ae}", flush=True)
    try:
        with _cancel_on_sigint(cancel):
            result = move(peer, idents, move_ae, model, cancel, _progress)
    except Interrupted:
        raise  # cmd_retrieve says it, exit 130
    except QrError as exc:
        hint = _move_hint(exc.status, move_ae, here) if exc.status is not None else ""
        raise QrError(f"{exc}; {hint}" if hint else str(exc), exc.status) from None
    code = _report(result, "the buffer" if here else move_ae)
    if here:
        _holds(loaded, targets)
    return code


def _holds(loaded, targets) -> None:
    """The last line of a retrieve into this box, C-MOVE or C-GET alike: what the buffer holds of
    the studies asked (whatever this retrieve added to it)."""
    studies = [keys["StudyInstanceUID"] for _, keys in targets if "StudyInstanceUID" in keys]
    if studies:
        n = _study_counts(loaded, studies)
        print(f"the buffer holds {n} instance{'s' if n != 1 else ''} of "
              f"{'this study' if len(studies) == 1 else 'these studies'}")


def _get(loaded, peer, find_peer, targets, model, cancel, lookup, step: list[str]) -> int:
    from gateway import cli
    from gateway.dicom.net.listener import configure_pynetdicom
    from gateway.dicom.qr_scu import Interrupted, QrError, RetrievedStore, get, retrieve_identifier
    from gateway.dicom.store_scp import StoreSCP
    from gateway.events import EventBus
    from gateway.part10.attributes import configure_pydicom

    cfg = loaded.config
    with _cancel_on_sigint(lookup):
        classes = _sop_classes(find_peer, targets, model, cfg.qr_scu.max_results, lookup)
    if lookup.requested:
        raise Interrupted(find_peer, established=True)
    if not classes:
        raise QrError(f"{peer.ae_title} lists no instances (no SOP Class UID at the IMAGE level) for what was asked")
    idents = [retrieve_identifier(level, keys) for level, keys in targets]
    step[0] = ""  # the C-GET's own association next
    with cli.buffer_for_writing(loaded) as (buffer, beside):
        configure_pydicom()
        configure_pynetdicom(buffer.files.incoming, buffer.files.check_reserve, cfg.ae.max_pdu)
        store = RetrievedStore(StoreSCP(cfg, buffer, EventBus()), peer.ae_title)
        print(f"C-GET from {peer.ae_title}, over the same association", flush=True)
        with _cancel_on_sigint(cancel):
            result = get(peer, idents, classes, store, model, cancel, _progress)
    code = _report(result, "the buffer")
    if store.refused:
        # Each also counted failed by the PACS; why is in the StoreSCP's warning (a refused C-STORE).
        print(f"  refused by this box's intake checks: {store.refused}")
    if store.stored:
        if beside:
            cli._wake_service(loaded.buffer_dir)
        else:
            print("no service is running on this buffer: routes, if any, act at its next start")
    if store.refused and code == exit_codes.OK:
        code = exit_codes.FAILED
    _holds(loaded, targets)
    return code
