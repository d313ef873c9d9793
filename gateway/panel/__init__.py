"""The front panel's logic (issue 9 item 2): what the LEDs, the two-line display and the buttons
mean. Pure logic: events (gateway/events.py) and button edges in, LED patterns and display lines
out, commands out through an injected gateway.commands.Commands. No thread, no sleep, no driver;
the drivers (drivers/panel/) and the loop that feeds the panel are wired by gateway/app.py.

  alarms.py   errors needing acknowledgement, in ISA-18.2 alarm states
  facts.py    the events folded into what the panel shows, and which events raise alarms
  leds.py     each LED's pattern (off, steady, blink as Linux LED timer delays)
  display.py  lines of 16 or 20 columns in HD44780 ROM A00 characters; names transliterated
  buttons.py  short / long presses, and the screens NEXT / PREVIOUS walk
  studies.py  the studies offered for export, from the buffer's index
  panel.py    Panel: ties them; the README's "The front panel" has the LED table

Floor: "domains" (tests/unit/test_layers.py), beside gateway.print and gateway.media. It imports
only the leaves (events, event_kinds), its config section (gateway.config.panel) and
gateway.state's vocabulary; the buffer's index (for the study list) and the operator verbs come in
as objects it is given, so it never imports gateway.commands (the app floor).
"""

from gateway.panel.panel import Panel
from gateway.panel.studies import StudyChoice, recent_studies

__all__ = ["Panel", "StudyChoice", "recent_studies"]
