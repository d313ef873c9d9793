import pytest

from image.film_layout import (FILM_SIZES_MM, film_matrix, film_size_mm, layout_boxes,
                               parse_display_format)


def test_14x17_at_320_dpi():
    assert film_matrix("14INX17IN", "PORTRAIT", 320) == (5440, 4480)
    assert film_matrix("14INX17IN", "LANDSCAPE", 320) == (4480, 5440)


@pytest.mark.parametrize("size,mm", [("A4", (297, 210)), ("24CMX30CM", (300, 240)),
                                     ("8_5INX11IN", (279.4, 215.9)), ("14INX14IN", (355.6, 355.6))])
def test_film_sizes(size, mm):
    assert film_size_mm(size) == pytest.approx(mm)


def test_all_twelve_sizes_known():
    assert len(FILM_SIZES_MM) == 12
    for size in FILM_SIZES_MM:
        rows, cols = film_matrix(size, "PORTRAIT", 150)
        assert rows >= cols > 0


def _tiles(boxes, rows, cols):
    cover = [[0] * cols for _ in range(rows)]
    for b in boxes:
        for r in range(b.top, b.top + b.rows):
            for c in range(b.left, b.left + b.cols):
                cover[r][c] += 1
    return all(v == 1 for line in cover for v in line)


def test_standard_is_columns_then_rows_numbered_row_major():
    boxes = layout_boxes("STANDARD\\3,2", 20, 30)
    assert len(boxes) == 6
    assert [(b.top, b.left) for b in boxes] == [(0, 0), (0, 10), (0, 20), (10, 0), (10, 10),
                                                 (10, 20)]
    assert [b.position for b in boxes] == [1, 2, 3, 4, 5, 6]
    assert _tiles(boxes, 20, 30)


def test_row_format():
    boxes = layout_boxes("ROW\\1,3", 10, 9)
    assert [(b.top, b.left, b.rows, b.cols) for b in boxes] == [
        (0, 0, 5, 9), (5, 0, 5, 3), (5, 3, 5, 3), (5, 6, 5, 3)]


def test_col_format_numbered_left_to_right_top_to_bottom():
    boxes = layout_boxes("COL\\2,3", 12, 10)
    assert [(b.top, b.left) for b in boxes] == [(0, 0), (0, 5), (4, 5), (6, 0), (8, 5)]
    assert _tiles(boxes, 12, 10)


def test_uneven_division_still_tiles():
    boxes = layout_boxes("STANDARD\\3,3", 31, 29)
    assert _tiles(boxes, 31, 29)


@pytest.mark.parametrize("fmt,word", [("SLIDE", "backslash"), ("CUSTOM\\1", "only STANDARD"),
                                      ("STANDARD\\2", "exactly"), ("ROW\\0,1", ">= 1"),
                                      ("COL\\a", "integers")])
def test_bad_formats_are_named(fmt, word):
    with pytest.raises(ValueError, match=word):
        parse_display_format(fmt)


def test_bad_film_size_and_orientation():
    with pytest.raises(ValueError, match="Film Size ID"):
        film_matrix("9INX9IN", "PORTRAIT", 300)
    with pytest.raises(ValueError, match="Orientation"):
        film_matrix("A4", "SIDEWAYS", 300)
