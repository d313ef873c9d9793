"""Simulated devices that the real drivers talk to, with switchable faults.

usb_printer.SimulatedUsbPrinter  a pyusb backend: a USB printer-class PostScript film printer
serial_imager.SerialFilmImager   a serial film imager speaking DRF/1 behind a pty or a TCP port
film_decode                      what both printers do with the bytes they get: a PNG of the film
media.SimulatedOpticalDrive      a CD/DVD writer whose disc is an image file (xorriso's stdio:)
media.SimulatedUsbPort           a USB port whose stick is a FAT32 image file (mtools)
cli                              `hw-sim media status|insert|pull|fault`, from another terminal
devices                          the simulators as device kinds (printer: serial-sim, usb-sim; media:
                                 optical-sim, usb-sim) for the gateway's device registry, found
                                 through pyproject's entry points
"""
