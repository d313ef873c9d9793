"""The DICOM network: the upper layer (associations, PDUs, DIMSE, the fast storage paths) and the
service roles over it (echo, store SCP/SCU, forward, commitment, print SCP).

Floor: above the print domain and the buffer, below app and cli (tests/unit/test_layers.py). It may
import gateway.print, gateway.buffer, gateway.config, the leaves, drivers/ and image/; nothing below
it may import it (the buffer's file_meta.py reaching identity.py is a known arrow that issue 7 item 6
removes by moving the Part-10 codec and the identity down).
"""
