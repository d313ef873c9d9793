"""Film printer drivers: a printer language (PostScript, raw raster) above a transport (USB, serial,
file).  interface.Printer puts the two together; status_map turns device status into DICOM terms;
ascii85 is PostScript's 7-bit encoding of the samples. Text rasterising (fonts) is not a printer's
protocol: it lives in gateway/print/glyphs.py."""
