"""The panel's alarms: errors a radiographer must acknowledge, in the alarm states of ANSI/ISA-18.2.

An alarm is keyed by what it is about ("disk", "printer", "export:cd", "dead:pacs"...), so a
second failure of the same thing updates one alarm instead of stacking a dozen. Its state:

  UNACK_ACTIVE   the condition holds and nobody acknowledged it     error LED blinks fast
  ACK_ACTIVE     acknowledged, the condition still holds            error LED steady
  UNACK_RTN      the condition cleared before anyone acknowledged   error LED blinks slowly
  (gone)         acknowledged and cleared

ISA-18.2 keeps a cleared alarm until it is acknowledged ("return to normal, unacknowledged") so
that an operator who was away still learns that the printer jammed at 03:00 and cleared itself.
A momentary alarm (a job dead-lettered, an export that failed) has no condition to clear: it is
raised already returned to normal, and acknowledging it makes it go.

Texts hold no patient data: they come from event payloads, which hold none (gateway/event_kinds.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class AlarmState(Enum):
    """ISA-18.2 alarm states the panel distinguishes (shelved / suppressed are not used)."""

    UNACK_ACTIVE = "unacknowledged"
    ACK_ACTIVE = "acknowledged"
    UNACK_RTN = "cleared, unacknowledged"


@dataclass(frozen=True)
class Alarm:
    """One alarm. key: what it is about (one alarm per key). title: a few words for line 1
    ("PRINTER FAULT"). detail: one line saying why (the event's reason). state: AlarmState.
    raised: when it (last) became active, seconds since the epoch. seq: raise order, for "newest"."""

    key: str
    title: str
    detail: str
    state: AlarmState
    raised: float
    seq: int

    @property
    def acknowledged(self) -> bool:
        """Acknowledged and still active (an acknowledged alarm that cleared is gone)."""
        return self.state is AlarmState.ACK_ACTIVE


class Alarms:
    """The alarm list: raise (active or momentary), clear, acknowledge. Pure bookkeeping; the panel
    calls it from its event fold and its ACK button."""

    def __init__(self) -> None:
        self._by_key: dict[str, Alarm] = {}
        self._seq = 0

    def raise_(self, key: str, title: str, detail: str, at: float, momentary: bool = False) -> None:
        """The condition `key` holds now (momentary: it happened and is over).

        A condition that is already active is not news: its detail is updated and its state kept
        (a full disk refusing every image must not undo the operator's acknowledgement per image;
        ISA-18.2 does not re-annunciate a standing alarm). A momentary alarm, or a condition that
        had returned to normal, is news: unacknowledged again."""
        old = self._by_key.get(key)
        if not momentary and old is not None and old.state is not AlarmState.UNACK_RTN:
            self._by_key[key] = replace(old, title=title, detail=detail)
            return
        self._seq += 1
        state = AlarmState.UNACK_RTN if momentary else AlarmState.UNACK_ACTIVE
        self._by_key[key] = Alarm(key, title, detail, state, at, self._seq)

    def clear(self, key: str) -> None:
        """The condition `key` no longer holds: an acknowledged alarm goes, an unacknowledged one
        stays as UNACK_RTN until acknowledged. Clearing an absent key does nothing."""
        alarm = self._by_key.get(key)
        if alarm is None:
            return
        if alarm.state is AlarmState.ACK_ACTIVE:
            del self._by_key[key]
        elif alarm.state is AlarmState.UNACK_ACTIVE:
            self._by_key[key] = replace(alarm, state=AlarmState.UNACK_RTN)

    def acknowledge(self, key: str | None = None) -> Alarm | None:
        """Acknowledge the alarm `key`, or the newest unacknowledged one when None. Returns the alarm
        acknowledged (None when there was none). Active -> ACK_ACTIVE; returned to normal -> gone."""
        if key is None:
            pending = self.unacknowledged()
            if not pending:
                return None
            key = pending[0].key
        alarm = self._by_key.get(key)
        if alarm is None or alarm.acknowledged:
            return None
        if alarm.state is AlarmState.UNACK_RTN:
            del self._by_key[key]
        else:
            self._by_key[key] = replace(alarm, state=AlarmState.ACK_ACTIVE)
        return alarm

    def acknowledge_all(self) -> int:
        """Acknowledge every unacknowledged alarm; returns how many."""
        n = 0
        while self.acknowledge() is not None:
            n += 1
        return n

    def unacknowledged(self) -> list[Alarm]:
        """Unacknowledged alarms, newest first."""
        return sorted((a for a in self._by_key.values() if not a.acknowledged), key=lambda a: -a.seq)

    def all(self) -> list[Alarm]:
        """Every alarm, newest first."""
        return sorted(self._by_key.values(), key=lambda a: -a.seq)

    def get(self, key: str) -> Alarm | None:
        """The alarm `key`, None when there is none."""
        return self._by_key.get(key)
