"""Optical density to printer drive level, and the per-image LUT from stored values to drive levels.

A printer is described by its characteristic curve: pairs (drive level, measured OD) read off a
printed step wedge (see step_wedge.py).  The inverse (OD -> drive level) is interpolated with a
monotone piecewise-cubic Hermite curve (Fritsch-Carlson slopes, the PCHIP scheme), so it never
overshoots between measured points and a monotone curve stays monotone: adjacent P-values can
never swap density.  Densities outside the measured range go to the nearest end of it.
"""

from __future__ import annotations

import numpy as np

from image.gsdf import od_from_p_values

POLARITIES = ("NORMAL", "REVERSE")


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h = np.diff(x)
    delta = np.diff(y) / h
    m = np.empty_like(y)
    m[0], m[-1] = delta[0], delta[-1]
    if len(x) > 2:
        w1 = 2.0 * h[1:] + h[:-1]
        w2 = h[1:] + 2.0 * h[:-1]
        same_sign = delta[:-1] * delta[1:] > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            harmonic = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
        m[1:-1] = np.where(same_sign, harmonic, 0.0)
    return m


def _pchip_eval(x, y, m, xq):
    xq = np.clip(np.asarray(xq, dtype=np.float64), x[0], x[-1])
    k = np.clip(np.searchsorted(x, xq, side="right") - 1, 0, len(x) - 2)
    h = x[k + 1] - x[k]
    t = (xq - x[k]) / h
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * y[k] + (t3 - 2 * t2 + t) * h * m[k]
            + (-2 * t3 + 3 * t2) * y[k + 1] + (t3 - t2) * h * m[k + 1])


class CharacteristicCurve:
    """Measured (drive level, OD) pairs of one printer and film; drive levels are integers."""

    def __init__(self, pairs, drive_max: int | None = None):
        pts = sorted((float(d), float(od)) for d, od in pairs)
        if len(pts) < 2:
            raise ValueError("a characteristic curve needs at least two (drive level, OD) pairs")
        drive = np.array([p[0] for p in pts])
        od = np.array([p[1] for p in pts])
        if np.any(np.diff(drive) <= 0):
            raise ValueError("characteristic curve has the same drive level twice")
        step = np.diff(od)
        if not (np.all(step > 0) or np.all(step < 0)):
            raise ValueError("characteristic curve OD must rise (or fall) strictly with drive "
                             f"level; measured ODs were {od.tolist()}")
        self.drive = drive
        self.od = od
        self.drive_max = int(drive_max if drive_max is not None else drive[-1])
        if self.drive_max < drive[-1]:
            raise ValueError(f"drive_max {self.drive_max} is below a measured drive level")
        order = np.argsort(od)
        self._od_sorted, self._drive_by_od = od[order], drive[order]
        self._inv_slopes = _pchip_slopes(self._od_sorted, self._drive_by_od)
        self._fwd_slopes = _pchip_slopes(drive, od)

    @classmethod
    def linear(cls, drive_max: int, dmin: float, dmax: float, dark_at_zero: bool = True):
        """An ideal printer whose OD is linear in drive level (for tests and uncalibrated use)."""
        ends = [(0, dmax), (drive_max, dmin)] if dark_at_zero else [(0, dmin), (drive_max, dmax)]
        return cls(ends, drive_max)

    @property
    def od_range(self) -> tuple[float, float]:
        return float(self._od_sorted[0]), float(self._od_sorted[-1])

    def od_at(self, drive):
        """Interpolated OD the printer makes at ``drive``."""
        return _pchip_eval(self.drive, self.od, self._fwd_slopes, drive)

    def drive_for(self, od):
        """Drive level (float) that prints density ``od``; clamped to the measured range."""
        return _pchip_eval(self._od_sorted, self._drive_by_od, self._inv_slopes, od)

    def drive_dtype(self):
        return np.uint8 if self.drive_max <= 0xFF else np.uint16

    def drive_levels_for(self, od) -> np.ndarray:
        """Rounded integer drive levels for densities ``od``, in the curve's drive dtype."""
        return np.rint(self.drive_for(od)).astype(self.drive_dtype())


def parse_density(value, dmin: float, dmax: float) -> float:
    """Border / Empty Image Density: BLACK, WHITE, or an integer in hundredths of OD."""
    text = str(value).strip().upper()
    if text == "BLACK":
        return float(dmax)
    if text == "WHITE":
        return float(dmin)
    try:
        return int(text) / 100.0
    except ValueError:
        raise ValueError(f"density {value!r} is not BLACK, WHITE or hundredths of OD") from None


def build_lut(in_bits: int, curve: CharacteristicCurve, dmin: float, dmax: float,
              illumination: float = 2000.0, ambient: float = 10.0, polarity: str = "NORMAL",
              presentation_lut: np.ndarray | None = None, p_bits: int | None = None) -> np.ndarray:
    """LUT (length 2**in_bits) from stored pixel value to drive level, in one table lookup.

    Stored values are P-values themselves (identity Presentation LUT, MONOCHROME2 sense: larger
    is brighter) unless ``presentation_lut`` maps each stored value to a P-value of ``p_bits``
    bits.  REVERSE polarity prints the opposite: the stored value is mirrored before mapping.
    """
    if polarity not in POLARITIES:
        raise ValueError(f"Polarity {polarity!r} is not NORMAL or REVERSE")
    if not 1 <= in_bits <= 16:
        raise ValueError(f"bits stored {in_bits} must be 1..16")
    n = 1 << in_bits
    values = np.arange(n)
    if polarity == "REVERSE":
        values = values[::-1]
    if presentation_lut is None:
        p, p_max = values, n - 1
    else:
        plut = np.asarray(presentation_lut)
        if plut.shape != (n,):
            raise ValueError(f"Presentation LUT has {plut.size} entries, {n} needed for "
                             f"{in_bits}-bit input")
        p_max = (1 << (p_bits or in_bits)) - 1
        p = np.clip(plut[values], 0, p_max)
    od = od_from_p_values(p, p_max, dmin, dmax, illumination, ambient)
    return curve.drive_levels_for(od)
