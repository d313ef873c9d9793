"""The device registry: a config's kind becomes a device without the gateway naming the simulator.

Discovery is tested with a distribution made here (a .dist-info in tmp_path on sys.path), which is
what pip writes for pyproject's [project.entry-points] table; production code never imports hwsim,
checked over the source with ast.
"""

from __future__ import annotations

import ast
import importlib
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace

import pytest

from drivers import registry as registry_module
from drivers.printer.devices import FileConnection, SerialConnection, UsbConnection
from drivers.printer.interface import PrinterError
from drivers.registry import Registry, RegistryError, UnknownKind
from gateway import config
from source_entry_points import declared, write_dist_info

ROOT = Path(__file__).resolve().parents[2]
GROUP = "test_gateway.devices"  # each test's own group: the real one may be installed too


@pytest.fixture
def on_path(tmp_path, monkeypatch):
    """Put distributions (group -> name -> value) on sys.path; module files beside them."""
    def add(groups: dict[str, dict[str, str]], modules: dict[str, str] | None = None) -> Path:
        n = len(list(tmp_path.iterdir()))
        folder = tmp_path / f"site{n}"
        write_dist_info(folder, groups, name=f"fake_devices_dist{n}")
        for name, text in (modules or {}).items():
            (folder / f"{name}.py").write_text(textwrap.dedent(text))
        monkeypatch.syspath_prepend(str(folder))  # also invalidates importlib's caches
        return folder
    yield add
    for name in [m for m in sys.modules if m.startswith("fake_devices")]:
        del sys.modules[name]


FAKE = """
    def widget(*args, **kwargs):
        return ("widget", args, kwargs)

    def gadget(*args, **kwargs):
        return ("gadget", args, kwargs)
"""


def test_an_entry_point_kind_is_listed_without_importing_it_and_built_on_create(on_path):
    on_path({GROUP: {"printer.widget": "fake_devices:widget"}}, {"fake_devices": FAKE})
    reg = Registry(group=GROUP, builtin={})
    assert reg.kinds("printer") == ["widget"]
    # Listing kinds (what config validation does) must not import the device's module.
    assert "fake_devices" not in sys.modules
    assert reg.create("printer", "widget", 1, dpi=2) == ("widget", (1,), {"dpi": 2})
    assert "fake_devices" in sys.modules


def test_families_are_separate(on_path):
    on_path({GROUP: {"printer.widget": "fake_devices:widget", "grabber.widget": "fake_devices:gadget"}},
            {"fake_devices": FAKE})
    reg = Registry(group=GROUP, builtin={})
    assert reg.create("grabber", "widget")[0] == "gadget"
    assert reg.create("printer", "widget")[0] == "widget"
    assert reg.kinds("media") == []


def test_the_same_entry_point_from_two_distributions_is_one_kind(on_path):
    """A venv that has the entry points and the suite's stand-in for a stale one: no conflict."""
    on_path({GROUP: {"printer.widget": "fake_devices:widget"}}, {"fake_devices": FAKE})
    on_path({GROUP: {"printer.widget": "fake_devices:widget"}})
    assert len(entry_points(group=GROUP)) == 2  # both really seen, or this would prove nothing
    reg = Registry(group=GROUP, builtin={})
    assert reg.kinds("printer") == ["widget"]
    assert reg.create("printer", "widget")[0] == "widget"


def test_two_factories_for_one_kind_name_both(on_path):
    on_path({GROUP: {"printer.widget": "fake_devices:widget"}}, {"fake_devices": FAKE})
    on_path({GROUP: {"printer.widget": "fake_devices:gadget"}})
    assert len(entry_points(group=GROUP)) == 2
    with pytest.raises(RegistryError, match=r"printer\.widget is registered twice: by .*fake_devices:"
                                            r"(widget|gadget).* and by .*fake_devices:(widget|gadget)"):
        Registry(group=GROUP, builtin={}).kinds("printer")


def test_an_entry_point_name_without_a_family_is_refused(on_path):
    on_path({GROUP: {"widget": "fake_devices:widget"}})
    with pytest.raises(RegistryError, match=r"'widget'.*must be <family>\.<kind>"):
        Registry(group=GROUP, builtin={}).kinds("printer")


def test_an_entry_point_that_does_not_load_names_itself(on_path):
    on_path({GROUP: {"printer.ghost": "no_such_module_here:factory"}})
    reg = Registry(group=GROUP, builtin={})
    assert reg.kinds("printer") == ["ghost"]
    with pytest.raises(RegistryError, match=r"printer\.ghost \(no_such_module_here:factory, entry point of "
                                            r"distribution fake_devices_dist0\) does not load"):
        reg.create("printer", "ghost")


def test_an_unknown_kind_lists_the_known_ones_on_one_line():
    reg = Registry(group=None, builtin={})
    reg.register("printer", "b", lambda: None)
    reg.register("printer", "a", lambda: None)
    with pytest.raises(UnknownKind) as info:
        reg.create("printer", "c")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("printer kind 'c' is not one of a, b (")


def test_registering_in_code_is_idempotent_for_the_same_factory_only():
    def one():
        pass

    def two():
        pass

    reg = Registry(group=None, builtin={})
    reg.register("printer", "x", one)
    reg.register("printer", "x", one)
    with pytest.raises(RegistryError, match="registered twice"):
        reg.register("printer", "x", two)


def test_the_real_kinds_are_built_in_without_any_entry_point():
    """Run from a checkout with nothing installed, real hardware is still there."""
    reg = Registry(group=None)
    assert reg.kinds("printer") == ["file", "serial", "usb"]
    assert reg.kinds("printer-language") == ["postscript", "raster"]
    cfg = SimpleNamespace(url="socket://127.0.0.1:9", baudrate=9600, flow_control="rtscts", vendor_id=0,
                          product_id=0x1234, folder="films", language="postscript", print_timeout_s=7.0)
    serial = reg.create("printer", "serial", cfg, Path)
    assert isinstance(serial, SerialConnection) and (serial.url, serial.baudrate) == (cfg.url, 9600)
    assert not serial.eight_bit_clean
    usb = reg.create("printer", "usb", cfg, Path)
    assert isinstance(usb, UsbConnection) and (usb.vendor_id, usb.product_id, usb.backend) == (None, 0x1234, None)
    file = reg.create("printer", "file", cfg, lambda p: Path("/cfg") / p)
    assert isinstance(file, FileConnection) and (file.folder, file.suffix) == (Path("/cfg/films"), ".ps")
    # PostScript is binary only where every byte arrives (USB, a file), ASCII85 on a serial line.
    assert reg.create("printer-language", "postscript", cfg, usb).binary
    assert not reg.create("printer-language", "postscript", cfg, serial).binary
    raster = reg.create("printer-language", "raster", SimpleNamespace(**{**vars(cfg), "flow_control": "xonxoff"}), serial)
    assert raster.escaped


def test_pyproject_declares_the_simulators_with_family_dot_kind_names():
    eps = declared(ROOT / "pyproject.toml")["dicom_gateway.devices"]
    assert eps == {"printer.serial-sim": "hwsim.devices:serial_sim_printer",
                   "printer.usb-sim": "hwsim.devices:usb_sim_printer",
                   "media.optical-sim": "hwsim.devices:optical_sim_drive",
                   "media.usb-sim": "hwsim.devices:usb_sim_drive",
                   "panel.sim": "hwsim.panel:sim_panel",
                   "grabber.sim": "hwsim.grabber:sim_grabber",
                   "pedal.sim": "hwsim.pedal:sim_pedal"}
    for value in eps.values():
        module, _, attr = value.partition(":")
        assert callable(getattr(importlib.import_module(module), attr))


def test_the_process_registry_finds_the_simulators_through_the_entry_points():
    """The conftest makes pyproject's entry points visible when the venv predates them."""
    assert {"serial-sim", "usb-sim", "serial", "usb", "file"} <= set(registry_module.kinds("printer"))


def test_a_simulated_kind_starts_its_device_and_the_real_driver_talks_to_it(tmp_path):
    """usb-sim through the registry: the real UsbTransport over the simulated pyusb backend."""
    cfg = config.load(None, ['print.printer.kind="usb-sim"', 'print.printer.language="postscript"',
                             'print.printer.sim_films=3']).config.print
    from gateway.print.device import PrinterDevice
    device = PrinterDevice(cfg, lambda p: tmp_path / p)
    # Before start() a simulated kind must not go looking for real hardware (libusb).
    with pytest.raises(PrinterError, match="simulated USB printer is not started"):
        device.connection.open()
    assert device.status() is None
    device.start()
    try:
        status = device.status()
        assert status is not None and status.online
        assert type(device.connection.simulator).__module__ == "hwsim.usb_printer"
    finally:
        device.stop()


@pytest.mark.parametrize("kind,problem", [
    ("laser", "print.printer.kind: printer kind 'laser' is not one of file, serial, serial-sim, usb, usb-sim "
              "(kinds come from drivers/ and the installed packages' 'dicom_gateway.devices' entry points)"),
])
def test_config_names_an_unknown_kind_in_one_line_with_the_known_ones(kind, problem):
    with pytest.raises(config.ConfigError) as info:
        config.load(None, [f'print.printer.kind="{kind}"'])
    assert info.value.problems == [problem]


@pytest.mark.parametrize("kind", ["serial-sim", "usb-sim", "file", "usb"])
def test_config_takes_every_registered_kind(kind):
    loaded = config.load(None, [f'print.printer.kind="{kind}"', 'print.printer.language="postscript"',
                                'print.printer.folder="films"'])
    assert loaded.config.print.printer.kind == kind


# -- production code imports no simulator ---------------------------------------------------------

def _hwsim_imports(path: Path) -> list[str]:
    """Every way `path` reaches hwsim: import statements and import_module/__import__ with a literal."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Call):
            fn = node.func
            called = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if called in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                names = [str(node.args[0].value)]
        found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                  if n == "hwsim" or n.startswith("hwsim.")]
    return found


def test_production_code_imports_no_simulator():
    offenders = [hit for top in ("gateway", "drivers", "image") for path in sorted((ROOT / top).rglob("*.py"))
                 for hit in _hwsim_imports(path)]
    assert offenders == []


def test_the_import_scan_sees_each_form(tmp_path, monkeypatch):
    """The scan above would pass on a scan that sees nothing: show it sees all three forms."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    probe = tmp_path / "probe.py"
    probe.write_text("import hwsim.usb_printer\nfrom hwsim.serial_imager import X\n"
                     "import importlib\nimportlib.import_module('hwsim.devices')\nfrom . import hwsim\n")
    assert [hit.split(" ")[1] for hit in _hwsim_imports(probe)] == [
        "hwsim.usb_printer", "hwsim.serial_imager", "hwsim.devices"]


def test_the_default_kind_is_checked_when_print_is_enabled(monkeypatch):
    """`[print] enabled = true` with no kind means serial-sim: check-config must say when that kind
    is missing (a venv installed without hw-sim's entry points), not the service at start-up."""
    import gateway.config.base as profile  # where a device kind is checked
    monkeypatch.setattr(profile, "kinds", lambda family: ["file", "serial", "usb"])
    with pytest.raises(config.ConfigError) as info:
        config.load(None, ["print.enabled=true"])
    assert info.value.problems == [
        "print: printer.kind: the default printer kind 'serial-sim' is not one of file, serial, usb "
        "(kinds come from drivers/ and the installed packages' 'dicom_gateway.devices' entry points)"]
    # Print off: no printer is built, so nothing to say.
    assert config.load(None, ["print.enabled=false"]).config.print.printer.kind == "serial-sim"


def test_a_broken_entry_point_declaration_is_a_config_problem_not_a_traceback(monkeypatch):
    import gateway.config.base as profile  # where a device kind is checked

    def broken(family):
        raise RegistryError("entry point 'widget' = 'x:y' in group dicom_gateway.devices (distribution z): "
                            "the name must be <family>.<kind>")
    monkeypatch.setattr(profile, "kinds", broken)
    with pytest.raises(config.ConfigError) as info:
        config.load(None, ['print.printer.kind="serial"', 'print.printer.url="/dev/ttyS0"'])
    assert info.value.problems == ["print.printer.kind: entry point 'widget' = 'x:y' in group "
                                   "dicom_gateway.devices (distribution z): the name must be <family>.<kind> "
                                   "(got 'serial')"]
