"""Step wedges for calibrating a printer.

Print ``drive_wedge`` straight to the printer (no LUT), measure each step with a densitometer, and
the (drive level, OD) pairs are the characteristic curve (density.CharacteristicCurve).  Print
``p_value_wedge`` through the normal pipeline to check the result follows the GSDF: its steps are
equal P-value increments, so their densities should match gsdf.od_from_p_values.
"""

from __future__ import annotations

import numpy as np


def wedge_levels(steps: int, max_level: int) -> np.ndarray:
    """``steps`` integer levels spread evenly from 0 to ``max_level`` inclusive."""
    if steps < 2:
        raise ValueError(f"a step wedge needs at least 2 steps, got {steps}")
    if max_level < steps - 1:
        raise ValueError(f"{steps} distinct steps do not fit in levels 0..{max_level}")
    return np.rint(np.linspace(0, max_level, steps)).astype(np.int64)


def _bars(levels: np.ndarray, rows: int, cols: int, dtype) -> np.ndarray:
    if cols < len(levels) or rows < 1:
        raise ValueError(f"a {rows}x{cols} image cannot hold {len(levels)} steps")
    edges = (np.arange(cols) * len(levels)) // cols
    return np.broadcast_to(levels[edges].astype(dtype), (rows, cols)).copy()


def drive_wedge(steps: int, rows: int, cols: int, drive_max: int) -> np.ndarray:
    """Vertical bars of drive levels, left (0) to right (drive_max), as a film to print raw."""
    dtype = np.uint8 if drive_max <= 0xFF else np.uint16
    return _bars(wedge_levels(steps, drive_max), rows, cols, dtype)


def p_value_wedge(steps: int, rows: int, cols: int, bits: int) -> np.ndarray:
    """Vertical bars of stored values (identity P-values) for an ImageBox of ``bits`` bits."""
    return _bars(wedge_levels(steps, (1 << bits) - 1), rows, cols, np.uint16)
