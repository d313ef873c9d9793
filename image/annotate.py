"""Burn a rasterised text mask into a film.  Rasterising the glyphs is gateway/print/glyphs.py's job;
this only blends a coverage mask (0..1 floats, or bools) at a position, clipped to the film.
"""

from __future__ import annotations

import numpy as np


def composite_mask(film: np.ndarray, mask: np.ndarray, top: int, left: int, value) -> None:
    """Blend ``value`` (a drive level, or an RGB triple on a colour film) into ``film`` in place,
    weighted by ``mask``.  Parts of the mask that fall off the film are dropped."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"annotation mask must be 2-D, got shape {m.shape}")
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + m.shape[0], film.shape[0]), min(left + m.shape[1], film.shape[1])
    if t1 <= t0 or l1 <= l0:
        return
    alpha = m[t0 - top:t1 - top, l0 - left:l1 - left].astype(np.float32)
    if m.dtype.kind in "ui":
        alpha /= float(np.iinfo(m.dtype).max)
    region = film[t0:t1, l0:l1]
    if region.ndim == 3:
        alpha = alpha[..., None]
    value = np.asarray(value, dtype=np.float32)
    blended = region.astype(np.float32) * (1.0 - alpha) + value * alpha
    region[...] = np.rint(blended).astype(film.dtype)
