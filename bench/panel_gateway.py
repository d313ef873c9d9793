"""Run `dicom-gateway` (gateway.cli.main) with the front panel's logic attached, for bench_observers.py.

    python bench/panel_gateway.py -- run --config FILE

Why a launcher: on this branch gateway/app.py does not wire the panel yet (another engineer does
it now). What exists is the logic (gateway/panel/Panel) and the drivers under it; this attaches the
logic the way a panel loop will run it, so its cost is in the measurement: one subscription to every
event kind (bounded, as every observer's), a thread that folds each event (Panel.apply) and, ten
times a second, lets time pass (Panel.tick) and computes what a driver would be given (Panel.leds(),
Panel.lines(), the lines encoded to the HD44780 ROM). No driver is written to: the hw-sim panel's
files and FIFO are the simulator's cost, not the service's. When Gateway grows a `panel` attribute
(the real wiring), nothing is attached here and the service's own panel runs.

Bench-only: the gateway's code is not touched; the patch is on Gateway.start / Gateway.stop.
BENCH_PANEL=0 in the environment: nothing is attached (the same launcher for the bare runs).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TICK_S = 0.1  # a driver loop's refresh: blink patterns and long presses need ~10 Hz


class PanelLoop(threading.Thread):
    """Feeds a gateway.panel.Panel from the service's bus and renders it TICK_S apart."""

    def __init__(self, gw):
        super().__init__(name="bench-panel", daemon=True)
        from gateway.panel import Panel

        cfg = gw.config
        self.events = gw.events
        self.panel = Panel(gw.commands, drives=list(cfg.media.drives),
                           printer=cfg.print.enabled, settings=cfg.panel)
        self.sub = gw.events.subscribe(maxsize=1000)
        self.halt = threading.Event()
        self.renders = 0

    def run(self) -> None:
        from gateway.panel.display import encode_a00

        while not self.halt.is_set():
            try:
                self.panel.apply(self.sub.get(timeout=TICK_S))
                while True:  # a burst is folded at once, then rendered once
                    self.panel.apply(self.sub.get_nowait())
            except queue.Empty:
                pass
            self.panel.tick()
            self.panel.leds()
            for line in self.panel.lines():
                encode_a00(line)
            self.renders += 1

    def stop(self) -> None:
        self.halt.set()
        self.join(5)
        self.events.unsubscribe(self.sub)


def attach() -> None:
    from gateway import app

    start, stop = app.Gateway.start, app.Gateway.stop

    def start_with_panel(self) -> None:
        start(self)
        if not hasattr(self, "panel"):
            self._bench_panel = PanelLoop(self)
            self._bench_panel.start()

    def stop_with_panel(self) -> None:
        loop = getattr(self, "_bench_panel", None)
        if loop is not None:
            loop.stop()
            print(f"bench panel: {loop.renders} renders, {loop.sub.dropped} events dropped", file=sys.stderr,
                  flush=True)
        stop(self)

    app.Gateway.start, app.Gateway.stop = start_with_panel, stop_with_panel


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if os.environ.get("BENCH_PANEL", "1") != "0":
        attach()
    from gateway.cli import main as gateway_main

    return gateway_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
