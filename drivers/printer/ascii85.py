"""ASCII85 (Adobe btoa) encoding of large byte strings, vectorised: how the PostScript language
(postscript.py) carries a film's samples in a 7-bit clean job (PLRM 3rd ed. 3.13.3, ASCII85Decode).

The standard library's base64.a85encode works per 4-byte group in Python and takes seconds for a
film; this gives the same text.  Output has no '<~' prefix (PostScript's ASCII85Decode filter does
not want one) and ends with the '~>' end-of-data marker.
"""

from __future__ import annotations

import numpy as np


def ascii85_encode(data: bytes, line_length: int = 76) -> bytes:
    """`data` (any length) as ASCII85 text ending with '~>', wrapped every `line_length` output
    characters (0: one line). An all-zero 4-byte group is 'z'. Same text as base64.a85encode."""
    n = len(data)
    pad = (-n) % 4
    words = np.frombuffer(data + b"\0" * pad, dtype=">u4").astype(np.uint32)
    digits = np.empty((words.size, 5), dtype=np.uint8)
    rest = words.copy()
    for i in range(4, -1, -1):
        digits[:, i] = rest % 85
        rest //= 85
    digits += 33
    text = digits.reshape(-1)
    zero = words == 0
    if pad:
        text = text[: text.size - pad]
        zero[-1] = False  # a short last group is never written as 'z'
    if zero.any():
        # 'z' stands for a whole zero group: keep 1 of its 5 characters and make it 'z'.
        keep = np.ones((words.size, 5), dtype=bool)
        keep[zero, 1:] = False
        grid = digits.copy()
        grid[zero, 0] = ord("z")
        flat_keep = keep.reshape(-1)[: text.size]
        text = grid.reshape(-1)[: text.size][flat_keep]
    raw = text.tobytes()
    if line_length:
        raw = b"\n".join(raw[i:i + line_length] for i in range(0, len(raw), line_length))
    return raw + b"~>"
