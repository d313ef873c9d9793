"""Association initiation policy (PS3.2 4.2.1.3): what the gateway proposes and how it treats the
answers: the forwarder (Storage SCU), storage commitment requests, the worklist, capture and MPPS
activities (worklist.py), the Query/Retrieve SCU (query_retrieve.py) and `echo`."""

from __future__ import annotations

from gateway.config import Config, DestinationSection
from gateway.dicom import status
from gateway.dicom.commitment import FAILURE_REASONS
from gateway.dicom.echo import _SYNTAXES as ECHO_SYNTAXES
from gateway.dicom.sop_classes import STORAGE_COMMITMENT_PUSH, VERIFICATION
from gateway.dicom.store_scu import FALLBACK, MAX_CONTEXTS

from .query_retrieve import _qr_scu_activity
from .tables import _hex, _ranges, _table, _ts_names, _value, uid_name
from .worklist import _capture_activity, _mpps_activity, _worklist_activity


def _initiation(out: list[str], config: Config) -> None:
    d = DestinationSection.model_fields
    fallback = " and ".join(uid_name(u) for u in FALLBACK)
    transient = [c for c in range(0x10000) if status.is_transient_store_failure(c)]
    out += ["##### 4.2.1.3 Association initiation policy", "",
            "###### Activity: forward instances to a destination (Storage SCU)", "",
            f"Per destination, a batch of queued instances (`batch_size`, configurable, default "
            f"{d['batch_size'].default}) goes over one association, as many contexts as fit in "
            f"{MAX_CONTEXTS} (one context ID kept for storage commitment). Proposed presentation contexts: "
            f"for each (SOP class, stored transfer syntax) one context with that syntax alone, plus per SOP "
            f"class one context with {fallback}. An instance is sent as stored when its syntax is accepted; "
            "otherwise it is decoded (pydicom with pylibjpeg) and sent uncompressed with the same SOP "
            "Instance UID. C-STORE priority MEDIUM. No extended negotiation.", ""]
    out += _table(["Abstract syntax", "Transfer syntaxes", "Role", "Extended negotiation"], [
        ("every storage SOP class of Table 4.2-2 held in the buffer", "the instance's stored transfer syntax", "SCU",
         "None"),
        ("the same", _ts_names(FALLBACK), "SCU", "None"),
        (f"{uid_name(STORAGE_COMMITMENT_PUSH)} {STORAGE_COMMITMENT_PUSH} (destinations with "
         "`storage_commitment = true`)", _ts_names(FALLBACK), "SCU", "None"),
    ])
    out += ["Table 4.2-5 Forwarder behaviour by C-STORE response status", ""]
    out += _table(["Response", "Behaviour"], [
        ("0000; Warning (0001, 0107, 0116, B000–BFFF)", "sent (warnings logged); next instance"),
        (f"{_ranges(transient)}; no response; association lost",
         "retried with capped exponential backoff "
         f"(`retry_initial_s`, default {_value(d['retry_initial_s'].default)} s; "
         f"`retry_max_s`, default {_value(d['retry_max_s'].default)} s) up to `max_attempts` (default "
         f"{d['max_attempts'].default}), then dead-lettered; the rest of the batch waits"),
        ("any other failure (A9xx, Cxxx, 0122, 0124, …)", "dead-lettered at once with the status and Error Comment"),
        ("association rejected / not established", "the destination backs off; the instances wait without "
                                                    "using up attempts"),
    ])
    out += ["###### Activity: request storage commitment (Storage Commitment Push Model SCU, PS3.4 J)", "",
            f"Per destination, switchable (`storage_commitment`, configurable, default "
            f"{_value(d['storage_commitment'].default)}): after a batch, N-ACTION (Action Type 1) with every instance "
            "sent, on the same association. The transaction is recorded durably before the request leaves. "
            "The N-EVENT-REPORT is accepted on that association or on a new one (4.2.1.4). Instances reported "
            "committed are done; instances reported failed, not mentioned, or whose transaction passes "
            f"`commitment_timeout_s` (configurable, default {_value(d['commitment_timeout_s'].default)} s) are sent "
            "again. Failure Reasons understood:", ""]
    out += _table(["Failure Reason", "Meaning"], [(_hex(c), text) for c, text in FAILURE_REASONS.items()])
    _worklist_activity(out, config)
    _capture_activity(out, config)
    _mpps_activity(out, config)
    _qr_scu_activity(out, config)
    out += ["###### Activity: verify a peer (`dicom-gateway echo DEST`)", "",
            f"One association proposing {uid_name(VERIFICATION)} with "
            f"{_ts_names(ECHO_SYNTAXES).replace('<br>', ' and ')}; "
            "one C-ECHO; the outcome (or the peer's rejection reason) is printed in words.", ""]
