"""The front panel's logic (issue 9 item 2): what the LEDs, the two-line display and the buttons
mean. Pure logic: events (gateway/events.py) and button edges in, LED patterns and display lines
out, commands out through an injected gateway.commands.Commands. No thread, no sleep, no driver
in the logic; runner.py is the one thread that feeds it and drives the hardware (drivers/panel/),
and gateway/app.py wires it.

  alarms.py   errors needing acknowledgement, in ISA-18.2 alarm states
  facts.py    the events folded into what the panel shows, and which events raise alarms
  leds.py     each LED's pattern (off, steady, blink as Linux LED timer delays)
  display.py  lines of 16 or 20 columns in HD44780 ROM A00 characters; names transliterated
  buttons.py  short / long presses, and the screens NEXT / PREVIOUS walk
  studies.py  the studies offered for export, from the buffer's index
  panel.py    Panel: ties them; the README's "The front panel" has the LED table
  runner.py   PanelRunner: the panel in the service (events and button edges in, the FrontPanel
              driven), its own thread and bus subscription

Floor: "domains" (tests/unit/test_layers.py), beside gateway.print and gateway.media. It imports
only the leaves (events, event_kinds), its config section (gateway.config.panel),
gateway.state's vocabulary and drivers/panel's interface (runner.py); the buffer's index (for the
study list), the operator verbs and the FrontPanel device come in as objects it is given, so it
never imports gateway.commands (the app floor) nor chooses a driver.
"""

from gateway.panel.panel import Panel
from gateway.panel.runner import PanelRunner
from gateway.panel.studies import StudyChoice, recent_studies

__all__ = ["Panel", "PanelRunner", "StudyChoice", "recent_studies"]
