"""`[worklist]`: the Modality Worklist SCP this box asks for the procedures it captures (issue 10;
the SCU is gateway/dicom/worklist_scu.py, PS3.4 Annex K).

    [worklist]
    enabled = false               # true: query the worklist SCP below
    ae_title = "RIS"              # the worklist SCP's AE title
    host = "127.0.0.1"
    port = 104
"""

from __future__ import annotations

from gateway.config.base import AETitle, Host, Port, Section


class WorklistSection(Section):
    enabled: bool = False
    ae_title: AETitle = "RIS"
    host: Host = "127.0.0.1"
    port: Port = 104
