"""The Storage SCP's activity (PS3.2 4.2.1.4, PS3.4 B): level of storage, its response statuses
(Table 4.2-6) keyed by the intake's own refusals, and attribute coercion (PS3.4 B.4.1.3). A refusal
the intake gains without a sentence in _REFUSAL_WHEN makes render() raise KeyError naming it."""

from __future__ import annotations

from pynetdicom.status import GENERAL_STATUS, STORAGE_SERVICE_CLASS_STATUS

from gateway.buffer.intake import Refusal
from gateway.config import Config
from gateway.dicom import status
from gateway.dicom.store_scp import STATUS_OF, UNRECOGNIZED_OPERATION

from .tables import _hex, _meaning, _table


# Why the Storage SCP answers each refusal of the intake (store_scp.STATUS_OF).
_REFUSAL_WHEN = {
    Refusal.NOT_STORAGE_CLASS: "Affected SOP Class is not an accepted storage class, or is not the abstract "
                               "syntax of the presentation context",
    Refusal.NOT_AUTHORIZED: "the calling peer has `may_store = false`",
    Refusal.UNREADABLE: "the data set cannot be parsed, or is truncated inside an element",
    Refusal.MISMATCH: "SOP Instance/Class UID differs from the command; Study, Series or SOP Instance UID "
                      "missing or not a valid UID",
    Refusal.DISK_FULL: "free space would fall below `buffer.reserve_mb` (configurable, default {reserve}) and no "
                       "delivered instance is left to evict, or the disk is full; nothing is kept",
    Refusal.WRITE_FAILED: "the buffer cannot be written (I/O error)",
    Refusal.INDEX_ERROR: "the index transaction failed",
    Refusal.COERCION_FAILED: "a `[[coercion]]` rule of the calling peer cannot be applied (deflated transfer "
                             "syntax, a value its VR or the Specific Character Set cannot hold); nothing is kept",
}


def _store_scp(out: list[str], reserve: int, config: Config) -> None:
    out += ["###### Activity: receive instances (Storage SCP, PS3.4 B)", "",
            "Level 2 (full) storage: the data set is stored byte for byte as received, with a File Meta "
            "Information header (PS3.10 7.1) made from the association (negotiated transfer syntax, the "
            "command's SOP Class and Instance UIDs, the calling AE title as Source Application Entity "
            "Title). Group 0002 elements a sender puts at the start of its data set are dropped (a WARNING "
            "names the SOP Instance UID and the tags). Apart from that and the configured attribute coercion "
            "(below) no element is removed, added or changed; pixel data is never decoded. Success is answered only after the file is fsynced "
            "and indexed. A second copy of a SOP Instance UID with different content replaces the first "
            f"or is discarded (`buffer.duplicate_policy`, configurable, default "
            f"\"{config.buffer.duplicate_policy}\"); an identical copy is acknowledged and not forwarded "
            "again. Error Comment (0000,0902) names the problem.", "",
            "Table 4.2-6 C-STORE response statuses", ""]
    rows = [("0000", "Success", "stored, fsynced and indexed; also an identical re-send of a stored instance")]
    for refusal, code in STATUS_OF.items():
        rows.append((_hex(code), _meaning(code, STORAGE_SERVICE_CLASS_STATUS),
                     _REFUSAL_WHEN[refusal].format(reserve=reserve)))
    rows.append((_hex(UNRECOGNIZED_OPERATION), _meaning(UNRECOGNIZED_OPERATION, GENERAL_STATUS),
                 "C-STORE on the Verification context (or another non-storage context)"))
    rows.append((_hex(status.COERCION_OF_DATA_ELEMENTS), "Warning: Coercion of data elements",
                 "stored, with attributes coerced by a rule with `store_status = \"warning\"` (below)"))
    out += _table(["Status", "Meaning", "When"], sorted(rows, key=lambda r: (r[0] != "0000", r[0])))
    _coercion(out, config)


# -- attribute coercion (gateway/config/coercion.py, gateway/buffer/coercion.py) ----------
def _coercion(out: list[str], config: Config) -> None:
    out += ["###### Attribute coercion (PS3.4 B.4.1.3)", "",
            "The Storage SCP may coerce attributes: `[[coercion]]` rules of the configuration (none by "
            f"default; {len(config.coercion)} in this configuration) set, copy, map (value tables), "
            "delete, add or fix Specific Character Set, fill missing attributes from the cached Modality "
            "Worklist item with the same Accession Number, add an Issuer of Patient ID or prefix the "
            "Patient ID, for the objects of a calling AE title (or a media or capture source). They are "
            "applied before the instance is indexed or forwarded. SOP Class, SOP Instance, Study and "
            "Series Instance UIDs are never coerced. Each coerced instance gets one item in the Original "
            "Attributes Sequence (0400,0561) (PS3.3 C.12.1.1.9): the previous values in the Modified "
            "Attributes Sequence, Reason for the Attribute Modification COERCE, Modifying System the "
            "gateway's AE title, Source of Previous Values the calling AE title. Pixel data and every "
            "element not coerced stay byte for byte as received. Success (0000) is answered for a coerced "
            "instance unless a rule says `store_status = \"warning\"` (B000): legacy modalities, the ones "
            "rules are written for, often treat any non-zero status as a failure and send again. A rule "
            "that cannot be applied to an instance refuses it with 0110: stored uncoerced it would reach "
            "the PACS with the header the rule exists to fix. Rules naming a destination change only the "
            "copy sent to it (Storage SCU), made when the job sends; the stored instance keeps its values.",
            ""]
