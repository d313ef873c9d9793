"""The service itself: wiring, config, the buffer, the DICOM roles and the print domain.

Its floors, bottom to top; an import may run down a floor or stay on its own, never up
(tests/unit/test_layers.py enforces it and holds the exact list):

  leaves        events and event_kinds (the bus and its catalogue), exit_codes, logs, systemd_notify
                (and identity): know nothing of the rest
  config        config/ (the schema and its loading), state (the snapshot), later part10/
  buffer        buffer/ (index, files, queue) and routing
  print domain  print/: film sessions, rendering, the spool; no DIMSE
  dicom         dicom/: the upper layer (later dicom/net/) under the service roles
  app           app (wiring, start/stop), commands (the operator verbs in-process) and preflight
  cli           cli

Under all of them sit image/ and drivers/; hw-sim sits under the drivers and is never imported here.
This package's own __init__ holds nothing and imports nothing.
"""
