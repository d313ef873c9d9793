"""The `[print]` config section under the name the print domain has always used for it: the print
profile (display formats, film sizes, densities, the spool's retry settings, the attached printer).

The schema itself lives in gateway/config/print.py, at the bottom of the house: the config must load
without importing the print domain (it used to import this module, an arrow running up a floor),
and the print domain reads its section from the config like every other feature.
"""

from __future__ import annotations

from gateway.config.print import (DEFAULT_FORMATS, SEED_FORMATS, DisplayFormat, FilmSize, PrinterDevice,
                                  PrintSection)

__all__ = ["DEFAULT_FORMATS", "SEED_FORMATS", "DisplayFormat", "FilmSize", "PrintSection", "PrinterDevice"]
