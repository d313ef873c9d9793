"""PostScript output rendered by Ghostscript must give back the composed film pixel for pixel."""

import subprocess

import numpy as np
import pytest
from PIL import Image

from drivers.printer.interface import PrintJob
from drivers.printer.postscript import PostScriptLanguage
from image.compose import FilmSpec, ImageBox, compose_film
from image.density import CharacteristicCurve
from peers import require

CURVE = CharacteristicCurve([(0, 3.1), (64, 2.4), (128, 1.3), (192, 0.55), (255, 0.19)])


def _gs() -> str:
    return require("gs", "ghostscript")


def _render(tmp_path, ps: bytes, dpi: int, device: str) -> np.ndarray:
    src, out = tmp_path / "job.ps", tmp_path / "page.png"
    src.write_bytes(ps)
    subprocess.run([_gs(), "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", f"-sDEVICE={device}",
                    f"-r{dpi}", f"-sOutputFile={out}", str(src)], check=True, capture_output=True)
    return np.asarray(Image.open(out))


def _film(colour=False):
    rng = np.random.default_rng(3)
    images = [ImageBox(1, rng.integers(0, 4096, (64, 48), dtype=np.uint16), bits_stored=12),
              ImageBox(3, rng.integers(0, 256, (30, 30), dtype=np.uint8), polarity="REVERSE",
                       magnification="REPLICATE")]
    if colour:
        images.append(ImageBox(2, rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)))
    spec = FilmSpec(film_size="8INX10IN", dpi=40, display_format="STANDARD\\2,2", trim=True,
                    border_density="WHITE", empty_image_density="120", colour=colour)
    return compose_film(spec, images, CURVE)


@pytest.mark.parametrize("binary", [False, True])
def test_grayscale_film_round_trips_through_ghostscript(tmp_path, binary):
    film = _film()
    assert film.shape == (400, 320)
    page = _render(tmp_path, PostScriptLanguage(binary=binary).encode(PrintJob(film, 40)), 40,
                   "pnggray")
    # Tolerance: at most 1 drive level anywhere (gray samples pass through unchanged at 1:1).
    assert page.shape == film.shape
    assert np.max(np.abs(page.astype(int) - film)) <= 1


@pytest.mark.parametrize("binary", [False, True])
def test_colour_film_round_trips_through_ghostscript(tmp_path, binary):
    film = _film(colour=True)
    page = _render(tmp_path, PostScriptLanguage(binary=binary).encode(PrintJob(film, 40)), 40,
                   "png16m")
    assert page.shape == film.shape
    assert np.max(np.abs(page.astype(int) - film)) <= 1


def test_header_and_page_size():
    film = np.zeros((400, 320), np.uint8)
    ps = PostScriptLanguage().encode(PrintJob(film, 40, copies=2))
    head = ps[:1000].decode("ascii", "replace")
    assert head.startswith("%!PS-Adobe-3.0\n") and "%%LanguageLevel: 3" in head
    assert "/PageSize [576.0000 720.0000]" in head and "/NumCopies 2" in head  # 8x10 inch
    assert ps.endswith(b"%%EOF\n")


def test_16_bit_film_refused():
    with pytest.raises(ValueError, match="8-bit"):
        PostScriptLanguage().encode(PrintJob(np.zeros((2, 2), np.uint16), 40))
