"""Both simulators as the command-line programs `make run` will start."""

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from drivers.printer.interface import Printer, PrintJob
from drivers.printer.raster import RasterLanguage
from drivers.printer.transport_serial import SerialTransport

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'hw-sim'}"}


def test_serial_imager_cli_prints_and_takes_fault_commands(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "hwsim.serial_imager", "--tcp", "0",
                             "--out", str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        url = proc.stdout.readline().strip().removeprefix("url: ")
        assert url.startswith("socket://127.0.0.1:")
        p = Printer(SerialTransport(url), RasterLanguage(print_timeout=10))
        film = np.arange(2000, dtype=np.uint16).reshape(40, 50).astype(np.uint8)
        p.print_film(PrintJob(film, 50))
        proc.stdin.write("jam\n")
        proc.stdin.flush()
        assert "status 0x0001" in proc.stdout.readline()
        assert p.status().film_jam
        p.close()
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 1 and np.array_equal(np.asarray(Image.open(pngs[0])), film)


def test_usb_printer_cli_render(tmp_path):
    job = tmp_path / "job.drf"
    film = np.full((10, 12), 77, np.uint8)
    job.write_bytes(RasterLanguage().encode(PrintJob(film, 50)))
    out = tmp_path / "film.png"
    subprocess.run([sys.executable, "-m", "hwsim.usb_printer", "render", str(job), "--out",
                    str(out)], check=True, env=ENV, timeout=60)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out.read_bytes()))), film)
