"""Film geometry: pixel matrix of a film and the image boxes of an Image Display Format.

Film Size ID defined terms are PS3.3 C.13.8 (Basic Film Box).  Image Display Format follows
PS3.3 C.13.5.1: STANDARD\\C,R is R rows of C equal boxes; ROW\\r1,r2,... is equal-height rows with
r_i equal boxes in row i; COL\\c1,c2,... is equal-width columns with c_i equal boxes in column i.
Image Position numbers boxes "from left to right, from top to bottom", starting at 1.  For COL
layouts the boxes of different columns are staggered, so that reading order is taken literally:
boxes are ordered by their top edge, then their left edge.

Box edges are rounded so the boxes tile the film exactly: no pixel belongs to two boxes and none is
left out.
"""

from __future__ import annotations

from dataclasses import dataclass

MM_PER_INCH = 25.4

# Film Size ID -> (short side, long side) in millimetres.
FILM_SIZES_MM = {
    "8INX10IN": (8 * 25.4, 10 * 25.4),
    "8_5INX11IN": (8.5 * 25.4, 11 * 25.4),
    "10INX12IN": (10 * 25.4, 12 * 25.4),
    "10INX14IN": (10 * 25.4, 14 * 25.4),
    "11INX14IN": (11 * 25.4, 14 * 25.4),
    "11INX17IN": (11 * 25.4, 17 * 25.4),
    "14INX14IN": (14 * 25.4, 14 * 25.4),
    "14INX17IN": (14 * 25.4, 17 * 25.4),
    "24CMX24CM": (240.0, 240.0),
    "24CMX30CM": (240.0, 300.0),
    "A4": (210.0, 297.0),
    "A3": (297.0, 420.0),
}
ORIENTATIONS = ("PORTRAIT", "LANDSCAPE")


@dataclass(frozen=True)
class Box:
    """One image box in film pixels; ``position`` is the 1-based Image Position."""
    position: int
    top: int
    left: int
    rows: int
    cols: int


def film_size_mm(film_size: str, orientation: str = "PORTRAIT") -> tuple[float, float]:
    """(height, width) of the film in mm as it lies in the printer for this orientation."""
    try:
        short, long_ = FILM_SIZES_MM[film_size]
    except KeyError:
        raise ValueError(f"Film Size ID {film_size!r} is not one of {', '.join(FILM_SIZES_MM)}") \
            from None
    if orientation not in ORIENTATIONS:
        raise ValueError(f"Film Orientation {orientation!r} is not PORTRAIT or LANDSCAPE")
    return (long_, short) if orientation == "PORTRAIT" else (short, long_)


def mm_to_pixels(mm: float, dpi: float) -> int:
    return int(round(mm / MM_PER_INCH * dpi))


def film_matrix(film_size: str, orientation: str, dpi: float) -> tuple[int, int]:
    """(rows, cols) of the film's pixel matrix: 14INX17IN PORTRAIT at 320 dpi is (5440, 4480)."""
    if dpi <= 0:
        raise ValueError(f"printer resolution {dpi} dpi must be positive")
    height, width = film_size_mm(film_size, orientation)
    return mm_to_pixels(height, dpi), mm_to_pixels(width, dpi)


def _counts(text: str, what: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"Image Display Format {what} values {text!r} must be integers") from None
    if not counts or any(c < 1 for c in counts):
        raise ValueError(f"Image Display Format {what} values {text!r} must be >= 1")
    return counts


def _edges(total: int, parts: int) -> list[int]:
    return [(total * i + parts // 2) // parts for i in range(parts + 1)]


def parse_display_format(fmt: str) -> tuple[str, list[int]]:
    """('ROW' | 'COL', counts): STANDARD\\C,R becomes R rows of C boxes."""
    kind, sep, rest = fmt.strip().partition("\\")
    kind = kind.strip().upper()
    if not sep:
        raise ValueError(f"Image Display Format {fmt!r} needs a backslash, e.g. STANDARD\\2,2")
    if kind == "STANDARD":
        counts = _counts(rest, "STANDARD")
        if len(counts) != 2:
            raise ValueError(f"Image Display Format {fmt!r}: STANDARD takes exactly C,R")
        cols, rows = counts
        return "ROW", [cols] * rows
    if kind in ("ROW", "COL"):
        return kind, _counts(rest, kind)
    raise ValueError(f"Image Display Format {fmt!r}: only STANDARD, ROW and COL are supported")


def layout_boxes(fmt: str, film_rows: int, film_cols: int) -> list[Box]:
    """Image boxes of ``fmt`` on a film_rows x film_cols film, index i is Image Position i+1."""
    kind, counts = parse_display_format(fmt)
    rects = []
    if kind == "ROW":
        ys = _edges(film_rows, len(counts))
        for r, n in enumerate(counts):
            xs = _edges(film_cols, n)
            rects += [(ys[r], xs[c], ys[r + 1] - ys[r], xs[c + 1] - xs[c]) for c in range(n)]
    else:
        xs = _edges(film_cols, len(counts))
        for c, n in enumerate(counts):
            ys = _edges(film_rows, n)
            rects += [(ys[r], xs[c], ys[r + 1] - ys[r], xs[c + 1] - xs[c]) for r in range(n)]
    rects.sort(key=lambda rc: (rc[0], rc[1]))
    if any(h < 1 or w < 1 for _, _, h, w in rects):
        raise ValueError(f"Image Display Format {fmt!r} has more boxes than a "
                         f"{film_rows}x{film_cols} film has pixels")
    return [Box(i + 1, *rc) for i, rc in enumerate(rects)]
