"""The front panel's state machine: events and button edges in, LED patterns and two display lines out.

    panel = Panel(commands, drives=["cd"], printer=True, studies=recent_studies, capture=None,
                  settings=config.panel, clock=time.time)
    panel.apply(event)                 # each event of kinds facts.FOLDED, in order
    panel.button_down("export"); panel.button_up("export")
    panel.tick()                       # now and then (say 10 Hz): long presses while held
    panel.leds() -> {"power": ON, ...}; panel.lines() -> ("READY", "QUEUE 0   DEAD 0")

No thread, no sleep, no driver: the caller (the app's panel loop, the simulator's page, a test)
feeds it and reads it. Every button press ends in a message or a screen change, never an exception:
a command that raises is shown as "<VERB> FAILED" with its one line.

What the buttons do (short / long; "alarm view" = an alarm is unacknowledged and on the display):
  any        ends the message shown (a command's answer); an ACK that ended one does nothing more,
             so that no alarm is acknowledged that was not on the display.
  ACK        acknowledge the alarm shown / every alarm. Without alarms: "NO NEW ALARMS".
  NEXT/PREV  next / previous screen; long: next / previous page. In alarm view: the next alarm.
  EXPORT     on a study's screen: short shows "HOLD EXPORT"; long queues that study for the
             selected drive (Commands.export). Elsewhere: go to the studies. In alarm view:
             refused ("ACK ALARM FIRST"): the study to write must be on the display when it is chosen.
  EJECT      the selected drive (the media screen's, else the first) gives its medium back
             (Commands.eject; it refuses while the medium is written or read). Short = long.
  CAPTURE    the injected capture callable, capture(long): short takes a still, long records a
             clip (capture.clip_s); "NO GRABBER" without one. In alarm view: the same (a capture
             never waits for an alarm to be acknowledged: the patient is on the table).
Exporting takes a long press because a disc handed to the wrong patient is a privacy breach; eject
and capture are safe in every state (Commands refuses an eject that would ruin a medium).

Patient names: shown on the studies screens by default ([panel] show_patient_name,
gateway/config/panel.py). The radiographer choosing a study to write on a disc for the patient in
front of them confirms it with two identifiers, name and patient ID (the usual patient
identification rule, e.g. The Joint Commission NPSG.01.01.01); the ID alone invites exporting the
neighbour's study. A box in a public place sets show_patient_name = false and gets the ID, modality
and date only. Names never reach a log from here (the panel logs nothing).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Protocol, Sequence

from gateway.config.panel import PanelSection
from gateway.events import Event
from gateway.panel import display, leds
from gateway.panel.alarms import Alarms
from gateway.panel.buttons import ButtonTracker, Press, Screens, check_button
from gateway.panel.facts import Facts
from gateway.panel.studies import StudyChoice


class CommandsLike(Protocol):
    """What the panel calls: gateway.commands.Commands (injected, so the panel, on the domains
    floor, never imports the app floor). Each returns a result with `refused` ("" when it ran)
    and `summary`, as CommandResult does."""

    def export(self, study_uids: Iterable[str], drive: str | None = None, copies: int = 1) -> Any: ...

    def eject(self, drive: str) -> Any: ...


class Panel:
    """The front panel's logic. commands: a CommandsLike. drives: the configured media drive names
    (the media screens, EJECT's target). printer: printing is configured (the printer screen).
    settings: the config's [panel] (width, long press, message time, names shown).
    studies: returns the studies to offer (newest first; gateway/panel/studies.py recent_studies
    over the buffer's index), called when the studies page is entered and on each step through it. capture(long): a still (long: a clip) for the current procedure (None: no grabber). clock: seconds since the
    epoch, the same clock as the events' `at`."""

    def __init__(self, commands: CommandsLike, *, drives: Sequence[str] = (), printer: bool = False,
                 studies: Callable[[], Sequence[StudyChoice]] = lambda: (),
                 capture: Callable[[bool], Any] | None = None, settings: PanelSection = PanelSection(),
                 clock: Callable[[], float] = time.time):
        self.commands = commands
        self.drives = list(drives)
        self.printer = printer
        self._studies_of = studies
        self._capture = capture
        self.settings = settings
        self.clock = clock
        self.facts = Facts()
        for name in self.drives:
            self.facts.drive(name)
        self.alarms = Alarms()
        self.buttons = ButtonTracker(settings.long_press_s)
        self.screens = Screens()
        self.studies: list[StudyChoice] = []
        self.alarm_item = 0
        self._message: tuple[str, str] | None = None
        self._message_until = 0.0

    # -- in ---------------------------------------------------------------------------------------
    def apply(self, ev: Event) -> None:
        """Fold one event (gateway/panel/facts.py says which kinds count and which raise alarms)."""
        before = len(self.alarms.unacknowledged())
        self.facts.apply(ev, self.alarms)
        if len(self.alarms.unacknowledged()) != before:
            self.alarm_item = 0  # the newest alarm is shown first

    def button_down(self, button: str) -> None:
        """A button went down (UnknownButton for a name not in buttons.BUTTONS)."""
        self.buttons.down(button, self.clock())

    def button_up(self, button: str) -> None:
        """A button came up: a short press acts now."""
        press = self.buttons.up(button, self.clock())
        if press is not None:
            self.press(press)

    def tick(self) -> None:
        """Let time pass: a button held past the long-press time acts now."""
        for press in self.buttons.poll(self.clock()):
            self.press(press)

    def press(self, press: Press) -> None:
        """Act on one decided press (the tracker's, or a test's / the simulator's directly)."""
        button = check_button(press.button)
        # Any press ends the message shown: the operator has read it, and what the press does
        # next (a screen, another message) must not hide behind it.
        had_message, self._message = self._message_shown(), None
        if self.alarms.unacknowledged():
            if not (button == "ack" and had_message):  # the first ACK after a message only dismisses it
                self._alarm_view(button, press.long)
            return
        if button == "ack":
            if not had_message:
                self._say("NO NEW ALARMS", f"{len(self.alarms.all())} standing")
        elif button in ("next", "previous"):
            # One look at the buffer per press: the list is fresh whenever it is walked into.
            self._refresh_studies()
            self.screens.move(self._sizes(), forward=button == "next", long=press.long)
        elif button == "export":
            self._export(press.long)
        elif button == "eject":
            self._eject()
        elif button == "capture":
            self._capture_now(press.long)

    # -- out --------------------------------------------------------------------------------------
    def leds(self) -> dict[str, leds.Pattern]:
        """Every LED's pattern now (gateway/panel/leds.py)."""
        return leds.led_states(self.facts, self.alarms, self.clock())

    def lit(self) -> dict[str, bool]:
        """Whether each LED is lit at this instant of the clock: for a face that draws the LEDs
        itself (the simulator's page, a GPIO LED without a kernel timer trigger)."""
        now = self.clock()
        return {name: pattern.lit(now) for name, pattern in self.leds().items()}

    def lines(self) -> tuple[str, str]:
        """The two display lines now, each exactly `settings.columns` ROM A00 characters."""
        w = self.settings.columns
        pending = self.alarms.unacknowledged()
        if pending and not self._message_shown():
            alarm = pending[min(self.alarm_item, len(pending) - 1)]
            count = f"{min(self.alarm_item, len(pending) - 1) + 1}/{len(pending)}" if len(pending) > 1 else ""
            return (display.two_columns("!" + display.to_rom(alarm.title), count, w),
                    display.fit(display.to_rom(alarm.detail), w))
        if self._message_shown():
            one, two = self._message
            return display.fit(one, w), display.fit(two, w)
        page = self.screens.page
        if page == "studies" and self.studies:
            return self._study_lines(self.studies[min(self.screens.item, len(self.studies) - 1)])
        if page == "media" and self.drives:
            return self._drive_lines(self.drives[min(self.screens.item, len(self.drives) - 1)])
        if page == "printer" and self.printer:
            return self._printer_lines()
        if page == "capture" and self._capture is not None:
            return self._capture_lines()
        return self._status_lines()

    # -- screens ----------------------------------------------------------------------------------
    def _status_lines(self) -> tuple[str, str]:
        f, w = self.facts, self.settings.columns
        down = sorted(name for name, r in f.destinations.items() if r is False)
        if not f.counted:
            state = "STARTING"
        elif f.below_reserve:
            state = "DISK FULL" if f.free_bytes is None else "DISK LOW"
        elif down:
            state = f"{down[0]} DOWN"
        elif leds.activity(f, self.clock()) is not leds.OFF:
            state = "RECEIVING"
        else:
            state = "READY"
        return (display.fit(display.to_rom(state.upper()), w),
                display.two_columns(f"QUEUE {f.waiting}", f"DEAD {f.dead}", w))

    def _study_lines(self, s: StudyChoice) -> tuple[str, str]:
        w = self.settings.columns
        name = display.person_name(s.patient_name) if self.settings.show_patient_name else None
        pid = display.to_rom(s.patient_id)
        detail = " ".join(x for x in (display.to_rom(s.modality), s.study_date[2:8]) if x)
        if name:
            return display.fit(name, w), display.identifier(pid, detail, w)
        position = f"{self.screens.item + 1}/{len(self.studies)}"
        return display.identifier(pid, "", w, prefix="ID "), display.two_columns(position, detail, w)

    def _drive_lines(self, name: str) -> tuple[str, str]:
        w, d = self.settings.columns, self.facts.drive(name)
        medium = "EMPTY" if d.present is False else ("?" if d.present is None else d.medium.upper()
                                                     + (" BLANK" if d.blank and not d.busy else ""))
        if d.busy == "writing":
            doing = ("WRITING" + (f" {d.part}/{d.of}" if d.of > 1 else "")
                     + (f" {d.percent}%" if d.percent is not None else ""))
        elif d.busy:
            doing = d.busy.upper()
        elif d.last:
            doing = d.last
        else:
            doing = f"{d.exports_waiting} TO WRITE" if d.exports_waiting else ""
        return display.two_columns(display.to_rom(name.upper()), medium, w), display.fit(display.to_rom(doing), w)

    def _capture_lines(self) -> tuple[str, str]:
        f, w = self.facts, self.settings.columns
        one = (display.identifier(display.to_rom(f.procedure_id), "", w, prefix="ID ") if f.procedure_id
               else display.fit("NO PATIENT", w))
        if f.signal == "lost":
            two = "NO SIGNAL"
        elif f.recording:
            two = "RECORDING"
        elif f.signal is None:
            two = "NO VIDEO YET"
        else:
            two = "UNSCHEDULED" if f.procedure_id and not f.scheduled else "READY"
        # "#3": three objects captured for this procedure (fits beside the longest word on 16 columns).
        return one, display.two_columns(two, f"#{f.captured}" if f.captured else "", w)

    def _printer_lines(self) -> tuple[str, str]:
        f, w = self.facts, self.settings.columns
        status = f.printer_status or "?"
        two = "PRINTING" if f.printing and status != "FAILURE" else f.printer_info
        return display.two_columns("PRINTER", status, w), display.fit(display.to_rom(two), w)

    # -- buttons ----------------------------------------------------------------------------------
    def _alarm_view(self, button: str, long: bool) -> None:
        pending = self.alarms.unacknowledged()
        if button == "ack":
            if long:
                self.alarms.acknowledge_all()
            else:
                self.alarms.acknowledge(pending[min(self.alarm_item, len(pending) - 1)].key)
            self.alarm_item = 0
        elif button in ("next", "previous"):
            self.alarm_item = (min(self.alarm_item, len(pending) - 1) + (1 if button == "next" else -1)) % len(pending)
        elif button == "export":
            self._say("ACK ALARM FIRST", "then choose study")
        elif button == "eject":
            self._eject()
        else:
            self._capture_now(long)

    def _export(self, long: bool) -> None:
        if self.screens.page != "studies" or not self.studies:
            self._refresh_studies()
            self.screens.go("studies")
            if not self.studies:
                self._say("NO STUDIES", "to export")
            return
        if not long:
            self._say("HOLD EXPORT", f"to write {self._drive() or 'media'}")
            return
        study = self.studies[min(self.screens.item, len(self.studies) - 1)]
        self._run("EXPORT", lambda: self.commands.export([study.study_uid], self._drive()))

    def _eject(self) -> None:
        drive = self._drive()
        if drive is None:
            self._say("NO MEDIA DRIVE", "")
            return
        self._run("EJECT", lambda: self.commands.eject(drive))

    def _capture_now(self, long: bool) -> None:
        if self._capture is None:
            self._say("NO GRABBER", "capture is off")
            return
        try:
            result = self._capture(long)
        except Exception as exc:  # noqa: BLE001 - shown, not swallowed: the operator reads it
            self._say("CAPTURE FAILED", str(exc))
            return
        refused = getattr(result, "refused", "") or (getattr(result, "summary", "") if getattr(result, "failed", False)
                                                     else "")
        if refused:
            reason = refused.split(": ", 1)[1] if refused.lower().startswith("capture:") else refused
            self._say("CAPTURE REFUSED", _capture_reason(reason, self.settings.columns))
            return
        # The answer the radiographer checks at a glance: what was done, and for whom.
        pid = self.facts.procedure_id
        who = display.identifier(display.to_rom(pid), "", self.settings.columns, prefix="ID ").rstrip() if pid else ""
        self._say("RECORDING CLIP" if long else "STILL STORED", who)

    def _run(self, verb: str, call: Callable[[], Any]) -> None:
        # A command that raises must not take the panel down with it: the box would lose its face.
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - shown, not swallowed: the operator reads it
            self._say(f"{verb} FAILED", str(exc))
            return
        refused = getattr(result, "refused", "")
        if refused:
            reason = refused.split(": ", 1)[1] if refused.lower().startswith(verb.lower() + ":") else refused
            self._say(f"{verb} REFUSED", reason)
        else:
            self._say(f"{verb} OK", getattr(result, "summary", "") or "")

    # -- helpers ----------------------------------------------------------------------------------
    def _drive(self) -> str | None:
        if not self.drives:
            return None
        if self.screens.page == "media":
            return self.drives[min(self.screens.item, len(self.drives) - 1)]
        return self.drives[0]

    def _refresh_studies(self) -> None:
        chosen = self.studies[self.screens.item].study_uid if (
            self.screens.page == "studies" and 0 <= self.screens.item < len(self.studies)) else None
        self.studies = list(self._studies_of())
        if chosen is not None:
            # The study on the display stays chosen when newer ones arrive above it.
            uids = [s.study_uid for s in self.studies]
            self.screens.item = uids.index(chosen) if chosen in uids else 0

    def _sizes(self) -> dict[str, int]:
        return {"status": 1, "capture": int(self._capture is not None), "studies": len(self.studies),
                "media": len(self.drives), "printer": int(self.printer)}

    def _say(self, one: str, two: str) -> None:
        self._message = (display.to_rom(one.upper()), display.to_rom(two))
        self._message_until = self.clock() + self.settings.message_s

    def _message_shown(self) -> bool:
        if self._message is not None and self.clock() >= self._message_until:
            self._message = None
        return self._message is not None


# The capture service's refusals (gateway/capture/service.py) in the display's words: its lines are
# written for a terminal and would be cut mid-word on 16 columns.
_CAPTURE_REASONS = (("no signal", "NO SIGNAL"), ("no frame from", "NO SIGNAL"),
                    ("a clip is being recorded", "CLIP RECORDING"), ("the buffer is full", "BUFFER FULL"),
                    ("the buffer refused", "BUFFER FULL"), ("no procedure chosen", "CHOOSE PATIENT"),
                    ("a clip lasts", "CLIP TOO LONG"))


def _capture_reason(reason: str, width: int) -> str:
    for start, words in _CAPTURE_REASONS:
        if reason.startswith(start):
            return words
    return reason if len(reason) <= width else reason[:width - 1] + ">"
