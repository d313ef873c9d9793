"""The panel's buttons: presses told apart as short or long, and the screens NEXT / PREVIOUS walk.

Short or long (ButtonTracker): a press is long once the button has been held LONG_PRESS_S; it
fires then, while still held (the operator sees the box act without guessing when to let go), and
its release does nothing more. A release before that is a short press. Time comes from the caller
(`at`, seconds), so tests press for 0.2 s or 3 s without sleeping.

The screens (Screens): pages, each a list of items, walked as one ring:
  status    one screen: the box's state and its backlog
  studies   one screen per study offered for export (the provider's list, newest first)
  media     one screen per drive
  printer   one screen (absent when printing is off)
NEXT / PREVIOUS short: the next / previous screen (the next item, or the next page's first when
the page ends); long: the first screen of the next / previous page (skips a long study list).
"""

from __future__ import annotations

from dataclasses import dataclass

BUTTONS = ("export", "eject", "capture", "next", "previous", "ack")
LONG_PRESS_S = 1.0
PAGES = ("status", "capture", "studies", "media", "printer")


class UnknownButton(ValueError):
    """A button name that is not one of BUTTONS (a driver's or the simulator's mistake)."""


def check_button(name: str) -> str:
    """`name` if it is one of BUTTONS; UnknownButton naming it and the known ones otherwise."""
    if name not in BUTTONS:
        raise UnknownButton(f"unknown panel button {name!r} (buttons: {', '.join(BUTTONS)})")
    return name


@dataclass(frozen=True)
class Press:
    """A finished decision: `button` was pressed short or long."""

    button: str
    long: bool = False


class ButtonTracker:
    """Turns button down / up edges (with their times) into Press values.

    down(b, at) then up(b, at): a Press from up() when short; poll(at) returns the long presses of
    buttons held at least long_s, once each. A second down() of a button already down is ignored
    (a bouncing contact); an up() of a button not down returns None."""

    def __init__(self, long_s: float = LONG_PRESS_S):
        self.long_s = long_s
        self._down: dict[str, float] = {}
        self._fired: set[str] = set()

    def down(self, button: str, at: float) -> None:
        """`button` went down at `at` (seconds). UnknownButton for a name not in BUTTONS."""
        self._down.setdefault(check_button(button), at)

    def up(self, button: str, at: float) -> Press | None:
        """`button` came up at `at`: its Press, or None when its long press already fired or it
        was not down."""
        start = self._down.pop(check_button(button), None)
        if start is None:
            return None
        if button in self._fired:
            self._fired.discard(button)
            return None
        return Press(button, long=at - start >= self.long_s)

    def poll(self, at: float) -> list[Press]:
        """The long presses due at `at`: buttons held at least long_s, each once."""
        out = []
        for button, start in self._down.items():
            if button not in self._fired and at - start >= self.long_s:
                self._fired.add(button)
                out.append(Press(button, long=True))
        return out

    @property
    def held(self) -> frozenset[str]:
        """The buttons down now."""
        return frozenset(self._down)


class Screens:
    """Where NEXT / PREVIOUS are: a page of PAGES and an item in it. `sizes`: items per page
    (a page with 0 items is skipped; status always has one). The caller gives the sizes each time
    it moves, because the study list and the drives change under the panel."""

    def __init__(self) -> None:
        self.page = "status"
        self.item = 0

    def go(self, page: str, item: int = 0) -> None:
        """Show `item` of `page` (one of PAGES)."""
        self.page, self.item = page, item

    def move(self, sizes: dict[str, int], forward: bool, long: bool) -> None:
        """One step of NEXT (forward) or PREVIOUS, short or long."""
        shown = [p for p in PAGES if sizes.get(p, 0) > 0 or p == "status"]
        if self.page not in shown:
            self.go("status")
        size = max(sizes.get(self.page, 1), 1)
        self.item = min(self.item, size - 1)
        step = 1 if forward else -1
        if not long and 0 <= self.item + step < size:
            self.item += step
            return
        page = shown[(shown.index(self.page) + step) % len(shown)]
        last = max(sizes.get(page, 1), 1) - 1
        self.go(page, last if (not forward and not long) else 0)
