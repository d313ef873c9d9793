"""DRF/1 encoding against the protocol as documented (decoded independently by hwsim)."""

import struct
import zlib

import numpy as np
import pytest

from drivers.printer import raster
from drivers.printer.interface import DeviceStatus, PrinterError, PrinterNotReady, PrintJob
from hwsim.film_decode import decode_raster_job


def test_header_layout_is_as_documented():
    film = np.arange(12, dtype=np.uint8).reshape(3, 4)
    data = raster.RasterLanguage().encode(PrintJob(film, 100, copies=2))
    assert data[:6] == b"DRF1\x01\x00"
    assert struct.unpack(">IIBBH", data[6:18]) == (4, 3, 8, 1, 2)
    assert data[18:30] == film.tobytes()
    assert struct.unpack(">I", data[30:]) == (zlib.crc32(film.tobytes()),)


@pytest.mark.parametrize("escaped", [False, True])
@pytest.mark.parametrize("dtype,shape", [(np.uint8, (5, 7)), (np.uint16, (5, 7)),
                                         (np.uint8, (5, 7, 3))])
def test_round_trip(escaped, dtype, shape):
    rng = np.random.default_rng(4)
    film = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    film.flat[:4] = [0x11, 0x13, 0x7D, 0x11]
    data = raster.RasterLanguage(escaped=escaped).encode(PrintJob(film, 100))
    if escaped:
        assert b"\x11" not in data and b"\x13" not in data
    job = decode_raster_job(data)
    got = np.frombuffer(job.samples, ">u2" if dtype == np.uint16 else np.uint8).reshape(shape)
    assert np.array_equal(got, film) and job.copies == 1


def test_status_bits_both_ways():
    s = raster.status_from_bits(raster.FILM_JAM | raster.SUPPLY_LOW | raster.OFFLINE, 7)
    assert s.film_jam and s.supply_low and not s.online and "7 films" in s.detail
    assert raster.bits_from_status(s) == raster.FILM_JAM | raster.SUPPLY_LOW | raster.OFFLINE
    assert raster.status_from_bits(0) == DeviceStatus()


class _Canned:
    def __init__(self, reply: bytes):
        self.reply, self.sent = reply, b""

    def write(self, data):
        self.sent += data

    def read(self, size, timeout):
        out, self.reply = self.reply[:size], self.reply[size:]
        return out

    def status(self):
        return DeviceStatus()

    def close(self):
        pass


def test_query_and_confirm_parse_replies():
    t = _Canned(b"DRF1\x85" + b"0022" + b"0005")
    s = raster.RasterLanguage().query_status(t)
    assert t.sent == b"DRF1\x05" and s.supply_empty and s.receiver_full
    assert raster.RasterLanguage().confirm(_Canned(b"DRF1\x81" + b"0000" + b"00")).ready
    assert raster.RasterLanguage().confirm(_Canned(b"DRF1\x81" + b"0002" + b"00")).supply_empty
    with pytest.raises(PrinterNotReady) as info:
        raster.RasterLanguage().confirm(_Canned(b"DRF1\x81" + b"0001" + b"02"))
    assert info.value.status.film_jam
    with pytest.raises(PrinterNotReady) as info:
        raster.RasterLanguage().confirm(_Canned(b"DRF1\x81" + b"0000" + b"02"))
    assert info.value.status.error
    with pytest.raises(PrinterError, match="refused"):
        raster.RasterLanguage().confirm(_Canned(b"DRF1\x81" + b"0000" + b"01"))
    with pytest.raises(PrinterError, match="not a DRF1 reply"):
        raster.RasterLanguage().confirm(_Canned(b"XXXX\x81" + b"0000" + b"00"))
