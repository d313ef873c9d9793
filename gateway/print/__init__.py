"""The print domain: film sessions and boxes checked against the profile, the data sets a client
reads, rendering, the spool and the attached printer -- everything of printing except DIMSE.

What lives here:
  profile.py          the `[print]` section (re-exported from gateway.config.print)
  validate.py         attribute checks of the Print Management SOP classes (statuses, PS3.4 H.4)
  session.py          one association's Film Session / Film Box / Image Box / Annotation / LUT objects
  attributes.py       the Printer, Printer Configuration, Print Job, Film Box and Event Information
                      data sets (pydicom Datasets, no DIMSE)
  render.py, glyphs.py  a film from its boxes (image/), annotation text in the right font
  calibrate.py        `print-test`: a step wedge straight to the printer, for calibration
  store.py            PrintStore: the spool's folders and tables, film phases, in-transaction SQL
  spooler.py          Spooler: the queue worker that prints the films
  device.py           the configured printer (drivers/), chosen through the device registry
  printer_status.py   PrinterStatusMonitor: the printer's DICOM status, kept current
  reports.py          the control path: PrintJobListener, told directly (never through the bus) of
                      every Print Job and Printer status change
  service.py          PrintService: the above put together; app.py adds the Print SCP as a listener

Floor: above the buffer, below the DICOM roles (tests/unit/test_layers.py). It may import
gateway.buffer, gateway.config (its `[print]` section is gateway.config.print; profile.py re-exports
it), the leaves (events, logs), drivers/ and image/ -- never gateway.dicom, pynetdicom or hw-sim.
It knows no DIMSE: gateway.dicom.print_scp adapts it to the network and registers itself as a
PrintJobListener; the event bus only gets observation events ("print-job", "printed",
"print-held", "printer-status-changed", ...).
"""
