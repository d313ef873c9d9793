"""`[panel]` is strict: each problem named with its dotted key; the defaults run on hw-sim's panel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway import config

ROOT = Path(__file__).resolve().parents[2]


def _problems(overrides: list[str]) -> list[str]:
    try:
        config.load(None, overrides)
    except config.ConfigError as exc:
        return exc.problems
    return []


def test_defaults_are_the_simulated_panel_with_the_logic_s_names():
    panel = config.load(None, []).config.panel
    assert (panel.kind, panel.display, panel.columns) == ("sim", "hd44780-i2c", 16)
    assert set(panel.leds) == {"power", "network", "activity", "backlog", "media", "printer", "error"}
    assert set(panel.buttons) == {"export", "eject", "capture", "next", "previous", "ack"}
    assert panel.i2c_address == 0x27


def test_a_real_box_config_is_accepted():
    # Every logical name is mapped (a missing one is refused: tests/unit/test_panel_runner.py).
    leds = "{" + ", ".join(f'{n}="gpio-led{i}"' for i, n in enumerate(
        ("power", "network", "activity", "backlog", "media", "printer", "error"))) + "}"
    buttons = "{export=2, eject=3, capture=4, next=5, previous=6, ack=28}"
    panel = config.load(None, ['panel.kind="linux"', 'panel.display="serlcd"', 'panel.serial_port="/dev/ttyUSB0"',
                               "panel.columns=20", "panel.serial_baud=19200",
                               f"panel.leds={leds}", f"panel.buttons={buttons}"]).config.panel
    assert panel.leds["power"] == "gpio-led0" and panel.buttons["ack"] == 28


@pytest.mark.parametrize("override,key,words", [
    ("panel.colour=1", "panel.colour", "unknown key"),
    ('panel.kind="gpio"', "panel.kind", "linux"),
    ("panel.columns=24", "panel.columns", "16"),
    ('panel.columns="16"', "panel.columns", ""),          # strict: a quoted number is a mistake
    ("panel.i2c_address=0x78", "panel.i2c_address", "119"),
    ("panel.i2c_bus=32", "panel.i2c_bus", "31"),
    ("panel.serial_baud=1234", "panel.serial_baud", "9600"),
    ("panel.sim_long_press_s=0", "panel.sim_long_press_s", "0"),
    ("panel.buttons={ack=0}", "panel.buttons.ack", "1"),
    ("panel.buttons={ack=768}", "panel.buttons.ack", "767"),
    ('panel.display="oled"', "panel.display", "hd44780-i2c"),
])
def test_bad_values_name_their_key(override, key, words):
    problems = _problems([override])
    assert len(problems) == 1 and problems[0].startswith(key + ":") and words in problems[0], problems


@pytest.mark.parametrize("overrides,words", [
    (["panel.buttons={ack=59, next=59}"], "buttons.next: key code 59 is also buttons.ack"),
    (['panel.leds={power="a", error="a"}'], "leds.error: 'a' is also leds.power"),
    (['panel.leds={power="../../etc/x"}'], "is not a sysfs LED name"),
    (['panel.leds={Power="x"}'], "leds.Power: a panel name"),
    (['panel.leds_root="sys/class/leds"'], "leds_root: 'sys/class/leds' must be an absolute path"),
    (['panel.kind="linux"', 'panel.display="serlcd"', 'panel.serial_port="ttyUSB0"'], "serial_port"),
    (['panel.display="serlcd"'], "the sim panel simulates an hd44780-i2c display"),
    (["panel.leds={}"], "panel.leds"),
])
def test_inconsistent_tables_are_named(overrides, words):
    problems = _problems(overrides)
    assert len(problems) == 1 and problems[0].startswith("panel") and words in problems[0], problems


def test_check_config_refuses_a_bad_panel(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[panel]\nkind = \"sim\"\n[panel.buttons]\nack = 64\nnext = 64\n")
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", "--config", str(bad)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "key code 64 is also buttons.ack" in r.stderr, r.stderr
