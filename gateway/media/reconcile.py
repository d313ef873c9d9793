"""Import reconciliation (issue 8 item 4): the identifiers of an imported medium's instances
replaced by the local ones from a mapping file, the originals kept in the Original Attributes
Sequence (PS3.3 C.12.1.1.9; the rewrite itself is gateway/part10/coerce.py).

The reference is IHE RAD Import Reconciliation Workflow (IRWF): an Importer coerces Patient ID,
Issuer of Patient ID, Patient's Name and the order's Accession Number of foreign evidence objects
to the local values before they enter the local archive, and records the originals. IRWF gets
the local values from a worklist or a PDQ query; this box has neither (yet), so an operator or a
script keeps them in a file.

The mapping file: CSV (RFC 4180), UTF-8 (a BOM is tolerated), a header row naming the columns in
any order; blank lines and lines starting with "#" are ignored.

    source_patient_id,source_issuer,patient_id,issuer,patient_name,source_accession,accession
    EXT-123,,MRN0042,HOSP_A,Doe^Jane,,
    EXT-123,,MRN0042,HOSP_A,Doe^Jane,A77,ACC-9001

Columns: source_patient_id and patient_id are required in the header and in every row; the others
are optional columns, and an empty cell means "leave that attribute as it is".
  source_patient_id  the Patient ID (0010,0020) on the medium
  source_issuer      the Issuer of Patient ID (0010,0021) on the medium; empty: any issuer
  patient_id         the local Patient ID (LO, at most 64 characters)
  issuer             the local Issuer of Patient ID (LO)
  patient_name       the local Patient's Name (PN: "Family^Given^Middle^Prefix^Suffix")
  source_accession   with accession: an instance of this patient whose Accession Number
  accession          (0008,0050) is source_accession gets accession (SH, at most 16 characters)

Why one file with one row kind: a patient row and its accession rows are kept together, and an
accession is matched only within its patient (accession numbers of two foreign sites collide).
Rows of one patient key (source_patient_id, source_issuer) must agree on patient_id, issuer and
patient_name. A row matches an instance when the Patient ID is equal and, when source_issuer is
given, the Issuer of Patient ID too; a row with an issuer wins over one without. Values are
compared as DICOM reads them (padding removed), case-sensitively (LO values are).

When the new Patient ID is written, the Issuer of Patient ID is recorded in the Modified
Attributes item even when it does not change (PS3.3 C.12.1.1.9), and Instance Coercion DateTime
(0008,0015) is set. A new value that is not ASCII, in an instance that declares no Specific
Character Set, makes the instance UTF-8 ("ISO_IR 192", a superset of the default repertoire that
instance's other text is in by rule); in any other character set that cannot hold it, the
instance is refused (coerce.CoerceError).

Loading raises MappingError naming file:line for every problem (check-config lists them); nothing
here logs or returns a patient name (matches carry the row's line number only). Reconciliation
is the configured whole (the mapping, what becomes of an unmatched instance, the Modifying System)
that gateway/media/importer.py applies.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.part10.coerce import SPECIFIC_CHARACTER_SET

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
ISSUER_OF_PATIENT_ID = 0x00100021
ACCESSION_NUMBER = 0x00080050
INSTANCE_COERCION_DATETIME = 0x00080015

COLUMNS = ("source_patient_id", "source_issuer", "patient_id", "issuer", "patient_name",
           "source_accession", "accession")
REQUIRED = ("source_patient_id", "patient_id")
MAX_ROWS = 100_000  # a mapping file is read at each import: bound the work
MAX_BYTES = 16 << 20
_NAMES = {PATIENT_ID: "Patient ID", ISSUER_OF_PATIENT_ID: "Issuer of Patient ID",
          PATIENT_NAME: "Patient's Name", ACCESSION_NUMBER: "Accession Number"}


class MappingError(OSError):
    """The mapping file cannot be used: every problem, one "FILE:LINE: what" line each.
    An OSError because it is a file on disk gone wrong: the importer's callers (the CLI, the
    media service) already turn an OSError into one line and a failed import."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems

    def __str__(self) -> str:
        return "; ".join(self.problems)


@dataclass(frozen=True)
class PatientRow:
    line: int
    patient_id: str
    issuer: str
    patient_name: str


@dataclass(frozen=True)
class Match:
    """What reconciles one instance. changes: tag -> new value (str) for coerce_file; record: tags
    recorded unchanged beside them; line: the mapping row that matched (for the report: no patient
    data); attributes: the names of what is replaced, for the operator ("Patient ID, ...")."""

    line: int
    changes: dict[int, str]
    record: tuple[int, ...]

    @property
    def attributes(self) -> str:
        return ", ".join(_NAMES[t] for t in sorted(self.changes) if t in _NAMES)


def _check(value: str, vr: str, limit: int, column: str) -> str | None:
    """Why `value` is not a valid `vr` value, or None (PS3.5 6.2: LO/SH no backslash nor control
    characters; PN at most 5 components a group, 64 characters a group)."""
    if any(ord(c) < 32 for c in value):
        return f"{column}: control characters are not allowed"
    if "\\" in value:
        return f"{column}: a backslash would make it two values"
    if vr == "PN":
        for group in value.split("="):
            if len(group) > limit:
                return f"{column}: a name component group is at most {limit} characters"
            if group.count("^") > 4:
                return f"{column}: at most 5 name components (Family^Given^Middle^Prefix^Suffix)"
        if value.count("=") > 2:
            return f"{column}: at most 3 component groups"
    elif len(value) > limit:
        return f"{column}: at most {limit} characters ({vr})"
    return None


_LIMITS = {"source_patient_id": ("LO", 64), "source_issuer": ("LO", 64), "patient_id": ("LO", 64),
           "issuer": ("LO", 64), "patient_name": ("PN", 64), "source_accession": ("SH", 16),
           "accession": ("SH", 16)}


class Mapping:
    """A loaded, validated mapping file (see the module docstring for the format).
    path: where it was read; patients: (source_patient_id, source_issuer) -> PatientRow;
    accessions: (source_patient_id, source_issuer, source_accession) -> (line, accession)."""

    def __init__(self, path: Path, patients: dict[tuple[str, str], PatientRow],
                 accessions: dict[tuple[str, str, str], tuple[int, str]]):
        self.path = path
        self.patients = patients
        self.accessions = accessions

    @classmethod
    def load(cls, path: Path | str) -> "Mapping":
        """Read and validate the file. Raises MappingError listing every problem as
        "FILE:LINE: what" (LINE 0 for the file as a whole)."""
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > MAX_BYTES:
                raise MappingError([f"{path}:0: {size} bytes: a mapping file is at most {MAX_BYTES >> 20} MiB"])
            raw = path.read_bytes()
        except MappingError:
            raise
        except OSError as exc:
            raise MappingError([f"{path}:0: cannot read the mapping file: {exc.strerror or exc}"]) from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[:exc.start].count(b"\n") + 1
            raise MappingError([f"{path}:{line}: not UTF-8 (byte {exc.start})"]) from None
        return cls._parse(path, text)

    @classmethod
    def _parse(cls, path: Path, text: str) -> "Mapping":
        problems: list[str] = []
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        header: list[str] | None = None
        patients: dict[tuple[str, str], PatientRow] = {}
        accessions: dict[tuple[str, str, str], tuple[int, str]] = {}
        rows = 0
        try:
            for cells in reader:
                line = reader.line_num
                if not cells or not "".join(cells).strip() or cells[0].lstrip().startswith("#"):
                    continue
                if header is None:
                    header = [c.strip().lower() for c in cells]
                    unknown = [c for c in header if c not in COLUMNS]
                    missing = [c for c in REQUIRED if c not in header]
                    twice = sorted({c for c in header if header.count(c) > 1})
                    if unknown:
                        problems.append(f"{path}:{line}: unknown column(s) {', '.join(unknown)} "
                                        f"(the columns are {', '.join(COLUMNS)})")
                    if missing:
                        problems.append(f"{path}:{line}: the header lacks {', '.join(missing)}")
                    if twice:
                        problems.append(f"{path}:{line}: column(s) {', '.join(twice)} named twice")
                    if problems:
                        break
                    continue
                rows += 1
                if rows > MAX_ROWS:
                    problems.append(f"{path}:{line}: more than {MAX_ROWS} rows")
                    break
                if len(cells) != len(header):
                    problems.append(f"{path}:{line}: {len(cells)} cells, the header has {len(header)}")
                    continue
                row = {c: v.strip() for c, v in zip(header, cells)}
                bad = [why for c, v in row.items() if v and (why := _check(v, *_LIMITS[c], c))]
                bad += [f"{c} is empty" for c in REQUIRED if not row.get(c)]
                if bool(row.get("source_accession")) != bool(row.get("accession")):
                    bad.append("source_accession and accession go together (both or neither)")
                if bad:
                    problems.append(f"{path}:{line}: " + "; ".join(bad))
                    continue
                key = (row["source_patient_id"], row.get("source_issuer", ""))
                patient = PatientRow(line, row["patient_id"], row.get("issuer", ""), row.get("patient_name", ""))
                known = patients.setdefault(key, patient)
                if (known.patient_id, known.issuer, known.patient_name) != \
                        (patient.patient_id, patient.issuer, patient.patient_name):
                    problems.append(f"{path}:{line}: maps the same source patient as line {known.line} "
                                    "to another patient_id, issuer or patient_name")
                    continue
                if row.get("source_accession"):
                    akey = key + (row["source_accession"],)
                    if akey in accessions:
                        problems.append(f"{path}:{line}: source_accession already mapped at line "
                                        f"{accessions[akey][0]} for this patient")
                        continue
                    accessions[akey] = (line, row["accession"])
        except csv.Error as exc:
            problems.append(f"{path}:{reader.line_num}: not valid CSV: {exc}")
        if header is None and not problems:
            problems.append(f"{path}:0: no header row (the columns are {', '.join(COLUMNS)})")
        if problems:
            raise MappingError(problems)
        return cls(path, patients, accessions)

    def match(self, patient_id: str, issuer: str, accession: str, patient_name: str, charset: str,
              now: datetime | None = None) -> Match | None:
        """What to change in an instance with these values (as read: padding removed; charset:
        its Specific Character Set, "" when absent), or None when no row maps its patient. A Match
        with no changes: the instance holds the local values already (imported as it is)."""
        key = (patient_id, issuer) if (patient_id, issuer) in self.patients else (patient_id, "")
        row = self.patients.get(key)
        if row is None or not patient_id:
            return None
        wanted = {PATIENT_ID: (row.patient_id, patient_id), ISSUER_OF_PATIENT_ID: (row.issuer, issuer),
                  PATIENT_NAME: (row.patient_name, patient_name)}
        line = row.line
        mapped = self.accessions.get(key + (accession,)) if accession else None
        if mapped is not None:
            line = mapped[0]
            wanted[ACCESSION_NUMBER] = (mapped[1], accession)
        changes = {tag: new for tag, (new, old) in wanted.items() if new and new != old}
        if not changes:
            return Match(line, {}, ())
        if not charset.strip() and not all(v.isascii() for v in changes.values()):
            changes[SPECIFIC_CHARACTER_SET] = "ISO_IR 192"
        when = now or datetime.now().astimezone()
        changes[INSTANCE_COERCION_DATETIME] = when.strftime("%Y%m%d%H%M%S.%f") + when.strftime("%z")
        # PS3.3 C.12.1.1.9: the issuer beside a replaced Patient ID, even unchanged or absent.
        record = (ISSUER_OF_PATIENT_ID,) if PATIENT_ID in changes and ISSUER_OF_PATIENT_ID not in changes else ()
        return Match(line, changes, record)


def check_mapping(path: str) -> list[str]:
    """For check-config: the problems of the mapping file at `path` ("" = reconciliation off),
    each as "media.import.reconcile: FILE:LINE: what"."""
    if not path:
        return []
    try:
        Mapping.load(path)
    except MappingError as exc:
        return [f"media.import.reconcile: {p}" for p in exc.problems]
    return []


@dataclass(frozen=True)
class Reconciliation:
    """Import reconciliation as configured (`[media.import]`): the loaded mapping, what becomes of
    an instance no row maps ("import" unchanged | "skip"), and who rewrites (Modifying System,
    LO: "<AE title> dicom-gateway")."""

    mapping: Mapping
    unmatched: str = "import"
    modifying_system: str = "dicom-gateway"

    @classmethod
    def configured(cls, config) -> "Reconciliation | None":
        """From a Config's `[media.import]`; None when reconciliation is off. Raises MappingError
        (an OSError, "FILE:LINE: what") when the mapping file cannot be used."""
        section = config.media.import_
        if not section.reconcile:
            return None
        return cls(Mapping.load(section.reconcile), section.unmatched,
                   f"{config.ae.title} dicom-gateway"[:64])
