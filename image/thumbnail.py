"""Preview images: stored pixel values to 8-bit display values, and a bounded-size reduction.

Used for the JPEG previews of the IHE PDI web content (gateway/media/pdi.py), which shows each
series as a small picture, not for diagnosis. Two steps, both pure numpy:

- to_display_8bit: the grayscale pipeline of PS3.4 N.2.1 cut short at the VOI stage, the Modality
  LUT as Rescale Slope / Intercept (PS3.3 C.11.1.1.2), then a VOI window (PS3.3 C.11.2.1.2 with
  the VOI LUT Functions LINEAR, LINEAR_EXACT and SIGMOID) or, when the object brings no window,
  the min-max of the frame itself; MONOCHROME1 is inverted (PS3.3 C.7.6.3.1.2: the minimum
  value is white). Colour (RGB, as pydicom returns YBR_* and PALETTE COLOR after conversion)
  is only scaled from bits_stored to 8 bits.
- downscale: area averaging (each output pixel is the mean of the input area it covers, with
  fractional edge pixels weighted by their overlap), so a preview neither aliases nor moves
  the image's mean; never enlarges.
"""

from __future__ import annotations

import numpy as np

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
_BAND = 256


def to_display_8bit(pixels: np.ndarray, *, photometric: str, window: tuple[float, float] | None = None,
                    rescale: tuple[float, float] = (1.0, 0.0), bits_stored: int = 8,
                    voi_function: str = "LINEAR") -> np.ndarray:
    """Map one frame of stored values to 8-bit display values.

    pixels: (rows, cols) of any integer or float dtype for MONOCHROME1 / MONOCHROME2;
      (rows, cols, 3) for RGB. photometric: the Photometric Interpretation of `pixels` as given
      (YBR_* must already be converted to RGB, as pydicom's pixel_array does by default).
    window: (center, width) in rescaled units (PS3.3 C.11.2.1.2.1), width >= 1 (> 0 for
      LINEAR_EXACT and SIGMOID); None: the frame's own min..max maps to 0..255 (a flat frame
      is all 0 before any MONOCHROME1 inversion).
    rescale: (slope, intercept), output units = stored * slope + intercept (PS3.3 C.11.1.1.2).
    bits_stored: the sample depth of RGB input (8 for JPEG, 16 for a 16-bit palette); ignored
      for monochrome, whose range comes from the window or the frame.
    voi_function: LINEAR, LINEAR_EXACT or SIGMOID (PS3.3 C.11.2.1.3.1).

    Returns uint8 of shape (rows, cols) for monochrome, (rows, cols, 3) for RGB.
    Raises ValueError naming the problem: an unknown photometric or VOI function, a shape that
    does not fit the photometric, a window width out of range, bits_stored outside 1..32.
    """
    arr = np.asarray(pixels)
    if photometric == "RGB":
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"RGB pixels must be (rows, cols, 3), got shape {arr.shape}")
        if not 1 <= bits_stored <= 32:
            raise ValueError(f"bits_stored must be 1..32, got {bits_stored}")
        top = float(2 ** bits_stored - 1)
        return _to_uint8(arr.astype(np.float64) * (255.0 / top))
    if photometric not in MONOCHROME:
        raise ValueError(f"photometric must be MONOCHROME1, MONOCHROME2 or RGB, got {photometric!r}")
    if arr.ndim != 2:
        raise ValueError(f"{photometric} pixels must be (rows, cols), got shape {arr.shape}")
    if voi_function not in VOI_FUNCTIONS:
        raise ValueError(f"VOI LUT Function must be one of {', '.join(VOI_FUNCTIONS)}, got {voi_function!r}")
    slope, intercept = rescale
    # float64: slope and intercept are decimal strings in the object and the window's edges fall
    # between stored values; one frame of a preview is small enough that precision wins.
    x = arr.astype(np.float64) * float(slope) + float(intercept)
    if window is None:
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        y = np.zeros_like(x) if hi <= lo else (x - lo) * (255.0 / (hi - lo))
    else:
        y = _voi(x, float(window[0]), float(window[1]), voi_function)
    out = _to_uint8(y)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return out


def _voi(x: np.ndarray, c: float, w: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR) and C.11.2.1.3.1 (LINEAR_EXACT, SIGMOID), output 0..255."""
    if function == "LINEAR":
        if w < 1:
            raise ValueError(f"Window Width must be >= 1 for LINEAR, got {w:g}")
        if w == 1:
            # The standard's formula divides by w - 1; width 1 is a threshold at c - 0.5.
            return np.where(x <= c - 0.5, 0.0, 255.0)
        y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0
        return np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, np.where(x > c - 0.5 + (w - 1) / 2, 255.0, y))
    if w <= 0:
        raise ValueError(f"Window Width must be > 0 for {function}, got {w:g}")
    if function == "LINEAR_EXACT":
        return ((x - c) / w + 0.5) * 255.0
    return 255.0 / (1.0 + np.exp(-4.0 * (x - c) / w))


def _to_uint8(y: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def downscale(arr: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink an image so that its longer side is at most max_side, keeping the aspect ratio.

    arr: (rows, cols) or (rows, cols, channels), any integer or float dtype.
    The output size is round(rows * s) x round(cols * s) with s = max_side / max(rows, cols),
    each side at least 1. An image that already fits is returned as a copy: never enlarged.
    Integer input comes back rounded and clipped to its own dtype; float input as float64.
    Raises ValueError for max_side < 1, an empty image or more than 3 dimensions.
    """
    a = np.asarray(arr)
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    if a.ndim not in (2, 3) or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"image must be (rows, cols) or (rows, cols, channels), got shape {a.shape}")
    rows, cols = a.shape[:2]
    if max(rows, cols) <= max_side:
        return a.copy()
    s = max_side / max(rows, cols)
    out_rows, out_cols = max(1, round(rows * s)), max(1, round(cols * s))
    wr, wc = area_weights(rows, out_rows), area_weights(cols, out_cols)
    y = np.zeros((out_rows, out_cols) + a.shape[2:], dtype=np.float64)
    # In bands of input rows: only one band is ever float64, so a 4k x 4k 16-bit frame costs a few
    # MB on top of itself instead of 128 MB (the box has 1-8 GB and other work to do).
    for r0 in range(0, rows, _BAND):
        band = a[r0:r0 + _BAND].astype(np.float64)
        cols_done = np.tensordot(band, wc, axes=([1], [1]))  # (band, [channels,] out_cols)
        if a.ndim == 3:
            cols_done = cols_done.transpose(0, 2, 1)  # (band, out_cols, channels)
        y += np.tensordot(wr[:, r0:r0 + _BAND], cols_done, axes=([1], [0]))
    if np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        return np.clip(np.rint(y), info.min, info.max).astype(a.dtype)
    return y


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float64 matrix W with out = W @ in along one axis, for area averaging.

    Output pixel i covers the input interval [i * n_in / n_out, (i + 1) * n_in / n_out); W[i, j]
    is the overlap of input pixel [j, j + 1) with it, divided by the interval's length. Each row
    sums to 1; each column sums to n_out / n_in (every input pixel counts equally).
    """
    step = n_in / n_out
    lo = np.arange(n_out)[:, None] * step
    hi = lo + step
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(j + 1, hi) - np.maximum(j, lo), 0.0, None)
    return overlap / step
