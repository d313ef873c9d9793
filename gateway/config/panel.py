"""`[panel]`: the front panel's display and buttons (gateway/panel/, issue 9 item 2).

  width              the display's columns: 16 or 20 (HD44780 16x2 / 20x2 modules)
  long_press_s       how long a button is held for a long press (export needs one)
  message_s          how long a command's answer stays on the display
  show_patient_name  the study screens show the patient's name beside the ID (default true: the
                     radiographer confirms the patient with two identifiers before writing a
                     disc; false for a box in a public place: ID, modality and date only)
"""

from __future__ import annotations

from typing import Literal

from gateway.config.base import FloatRange, Section


class PanelSection(Section):
    width: Literal[16, 20] = 16
    # Under 0.3 s a firm short press becomes long; over 5 s nobody holds a button.
    long_press_s: FloatRange(ge=0.3, le=5) = 1.0
    message_s: FloatRange(ge=1, le=60) = 4.0
    show_patient_name: bool = True
