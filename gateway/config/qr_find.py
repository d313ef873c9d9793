"""`[qr_find]`: how the Query/Retrieve C-FIND SCP over the buffer matches (gateway/dicom/qr_find_scp.py,
gateway/buffer/query.py; PS3.4 C.2.2). Who may query is said per peer (`peers.*.may_query`).

    [qr_find]
    pn_case_insensitive = true    # Person Name keys match whatever the case, non-ASCII too
    combined_datetime = true      # accept combined date-time matching when an SCU proposes it
"""

from __future__ import annotations

from gateway.config.base import Section


class QrFindSection(Section):
    # PS3.4 C.2.2.2.1 leaves PN case sensitivity to the SCP; a name typed at a workstation rarely
    # has the case the modality used, so insensitive is the default.
    pn_case_insensitive: bool = True
    # StudyDate + StudyTime as one range (PS3.4 C.2.2.2.5.1), only for an SCU that asks for it in
    # extended negotiation (C.5.1.1.1 byte 2); false answers 0 to that byte.
    combined_datetime: bool = True
