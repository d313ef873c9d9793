"""The current procedure: which worklist item (or unscheduled identity) the next capture is for.

One `CurrentProcedure` per service, shared by the worklist service (which hands it each worklist
it uses), the operator verbs (gateway/commands.py: select, next, previous, unscheduled; the CLI
through the control socket, the front panel in-process) and the capture (which asks
for_capture() when a frame is taken: the ProcedureSource of gateway/capture/service.py).
Thread-safe: one lock around the list and the choice.

The rules:
- The operator's choice stands until the operator changes it: a refreshed worklist never moves it,
  and a chosen item that leaves the worklist (the RIS started or closed it) stays current, because
  the images being taken are still for that patient.
- Automatic choice (PS3.4 K.1: the modality picks the step scheduled for it now): when nothing is
  current and exactly ONE item's Scheduled Procedure Step start (date and time) lies within
  `auto_select_minutes` of now, it becomes current ("auto"). Two or more: the operator chooses; none
  with a start time: no guess.
- next / previous walk the worklist's order and wrap around; from nothing current, next is the
  first item and previous the last.
- An unscheduled capture gets a generated Patient ID, `<prefix><YYYYMMDD>-<NNN>` (NNN from the
  buffer's day counter, gateway/buffer/worklist.py, so a restart never repeats one) or
  `<prefix><32 hex digits>` (uuid), and is flagged `scheduled=False`; its identifier holds the
  Patient ID (and Modality when configured) and nothing else: the name stays empty for the
  operator's reconciliation later (IHE SWF "unidentified patient").

Each change of the current procedure publishes procedure-selected (gateway/event_kinds.py) and
logs one line with the key and the Patient ID, never the name.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Sequence

from pydicom.dataset import Dataset

from gateway.buffer.procedure import Procedure, encode_identifier
from gateway.event_kinds import ProcedureSelected

if TYPE_CHECKING:
    from gateway.buffer.worklist import WorklistStore
    from gateway.config.worklist import WorklistSection
    from gateway.events import EventBus

log = logging.getLogger("gateway.capture.procedure")


class SelectionError(Exception):
    """A selection that cannot be made (no such position or key, an empty worklist): one line."""


def start_time(p: Procedure) -> float | None:
    """The SPS start of ``p`` as seconds since the epoch (local time, as the RIS schedules), or
    None when it has no date and time to the minute (a date alone says nothing about "now")."""
    digits = p.start[:12]
    if len(digits) < 12 or not digits.isdigit():
        return None
    try:
        return datetime.strptime(digits, "%Y%m%d%H%M").timestamp()
    except ValueError:
        return None


class CurrentProcedure:
    """The current procedure and the worklist it is chosen from (see the module docstring).

    config: the [worklist] section (auto_select_minutes, unscheduled_prefix, unscheduled_id,
    modality). events: where procedure-selected goes (None: nobody). store: the buffer's
    WorklistStore, for the day counter of generated IDs (None: "counter" IDs fall back to uuid).
    clock: seconds since the epoch (a test's fixed clock)."""

    def __init__(self, config: "WorklistSection", events: "EventBus | None" = None,
                 store: "WorklistStore | None" = None, clock: Callable[[], float] = time.time):
        self.config = config
        self.events = events
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._items: tuple[Procedure, ...] = ()
        self._current: Procedure | None = None
        # Procedures ended in this run (capture --end): never chosen automatically again; the
        # operator may choose one again (a new performed step), and is told it was ended.
        self._done: set[str] = set()

    # -- reading ------------------------------------------------------------------------------
    def current(self) -> Procedure | None:
        """What the next capture is for; None until one is chosen."""
        with self._lock:
            return self._current

    def items(self) -> tuple[Procedure, ...]:
        """The worklist it chooses from, in the SCP's order."""
        with self._lock:
            return self._items

    def position(self) -> int | None:
        """The current item's 1-based position in the worklist; None when none is current or it is
        not in the list (unscheduled, or gone from the worklist)."""
        with self._lock:
            return self._position_locked()

    def _position_locked(self) -> int | None:
        if self._current is None:
            return None
        for i, p in enumerate(self._items):
            if p.key == self._current.key:
                return i + 1
        return None

    # -- changing -----------------------------------------------------------------------------
    def set_worklist(self, items: Sequence[Procedure]) -> None:
        """The worklist in use is now ``items``. The current choice stands (refreshed from the new
        list when its key is there); with none current, the automatic choice is tried."""
        with self._lock:
            self._items = tuple(items)
            if self._current is not None:
                for p in self._items:
                    if p.key == self._current.key:
                        self._current = p
                        break
                return
            chosen = self._auto_locked()
            if chosen is None:
                return
            self._current = chosen
        self._tell(chosen, "auto")

    def auto_select(self) -> Procedure | None:
        """Try the automatic choice now (time passes between refreshes): the item chosen, or None
        when something is current already or not exactly one item is scheduled now."""
        with self._lock:
            if self._current is not None:
                return None
            chosen = self._auto_locked()
            if chosen is None:
                return None
            self._current = chosen
        self._tell(chosen, "auto")
        return chosen

    def _auto_locked(self) -> Procedure | None:
        window = self.config.auto_select_minutes * 60
        if window <= 0:
            return None
        now = self.clock()
        due = [p for p in self._items if (t := start_time(p)) is not None and abs(t - now) <= window
               and p.key not in self._done]
        return due[0] if len(due) == 1 else None

    def select(self, which: int | str) -> Procedure:
        """Make current the item at 1-based position ``which`` (an int, or text of digits) or with
        key ``which``. SelectionError naming the valid range or the unknown key."""
        with self._lock:
            chosen = self._find_locked(which)
            self._current = chosen
        self._tell(chosen, "operator")
        return chosen

    def _find_locked(self, which: int | str) -> Procedure:
        if not self._items:
            raise SelectionError("the worklist is empty: nothing to select (an unscheduled capture needs no worklist)")
        if isinstance(which, int) or (isinstance(which, str) and which.isdigit()):
            n = int(which)
            if not 1 <= n <= len(self._items):
                raise SelectionError(f"no item {n}: the worklist has items 1 to {len(self._items)}")
            return self._items[n - 1]
        for p in self._items:
            if p.key == which:
                return p
        raise SelectionError(f"no worklist item has the key {which!r}")

    def step(self, delta: int) -> Procedure:
        """next (+1) / previous (-1) in the worklist, wrapping around; from nothing current (or from
        an item no longer listed), +1 is the first item and -1 the last. SelectionError when the
        worklist is empty."""
        with self._lock:
            if not self._items:
                raise SelectionError("the worklist is empty: nothing to select")
            pos = self._position_locked()
            if pos is None:
                index = 0 if delta > 0 else len(self._items) - 1
            else:
                index = (pos - 1 + delta) % len(self._items)
            chosen = self._current = self._items[index]
        self._tell(chosen, "operator")
        return chosen

    def next(self) -> Procedure:
        """The next item (wraps)."""
        return self.step(+1)

    def previous(self) -> Procedure:
        """The previous item (wraps)."""
        return self.step(-1)

    def unscheduled(self) -> Procedure:
        """A new unscheduled identity, made current: a generated Patient ID, scheduled False.
        Raises OSError only when the buffer's day counter cannot be written."""
        chosen = self.new_unscheduled()
        with self._lock:
            self._current = chosen
        self._tell(chosen, "unscheduled")
        return chosen

    def for_capture(self) -> Procedure:
        """What a capture taken now is for (the capture service's ProcedureSource,
        gateway/capture/service.py): the current procedure; with none chosen and no worklist item
        to choose from, a new unscheduled identity made current (a capture without a worklist is
        still possible, flagged). With items to choose from and none chosen, LookupError in one
        line: a capture must not guess the patient. OSError when the unscheduled counter cannot be
        kept."""
        with self._lock:
            chosen, n = self._current, len(self._items)
        if chosen is not None:
            return chosen
        if n:
            raise LookupError(f"no procedure chosen ({n} in the worklist): choose one (dicom-gateway worklist"
                              " --select N, or NEXT on the panel) or ask for an unscheduled capture")
        return self.unscheduled()

    def done(self, key: str) -> None:
        """The procedure ``key`` was ended (its MPPS completed or discontinued): no longer current,
        and the automatic choice passes it by from now on."""
        with self._lock:
            self._done.add(key)
            current = self._current
        if current is not None and current.key == key:
            self.clear()

    def was_done(self, key: str) -> bool:
        """``key`` was ended in this run (an operator choosing it again starts a new performed step)."""
        with self._lock:
            return key in self._done

    def clear(self) -> None:
        """Nothing is current (the procedure is done); the automatic choice may pick again."""
        with self._lock:
            was, self._current = self._current, None
        if was is not None:
            self._publish(ProcedureSelected(key="", patient_id="", scheduled=False, how="cleared"))
            log.info("current procedure cleared (was %s)", was.key)

    def new_unscheduled(self) -> Procedure:
        """An unscheduled identity (not made current): see the module docstring for the ID."""
        now = self.clock()
        day = time.strftime("%Y%m%d", time.localtime(now))
        prefix = self.config.unscheduled_prefix
        if self.config.unscheduled_id == "counter" and self.store is not None:
            patient_id = f"{prefix}{day}-{self.store.next_unscheduled_number(day):03d}"
        else:
            patient_id = f"{prefix}{uuid.uuid4().hex}"
        ds = Dataset()
        ds.PatientID = patient_id
        ds.PatientName = ""
        if self.config.modality:
            sps = Dataset()
            sps.Modality = self.config.modality
            ds.ScheduledProcedureStepSequence = [sps]
        return Procedure(key=f"UNSCHEDULED-{uuid.uuid4()}", identifier=encode_identifier(ds), scheduled=False,
                         patient_id=patient_id, modality=self.config.modality,
                         start=time.strftime("%Y%m%d%H%M%S", time.localtime(now)))

    # -- telling ------------------------------------------------------------------------------
    def _tell(self, p: Procedure, how: str) -> None:
        log.info("current procedure %s: %s, Patient ID %s%s", how, p.key, p.patient_id,
                 "" if p.scheduled else " (unscheduled)")
        self._publish(ProcedureSelected(key=p.key, patient_id=p.patient_id, scheduled=p.scheduled, how=how))

    def _publish(self, payload: ProcedureSelected) -> None:
        if self.events is not None:
            self.events.publish(payload)
