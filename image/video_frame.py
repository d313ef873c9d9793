"""A grabbed video frame made ready for a DICOM object: RGB to grayscale.

Frames arrive as (rows, columns, 3) uint8 RGB (drivers/grabber/interface.py).  A grayscale capture
(Multi-frame Grayscale Byte SC, PS3.3 A.8.3; MONOCHROME2 stills) keeps the luma only.
"""

from __future__ import annotations

import numpy as np

# ITU-R BT.601 luma weights in 1/256ths (77 + 150 + 29 = 256): the weights analog video itself
# uses for Y, so a grayscale capture of a composite source gives back the source's own luma.
_R, _G, _B = 77, 150, 29


def rgb_to_gray(frame: np.ndarray) -> np.ndarray:
    """(rows, columns, 3) uint8 RGB -> (rows, columns) uint8 luma, Y = (77 R + 150 G + 29 B + 128)
    >> 8 (BT.601, rounded; a gray pixel R = G = B keeps its value exactly).  ValueError for any
    other shape or dtype."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected (rows, columns, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
    acc = frame[..., 0].astype(np.uint16) * _R
    acc += frame[..., 1].astype(np.uint16) * _G
    acc += frame[..., 2].astype(np.uint16) * _B
    acc += 128
    return (acc >> 8).astype(np.uint8)
