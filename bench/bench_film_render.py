"""Film rendering: image/ (numpy) against a Pillow composition of the same film, same run.

14"x17" PORTRAIT at 320 dpi (5440 x 4480), STANDARD\\4,5, twenty 512x512 12-bit images, CUBIC
magnification to 1088x1088, GSDF + characteristic-curve LUT to 8-bit drive levels.  The Pillow
reference does the resampling and pasting only (resize BICUBIC in 16-bit, paste into a 16-bit
film): it has no GSDF step, so the comparison flatters Pillow.  Each side runs ``--repeat``
times and the best time counts (the first run also pays for building the weight matrices and LUT).

Usage: python bench/bench_film_render.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from image.compose import FilmSpec, ImageBox, compose_film  # noqa: E402
from image.density import CharacteristicCurve  # noqa: E402
from image.film_layout import film_matrix, layout_boxes  # noqa: E402

SPEC = FilmSpec(film_size="14INX17IN", orientation="PORTRAIT", dpi=320,
                display_format="STANDARD\\4,5", magnification="CUBIC", border_density="BLACK",
                empty_image_density="BLACK", min_density=0.2, max_density=3.0)
CURVE = CharacteristicCurve([(0, 3.1), (64, 2.4), (128, 1.3), (192, 0.55), (255, 0.19)])


def test_images(n=20, size=512, seed=7):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = (2048 + 1500 * np.sin(x / 23.0) * np.cos(y / 31.0)).astype(np.int32)
    return [np.clip(base + rng.integers(-200, 200, (size, size)), 0, 4095).astype(np.uint16)
            for _ in range(n)]


def numpy_film(images):
    return compose_film(SPEC, [ImageBox(i + 1, a, bits_stored=12) for i, a in enumerate(images)],
                        CURVE)


def pillow_film(images):
    rows, cols = film_matrix(SPEC.film_size, SPEC.orientation, SPEC.dpi)
    film = Image.new("I;16", (cols, rows))
    for box, a in zip(layout_boxes(SPEC.display_format, rows, cols), images):
        side = min(box.rows, box.cols)
        resized = Image.fromarray(a).resize((side, side), Image.BICUBIC)
        film.paste(resized, (box.left + (box.cols - side) // 2, box.top + (box.rows - side) // 2))
    return film


def best_of(fn, arg, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t0)
    return min(times), times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    images = test_images()
    t_np, all_np = best_of(numpy_film, images, args.repeat)
    t_pil, all_pil = best_of(pillow_film, images, args.repeat)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("film 14INX17IN @320 dpi, STANDARD\\4,5, 20 x 512x512 12-bit, CUBIC + GSDF LUT")
    print(f"numpy image/ : {t_np * 1000:8.1f} ms  (runs: "
          f"{', '.join(f'{t * 1000:.0f}' for t in all_np)})")
    print(f"Pillow ref   : {t_pil * 1000:8.1f} ms  (runs: "
          f"{', '.join(f'{t * 1000:.0f}' for t in all_pil)})")
    print(f"ratio numpy/Pillow: {t_np / t_pil:.2f}x  (target <= 1.00x)")
    print(f"peak RSS: {peak_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
