import numpy as np

from image.annotate import composite_mask


def test_blend_and_clip():
    film = np.zeros((4, 4), np.uint8)
    mask = np.array([[1.0, 0.5], [0.0, 1.0]])
    composite_mask(film, mask, 3, 3, 200)  # only the top-left mask pixel lands on the film
    assert film[3, 3] == 200 and film.sum() == 200
    composite_mask(film, mask, 0, 0, 200)
    assert film[0, 1] == 100 and film[1, 0] == 0 and film[1, 1] == 200


def test_uint8_mask_and_colour():
    film = np.zeros((2, 2, 3), np.uint8)
    composite_mask(film, np.array([[255]], np.uint8), 0, 0, (10, 20, 30))
    assert tuple(film[0, 0]) == (10, 20, 30) and film[1, 1].sum() == 0


def test_off_film_is_noop():
    film = np.zeros((2, 2), np.uint16)
    composite_mask(film, np.ones((2, 2)), -5, -5, 9)
    assert film.sum() == 0
