"""The DICOM network: the upper layer (associations, PDUs, DIMSE, the fast storage paths) and the
service roles over it (echo, store SCP/SCU, forward, commitment, print SCP).

Floor: above the print domain and the buffer, below app and cli (tests/unit/test_layers.py). It may
import gateway.print, gateway.buffer, gateway.part10 (the Part-10 codec), gateway.config, the leaves
(gateway.identity: the implementation class UID, version name and AE title rules), drivers/ and
image/; nothing below it may import it.
"""
