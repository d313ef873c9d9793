"""Simulated devices that the real drivers talk to, with switchable faults.

usb_printer.SimulatedUsbPrinter  a pyusb backend: a USB printer-class PostScript film printer
serial_imager.SerialFilmImager   a serial film imager speaking DRF/1 behind a pty or a TCP port
film_decode                      what both do with the bytes they get: a PNG of the film
devices                          the simulators as device kinds (serial-sim, usb-sim) for the gateway's
                                 device registry, found through pyproject's entry points
"""
