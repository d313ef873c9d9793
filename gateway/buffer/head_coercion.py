"""Ingest coercion in the receive stream: an object's `[[coercion]]` rules applied to the first
bytes of its data set while the rest is still arriving (the bench target is the
spine's ingest with rules >= 0.9x of without).

Why: coercing after the object is received (Intake._coerce, gateway/buffer/coercion.py) reads the
header twice from the spool file, writes a second file of the whole object (the pixel data copied)
and fdatasyncs it: ~2 ms CPU and one more write of the object on a C-STORE whose intake is ~2.7 ms.
Here the spool file is written once: the receiver (the fast path, gateway/dicom/net/
storage_acceptor.py, through receive_spool.SpoolFile.coerce_head) holds what it would write,
preamble and file meta included, until the header has arrived up to the first element of a group
above every group the rules read or write (always past (0400,0561), where the Original Attributes
item goes); that head is walked once in memory (coerce.read_head), the rules' values come from
the same walk, the coerced head is written in place of the held bytes (coerce.coerce_head: the
bytes coerce_file would write, so the stored object is the same), and everything after streams to
the file as without rules; the spool is fsynced once, as without rules.

Anything unusual falls back to the file path, which is unchanged and gives the same result: a head
over HEAD_CAP, a value that needs pydicom (a character set with code extensions, a number VR), a
header that does not walk, a rule that fails (the file path fails it again after the data set is
received, and the Intake refuses the object with 0x0110: the association goes on), a data set
beginning with group 0002 elements (the Intake drops them first). The pynetdicom receive path
(associations carrying other services) always takes the file path: its spool is created inside
pynetdicom before the calling AE and the command are at hand.

The Intake hands out one HeadCoercion per object (Intake.head_coercion) and takes its result back
with the received file (Intake.take): a `Coerced` when the object was coerced in the stream (its
rules, changed tags, values, warn: index, router, events and B000 as on the file path).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from gateway.buffer.coercion import CoercionFailed, Coerced, Coercer
from gateway.config.coercion import CoercionRule
from gateway.part10.coerce import CoerceError, HeadIncomplete, read_head

log = logging.getLogger("gateway.buffer.head_coercion")

# Held in memory at most this long per object; a header this large (a long private group, an icon
# image) is coerced on the file path instead.
HEAD_CAP = 1 << 20
# The Original Attributes Sequence's group: the head always reaches past it (coerce.py's rule).
_ORIGINAL_ATTRIBUTES_GROUP = 0x0400
_PIXEL_GROUP = 0x7FE0


def last_group(coercer: Coercer, rules: list[CoercionRule]) -> int | None:
    """The last group the head must hold for `rules`, or None when that is the pixel data's or
    later (never in practice: the config refuses such tags) and the file path must do it."""
    group = max([t >> 16 for t in coercer.tags_of(rules)] + [_ORIGINAL_ATTRIBUTES_GROUP])
    return None if group >= _PIXEL_GROUP else group


class HeadCoercion:
    """One object's coercion in its receive stream. feed() is called by the receiving thread;
    settle() by the Intake after the data set is complete.

    coercer, rules: the Intake's and those of the object's source; source_label: Source of
    Previous Values (0400,0564); when: the Attribute Modification DateTime for a re-send (None:
    now); group: last_group(coercer, rules)."""

    def __init__(self, coercer: Coercer, rules: list[CoercionRule], source_label: str,
                 when: datetime | None, group: int):
        self.coercer, self.rules, self.source_label, self.when, self.group = coercer, rules, source_label, when, group
        self.result: Coerced | None = None  # set when coerced here
        self.why_not = ""  # why the file path does it (for a debug line)
        self._done = False
        self._lock = threading.Lock()
        self._meta: tuple[int, str] | None = None

    def expect_meta(self, length: int, transfer_syntax: str) -> None:
        """The receiver writes the file meta itself: `length` bytes (preamble included), the data
        set in `transfer_syntax`; it is then not parsed again from the held bytes."""
        self._meta = (length, transfer_syntax)

    def feed(self, data: bytes, complete: bool) -> list | None:
        """`data`: every byte of the file written so far (preamble, file meta, the data set's
        start); complete: that is the whole file. Returns the buffers to write in its place, in
        order (the coerced head and the rest of `data`, or [data] when the file path is to do
        it), or None: hold them, more are needed (never when complete). Raises nothing: a failure
        leaves the object to the file path."""
        with self._lock:
            if self._done:
                return [data]
            if len(data) > HEAD_CAP and not complete:
                return self._fall_back(data, f"header not complete within {HEAD_CAP} bytes")
            try:
                head = read_head(data, self.group, complete, self._meta)
            except HeadIncomplete:
                return None
            except CoerceError as exc:
                return self._fall_back(data, str(exc))
            try:
                got = self.coercer.coerce_head(head, self.rules, self.source_label, self.when)
            except CoercionFailed as exc:
                # Refused on the file path with the same words once the data set is in.
                return self._fall_back(data, str(exc))
            except Exception as exc:  # noqa: BLE001 - raised here it would end the association
                log.warning("coercion in the receive stream failed (%s: %s); coerced after receiving",
                            type(exc).__name__, exc)
                return self._fall_back(data, f"{type(exc).__name__}: {exc}")
            self._done = True
            if got is None:
                self.why_not = "a value needs pydicom"
                return [data]
            coerced_bytes, self.result = got
            return [data] if coerced_bytes is None else [coerced_bytes, memoryview(data)[head.tail:]]

    def _fall_back(self, data: bytes, why: str) -> list:
        self._done, self.why_not = True, why
        return [data]

    def settle(self) -> Coerced | None:
        """The Coerced result when the object was coerced in the stream, else None (the file path
        coerces it). Later feeds write what they get unchanged."""
        with self._lock:
            if not self._done:
                self._done, self.why_not = True, "the data set ended before its head was coerced"
            return self.result
