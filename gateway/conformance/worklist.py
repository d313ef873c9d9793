"""The modality-side activities the gateway initiates (PS3.2 4.2.1.3): the Modality Worklist SCU
(PS3.4 K; its keys read from the identifier it sends), video capture (the objects created, from
gateway/capture/iod.py's tables) and the MPPS SCU (PS3.4 F)."""

from __future__ import annotations

from gateway.config import Config
from gateway.dicom.mpps_scu import MPPS_SOP_CLASS, MPPS_SYNTAXES, PERMANENT
from gateway.dicom.worklist_scu import MWL_FIND, MWL_SYNTAXES, WorklistQuery

from .tables import _hex, _table, _ts_names, _value, uid_name


def _worklist_activity(out: list[str], config: Config) -> None:
    """The Modality Worklist SCU (gateway/dicom/worklist_scu.py): its keys read from the very
    identifier it sends (a value: a matching key; zero length: a return key)."""
    w = config.worklist
    sample = WorklistQuery(station_ae="AE", date_from="20000101", date_to="20000101", modality="US",
                           patient_id="P").identifier()

    def rows(ds, inside: str = ""):
        for elem in ds:
            if elem.VR == "SQ":
                yield (f"{inside}{elem.keyword}", f"({elem.tag.group:04X},{elem.tag.element:04X})", "sequence", "")
                yield from rows(elem.value[0], inside + "&nbsp;&nbsp;")
                continue
            match = "matching key" if elem.value not in ("", None) else "return key"
            yield (f"{inside}{elem.keyword}", f"({elem.tag.group:04X},{elem.tag.element:04X})", match,
                   _MWL_KEY_VALUE.get(elem.keyword, ""))
    out += ["###### Activity: query the modality worklist (Modality Worklist SCU, PS3.4 K)", "",
            f"With `[worklist] enabled` (configurable, default {_value(w.enabled)}), every `worklist.refresh_s` "
            f"(configurable, default {_value(w.refresh_s)} s) and on `dicom-gateway worklist --refresh`: one "
            f"association to the worklist SCP (`worklist.ae_title`, default `{w.ae_title}`; calling AE title "
            "`worklist.calling_ae`, default the AE title), proposing "
            f"{uid_name(MWL_FIND)} {MWL_FIND} with {_ts_names(MWL_SYNTAXES).replace('<br>', ' and ')}; "
            "one C-FIND, priority MEDIUM. Every pending response (FF00, FF01) is one "
            "item; the worklist is used only when the final response is Success (0000). A failure status, a "
            "cancel, a rejection, no connection, no final response within `worklist.timeout_s` "
            f"(configurable, default {_value(w.timeout_s)} s) or more than `worklist.max_items` "
            f"(default {w.max_items}) items leave the worklist in use unchanged: the last good one, kept in "
            "the buffer across restarts, and reported as such. Zero items is a good answer. Each response's "
            "identifier is kept with its values as received (its Specific Character Set included) and is "
            "the source of the patient and request attributes of the objects captured for it.", "",
            "Table 4.2-8 Modality Worklist C-FIND keys", ""]
    out += _table(["Attribute", "Tag", "Type", "Value sent"], rows(sample))


def _capture_activity(out: list[str], config: Config) -> None:
    """The objects the capture makes (gateway/capture/iod.py, clip_file.py), from its own tables."""
    from gateway.capture import iod

    c = config.capture
    out += ["###### Activity: capture video (objects created, stored and forwarded as Storage SCU)", "",
            f"With `[capture] enabled` (configurable, default {_value(c.enabled)}): `dicom-gateway capture`, "
            "the front panel's capture button (short: a still; long: a clip of `capture.clip_s`) take the "
            "latest frame or record a clip, for the current procedure. The object is written to the buffer "
            "(fsynced) before the operator is told it was captured, then forwarded like a received "
            "instance. Objects created:", ""]
    out += _table(["Object", "SOP Class", "UID"], [
        ("a still", uid_name(iod.SC), str(iod.SC)),
        ("a still when the procedure's modality is ES (`capture.still_sop = \"auto\"`)",
         uid_name(iod.VL_ENDOSCOPIC), str(iod.VL_ENDOSCOPIC)),
        ("a clip (`capture.color = \"rgb\"`)", uid_name(iod.MF_TRUE_COLOR_SC), str(iod.MF_TRUE_COLOR_SC)),
        ("a clip (`capture.color = \"grayscale\"`)", uid_name(iod.MF_GRAYSCALE_BYTE_SC),
         str(iod.MF_GRAYSCALE_BYTE_SC))])
    out += [f"Transfer syntax per `capture.encoding` (configurable, default `{c.encoding}`): "
            + "; ".join(f"`{k}`: {uid_name(str(v))}" for k, v in iod.TRANSFER_SYNTAXES.items())
            + f". JPEG Baseline at `capture.jpeg_quality` (default {c.jpeg_quality}), YBR_FULL_422. "
            "Patient, study and request attributes are copied as the worklist SCP encoded them, with its "
            "Specific Character Set; Study Instance UID and Accession Number from the worklist item; "
            "Request Attributes Sequence filled; SC Equipment Conversion Type DV (analog grabber input) or "
            "DI; Burned In Annotation YES. An unscheduled capture has a generated Patient ID, Issuer of "
            f"Patient ID `{iod.UNSCHEDULED_ISSUER}` and a Patient Comments note. A clip cut by a lost signal "
            "or a video mode change is kept with the frames captured (`capture.on_signal_lost`, default "
            f"`{c.on_signal_lost}`) or discarded; a half-written object never enters the buffer.", ""]


def _mpps_activity(out: list[str], config: Config) -> None:
    """The MPPS SCU (gateway/dicom/mpps_scu.py, gateway/buffer/mpps.py)."""
    m = config.mpps
    out += ["###### Activity: report performed procedure steps (MPPS SCU, PS3.4 F)", "",
            f"With `[mpps] enabled` (configurable, default {_value(m.enabled)}): at the first capture for a "
            "procedure, N-CREATE with PPS status IN PROGRESS; when the operator ends it (`dicom-gateway "
            "capture --end`, or `--discontinue`) or chooses another procedure and captures, N-SET COMPLETED "
            "(or DISCONTINUED) with the Performed Series Sequence of every object captured. Both are queued "
            "durably and sent by a worker over an association of their own to `mpps.ae_title` at "
            "`mpps.host`:`mpps.port`, proposing "
            f"{uid_name(MPPS_SOP_CLASS)} with {' and '.join(uid_name(str(t)) for t in MPPS_SYNTAXES)}. "
            "The N-SET is never sent before its N-CREATE was accepted. Failure statuses are retried with "
            f"backoff up to `mpps.max_attempts` (default {m.max_attempts}), then dead-lettered; "
            f"{', '.join(_hex(s) for s in sorted(PERMANENT))} are dead-lettered at once. A re-sent N-CREATE "
            "answered 0111 (duplicate instance) after a restart counts as accepted. An unreachable SCP uses "
            "no attempt.", ""]


_MWL_KEY_VALUE = {
    "ScheduledStationAETitle": "`worklist.station_ae` (default: the AE title; `*`: any station)",
    "ScheduledProcedureStepStartDate": "today, or the range today − `worklist.days_back` to today + "
                                       "`worklist.days_forward`",
    "Modality": "`worklist.modality` (default: any)",
    "PatientID": "not sent by the periodic query (universal matching)",
}
