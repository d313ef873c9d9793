"""The print domain: film sessions and boxes checked against the profile, rendering, the spool and
the attached printer.

Floor: above the buffer, below the DICOM roles (tests/unit/test_layers.py). It may import
gateway.buffer, gateway.config (its `[print]` section is gateway.config.print; profile.py re-exports
it), the leaves (events, logs), drivers/ and image/. It knows no DIMSE: gateway.dicom.print_scp
adapts it to the network, not the other way round (service.py's import of it is a known arrow that
issue 7 item 6 removes), and it never imports hw-sim (device.py's imports: item 5).
"""
