"""Is a second copy of an instance the same instance? Its data set's bytes decide, not the file's.

The File Meta Information (group 0002, PS3.10 7.1) is written by whoever stored the file: this box
makes it from the association (Source Application Entity Title (0002,0016) is the calling AE), a
medium's FSC wrote its own. The same object sent again by another AE (a PACS returning what the
modality sent, a study imported from a disc) differs only there, and calling it "different
content" would log a false warning and keep or replace a copy for nothing. Two copies are the same
when their transfer syntaxes are equal and their data sets are equal byte for byte.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.part10.structure import StructureError, file_meta

_META_READ = 1 << 16  # a file meta is a few hundred bytes
_CHUNK = 1 << 20


def same_data_set(a: Path, b: Path) -> bool:
    """True when the Part-10 files `a` and `b` hold the same data set (bytes after the file meta)
    in the same transfer syntax. False when either is not a readable Part-10 file (then they are
    compared as files: equal bytes, equal instance). Raises OSError when a file cannot be read."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        starts = []
        for fh in (fa, fb):
            head = fh.read(_META_READ)
            try:
                start, meta = file_meta(head)
            except StructureError:
                start, meta = 0, {}
            starts.append((start, meta.get("transfer_syntax")))
        (start_a, ts_a), (start_b, ts_b) = starts
        if ts_a != ts_b:
            return False
        size_a, size_b = os.fstat(fa.fileno()).st_size, os.fstat(fb.fileno()).st_size
        if size_a - start_a != size_b - start_b:
            return False
        fa.seek(start_a)
        fb.seek(start_b)
        while True:
            x, y = fa.read(_CHUNK), fb.read(_CHUNK)
            if x != y:
                return False
            if not x:
                return True
