"""Resampling of an image to a new size: REPLICATE, BILINEAR, CUBIC, NONE (PS3.3 Magnification Type).

CUBIC is Keys' cubic convolution with a = -0.5 (the Catmull-Rom spline on a uniform grid), the
same kernel Pillow calls BICUBIC.  Sample positions are pixel-centre aligned:
src = (dst + 0.5) * n_in / n_out - 0.5.  When shrinking, the kernel is widened by the shrink
factor (as Pillow does) so that downsized images are low-pass filtered instead of aliased.
Out-of-image taps reuse the edge pixel.

Speed: both passes are matrix products with a precomputed weight matrix, applied in row blocks so
only the band of input rows a block of output rows touches is multiplied (the matrix is banded:
4 taps when enlarging).  BLAS does the arithmetic; numpy never loops per pixel.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

METHODS = ("REPLICATE", "BILINEAR", "CUBIC", "NONE")
_BLOCK = 128


def _keys(x, a=-0.5):
    x = np.abs(x)
    x2, x3 = x * x, x * x * x
    near = (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
    far = a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
    return np.where(x <= 1.0, near, np.where(x < 2.0, far, 0.0))


def _triangle(x):
    return np.clip(1.0 - np.abs(x), 0.0, None)


@lru_cache(maxsize=64)
def weight_matrix(n_in: int, n_out: int, method: str) -> np.ndarray:
    """(n_out, n_in) float32 matrix W with out = W @ in along one axis; rows sum to 1."""
    kernel, support = {"CUBIC": (_keys, 2.0), "BILINEAR": (_triangle, 1.0)}[method]
    scale = n_in / n_out
    stretch = max(scale, 1.0)
    centre = (np.arange(n_out) + 0.5) * scale - 0.5
    reach = int(np.ceil(support * stretch))
    first = np.floor(centre).astype(np.int64) - reach + 1
    taps = first[:, None] + np.arange(2 * reach)[None, :]
    w = kernel((centre[:, None] - taps) / stretch)
    w /= w.sum(axis=1, keepdims=True)
    mat = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.repeat(np.arange(n_out), taps.shape[1])
    np.add.at(mat, (rows, np.clip(taps, 0, n_in - 1).ravel()), w.ravel())
    mat = mat.astype(np.float32)
    mat.flags.writeable = False
    return mat


@lru_cache(maxsize=64)
def _bands(n_in: int, n_out: int, method: str):
    """Split W into row blocks, each with the column range it actually reads."""
    mat = weight_matrix(n_in, n_out, method)
    bands = []
    for o0 in range(0, n_out, _BLOCK):
        o1 = min(o0 + _BLOCK, n_out)
        cols = np.nonzero(mat[o0:o1].any(axis=0))[0]
        lo, hi = int(cols[0]), int(cols[-1]) + 1
        bands.append((o0, o1, lo, hi, np.ascontiguousarray(mat[o0:o1, lo:hi])))
    return tuple(bands)


def _rows_pass(src: np.ndarray, n_out: int, method: str, out: np.ndarray) -> np.ndarray:
    for o0, o1, lo, hi, w in _bands(src.shape[0], n_out, method):
        np.matmul(w, src[lo:hi], out=out[o0:o1])
    return out


def _replicate_index(n_in: int, n_out: int) -> np.ndarray:
    return np.minimum(((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.intp), n_in - 1)


def resize(img: np.ndarray, rows: int, cols: int, method: str) -> np.ndarray:
    """Resample a 2-D (or H x W x C) image to rows x cols.

    REPLICATE keeps the dtype (nearest neighbour; an integer factor repeats each pixel exactly).
    BILINEAR and CUBIC return float32 without clipping (cubic overshoots; the caller clips once
    where it converts).  NONE is not a resampling: it returns ``img`` and the caller crops or pads.
    """
    if method not in METHODS:
        raise ValueError(f"Magnification Type {method!r} is not one of {', '.join(METHODS)}")
    if rows < 1 or cols < 1:
        raise ValueError(f"target size {rows}x{cols} must be at least 1x1")
    if method == "NONE":
        return img
    if method == "REPLICATE":
        return img[_replicate_index(img.shape[0], rows)][:, _replicate_index(img.shape[1], cols)]
    if img.ndim == 3:
        return np.stack([resize(img[..., c], rows, cols, method) for c in range(img.shape[2])],
                        axis=-1)
    src = img.astype(np.float32, copy=False)
    # Vertical pass first on the small input, then the horizontal pass on its transpose so both
    # passes multiply contiguous row blocks; the final transpose is a view.
    tall = _rows_pass(src, rows, method, np.empty((rows, src.shape[1]), np.float32))
    wide_t = _rows_pass(np.ascontiguousarray(tall.T), cols, method,
                        np.empty((cols, rows), np.float32))
    return wide_t.T
