"""Magnification against exact properties of each kernel and against Pillow's Keys a=-0.5 bicubic."""

import numpy as np
import pytest
from PIL import Image

from image.magnify import resize, weight_matrix


def test_replicate_integer_factor_repeats_pixels():
    a = np.arange(6, dtype=np.uint16).reshape(2, 3)
    assert np.array_equal(resize(a, 4, 6, "REPLICATE"), np.repeat(np.repeat(a, 2, 0), 2, 1))
    assert resize(a, 4, 6, "REPLICATE").dtype == np.uint16


def test_none_returns_input():
    a = np.ones((3, 3), np.uint8)
    assert resize(a, 9, 9, "NONE") is a


@pytest.mark.parametrize("method", ["BILINEAR", "CUBIC"])
@pytest.mark.parametrize("n_in,n_out", [(512, 1088), (7, 20), (100, 37)])
def test_weights_sum_to_one(method, n_in, n_out):
    assert np.allclose(weight_matrix(n_in, n_out, method).sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("method", ["BILINEAR", "CUBIC"])
def test_linear_ramp_is_reproduced_in_the_interior(method):
    # Both kernels interpolate a linear function exactly; sample positions are pixel centres.
    ramp = np.tile(np.arange(64, dtype=np.float32) * 10, (8, 1))
    out = resize(ramp, 8, 160, method)
    x = (np.arange(160) + 0.5) * 64 / 160 - 0.5
    inner = (x > 2) & (x < 61)
    assert np.allclose(out[:, inner], x[inner] * 10, atol=1e-3)


def test_cubic_reproduces_quadratics():
    # Keys a=-0.5 is third-order accurate: quadratics come out exactly (bilinear cannot).
    q = (np.arange(40, dtype=np.float64) ** 2).astype(np.float32)
    img = np.tile(q, (4, 1))
    out = resize(img, 4, 100, "CUBIC")[0]
    x = (np.arange(100) + 0.5) * 40 / 100 - 0.5
    inner = (x > 2) & (x < 37)
    assert np.allclose(out[inner], x[inner] ** 2, atol=2e-3)
    lin = resize(img, 4, 100, "BILINEAR")[0]
    assert np.max(np.abs(lin[inner] - x[inner] ** 2)) > 0.05


@pytest.mark.parametrize("method,pil", [("CUBIC", Image.BICUBIC), ("BILINEAR", Image.BILINEAR)])
@pytest.mark.parametrize("shape", [(1088, 1088), (300, 200)])
def test_matches_pillow_away_from_edges(method, pil, shape):
    # Pillow's BICUBIC is Keys a=-0.5 and widens the kernel when shrinking, as ours does; edges
    # differ on purpose (we repeat the edge pixel, Pillow renormalises the missing taps).
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4096, (512, 512)).astype(np.float32)
    ours = resize(a, shape[0], shape[1], method)
    ref = np.asarray(Image.fromarray(a).resize((shape[1], shape[0]), pil))
    assert np.max(np.abs(ours - ref)[8:-8, 8:-8]) < 0.01


def test_rgb_is_resized_per_channel():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 1] = 200
    out = resize(rgb, 8, 8, "CUBIC")
    assert out.shape == (8, 8, 3) and np.allclose(out[..., 1], 200) and np.allclose(out[..., 0], 0)


def test_unknown_method():
    with pytest.raises(ValueError, match="Magnification Type"):
        resize(np.zeros((2, 2)), 4, 4, "LANCZOS")
