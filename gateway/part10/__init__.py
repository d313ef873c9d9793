"""The Part-10 codec: reading and writing DICOM files (PS3.10) without the network or the buffer.

What lives here:
  file_meta.py     the 128-byte preamble, "DICM" and the File Meta Information (group 0002) a
                   received data set is stored behind (PS3.10 7.1), written by hand
  structure.py     the structure walk: does the encoded data set hold together, to the last byte;
                   reads the file meta back (file_meta()), finds stray group 0002 elements, and
                   collects a few top-level values on the way (walk_file)
  attributes.py    the indexed attributes (InstanceAttributes, read_attributes) taken from that
                   walk, with pydicom only for the unusual header
  coerce.py        attribute coercion on the bytes: set/replace/delete top-level elements, the
                   previous values in an Original Attributes Sequence item (PS3.3 C.12.1.1.9),
                   everything else copied as it was (import reconciliation; attribute coercion)

Who uses it: the buffer (ingest, routing), the DICOM roles (the storage acceptor writes the file
meta, the requestor reads it back, the Store SCP reads attributes), app.py (configure_pydicom),
and the media writers to come.

Floor: the config floor (tests/unit/test_layers.py). It may import pydicom, the standard library,
image/, drivers/, gateway.config and the leaves (gateway.identity gives the implementation class
UID and version name); never gateway.buffer, gateway.dicom, gateway.print, gateway.app or
gateway.cli. The buffer and the network both sit above it, so the Part-10 bytes they agree on are
defined once, here.
"""
