"""Film printer drivers: a printer language (PostScript, raw raster) above a transport (USB, serial,
file).  interface.Printer puts the two together; status_map turns device status into DICOM terms."""
