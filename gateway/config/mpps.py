"""`[mpps]`: where the box reports the procedures it captured, as Modality Performed Procedure
Steps (issue 10; the SCU is gateway/dicom/mpps_scu.py, PS3.4 Annex F).

    [mpps]
    enabled = false               # true: N-CREATE / N-SET to the MPPS SCP below
    ae_title = "RIS"
    host = "127.0.0.1"
    port = 104
"""

from __future__ import annotations

from gateway.config.base import AETitle, Host, Port, Section


class MppsSection(Section):
    enabled: bool = False
    ae_title: AETitle = "RIS"
    host: Host = "127.0.0.1"
    port: Port = 104
