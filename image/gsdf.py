"""Grayscale Standard Display Function (DICOM PS3.14) for hardcopy: P-value -> optical density.

PS3.14 section 7 defines hardcopy luminance as L = La + L0 * 10**(-D), where L0 is the
illumination of the light box (Illumination (2010,015E)) and La the reflected ambient light
(Reflected Ambient Light (2010,0160)), both in cd/m^2.  P-values are spread linearly over the
JND indices between the film's darkest (Max Density) and brightest (Min Density) luminance, so
P-value 0 is Max Density and the top P-value is Min Density.

The JND index of a luminance uses the standard's polynomial j(L) (eq. 7-2) and the luminance of
a JND index its rational polynomial L(j) (eq. 7-1).  j(L) is only an approximate inverse of L(j),
so the end points land a few 1e-4 OD inside [Dmin, Dmax]; that is what the standard's formulas
give, and what DCMTK's dcmdspfn prints, so it is kept rather than forced.
"""

from __future__ import annotations

import numpy as np

# PS3.14 eq. 7-1 coefficients (L as a function of the JND index j).
_A, _B, _C, _D, _E = -1.3011877, -2.5840191e-2, 8.0242636e-2, -1.0320229e-1, 1.3646699e-1
_F, _G, _H, _K, _M = 2.8745620e-2, -2.5468404e-2, -3.1978977e-3, 1.2992634e-4, 1.3635334e-3
# PS3.14 eq. 7-2 coefficients (j as a function of log10 L), highest power last.
_J_POLY = (71.498068, 94.593053, 41.912053, 9.8247004, 0.28175407,
           -1.1878455, -0.18014349, 0.14710899, -0.017046845)

JND_MIN, JND_MAX = 1.0, 1023.0


def luminance_from_jnd(j):
    """Luminance in cd/m^2 of JND index ``j`` (1..1023), PS3.14 eq. 7-1."""
    x = np.log(np.asarray(j, dtype=np.float64))
    num = _A + x * (_C + x * (_E + x * (_G + x * _M)))
    den = 1.0 + x * (_B + x * (_D + x * (_F + x * (_H + x * _K))))
    return np.power(10.0, num / den)


def jnd_from_luminance(lum):
    """JND index of luminance ``lum`` in cd/m^2 (0.05..3993), PS3.14 eq. 7-2."""
    lg = np.log10(np.asarray(lum, dtype=np.float64))
    return np.polynomial.polynomial.polyval(lg, _J_POLY)


def luminance_from_od(od, illumination, ambient):
    """Luminance seen on a light box: L = La + L0 * 10**-D (PS3.14 section 7)."""
    return ambient + illumination * np.power(10.0, -np.asarray(od, dtype=np.float64))


def od_from_luminance(lum, illumination, ambient):
    """Inverse of luminance_from_od."""
    return -np.log10((np.asarray(lum, dtype=np.float64) - ambient) / illumination)


def _check(dmin, dmax, illumination, ambient):
    if not (0.0 <= dmin < dmax):
        raise ValueError(f"Min Density {dmin} must be >= 0 and below Max Density {dmax}")
    if illumination <= 0 or ambient < 0:
        raise ValueError(f"Illumination {illumination} must be > 0 and Reflected Ambient Light "
                         f"{ambient} >= 0 (cd/m^2)")
    for lum in (luminance_from_od(dmax, illumination, ambient),
                luminance_from_od(dmin, illumination, ambient)):
        if not (0.05 <= lum <= 3993.0):
            raise ValueError(f"luminance {lum:.4g} cd/m^2 from these densities, Illumination and "
                             "Reflected Ambient Light is outside the GSDF range 0.05..3993")


def od_from_p_values(p, p_max, dmin, dmax, illumination=2000.0, ambient=10.0):
    """Optical density for P-values ``p`` in 0..``p_max``: P-value -> JND -> luminance -> OD.

    Defaults for Illumination (2000 cd/m^2) and Reflected Ambient Light (10 cd/m^2) are PS3.3
    C.13.5's defaults.  Returns float64 densities, clipped to [dmin, dmax].
    """
    _check(dmin, dmax, illumination, ambient)
    j_lo = jnd_from_luminance(luminance_from_od(dmax, illumination, ambient))
    j_hi = jnd_from_luminance(luminance_from_od(dmin, illumination, ambient))
    frac = np.asarray(p, dtype=np.float64) / float(p_max)
    lum = luminance_from_jnd(j_lo + frac * (j_hi - j_lo))
    return np.clip(od_from_luminance(lum, illumination, ambient), dmin, dmax)


def p_value_od_table(bits, dmin, dmax, illumination=2000.0, ambient=10.0):
    """OD for every P-value of a ``bits``-bit P-value space: the table LUTs are built from."""
    p_max = (1 << bits) - 1
    return od_from_p_values(np.arange(p_max + 1), p_max, dmin, dmax, illumination, ambient)
