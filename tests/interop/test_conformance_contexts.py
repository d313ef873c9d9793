"""The statement's presentation contexts against a running gateway: pynetdicom, as a real
requestor, proposes every (abstract syntax, transfer syntax) pair CONFORMANCE.md lists for the
listener (Table 4.2-4, read from the committed document, not from the generator), each as a
context of its own, and the gateway must accept exactly those; a pair the statement does not list
(an abstract syntax it does not name, or a transfer syntax not listed for that abstract syntax)
must be rejected.

Both receive paths are covered: associations that propose only Storage and Verification contexts
are negotiated by the gateway's own acceptor (the fast path), the others by pynetdicom
(net/acceptor.py `_is_fast`); each pair is proposed once on each path. Contexts are batched,
127 to an association, so ~50 associations cover the ~2,600 pairs.
"""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path

import pytest
from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AE

from gateway.dicom.sop_classes import NON_PATIENT_STORAGE

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.interop, pytest.mark.timeout(600)]

# PS3.8 9.3.2.2: context IDs are the odd numbers 1..255, so 128 per association.
PER_ASSOCIATION = 127
EXPLICIT_LE = "1.2.840.10008.1.2.1"
# SOP classes the statement does not name, some of which the gateway may one day serve.
NOT_IN_STATEMENT = sorted(NON_PATIENT_STORAGE) + [
    "1.2.840.10008.1.3.10",  # Media Storage Directory Storage: never sent by C-STORE
    "1.2.840.10008.1.20.2",  # Storage Commitment Pull Model (retired)
    "1.2.840.10008.5.1.4.31",  # Modality Worklist FIND: not implemented yet
    "1.2.840.10008.5.1.4.1.2.3.1",  # Patient/Study Only FIND (retired): not served (issue 11 serves the two roots)
    "1.2.826.0.1.3680043.9.9999.7",  # a private class not in [storage] extra_sop_classes
]


def _config(tmp_path) -> dict:
    # Print contexts are accepted only with print enabled; the simulated imager needs no device.
    return {"print": {"enabled": True, "printer": {"kind": "serial-sim", "sim_out": str(tmp_path / "films")}}}


_UID = re.compile(r"\b\d+(?:\.\d+)+\b")
VERIFICATION = "1.2.840.10008.1.1"
PRINT_META = "1.2.840.10008.5.1.1.9"


def _rows(text: str, start: str) -> list[list[str]]:
    """The cells of the table that follows the line starting with `start` (header and rule left out)."""
    lines = text[text.index(start):].split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("| "))
    rows = []
    for line in lines[at + 2:]:
        if not line.startswith("| "):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def _statement() -> list[tuple[str, tuple[str, ...]]]:
    """(abstract syntax, transfer syntaxes listed for it) for every row of Table 4.2-4 of the
    committed CONFORMANCE.md; the storage row names Table 4.2-2 and the retired-class table."""
    text = (ROOT / "CONFORMANCE.md").read_text(encoding="utf-8")
    storage = [row[-1] for row in _rows(text, "\nTable 4.2-2 ")]
    storage += [row[-1] for row in _rows(text, "| Retired storage SOP class | UID |")]
    assert all(_UID.fullmatch(u) for u in storage) and len(storage) > 150
    out = []
    for abstract, syntaxes, *_ in _rows(text, "\nTable 4.2-4 "):
        listed = tuple(_UID.findall(syntaxes))
        uids = storage if abstract.startswith("every storage SOP class of Table 4.2-2") else _UID.findall(abstract)
        out += [(uid, listed) for uid in uids]
    return out


def _unlisted_syntaxes(listed: tuple[str, ...], turn: int) -> str:
    """A transfer syntax pydicom knows that the statement does not list for this abstract syntax,
    a different one in turn, so that every kind (compressed, retired, video) is tried somewhere."""
    others = [str(t) for t in AllTransferSyntaxes if str(t) not in listed]
    return others[turn % len(others)]


def _propose(port: int, pairs: list[tuple[str, str]]) -> tuple[set, set]:
    """One association proposing each pair as its own context: (accepted pairs, rejected pairs)."""
    assert len(pairs) <= PER_ASSOCIATION
    ae = AE(ae_title="STORESCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for abstract, syntax in pairs:
        ae.add_requested_context(abstract, [syntax])
    assoc = ae.associate("127.0.0.1", port, ae_title="EDGE")
    assert assoc.is_established, "association not established"
    try:
        by_id = {cx.context_id: (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
                 for cx in assoc.requestor.requested_contexts}
        accepted = {by_id[cx.context_id] for cx in assoc.accepted_contexts}
        rejected = {by_id[cx.context_id] for cx in assoc.rejected_contexts}
    finally:
        assoc.release()
    assert accepted | rejected == set(pairs), "a proposed context got no answer"
    return accepted, rejected


def _batches(pairs: list, size: int):
    """The pairs in a fixed shuffled order, so that every association has some context to accept
    (pynetdicom's requestor aborts one that has none) and mixes listed and unlisted ones."""
    pairs = list(pairs)
    random.Random(9).shuffle(pairs)
    for i in range(0, len(pairs), size):
        yield pairs[i:i + size]


def _check(path: str, accepted: set, rejected: set, listed: list, unlisted: list) -> None:
    missing = sorted(set(listed) - accepted)
    extra = sorted(accepted - set(listed))
    assert not missing, f"{path}: listed in CONFORMANCE.md but rejected: {missing[:10]} ({len(missing)})"
    assert not extra, f"{path}: accepted but not in CONFORMANCE.md: {extra[:10]} ({len(extra)})"
    assert rejected == set(unlisted)


def test_gateway_accepts_exactly_the_contexts_of_the_statement(gateway_factory, tmp_path):
    contexts = _statement()
    listed = [(abstract, t) for abstract, syntaxes in contexts for t in syntaxes]
    assert len(listed) > 2500
    # What the fast path serves: storage classes (the row naming Table 4.2-2) and Verification.
    storage_row = max(contexts, key=lambda c: sum(1 for o in contexts if o[1] == c[1]))[1]
    # Not listed: every other syntax for the few non-storage classes; for the ~200 storage classes,
    # which share one list, one other syntax each, in turn (every one is tried on some class).
    unlisted = [(abstract, _unlisted_syntaxes(syntaxes, i)) for i, (abstract, syntaxes) in enumerate(contexts)
                if syntaxes == storage_row]
    unlisted += [(abstract, str(t)) for abstract, syntaxes in contexts if syntaxes != storage_row
                 for t in AllTransferSyntaxes if str(t) not in syntaxes]
    unlisted += [(uid, EXPLICIT_LE) for uid in NOT_IN_STATEMENT]
    fast = {abstract for abstract, syntaxes in contexts if syntaxes == storage_row} | {VERIFICATION}
    print_pair = next((abstract, syntaxes[0]) for abstract, syntaxes in contexts if abstract == PRINT_META)

    gw = gateway_factory(_config(tmp_path))
    accepted, rejected = set(), set()
    # Fast path: only storage and verification contexts, listed or with an unlisted syntax.
    fast_pairs = [p for p in itertools.chain(listed, unlisted) if p[0] in fast]
    for batch in _batches(fast_pairs, PER_ASSOCIATION):
        a, r = _propose(gw.port, batch)
        accepted |= a
        rejected |= r
    _check("fast path", accepted, rejected, [p for p in listed if p[0] in fast], [p for p in unlisted if p[0] in fast])

    # pynetdicom's path: every batch carries a print context, which the fast path does not serve.
    accepted, rejected = set(), set()
    for batch in _batches(listed + unlisted, PER_ASSOCIATION - 1):
        a, r = _propose(gw.port, batch + ([print_pair] if print_pair not in batch else []))
        accepted |= a
        rejected |= r
    _check("pynetdicom", accepted, rejected, listed, unlisted)
    assert "Traceback" not in gw.log
