"""gateway/dicom/qr_retrieve_scp.py without a network: the final status of a retrieve from its
sub-operation counts (PS3.4 C.4.2.2.1 / C.4.2.3.1) and the cutting of a large C-MOVE into
associations that fit the presentation context limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.buffer.retrieve_select import Match
from gateway.dicom import qr_retrieve_scp as qr
from gateway.dicom.store_scu import MAX_CONTEXTS, SendItem, contexts_for


@pytest.mark.parametrize("completed, failed, warning, status", [
    (3, 0, 0, 0x0000),  # all completed
    (2, 1, 0, 0xB000),  # some failed: Warning, with the list
    (0, 0, 2, 0xB000),  # all ended with a warning: Warning too
    (0, 2, 1, 0xB000),
    (0, 3, 0, 0xA702),  # none sent
])
def test_final_status_from_the_counts(completed, failed, warning, status):
    t = qr._Tally(remaining=0, completed=completed, failed=failed, warning=warning)
    assert t.final_status() == status


def test_fail_counts_and_lists():
    t = qr._Tally(remaining=2)
    t.fail("1.2.3")
    assert (t.remaining, t.failed, t.failed_uids) == (1, 1, ["1.2.3"])


def _match(i: int, sop_class: str, ts: str = "1.2.840.10008.1.2.1") -> Match:
    return Match(i, sop_class, f"1.2.3.{i}", ts, f"objects/x/{i}.dcm")


def test_batches_fit_the_context_limit_in_order():
    # 200 SOP classes, two contexts each (stored syntax + fallback): 63 classes per association.
    matches = [_match(i, f"1.2.840.10008.5.1.4.1.1.{i}") for i in range(200)]
    matches += [_match(200 + i, "1.2.840.10008.5.1.4.1.1.0") for i in range(1000)]  # one class, many
    batches = qr._batches(matches)
    assert [m for b in batches for m in b] == matches
    for b in batches:
        items = [SendItem(Path(m.path), m.sop_class, m.sop_uid, m.transfer_syntax) for m in b]
        assert len(contexts_for(items)) <= MAX_CONTEXTS
    assert [len(b) for b in batches[:3]] == [63, 63, 63]
    assert len(batches) == 4  # the 11 classes left share the last one with the 1000 of class 0


def test_a_class_in_two_syntaxes_needs_three_contexts():
    cls = "1.2.840.10008.5.1.4.1.1.2"
    batches = qr._batches([_match(1, cls), _match(2, cls, "1.2.840.10008.1.2.4.50")])
    assert len(batches) == 1
