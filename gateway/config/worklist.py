"""`[worklist]`: the Modality Worklist SCP this box asks for the procedures it captures (issue 10;
the SCU is gateway/dicom/worklist_scu.py, PS3.4 Annex K; the refresh loop
gateway/dicom/worklist_service.py; the current procedure gateway/capture/procedure.py).

    [worklist]
    enabled = false               # true: query the worklist SCP below
    ae_title = "RIS"              # the worklist SCP's AE title (the called AE)
    host = "127.0.0.1"
    port = 104
    calling_ae = ""               # our AE title on this association; "" = ae.title
    station_ae = ""               # Scheduled Station AE Title matched; "" = ae.title, "*" = any station
    modality = ""                 # Modality matched in the SPS ("US", "ES", ...); "" = any
    days_back = 0                 # Scheduled Procedure Step Start Date from today - days_back ...
    days_forward = 0              # ... to today + days_forward (0 and 0: today only)
    refresh_s = 120               # asked again this often (and on demand: `dicom-gateway worklist --refresh`)
    timeout_s = 10                # connect, association and each response; also how long a caller
                                  # of an on-demand refresh waits at most
    max_items = 500               # a worklist longer than this is a failed refresh (narrow the keys)
    auto_select_minutes = 30      # the only item whose SPS start is within this many minutes of now
                                  # becomes the current procedure by itself; 0 = never
    unscheduled_prefix = "UNSCHED"  # a generated Patient ID: <prefix><YYYYMMDD>-<NNN> or <prefix><uuid hex>
    unscheduled_id = "counter"    # "counter" (per day, kept in the buffer) or "uuid"
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator

from gateway.config.base import AETitle, FloatRange, Host, IntRange, Port, Section, _check_ae_title


def _optional_ae(value: str) -> str:
    # "" means "this box's own title" (ae.title), resolved where both sections are at hand.
    return value if value == "" else _check_ae_title(value)


def _station(value: str) -> str:
    # "*" is the DICOM universal match (PS3.4 C.2.2.2.4): every station's items.
    return value if value in ("", "*") else _check_ae_title(value)


def _modality(value: str) -> str:
    # PS3.3 C.7.3.1.1.1: a CS of defined terms, upper case, at most 16 characters.
    if value and not re.fullmatch(r"[A-Z0-9_ ]{1,16}", value):
        raise ValueError(f"{value!r} is not a modality (upper-case letters, digits, '_', at most 16: \"US\", \"ES\")")
    return value


def _prefix(value: str) -> str:
    # The generated Patient ID is a LO (64 characters, no backslash); kept plain so that it reads
    # the same on a panel, a PACS and a disc label.
    if not re.fullmatch(r"[A-Za-z0-9_-]{0,24}", value):
        raise ValueError(f"{value!r}: at most 24 letters, digits, '_' or '-'")
    return value


class WorklistSection(Section):
    enabled: bool = False
    ae_title: AETitle = "RIS"
    host: Host = "127.0.0.1"
    port: Port = 104
    calling_ae: Annotated[str, AfterValidator(_optional_ae)] = ""
    station_ae: Annotated[str, AfterValidator(_station)] = ""
    modality: Annotated[str, AfterValidator(_modality)] = ""
    days_back: IntRange(0, 31) = 0
    days_forward: IntRange(0, 31) = 0
    refresh_s: FloatRange(ge=10.0, le=86400.0) = 120.0
    timeout_s: FloatRange(gt=0.0, le=300.0) = 10.0
    max_items: IntRange(1, 10000) = 500
    auto_select_minutes: IntRange(0, 1440) = 30
    unscheduled_prefix: Annotated[str, AfterValidator(_prefix)] = "UNSCHED"
    unscheduled_id: Literal["counter", "uuid"] = "counter"

    def calling(self, own_title: str) -> str:
        """The calling AE title: calling_ae, else the box's own ``own_title`` (ae.title)."""
        return self.calling_ae or own_title

    def station(self, own_title: str) -> str:
        """The Scheduled Station AE Title to match: station_ae, else ``own_title``; "*" any."""
        return self.station_ae or own_title
