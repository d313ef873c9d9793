"""The DICOM service roles, over the upper layer in gateway/dicom/net/.

What lives here: the roles, each a DIMSE service of this appliance (echo: Verification SCP/SCU;
store_scp: the C-STORE door to the intake; store_scu and forward: sending to destinations;
commitment: Storage Commitment SCU; print_scp and report_channel: Print Management SCP), and the
vocabulary both floors speak (status: DIMSE status codes; sop_classes: SOP classes and transfer
syntaxes). A role (net/service_role.py) brings its contexts(), handlers() and called_titles();
app.py hands the list to the listener.

Floors (tests/unit/test_layers.py): "dicom roles" is this package; "dicom net" is net/ plus the
vocabulary (status, sop_classes import nothing of ours). The roles sit above the print domain and
the buffer, below app and cli: they may import gateway.dicom.net, gateway.print, gateway.buffer,
gateway.part10 (the Part-10 codec), gateway.config, the leaves (gateway.identity, gateway.events),
drivers/ and image/; nothing below them may import them. A change to pynetdicom or a read of its
internals goes into net/pynetdicom_patches.py, never into a role: a role calls its named entries
(print_dimse_guard and report_channel keep the print policy, the patches hold the reaches).
"""
