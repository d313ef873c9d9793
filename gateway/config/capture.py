"""`[capture]`: the frame grabber and what a capture makes of its frames (issue 10; the grabber
drivers are drivers/grabber/, the capture service gateway/capture/).

    [capture]
    enabled = false               # true: a grabber is fitted and captures are taken

    [capture.grabber]
    kind = "sim"                  # a kind of the device registry's "grabber" family
"""

from __future__ import annotations

from gateway.config.base import Section


class GrabberSection(Section):
    kind: str = "sim"


class CaptureSection(Section):
    enabled: bool = False
    grabber: GrabberSection = GrabberSection()
