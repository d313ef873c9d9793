"""The service itself: wiring, config, the buffer, the DICOM roles and the print domain.

Its floors, bottom to top; an import may run down a floor or stay on its own, never up
(tests/unit/test_layers.py enforces it and holds the exact list):

  leaves        events and event_kinds (the bus and its catalogue), exit_codes, logs, systemd_notify
                (and identity): know nothing of the rest
  config        config/ (the schema and its loading), part10/ (the Part-10 codec), state (the
                snapshot folded from events)
  buffer        buffer/ (intake, index, files, queue, worker) and routing
  domains       print/ (film sessions, rendering, the spool) and media/ (file-sets, export, import):
                no DIMSE
  dicom net     dicom/net/: the upper layer (associations, PDUs, DIMSE, the fast storage paths)
  dicom roles   dicom/: the service roles (echo, store, forward, commitment, print)
  app           app (wiring, start/stop), commands (the operator verbs in-process) and preflight
  cli           cli and operator_views (what it shows)

Under all of them sit image/ and drivers/; hw-sim sits under the drivers and is never imported here.
This package's own __init__ holds nothing and imports nothing.
"""
