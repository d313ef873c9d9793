import pytest

from drivers.printer.interface import DeviceStatus
from drivers.printer.status_map import dicom_printer_status


@pytest.mark.parametrize("status,expected", [
    (DeviceStatus(), ("NORMAL", "NORMAL")),
    (DeviceStatus(supply_low=True), ("WARNING", "SUPPLY LOW")),
    (DeviceStatus(supply_empty=True), ("FAILURE", "SUPPLY EMPTY")),
    (DeviceStatus(film_jam=True, supply_empty=True), ("FAILURE", "FILM JAM")),
    (DeviceStatus(cover_open=True, film_jam=True), ("FAILURE", "COVER OPEN")),
    (DeviceStatus(online=False, cover_open=True), ("FAILURE", "PRINTER OFFLINE")),
    (DeviceStatus(receiver_full=True, supply_low=True), ("FAILURE", "RECEIVER FULL")),
    (DeviceStatus(error=True), ("FAILURE", "CHECK PRINTER")),
    (None, ("FAILURE", "PRINTER DOWN")),
])
def test_mapping(status, expected):
    assert dicom_printer_status(status) == expected


def test_merged_keeps_every_fault():
    a = DeviceStatus(supply_low=True, detail="a")
    b = DeviceStatus(online=False, detail="b")
    m = a.merged(b)
    assert m.supply_low and not m.online and m.detail == "a; b" and not m.ready
