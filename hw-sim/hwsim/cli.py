"""`hw-sim`: drive the simulated devices living inside the running service from another terminal.

  hw-sim media status                              what each simulated drive holds, armed faults
  hw-sim media insert cd|dvd|usb [--blank | --from DIR] [--drive NAME]
  hw-sim media pull DRIVE
  hw-sim media fault DRIVE pull|full|write-error|read-only|bad-sector|clear
  hw-sim panel show                                the display's two lines and each LED's pattern
  hw-sim panel press BUTTON [--long] [--settle S]  press a front-panel button (long: held
                                                   [panel] sim_long_press_s, default 3 s); prints
                                                   the panel once the service answered the press
                                                   (its display changed, or --settle s passed)
  hw-sim printer jam|unjam|out-of-film|load|status the simulated printer (load: a full supply)
  hw-sim grabber status|signal-off|signal-on       the simulated frame grabber's source
  hw-sim grabber resolution WIDTHxHEIGHT           the source switches its video mode (e.g. 800x600)
  hw-sim pedal press [--long]                      tap the foot pedal (a still), or hold it
                                                   [capture.pedal] sim_long_press_s (a clip)
  hw-sim pedal show                                the pedal's key code and its last edges

The simulators are found in ``--sim-dir`` (default ``$HWSIM_MEDIA_DIR``, else ``config/hw-sim/media``:
where `make run`'s config puts them), one folder per drive (hwsim/media.py describes the files);
the panel in ``--panel-dir`` (default ``$HWSIM_PANEL_DIR``, else ``config/hw-sim/panel``;
hwsim/panel.py describes its files); the printer in ``--printer-dir`` (default ``$HWSIM_PRINTER_DIR``,
else ``config/hw-sim/printer``: print.printer.sim_dir; hwsim/printer_view.py describes its files);
the frame grabber in ``--grabber-dir`` (default ``$HWSIM_GRABBER_DIR``, else ``config/hw-sim/grabber``:
capture.grabber.sim_dir; hwsim/grabber.py describes its files); the foot pedal in ``--pedal-dir``
(default ``$HWSIM_PEDAL_DIR``, else ``config/hw-sim/pedal``: capture.pedal.sim_dir; hwsim/pedal.py
describes its files).
Each command is one line on stdout; a refusal is one line on stderr and exit 1; a bad command
line exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from hwsim import grabber as sim_grabber
from hwsim import panel as sim_panel
from hwsim import pedal as sim_pedal
from hwsim import printer_view
from hwsim.media import FAULTS, SimError, drives_in, send

DEFAULT_SIM_DIR = "config/hw-sim/media"
DEFAULT_PANEL_DIR = "config/hw-sim/panel"
DEFAULT_PRINTER_DIR = "config/hw-sim/printer"
DEFAULT_GRABBER_DIR = "config/hw-sim/grabber"
DEFAULT_PEDAL_DIR = "config/hw-sim/pedal"


def _describe(state: dict) -> str:
    medium = state.get("medium")
    if medium is None:
        what = "empty"
    else:
        what = f"{medium['kind']} {'blank' if medium.get('blank') else 'with data'}"
        if medium.get("read_only"):
            what += ", write-protected"
    faults = ", ".join(state.get("faults", [])) or "none"
    return f"{state['drive']} ({state['type']}): {what}; faults armed: {faults}"


def _pick(sim_dir: Path, medium: str, drive: str | None) -> str:
    known = drives_in(sim_dir)
    if not known:
        raise SimError(f"no simulated media drive in {sim_dir} (is the service running with a media "
                       f"*-sim drive whose sim_dir is this folder?)")
    if drive is not None:
        if drive not in known:
            raise SimError(f"no simulated drive {drive!r} in {sim_dir}: {', '.join(known)}")
        return drive
    wanted = "usb" if medium == "usb" else "optical"
    fits = [name for name, kind in known.items() if kind == wanted]
    if len(fits) != 1:
        raise SimError(f"{len(fits)} simulated {wanted} drives in {sim_dir} ({', '.join(fits) or 'none'}): "
                       f"name one with --drive")
    return fits[0]


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line and exit 2 (the usage is one --help away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = _Parser(prog="hw-sim", description="control hw-sim's simulated devices")
    parser.add_argument("--sim-dir", default=os.environ.get("HWSIM_MEDIA_DIR", DEFAULT_SIM_DIR),
                        help="the media simulators' folder (default: $HWSIM_MEDIA_DIR or %(default)s)")
    parser.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for the simulator to take a command (default %(default)s)")
    sub = parser.add_subparsers(dest="device", required=True)
    media = sub.add_parser("media", help="the simulated optical drive and USB port")
    verbs = media.add_subparsers(dest="verb", required=True)
    verbs.add_parser("status", help="what each simulated drive holds")
    ins = verbs.add_parser("insert", help="insert a disc or plug in a stick")
    ins.add_argument("medium", choices=["cd", "dvd", "usb"])
    src = ins.add_mutually_exclusive_group()
    src.add_argument("--blank", action="store_true", help="a blank disc / an empty stick (default)")
    src.add_argument("--from", dest="source", metavar="DIR", help="a medium holding this folder's files")
    ins.add_argument("--drive", help="which drive, when there are several of that type")
    pull = verbs.add_parser("pull", help="take the medium out (also while it is written)")
    pull.add_argument("drive")
    fault = verbs.add_parser("fault", help="arm a fault that fires on the next write")
    fault.add_argument("drive")
    fault.add_argument("kind", choices=[*FAULTS, "clear"])
    panel = sub.add_parser("panel", help="the simulated front panel (LEDs, display, buttons)")
    panel.add_argument("--panel-dir", default=os.environ.get("HWSIM_PANEL_DIR", DEFAULT_PANEL_DIR),
                       help="the panel simulator's folder (default: $HWSIM_PANEL_DIR or %(default)s)")
    panel_verbs = panel.add_subparsers(dest="verb", required=True)
    panel_verbs.add_parser("show", help="the display's two lines and each LED's pattern")
    press = panel_verbs.add_parser("press", help="press a button (short, or --long)")
    press.add_argument("button")
    press.add_argument("--long", action="store_true", help="hold it [panel] sim_long_press_s seconds")
    press.add_argument("--settle", type=float, default=2.0, metavar="SECONDS",
                       help="after the release, wait up to this long for the panel to change before it is "
                            "printed (a press that changes nothing waits it all; default %(default)s)")
    printer = sub.add_parser("printer", help="the simulated film printer (jam, out of film)")
    printer.add_argument("--printer-dir", default=os.environ.get("HWSIM_PRINTER_DIR", DEFAULT_PRINTER_DIR),
                         help="the printer simulator's folder (default: $HWSIM_PRINTER_DIR or %(default)s)")
    printer.add_argument("verb", choices=printer_view.ACTIONS)
    grabber = sub.add_parser("grabber", help="the simulated frame grabber (signal, resolution)")
    grabber.add_argument("--grabber-dir", default=os.environ.get("HWSIM_GRABBER_DIR", DEFAULT_GRABBER_DIR),
                         help="the frame source's folder (default: $HWSIM_GRABBER_DIR or %(default)s)")
    grabber_verbs = grabber.add_subparsers(dest="verb", required=True)
    grabber_verbs.add_parser("status", help="signal, format, frames sent")
    grabber_verbs.add_parser("signal-off", help="the source goes dark: no frame until signal-on")
    grabber_verbs.add_parser("signal-on", help="frames again")
    resolution = grabber_verbs.add_parser("resolution", help="switch the video mode (the stream restarts)")
    resolution.add_argument("size", metavar="WIDTHxHEIGHT")
    pedal = sub.add_parser("pedal", help="the simulated foot pedal")
    pedal.add_argument("--pedal-dir", default=os.environ.get("HWSIM_PEDAL_DIR", DEFAULT_PEDAL_DIR),
                       help="the pedal simulator's folder (default: $HWSIM_PEDAL_DIR or %(default)s)")
    pedal_verbs = pedal.add_subparsers(dest="verb", required=True)
    pedal_verbs.add_parser("show", help="the pedal's key code and its last edges")
    pedal_press = pedal_verbs.add_parser("press", help="tap the pedal (a still), or hold it (--long: a clip)")
    pedal_press.add_argument("--long", action="store_true",
                             help="hold it [capture.pedal] sim_long_press_s seconds")
    args = parser.parse_args(argv)
    if args.device == "pedal":
        return _pedal(args)
    if args.device == "panel":
        return _panel(args)
    if args.device == "printer":
        return _printer(args)
    if args.device == "grabber":
        return _grabber(args)
    sim_dir = Path(args.sim_dir)
    try:
        if args.verb == "status":
            known = drives_in(sim_dir)
            if not known:
                raise SimError(f"no simulated media drive in {sim_dir}")
            for name in known:
                print(_describe(json.loads((sim_dir / name / "state.json").read_text())))
            return 0
        if args.verb == "insert":
            drive = _pick(sim_dir, args.medium, args.drive)
            source = str(Path(args.source).resolve()) if args.source else None
            if source is not None and not Path(source).is_dir():
                raise SimError(f"--from {args.source}: not a folder")
            state = send(sim_dir, drive, {"verb": "insert", "medium": args.medium, "from": source},
                         timeout=max(args.wait, 120.0 if source else args.wait))
        elif args.verb == "pull":
            state = send(sim_dir, _pick(sim_dir, "", args.drive), {"verb": "pull"}, timeout=args.wait)
        else:
            state = send(sim_dir, _pick(sim_dir, "", args.drive), {"verb": "fault", "kind": args.kind},
                         timeout=args.wait)
    except (SimError, OSError, ValueError) as exc:
        print(f"hw-sim: {exc}", file=sys.stderr)
        return 1
    print(_describe(state))
    return 0


def _panel(args: argparse.Namespace) -> int:
    """`hw-sim panel show|press`: one command to the panel simulator, its state printed."""
    folder = Path(args.panel_dir)
    command = {"verb": "show"} if args.verb == "show" else \
        {"verb": "press", "button": args.button, "long": args.long}
    try:
        state = sim_panel.send(folder, command, timeout=args.wait)
        if args.verb == "press":
            # The simulator answers at the press; the service reacts to the release (short or
            # long is known only then) and redraws a moment later: printed after that, not before.
            state = _after_press(folder, state, args)
    except (sim_panel.SimError, OSError, ValueError) as exc:
        print(f"hw-sim: {exc}", file=sys.stderr)
        return 1
    if args.verb == "press":
        print(f"pressed {args.button}" + (" (long)" if args.long else ""))
    for line in sim_panel.describe(state):
        print(line)
    return 0


# How long the display must stand still to be taken as the service's answer (a screen is written
# in a few milliseconds; a loaded machine may pause the writer for a good part of this).
_DISPLAY_QUIET_S = 0.5


def _after_press(folder: Path, pressed: dict, args: argparse.Namespace) -> dict:
    """The panel's state once the button pressed in ``pressed`` is released and the display
    differs from what it was at the press (a long press acts while held: its answer may be there at
    the release already), or ``args.settle`` seconds after the release when it did not change (an
    ACK that only steadies an LED). The display alone is compared: an LED blinks for reasons of
    its own (a C-STORE's activity), which would print the panel before the press was answered."""
    def looks(state: dict) -> list:
        return state["display"]["lines"]

    mark = len(pressed["edges"])
    hold = (max(args.wait, 60.0) if args.long else args.wait) + time.monotonic()
    state = pressed
    while not any(e["button"] == args.button and not e["pressed"] for e in state["edges"][mark - 1:]):
        if time.monotonic() > hold:
            raise sim_panel.SimError(f"{args.button} was not released by the simulator")
        time.sleep(0.05)
        state = sim_panel.send(folder, {"verb": "show"}, timeout=args.wait)
        # The edges are a bounded list: when it was full, what came after the press is its end.
        mark = min(mark, len(state["edges"]))
    before, settle = looks(pressed), time.monotonic() + max(0.0, args.settle)
    while looks(state) == before and time.monotonic() < settle:
        time.sleep(0.05)
        state = sim_panel.send(folder, {"verb": "show"}, timeout=args.wait)
    # The driver writes a screen a character at a time over the (simulated) I2C bus: the first
    # change seen may be a screen half written. It is printed once it has stood still a while.
    quiet_until = time.monotonic() + _DISPLAY_QUIET_S
    give_up = time.monotonic() + args.wait  # a screen that never stands still (a percentage)
    while time.monotonic() < min(quiet_until, give_up):
        time.sleep(0.05)
        now = sim_panel.send(folder, {"verb": "show"}, timeout=args.wait)
        if looks(now) != looks(state):
            quiet_until = time.monotonic() + _DISPLAY_QUIET_S
        state = now
    return state


def _pedal(args: argparse.Namespace) -> int:
    """`hw-sim pedal press|show`: one command to the pedal simulator; one line."""
    command = {"verb": "press", "long": args.long} if args.verb == "press" else {"verb": "show"}
    try:
        state = sim_pedal.send(Path(args.pedal_dir), command, timeout=args.wait)
    except (sim_pedal.SimError, OSError, ValueError) as exc:
        print(f"hw-sim: {exc}", file=sys.stderr)
        return 1
    if args.verb == "press":
        # The simulator answers at the press; the release follows on its own timer.
        print("pedal pressed" + (f" (held {state['long_press_s']:g} s)" if args.long else ""))
    else:
        # CLOCK_MONOTONIC is one clock for every process on the machine: the simulator's stamps
        # read as ages here.
        now = time.monotonic()
        last = ", ".join(f"{'pressed' if e['pressed'] else 'released'} {now - e['at']:.1f} s ago"
                         for e in state["edges"][-6:][::-1])
        print(f"pedal: key code {state['key_code']}; last edges (newest first): {last or 'none'}")
    return 0


def _printer(args: argparse.Namespace) -> int:
    """`hw-sim printer VERB`: one command to the printer simulator; its state as one line."""
    try:
        state = printer_view.send(Path(args.printer_dir), {"verb": args.verb}, timeout=args.wait)
    except (printer_view.SimError, OSError, ValueError) as exc:
        print(f"hw-sim: {exc}", file=sys.stderr)
        return 1
    films = "endless" if state["films_left"] is None else state["films_left"]
    print(f"printer ({state['model']}): {state['status']}; films left {films}; printed {state['printed']}")
    return 0


def _grabber(args: argparse.Namespace) -> int:
    """`hw-sim grabber VERB`: one command to the frame source; its state as one line."""
    command = {"verb": args.verb}
    try:
        if args.verb == "resolution":
            sim_grabber.parse_size(args.size)  # refused here already, without a running service
            command["size"] = args.size
        state = sim_grabber.send(Path(args.grabber_dir), command, timeout=args.wait)
    except (sim_grabber.SimError, OSError, ValueError) as exc:
        print(f"hw-sim: {exc}", file=sys.stderr)
        return 1
    print(sim_grabber.describe(state))
    return 0


if __name__ == "__main__":
    sys.exit(main())
