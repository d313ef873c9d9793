"""File IDs of a DICOM file-set: the rules (PS3.10 8.2, PS3.12 F.3 / R.3) and the naming scheme.

A File ID is a sequence of 1 to 8 components, each 1 to 8 characters from A-Z, 0-9 and "_"
(PS3.10 8.2: the ISO 9660 level 1 subset every medium of PS3.12 can hold). No extension: PS3.12
forbids one, and a reader takes no meaning from the names (PS3.10 8.5), so the names are counters
that say nothing about the patient: DICOM/P0000001/S0000001/S0000001/I0000001 is the first
instance of the first series of the first study of the first patient.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_COMPONENTS = 8
MAX_COMPONENT_LENGTH = 8
ROOT = "DICOM"
# The counters run to seven digits behind a one-letter prefix: eight characters, PS3.10 8.2.
_MAX_COUNT = 9_999_999
_COMPONENT = re.compile(r"[A-Z0-9_]{1,8}")


class FileIdError(ValueError):
    """A File ID breaks PS3.10 8.2; the message is one line naming the rule."""


def check_file_id(components: Sequence[str]) -> None:
    """Refuse a non-conformant File ID (PS3.10 8.2).

    components: the File ID's components, root first, e.g. ("DICOM", "P0000001", ...).
    Raises FileIdError with a one-line reason naming the first broken rule.
    """
    if isinstance(components, str):
        raise FileIdError(f"File ID {components!r} must be given as components, not one string")
    if not components:
        raise FileIdError("File ID has no component (PS3.10 8.2 needs 1 to 8)")
    if len(components) > MAX_COMPONENTS:
        raise FileIdError(f"File ID {'/'.join(components)!r} has {len(components)} components "
                          f"(PS3.10 8.2 allows at most {MAX_COMPONENTS})")
    for part in components:
        if not isinstance(part, str) or not part:
            raise FileIdError(f"File ID {'/'.join(map(str, components))!r} has an empty component")
        if len(part) > MAX_COMPONENT_LENGTH:
            raise FileIdError(f"File ID component {part!r} has {len(part)} characters "
                              f"(PS3.10 8.2 allows at most {MAX_COMPONENT_LENGTH})")
        if not _COMPONENT.fullmatch(part):
            bad = next(c for c in part if not _COMPONENT.fullmatch(c))
            raise FileIdError(f"File ID component {part!r} has the character {bad!r} "
                              "(PS3.10 8.2 allows only A-Z, 0-9 and _)")


def parse_file_id(text: str) -> tuple[str, ...]:
    """Split a relative path "DICOM/P0000001/..." (or "DICOM\\P0000001") into checked components.

    Raises FileIdError (one line) when the result breaks PS3.10 8.2.
    """
    components = tuple(re.split(r"[/\\]", text))
    check_file_id(components)
    return components


def file_id_path(components: Sequence[str]) -> str:
    """The File ID as a relative POSIX path ("DICOM/P0000001/...") after checking it (PS3.10 8.2)."""
    check_file_id(components)
    return "/".join(components)


def _counter(prefix: str, n: int) -> str:
    if not 1 <= n <= _MAX_COUNT:
        raise FileIdError(f"counter {n} for {prefix!r} is outside 1..{_MAX_COUNT} (PS3.10 8.2 "
                          "limits a component to 8 characters)")
    return f"{prefix}{n:07d}"


def instance_file_id(patient: int, study: int, series: int, instance: int,
                     root: str = ROOT) -> tuple[str, ...]:
    """The File ID of an instance from its 1-based counters: (root, Pnnnnnnn, Snnnnnnn, Snnnnnnn, Innnnnnn).

    patient counts patients in the file-set, study the studies of that patient, series the series
    of that study, instance the instances of that series; distinct counters give distinct IDs.
    Raises FileIdError for a counter outside 1..9999999 or a bad root.
    """
    components = (root, _counter("P", patient), _counter("S", study), _counter("S", series),
                   _counter("I", instance))
    check_file_id(components)
    return components


class FileIdAllocator:
    """Hands out collision-free instance File IDs in order of first sight (PS3.10 8.2).

    allocate(patient_key, study_key, series_key) -> components; the keys are any hashable values
    (the Patient ID, Study and Series Instance UIDs); the same keys in the same order give the same
    IDs, whatever the names of the source files.
    """

    def __init__(self, root: str = ROOT):
        check_file_id((root,))
        self.root = root
        self._patients: dict[object, int] = {}
        self._studies: dict[tuple[object, object], int] = {}
        self._studies_of: dict[object, int] = {}
        self._series: dict[tuple[object, object, object], int] = {}
        self._series_of: dict[tuple[object, object], int] = {}
        self._instances_of: dict[tuple[object, object, object], int] = {}
        # (root, Pnnnnnnn, Snnnnnnn, Snnnnnnn) per series, checked once: every File ID of a series
        # shares these four strings, and only its last component is new (a plan holds thousands).
        self._prefix_of: dict[tuple[object, object, object], tuple[str, ...]] = {}

    def allocate(self, patient_key: object, study_key: object, series_key: object) -> tuple[str, ...]:
        p = self._patients.setdefault(patient_key, len(self._patients) + 1)
        sk = (patient_key, study_key)
        if sk not in self._studies:
            self._studies_of[patient_key] = self._studies_of.get(patient_key, 0) + 1
            self._studies[sk] = self._studies_of[patient_key]
        rk = (patient_key, study_key, series_key)
        if rk not in self._series:
            self._series_of[sk] = self._series_of.get(sk, 0) + 1
            self._series[rk] = self._series_of[sk]
        n = self._instances_of[rk] = self._instances_of.get(rk, 0) + 1
        prefix = self._prefix_of.get(rk)
        if prefix is None:
            prefix = self._prefix_of[rk] = instance_file_id(p, self._studies[sk], self._series[rk], 1,
                                                            self.root)[:-1]
        # The counter is the only part not checked with the prefix; _counter bounds it.
        return prefix + (_counter("I", n),)
