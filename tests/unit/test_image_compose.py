import numpy as np
import pytest

from image.compose import FilmSpec, ImageBox, compose_film, fitted_size
from image.density import CharacteristicCurve, build_lut
from image.film_layout import film_matrix, layout_boxes
from image.magnify import resize

CURVE = CharacteristicCurve.linear(255, 0.2, 3.0)  # drive 0 = Dmax (black), 255 = Dmin
SPEC = dict(film_size="8INX10IN", dpi=50, min_density=0.2, max_density=3.0)


def _spec(**kw):
    return FilmSpec(**{**SPEC, **kw})


def test_empty_film_is_border_and_empty_density():
    film = compose_film(_spec(display_format="STANDARD\\2,2", border_density="WHITE",
                              empty_image_density="150"), [], CURVE)
    assert film.shape == film_matrix("8INX10IN", "PORTRAIT", 50) and film.dtype == np.uint8
    # every box is empty, so everything is the empty-image density 1.50 OD
    assert np.all(film == np.rint(CURVE.drive_for(1.5)))


def test_image_is_lut_of_magnified_pixels_centred_in_its_box():
    rng = np.random.default_rng(2)
    px = rng.integers(0, 4096, (40, 40), dtype=np.uint16)
    spec = _spec(display_format="STANDARD\\2,1", border_density="BLACK", magnification="CUBIC")
    film = compose_film(spec, [ImageBox(2, px, bits_stored=12)], CURVE)
    rows, cols = film.shape
    box = layout_boxes("STANDARD\\2,1", rows, cols)[1]
    size = min(box.rows, box.cols)
    top, left = box.top + (box.rows - size) // 2, box.left + (box.cols - size) // 2
    mag = np.clip(resize(px, size, size, "CUBIC"), 0, 4095)
    expect = build_lut(12, CURVE, 0.2, 3.0)[np.floor(mag + 0.5).astype(int)]
    assert np.array_equal(film[top:top + size, left:left + size], expect)
    # outside the image: border density (BLACK = drive 0); box 1 is empty (BLACK default)
    assert np.all(film[:, :left] == 0) and np.all(film[top + size:, :] == 0)


def test_polarity_reverse_and_replicate():
    px = np.array([[0, 255], [255, 0]], np.uint8)
    film_n = compose_film(_spec(magnification="REPLICATE"), [ImageBox(1, px)], CURVE)
    film_r = compose_film(_spec(magnification="REPLICATE"),
                          [ImageBox(1, px, polarity="REVERSE")], CURVE)
    lut = build_lut(8, CURVE, 0.2, 3.0)
    assert set(np.unique(film_n).tolist()) == {int(lut[0]), int(lut[255])}
    rows, cols = film_n.shape
    k = min(rows // 2, cols // 2)  # whole replication factor
    top, left = (rows - 2 * k) // 2, (cols - 2 * k) // 2
    assert film_n[top, left] == lut[0] and film_r[top, left] == lut[255]
    assert film_n[top + k, left] == lut[255]


def test_requested_size_never_exceeds_box():
    assert fitted_size(100, 100, 400, 300, "CUBIC", 25.4, 100) == (100, 100)  # 1 inch at 100 dpi
    assert fitted_size(100, 50, 400, 300, "CUBIC", 25.4, 100) == (200, 100)
    assert fitted_size(100, 100, 400, 300, "CUBIC", 1000.0, 100) == (300, 300)
    assert fitted_size(100, 100, 400, 300, "REPLICATE", None, 100) == (300, 300)
    assert fitted_size(100, 100, 250, 250, "REPLICATE", None, 100) == (200, 200)
    assert fitted_size(500, 100, 250, 250, "NONE", None, 100) == (250, 100)


def test_trim_draws_opposite_density_around_image():
    px = np.full((10, 10), 128, np.uint8)
    film = compose_film(_spec(trim=True, border_density="BLACK", dpi=100), [ImageBox(1, px)], CURVE)
    white = int(np.rint(CURVE.drive_for(0.2)))
    assert np.any(film == white)
    rows, cols = film.shape
    mid = film[rows // 2]
    inside = np.nonzero(mid == build_lut(8, CURVE, 0.2, 3.0)[128])[0]
    assert mid[inside[0] - 1] == white and mid[inside[-1] + 1] == white


def test_colour_film():
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[..., 0] = 255
    gray = np.full((20, 20), 255, np.uint8)
    film = compose_film(_spec(colour=True, display_format="STANDARD\\2,1",
                              border_density="WHITE"), [ImageBox(1, rgb), ImageBox(2, gray)], CURVE)
    assert film.shape[2] == 3 and film.dtype == np.uint8
    rows, cols, _ = film.shape
    assert tuple(film[rows // 2, cols // 4]) == (255, 0, 0)
    assert tuple(film[rows // 2, 3 * cols // 4]) == (255, 255, 255)


@pytest.mark.parametrize("images,word", [
    ([ImageBox(3, np.zeros((2, 2), np.uint8))], "does not exist"),
    ([ImageBox(1, np.zeros((2, 2), np.uint8))] * 2, "twice"),
    ([ImageBox(1, np.zeros((2, 2), np.float32))], "integer"),
    ([ImageBox(1, np.zeros((2, 2, 3), np.uint8))], "colour film"),
])
def test_bad_boxes_are_named(images, word):
    with pytest.raises(ValueError, match=word):
        compose_film(_spec(display_format="STANDARD\\1,2"), images, CURVE)
