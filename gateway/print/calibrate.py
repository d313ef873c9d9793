"""`dicom-gateway print-test`: a step wedge straight to the configured printer, for calibration.

--wedge drive (default): equal steps of raw drive level, no LUT.  Measure each step with a
densitometer and put the pairs into the config as `print.calibration = [[drive, OD x 100], ...]`:
that is the printer's characteristic curve (image.density.CharacteristicCurve).
--wedge gsdf: equal P-value steps through the full pipeline (GSDF, the configured curve); after
calibration their densities should match the printed table (PS3.14 for the film's Min/Max Density).

The printer is driven directly, not through the spool, so it must not run beside the service: a
serial printer has one line, and for the `-sim` kinds a second simulated imager would print films
the service's imager never saw.  print-test takes the buffer's lock (gateway.buffer.lock, the one
`run` holds for its whole life) before it starts a simulator or opens the device, and refuses with
one line naming the service's PID when the service holds it; while print-test prints, a service
that starts refuses in turn.  Stop the service first, print through it with a print SCU, or use
`--set print.printer.kind=file` to look at the job.
"""

from __future__ import annotations

from drivers.printer.interface import PrintJob
from drivers.printer.status_map import dicom_printer_status
from gateway.buffer.lock import BufferLocked, acquire, holder
from gateway.config import LoadedConfig
from gateway.print.device import PrinterDevice
from image.compose import FilmSpec, ImageBox, compose_film
from image.film_layout import film_matrix
from image.gsdf import od_from_p_values
from image.step_wedge import drive_wedge, p_value_wedge, wedge_levels


def step_wedge_film(profile, steps: int, kind: str):
    """(film drive levels, [(level, expected OD or None)]) of the test print."""
    curve = profile.curve()
    dpi = profile.printer.dpi
    rows, cols = film_matrix(profile.default_film_size, "PORTRAIT", dpi)
    if kind == "drive":
        levels = wedge_levels(steps, curve.drive_max)
        return drive_wedge(steps, rows, cols, curve.drive_max), [(int(v), None) for v in levels]
    bits = 12
    spec = FilmSpec(film_size=profile.default_film_size, dpi=dpi, display_format="STANDARD\\1,1",
                    magnification="REPLICATE", min_density=profile.min_density / 100,
                    max_density=profile.max_density / 100, illumination=profile.illumination,
                    ambient=profile.reflected_ambient_light, border_density="WHITE")
    wedge = p_value_wedge(steps, rows // 2, cols, bits)
    film = compose_film(spec, [ImageBox(1, wedge, bits_stored=bits)], curve)
    levels = wedge_levels(steps, (1 << bits) - 1)
    ods = od_from_p_values(levels, (1 << bits) - 1, spec.min_density, spec.max_density,
                           spec.illumination, spec.ambient)
    return film, [(int(p), float(od)) for p, od in zip(levels, ods)]


def print_test(loaded: LoadedConfig, steps: int, kind: str, out=print) -> int:
    profile = loaded.config.print
    film, table = step_wedge_film(profile, steps, kind)
    lock = None
    if loaded.buffer_dir.is_dir():  # no buffer yet: no service has run with this config
        try:
            lock = acquire(loaded.buffer_dir, wait_s=0)
        except BufferLocked as exc:
            return _refuse(out, profile, loaded, exc.pid)
        except OSError as exc:  # e.g. the service's user owns the lock file: can still look
            try:
                pid = holder(loaded.buffer_dir)
            except OSError:
                pid = -1
            if pid is not None:
                return _refuse(out, profile, loaded, pid)
            out(f"not printed: cannot take the buffer lock ({exc.strerror or exc}) to keep the "
                "service off the printer meanwhile")
            return 1
    try:
        return _print_wedge(loaded, profile, film, table, steps, kind, out)
    finally:
        if lock is not None:
            lock.close()


def _refuse(out, profile, loaded: LoadedConfig, pid: int | None) -> int:
    who = f"the running service (PID {pid})" if pid and pid > 0 else "the running service"
    out(f"not printed: {who} holds the printer {profile.name} (buffer {loaded.buffer_dir}); "
        "stop it first, or print through it")
    return 1


def _print_wedge(loaded: LoadedConfig, profile, film, table, steps: int, kind: str, out) -> int:
    device = PrinterDevice(profile, loaded.resolve)
    device.start()
    try:
        status = device.status()
        state, info = dicom_printer_status(status)
        out(f"printer {profile.name} ({profile.printer.kind}, {profile.printer.language}): {state} {info}")
        if status is None or not status.ready:
            out("not printed: the printer is not ready")
            return 1
        with device.lock:
            device.print_film(PrintJob(film, profile.printer.dpi, 1))
        out(f"printed a {steps}-step {kind} wedge, {film.shape[1]}x{film.shape[0]} pixels at "
            f"{profile.printer.dpi:g} dpi, steps left to right:")
        for i, (level, od) in enumerate(table, 1):
            out(f"  step {i:2d}  " + (f"drive level {level:5d}   OD: measure" if od is None
                                      else f"P-value {level:5d}   expected OD {od:.3f}"))
        if kind == "drive":
            out("enter the measured pairs as print.calibration = [[drive, OD x 100], ...]")
        return 0
    finally:
        device.stop()
