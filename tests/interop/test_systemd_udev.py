"""The udev rules (config/udev/70-dicom-gateway.rules) that give the service's group its devices.

- udev parses them without a complaint: `udevadm verify` (systemd >= 254) where there is one;
  on older udev (Debian 12: 252) `udevadm test`, which reads every rules file and names each bad
  line, run in a private mount namespace where /dev and /run are empty tmpfs and /etc/group knows
  the group dicom-gateway: it applies nothing to this machine's devices (`udevadm test` on a real
  device would chown its node). The checker itself is shown to catch a broken copy.
- They cover every device class the unit's DeviceAllow= opens (the serial ones come through the
  group dialout), give them only to dicom-gateway, and `make install` installs them and re-runs
  udev on exactly the subsystems they match.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from peers import ROOT, require

pytestmark = [pytest.mark.interop]

RULES = ROOT / "config" / "udev" / "70-dicom-gateway.rules"


def _need(condition: bool, msg: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def udev_problems(rules: Path, workdir: Path) -> list[str]:
    """udev's complaints about the rules file `rules` (one line each; [] when it parses clean).
    Skips (fails in CI) where neither `udevadm verify` nor root with unshare is available."""
    udevadm = require("udevadm", "udev")
    if subprocess.run([udevadm, "verify", "--help"], capture_output=True, timeout=30).returncode == 0:
        proc = subprocess.run([udevadm, "verify", "--resolve-names=never", str(rules)],
                              capture_output=True, text=True, timeout=60)
        out = (proc.stdout + proc.stderr).splitlines()
        return [] if proc.returncode == 0 else [line for line in out if line.strip()] or [f"rc {proc.returncode}"]
    unshare = require("unshare", "util-linux")
    _need(os.geteuid() == 0, "udevadm < 254 has no `verify`: checking the rules with `udevadm test` "
                             "in a private mount namespace needs root")
    _need(Path("/etc/udev/rules.d").is_dir(), "no /etc/udev/rules.d (apt-get install udev)")
    rules_dir = workdir / "rules.d"
    rules_dir.mkdir(parents=True)
    shutil.copy(rules, rules_dir / RULES.name)
    group = workdir / "group"
    text = Path("/etc/group").read_text()
    if not re.search(r"^dicom-gateway:", text, re.M):
        text += "dicom-gateway:x:64999:\n"  # what `make install` creates; only in the namespace
    group.write_text(text)
    # Every mount must succeed before udevadm runs (&&): it never sees this machine's /dev or /run.
    script = ("mount -t tmpfs none /dev && mount -t tmpfs none /run && "
              f"mount --bind '{rules_dir}' /etc/udev/rules.d && mount --bind '{group}' /etc/group && "
              "exec udevadm test --action=add /devices/virtual/dicom-gateway-none")
    proc = subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=120)
    out = (proc.stdout + proc.stderr).splitlines()
    installed = f"/etc/udev/rules.d/{RULES.name}"
    _need(f"Reading rules file: {installed}" in out,
          "udevadm test did not read the rules (no mount namespace here?):\n" + "\n".join(out[-15:]))
    return [line for line in out if installed in line and not line.startswith("Reading rules file:")]


def test_udev_rules_parse_clean(tmp_path):
    problems = udev_problems(RULES, tmp_path / "shipped")
    assert problems == [], "\n".join(problems)


def test_the_udev_check_catches_a_broken_rule(tmp_path):
    """The checker above is not blind: an unknown key, an unknown group and a match on an
    assignment key are each reported."""
    broken = tmp_path / RULES.name
    broken.write_text(RULES.read_text().replace('GROUP="dicom-gateway"', 'GROUP="no-such-group-9"', 1)
                      + 'SUBSYSTEM=="leds", BOGUS=="1", MODE="0660"\n'
                      + 'SUBSYSTEM=="input", GROUP=="dicom-gateway"\n')
    problems = udev_problems(broken, tmp_path / "broken")
    print("\n".join(problems))
    joined = "\n".join(problems)
    assert len(problems) >= 3, joined
    assert "no-such-group-9" in joined and "BOGUS" in joined, joined


def _rules_lines() -> list[str]:
    return [line for line in RULES.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_rules_cover_the_unit_device_acl_and_only_for_the_service_group():
    text = "\n".join(_rules_lines())
    assert set(re.findall(r'GROUP="([^"]+)"', text)) == {"dicom-gateway"}
    # DeviceAllow= class -> what selects its nodes in the rules.
    needles = {
        "char-usb_device": 'ENV{DEVTYPE}=="usb_device", ENV{ID_USB_INTERFACES}=="*:07????:*"',
        "char-usb": 'SUBSYSTEM=="usbmisc", KERNEL=="lp[0-9]*"',
        "block-sr": 'SUBSYSTEM=="block", KERNEL=="sr[0-9]*"',
        "char-sg": 'SUBSYSTEM=="scsi_generic"',
        "block-sd": 'SUBSYSTEM=="block", KERNEL=="sd*", SUBSYSTEMS=="usb", ATTRS{removable}=="1"',
        "char-video4linux": 'SUBSYSTEM=="video4linux"',
        "char-input": 'SUBSYSTEM=="input", KERNEL=="event[0-9]*", SUBSYSTEMS=="platform", DRIVERS=="gpio-keys"',
        "char-i2c": 'SUBSYSTEM=="i2c-dev"',
    }
    serial = {"char-ttyUSB", "char-ttyACM", "char-ttyS", "char-ttyAMA"}  # group dialout
    from test_systemd import unit_settings

    classes = {v.split()[0] for v in unit_settings()["DeviceAllow"]}
    assert classes == set(needles) | serial
    for cls, needle in needles.items():
        assert needle in text, f"{cls}: no rule with {needle}"
    # The LEDs' sysfs files (no device node): the panel's only, made group-writable.
    assert 'SUBSYSTEM=="leds", KERNEL=="panel:*", ACTION=="add|change"' in text
    assert "chgrp dicom-gateway" in text and "chmod g+w" in text


def test_make_install_installs_the_rules_and_reloads_udev_only_on_this_machine():
    """The install target as make would run it (-n: printed, not run): the rules into
    $DESTDIR/etc/udev/rules.d; udev reloaded and re-triggered only without DESTDIR, on every
    subsystem the rules match."""
    make = require("make", "make")
    out = subprocess.run([make, "-n", "install", "DESTDIR=/staging"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60).stdout
    assert f"install -m 0644 config/udev/{RULES.name} /staging/etc/udev/rules.d/" in out, out
    block = out[out.index('if [ -z "/staging" ]'):]
    assert "udevadm control --reload" in block
    matched = set(re.findall(r'SUBSYSTEM=="([^"]+)"', "\n".join(_rules_lines())))
    triggered = set(re.findall(r"--subsystem-match=(\S+?);?(?=\s|$)", block))
    assert matched <= triggered, f"not re-triggered: {matched - triggered}"
