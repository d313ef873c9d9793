"""Annotation text -> coverage mask (numpy uint8, 255 = ink), for image.annotate.composite_mask.

Glyphs come from a TrueType/OpenType font on the system via Pillow.  Latin text uses DejaVu Sans;
text with CJK characters needs a CJK font (Debian: fonts-ipafont-gothic or fonts-noto-cjk), and
without one FontNotFound names the package to install rather than printing empty boxes.

Part of the print domain, not of drivers/: which fonts a film's annotations are set in, and where
on the system they are looked for, is the appliance's choice, not a printer's protocol; every
printer gets the same rendered film.  Imports Pillow and numpy only.
"""

from __future__ import annotations

import glob
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LATIN_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
)
CJK_FONTS = (
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKjp-Regular.otf",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)


class FontNotFound(RuntimeError):
    """No usable font on the system; the message names the Debian package to install."""


def needs_cjk(text: str) -> bool:
    """True when `text` has CJK ideographs, kana, full-width forms or Hangul (a Latin font would
    draw them as boxes)."""
    return any(0x3000 <= ord(ch) <= 0x9FFF or 0xF900 <= ord(ch) <= 0xFAFF
               or 0xFF00 <= ord(ch) <= 0xFFEF or 0xAC00 <= ord(ch) <= 0xD7AF for ch in text)


def find_font(cjk: bool = False) -> str:
    """Path of the first font file found: the known Debian paths first, then a search under
    /usr/share/fonts. Raises FontNotFound."""
    candidates = list(CJK_FONTS if cjk else LATIN_FONTS)
    candidates += sorted(glob.glob("/usr/share/fonts/**/*CJK*.tt[cf]", recursive=True)) if cjk \
        else sorted(glob.glob("/usr/share/fonts/**/DejaVuSans*.ttf", recursive=True))
    for path in candidates:
        if os.path.exists(path):
            return path
    raise FontNotFound("no CJK font found: apt-get install fonts-ipafont-gothic (or fonts-noto-cjk)"
                       if cjk else "no font found: apt-get install fonts-dejavu-core")


def render_text(text: str, height_px: int, font_path: str | None = None) -> np.ndarray:
    """Mask of ``text`` set in a font whose em is ``height_px`` pixels; rows x cols uint8 (255 =
    ink), as tall as the text's bounding box.  Raises ValueError below 4 px, FontNotFound."""
    if height_px < 4:
        raise ValueError(f"text height {height_px} px is too small to read")
    font = ImageFont.truetype(font_path or find_font(needs_cjk(text)), size=height_px)
    left, top, right, bottom = font.getbbox(text) if text else (0, 0, 0, 0)
    canvas = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(canvas).text((-left, -top), text, font=font, fill=255)
    return np.asarray(canvas).copy()
