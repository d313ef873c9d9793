import numpy as np
import pytest

from image import gsdf
from image.density import CharacteristicCurve, build_lut, parse_density

# A measured-looking S-shaped curve: drive 0 is clear film, 255 fully exposed.
PAIRS = [(0, 0.18), (32, 0.25), (64, 0.45), (96, 0.85), (128, 1.4), (160, 1.95), (192, 2.45),
         (224, 2.85), (255, 3.10)]


def test_curve_passes_through_measured_points():
    c = CharacteristicCurve(PAIRS)
    d, od = np.array(PAIRS).T
    assert np.allclose(c.od_at(d), od)
    assert np.allclose(c.drive_for(od), d)


def test_inverse_is_monotone_without_overshoot():
    c = CharacteristicCurve(PAIRS)
    od = np.linspace(0.18, 3.10, 2000)
    drive = c.drive_for(od)
    assert np.all(np.diff(drive) >= 0)
    assert drive.min() >= 0 and drive.max() <= 255


def test_falling_curve_and_clamping():
    c = CharacteristicCurve.linear(255, 0.2, 3.0)  # PostScript-like: 0 is black
    assert c.drive_for(3.0) == pytest.approx(0) and c.drive_for(0.2) == pytest.approx(255)
    assert c.drive_for(5.0) == pytest.approx(0) and c.drive_for(0.0) == pytest.approx(255)
    assert c.drive_for(1.6) == pytest.approx(127.5)


def test_non_monotone_curve_rejected():
    with pytest.raises(ValueError, match="strictly"):
        CharacteristicCurve([(0, 0.2), (100, 1.0), (200, 0.9)])


@pytest.mark.parametrize("value,od", [("BLACK", 3.0), ("WHITE", 0.2), ("150", 1.5), (80, 0.8)])
def test_parse_density(value, od):
    assert parse_density(value, 0.2, 3.0) == pytest.approx(od)


def test_parse_density_rejects_garbage():
    with pytest.raises(ValueError, match="hundredths"):
        parse_density("GREY", 0.2, 3.0)


def test_lut_is_gsdf_then_curve():
    c = CharacteristicCurve(PAIRS)
    lut = build_lut(12, c, 0.2, 3.0)
    assert lut.shape == (4096,) and lut.dtype == np.uint8
    expected = np.rint(c.drive_for(gsdf.p_value_od_table(12, 0.2, 3.0)))
    assert np.array_equal(lut, expected)
    assert np.all(np.diff(lut.astype(int)) <= 0)  # brighter input, less exposure


def test_reverse_polarity_mirrors():
    c = CharacteristicCurve(PAIRS)
    assert np.array_equal(build_lut(8, c, 0.2, 3.0, polarity="REVERSE"),
                          build_lut(8, c, 0.2, 3.0)[::-1])


def test_presentation_lut_and_16_bit_drive():
    c = CharacteristicCurve([(0, 3.0), (4095, 0.2)])
    plut = np.full(256, 1023)  # every input to mid P-value of a 10-bit space
    lut = build_lut(8, c, 0.2, 3.0, presentation_lut=plut, p_bits=11)
    assert lut.dtype == np.uint16 and len(set(lut.tolist())) == 1
    mid = gsdf.od_from_p_values(1023, 2047, 0.2, 3.0)
    assert lut[0] == np.rint(c.drive_for(mid))


def test_bad_polarity():
    with pytest.raises(ValueError, match="Polarity"):
        build_lut(8, CharacteristicCurve(PAIRS), 0.2, 3.0, polarity="INVERT")
