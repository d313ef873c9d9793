"""What each front-panel LED shows: off, steady, or a blink pattern, decided from the panel's facts
and alarms (the table is in README.md, "The front panel").

A pattern is (on_ms, off_ms), the very pair the Linux LED "timer" trigger takes as delay_on /
delay_off (Documentation/leds/leds-class.rst): a driver sets a blink once and the kernel keeps it,
so a blinking LED costs the box no writes and no thread. Steady on is (1, 0), off is (0, 1).

The LEDs (names as the config and drivers/panel will use them):
  power     ready / starting / refusing images (disk)
  network   every destination reachable / one is down
  activity  instances moving (received, forwarded, printed in the last ACTIVITY_S seconds)
  backlog   jobs waiting / waiting while a destination is down / jobs dead-lettered
  media     a medium in / busy (queued, writing, verifying, importing) / its export or read failed
  printer   printing / WARNING / FAILURE (PS3.3 C.13.9.1 Printer Status)
  error     an alarm unacknowledged (fast) / cleared but unacknowledged (slow) / acknowledged, standing
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.panel.alarms import Alarms, AlarmState
from gateway.panel.facts import Facts


@dataclass(frozen=True)
class Pattern:
    """An LED pattern: lit for on_ms, dark for off_ms, repeating (Linux LED timer trigger's
    delay_on / delay_off, milliseconds)."""

    name: str
    on_ms: int
    off_ms: int

    def lit(self, t: float) -> bool:
        """Whether the LED is lit at time `t` (seconds; phase 0 at t = 0). For the simulated
        panel's page and for tests; a real LED blinks by itself."""
        if self.off_ms == 0:
            return True
        if self.on_ms == 0:
            return False
        return (t * 1000) % (self.on_ms + self.off_ms) < self.on_ms


OFF = Pattern("off", 0, 1)
ON = Pattern("on", 1, 0)
SLOW = Pattern("slow", 500, 500)    # 1 Hz: something is going on, or wants a look
FAST = Pattern("fast", 125, 125)    # 4 Hz: needs someone
# Activity flickers rather than blinks: short flashes read as "data moving" on network gear.
FLICKER = Pattern("flicker", 50, 150)

LEDS = ("power", "network", "activity", "backlog", "media", "printer", "error")

ACTIVITY_S = 2.0  # the activity LED flickers this long after the last instance moved


def power(facts: Facts) -> Pattern:
    """ON ready (the housekeeping tick counted the queue), SLOW starting, FAST images refused
    (disk under the reserve or full)."""
    if facts.below_reserve:
        return FAST
    return ON if facts.counted else SLOW


def network(facts: Facts) -> Pattern:
    """ON every destination heard of is reachable, SLOW one is down, OFF none tried yet."""
    known = [r for r in facts.destinations.values() if r is not None]
    if any(r is False for r in known):
        return SLOW
    return ON if known else OFF


def activity(facts: Facts, now: float) -> Pattern:
    """FLICKER for ACTIVITY_S seconds after an instance was received or forwarded or a film
    printed (`now`: seconds since the epoch), else OFF."""
    recent = facts.last_activity is not None and now - facts.last_activity < ACTIVITY_S
    return FLICKER if recent else OFF


def backlog(facts: Facts) -> Pattern:
    """FAST a forward or print job is dead-lettered, SLOW jobs wait while a destination is down,
    ON jobs wait (draining), OFF none."""
    if facts.dead:
        return FAST
    if facts.waiting:
        return SLOW if any(r is False for r in facts.destinations.values()) else ON
    return OFF


def media(facts: Facts) -> Pattern:
    """Over every drive: FAST a medium's export or read failed, SLOW a drive is busy, ON a
    medium is in, OFF none."""
    drives = facts.drives.values()
    if any(d.failed for d in drives):
        return FAST
    if any(d.busy for d in drives):
        return SLOW
    return ON if any(d.present for d in drives) else OFF


def printer(facts: Facts) -> Pattern:
    """By Printer Status (PS3.3 C.13.9.1): FAST FAILURE, SLOW WARNING; else ON while a job is
    PRINTING (Execution Status, C.13.8.1), OFF idle."""
    if facts.printer_status == "FAILURE":
        return FAST
    if facts.printer_status == "WARNING":
        return SLOW
    return ON if facts.printing else OFF


def error(alarms: Alarms) -> Pattern:
    """By the alarms' ISA-18.2 states: FAST one unacknowledged and active, SLOW one cleared but
    unacknowledged, ON only acknowledged ones standing, OFF none."""
    states = {a.state for a in alarms.all()}
    if AlarmState.UNACK_ACTIVE in states:
        return FAST
    if AlarmState.UNACK_RTN in states:
        return SLOW
    return ON if AlarmState.ACK_ACTIVE in states else OFF


def led_states(facts: Facts, alarms: Alarms, now: float) -> dict[str, Pattern]:
    """Every LED's pattern now: {name: Pattern} for each name in LEDS. `now`: seconds since the
    epoch (only the activity LED depends on it)."""
    return {"power": power(facts), "network": network(facts), "activity": activity(facts, now),
            "backlog": backlog(facts), "media": media(facts), "printer": printer(facts), "error": error(alarms)}
