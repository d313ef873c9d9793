import numpy as np
import pytest

from gateway.print.glyphs import FontNotFound, find_font, needs_cjk, render_text
from image.annotate import composite_mask


def _font(cjk):
    try:
        return find_font(cjk)
    except FontNotFound as exc:  # fonts are optional on the box: annotations then go unprinted
        pytest.skip(str(exc))


def test_latin_text_mask():
    _font(False)
    mask = render_text("PATIENT 12", 24)
    assert mask.dtype == np.uint8 and mask.shape[1] > mask.shape[0] > 10
    assert mask.max() == 255 and 0.05 < (mask > 127).mean() < 0.8


def test_japanese_needs_and_gets_real_glyphs():
    assert needs_cjk("山田^太郎") and not needs_cjk("Yamada^Taro")
    _font(True)
    a, b = render_text("山", 32), render_text("田", 32)
    # Missing glyphs come out as identical boxes; real ones differ.
    assert a.max() == 255 and (a.shape != b.shape or not np.array_equal(a, b))


def test_text_burned_into_film_at_position():
    _font(False)
    film = np.zeros((100, 300), np.uint8)
    mask = render_text("LEFT", 20)
    composite_mask(film, mask, 10, 20, 255)
    ink = np.argwhere(film > 0)
    assert ink[:, 0].min() >= 10 and ink[:, 1].min() >= 20
    assert np.array_equal(film[10:10 + mask.shape[0], 20:20 + mask.shape[1]] > 127, mask > 127)


def test_tiny_text_refused():
    with pytest.raises(ValueError, match="too small"):
        render_text("x", 2)
