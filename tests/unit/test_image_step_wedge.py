import numpy as np
import pytest

from image.step_wedge import drive_wedge, p_value_wedge, wedge_levels


def test_levels_span_range():
    assert wedge_levels(5, 255).tolist() == [0, 64, 128, 191, 255]


def test_drive_wedge_bars():
    w = drive_wedge(4, 3, 8, 255)
    assert w.dtype == np.uint8 and w.shape == (3, 8)
    assert w[0].tolist() == [0, 0, 85, 85, 170, 170, 255, 255] and np.all(w == w[0])


def test_p_value_wedge_16_bit():
    w = p_value_wedge(21, 2, 210, 12)
    assert w.dtype == np.uint16 and w.max() == 4095 and len(np.unique(w)) == 21


def test_too_many_steps():
    with pytest.raises(ValueError):
        drive_wedge(10, 1, 5, 255)
