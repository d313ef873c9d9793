"""A thread that dies of an exception leaves one ERROR line (issue 14, item 14)."""

from __future__ import annotations

import logging
import threading

from gateway import logs


class _Keep(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


def test_a_dying_thread_is_logged_in_one_line():
    saved_hook, root = threading.excepthook, logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    keep = _Keep()
    try:
        logs.setup("INFO", journald="off")
        root.addHandler(keep)

        def boom():
            raise ValueError("bad input")

        t = threading.Thread(target=boom, name="reactor-7")
        t.start()
        t.join(10)
    finally:
        threading.excepthook = saved_hook
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    died = [line for line in keep.lines if "died" in line]
    assert len(died) == 1, keep.lines
    assert died[0].startswith("ERROR thread reactor-7 died: ValueError: bad input at test_thread_death.py:")
