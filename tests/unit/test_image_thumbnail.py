"""Preview pixels against the standard's formulas (PS3.3 C.11.1.1.2, C.11.2.1.2, C.7.6.3.1.2) and
against exact properties of area averaging."""

import numpy as np
import pytest

from image.thumbnail import area_weights, downscale, to_display_8bit


def test_ramp_without_window_maps_min_max_linearly():
    ramp = np.arange(0, 1021, 4, dtype=np.uint16).reshape(1, -1)  # 0..1020, 256 values
    out = to_display_8bit(ramp, photometric="MONOCHROME2")
    assert out.dtype == np.uint8
    assert np.array_equal(out[0], np.rint(np.arange(256) * 255 / 255).astype(np.uint8))
    assert out[0, 0] == 0 and out[0, -1] == 255


def test_monochrome1_inverts():
    a = np.array([[0, 100, 200, 400]], dtype=np.int16)
    m2 = to_display_8bit(a, photometric="MONOCHROME2")
    m1 = to_display_8bit(a, photometric="MONOCHROME1")
    assert np.array_equal(m1.astype(int), 255 - m2.astype(int))
    assert m1[0, 0] == 255 and m1[0, -1] == 0  # the minimum is white


def test_linear_window_matches_the_standard():
    # PS3.3 C.11.2.1.2.1 with c = 40, w = 400 (a CT soft-tissue window), after rescale -1024.
    c, w = 40.0, 400.0
    stored = np.arange(0, 2048, dtype=np.int32).reshape(1, -1)
    out = to_display_8bit(stored, photometric="MONOCHROME2", window=(c, w), rescale=(1.0, -1024.0))
    x = stored[0] - 1024.0
    expected = np.where(x <= c - 0.5 - (w - 1) / 2, 0,
                        np.where(x > c - 0.5 + (w - 1) / 2, 255, ((x - (c - 0.5)) / (w - 1) + 0.5) * 255))
    assert np.array_equal(out[0], np.clip(np.rint(expected), 0, 255).astype(np.uint8))
    assert out[0, int(1024 + c - 0.5 - (w - 1) / 2)] == 0
    assert out[0, int(1024 + c + 200)] == 255


def test_rescale_slope_applies_before_the_window():
    stored = np.array([[0, 10, 20]], dtype=np.uint16)
    # slope 2, intercept 10 -> 10, 30, 50; window 30 +- ~10 maps 30 to the middle
    out = to_display_8bit(stored, photometric="MONOCHROME2", window=(30.5, 21.0), rescale=(2.0, 10.0))
    assert list(out[0]) == [0, 128, 255]


def test_linear_exact_and_sigmoid():
    x = np.array([[-100, 0, 100]], dtype=np.int16)
    exact = to_display_8bit(x, photometric="MONOCHROME2", window=(0, 200), voi_function="LINEAR_EXACT")
    assert list(exact[0]) == [0, 128, 255]  # ((x - c) / w + 0.5) * 255
    sig = to_display_8bit(x, photometric="MONOCHROME2", window=(0, 200), voi_function="SIGMOID")
    expected = 255 / (1 + np.exp(-4 * np.array([-100, 0, 100]) / 200))
    assert list(sig[0]) == list(np.rint(expected).astype(np.uint8))


def test_window_width_one_is_a_threshold():
    x = np.array([[9, 10, 11]], dtype=np.int16)
    assert list(to_display_8bit(x, photometric="MONOCHROME2", window=(10.5, 1))[0]) == [0, 0, 255]


def test_flat_frame_is_black_not_a_division_by_zero():
    assert not to_display_8bit(np.full((4, 4), 7, np.uint16), photometric="MONOCHROME2").any()


def test_rgb_is_scaled_from_bits_stored():
    rgb = np.zeros((2, 2, 3), np.uint16)
    rgb[0, 0] = (65535, 32768, 0)
    out = to_display_8bit(rgb, photometric="RGB", bits_stored=16)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert list(out[0, 0]) == [255, 128, 0]
    eight = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    assert np.array_equal(to_display_8bit(eight, photometric="RGB"), eight)


@pytest.mark.parametrize("kwargs,words", [
    ({"photometric": "YBR_FULL"}, "photometric"),
    ({"photometric": "MONOCHROME2", "window": (0, 0.5)}, "Window Width"),
    ({"photometric": "MONOCHROME2", "window": (0, 10), "voi_function": "CUBIC"}, "VOI LUT Function"),
    ({"photometric": "RGB"}, "(rows, cols, 3)"),
])
def test_bad_parameters_name_the_problem(kwargs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        to_display_8bit(np.zeros((2, 2), np.uint8), **kwargs)


def test_area_weights_rows_and_columns():
    for n_in, n_out in [(10, 3), (512, 256), (7, 5), (1000, 128)]:
        w = area_weights(n_in, n_out)
        assert np.allclose(w.sum(axis=1), 1.0)
        assert np.allclose(w.sum(axis=0), n_out / n_in)


def test_integer_factor_is_the_block_mean():
    a = np.arange(16, dtype=np.float64).reshape(4, 4)
    out = downscale(a, 2)
    assert np.allclose(out, a.reshape(2, 2, 2, 2).mean(axis=(1, 3)))


def test_mean_is_kept_for_any_factor_and_constant_stays_constant():
    rng = np.random.default_rng(8)
    a = rng.random((301, 517))
    out = downscale(a, 128)
    assert np.isclose(out.mean(), a.mean())
    assert np.allclose(downscale(np.full((301, 517), 42.0), 128), 42.0)


def test_aspect_kept_and_longer_side_bounded():
    out = downscale(np.zeros((1024, 256), np.uint8), 128)
    assert out.shape == (128, 32) and out.dtype == np.uint8
    assert downscale(np.zeros((300, 1000, 3), np.uint8), 100).shape == (30, 100, 3)
    assert downscale(np.zeros((1, 5000), np.uint8), 100).shape == (1, 100)  # never a zero side


def test_never_upscales():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = downscale(a, 256)
    assert out.shape == (3, 4) and np.array_equal(out, a) and out is not a


def test_rgb_channels_are_averaged_separately():
    a = np.zeros((4, 4, 3), np.uint8)
    a[..., 0] = 200
    a[:2, :2, 2] = 100
    out = downscale(a, 2)
    assert list(out[0, 0]) == [200, 0, 100] and list(out[1, 1]) == [200, 0, 0]


def test_bad_sizes():
    with pytest.raises(ValueError, match="max_side"):
        downscale(np.zeros((4, 4)), 0)
    with pytest.raises(ValueError, match="shape"):
        downscale(np.zeros((0, 4)), 2)


def test_many_row_bands_give_the_same_result_as_one_matrix_product():
    # Taller than several bands of the row-banded reduction, RGB and grey, odd factor.
    rng = np.random.default_rng(88)
    grey = rng.random((1100, 700))
    expected = area_weights(1100, 256) @ grey @ area_weights(700, 163).T
    assert np.allclose(downscale(grey, 256), expected)
    rgb = rng.random((1100, 700, 3))
    out = downscale(rgb, 256)
    for ch in range(3):
        assert np.allclose(out[..., ch], area_weights(1100, 256) @ rgb[..., ch] @ area_weights(700, 163).T)
