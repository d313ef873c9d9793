"""The listener builds its AE from the service roles it is given (gateway/dicom/net/service_role.py):
their contexts in order, with roles and transfer syntaxes, their handlers, their called titles, and
the fast path's set from the contexts marked fast_path. What a Q/R or worklist role will plug into."""

from __future__ import annotations

from pynetdicom import DEFAULT_TRANSFER_SYNTAXES, evt

from gateway.config import Config
from gateway.dicom.echo import VerificationSCP
from gateway.dicom.net.listener import Listener
from gateway.dicom.net.service_role import SupportedContext
from gateway.dicom.sop_classes import VERIFICATION

FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve - FIND


class _FindRole:
    def contexts(self):
        return [SupportedContext(FIND, ("1.2.840.10008.1.2.1",), scu_role=None, scp_role=None)]

    def handlers(self):
        return [(evt.EVT_C_FIND, self.on_find)]

    def called_titles(self):
        return ["QR_AE"]

    def on_find(self, event):
        yield 0x0000, None


def test_the_listener_is_built_from_its_roles():
    cfg = Config.model_validate({"ae": {"title": "EDGE", "port": 11999}})
    role = _FindRole()
    listener = Listener(cfg, [VerificationSCP(), role], store=lambda *a: None)
    contexts = {str(c.abstract_syntax): c for c in listener.ae.supported_contexts}
    assert list(contexts) == [VERIFICATION, FIND]
    assert contexts[VERIFICATION].transfer_syntax == list(DEFAULT_TRANSFER_SYNTAXES)
    assert contexts[FIND].transfer_syntax == ["1.2.840.10008.1.2.1"]
    # Only the contexts marked fast_path go to the fast path: a FIND association is pynetdicom's.
    assert listener.fast_abstracts == {VERIFICATION}
    assert (evt.EVT_C_FIND, role.on_find) in listener._handlers
    assert "QR_AE" in listener.policy.called_titles
