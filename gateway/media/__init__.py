"""The media domain: DICOM file-sets on removable media (PS3.10 section 8, PS3.11, PS3.12, IHE PDI).

What lives here: the file-set creator (File IDs, the DICOMDIR, the PDI layout, the application
profiles' transfer syntax rules), the export of studies as queue jobs, and the file-set reader
that imports media through the buffer's intake. The drives themselves (optical, USB mass storage,
hotplug) are drivers/media/; their simulators are hw-sim's.

Floor: "domains", beside gateway.print (tests/unit/test_layers.py). It may import gateway.buffer,
gateway.part10, gateway.config, the leaves (events, event_kinds, identity), drivers/ and image/;
it knows no DIMSE and never imports gateway.dicom, gateway.app or gateway.cli.
"""
