"""Short and long presses without sleeping, and the screens NEXT / PREVIOUS walk
(gateway/panel/buttons.py)."""

from __future__ import annotations

import pytest

from gateway.panel.buttons import BUTTONS, ButtonTracker, Press, Screens, UnknownButton


@pytest.mark.parametrize("button", BUTTONS)
def test_short_and_long(button):
    t = ButtonTracker(long_s=1.0)
    t.down(button, 10.0)
    assert t.poll(10.9) == []
    assert t.up(button, 10.9) == Press(button, long=False)
    t.down(button, 20.0)
    assert t.poll(21.0) == [Press(button, long=True)]     # fires while held, at the threshold
    assert t.poll(25.0) == []                               # once
    assert t.up(button, 25.0) is None                       # and the release adds nothing
    t.down(button, 30.0)
    assert t.up(button, 31.5) == Press(button, long=True)   # no poll in between: decided at release


def test_bounces_and_strays():
    t = ButtonTracker(long_s=1.0)
    t.down("ack", 1.0)
    t.down("ack", 1.8)                                      # a bounce does not restart the hold
    assert t.poll(2.0) == [Press("ack", long=True)]
    assert t.up("eject", 2.0) is None                       # never went down
    t.down("next", 3.0)
    t.down("previous", 3.5)
    assert t.held == {"ack", "next", "previous"}
    assert t.poll(4.0) == [Press("next", long=True)]
    with pytest.raises(UnknownButton, match="unknown panel button 'menu' \\(buttons: export, eject, capture"):
        t.down("menu", 1.0)


SIZES = {"status": 1, "studies": 3, "media": 2, "printer": 1}


def walk(screens, sizes, steps):
    out = []
    for forward, long in steps:
        screens.move(sizes, forward, long)
        out.append((screens.page, screens.item))
    return out


def test_short_steps_walk_every_screen_as_one_ring():
    s = Screens()
    fwd = walk(s, SIZES, [(True, False)] * 7)
    assert fwd == [("studies", 0), ("studies", 1), ("studies", 2), ("media", 0), ("media", 1), ("printer", 0),
                   ("status", 0)]
    back = walk(s, SIZES, [(False, False)] * 4)
    assert back == [("printer", 0), ("media", 1), ("media", 0), ("studies", 2)]


def test_long_steps_jump_pages():
    s = Screens()
    s.go("studies", 2)
    assert walk(s, SIZES, [(True, True)] * 3) == [("media", 0), ("printer", 0), ("status", 0)]
    assert walk(s, SIZES, [(False, True)] * 2) == [("printer", 0), ("media", 0)]


def test_empty_pages_are_skipped_and_a_shrunk_list_is_not_overrun():
    s = Screens()
    sizes = {"status": 1, "studies": 0, "media": 1, "printer": 0}
    assert walk(s, sizes, [(True, False)] * 2) == [("media", 0), ("status", 0)]
    s.go("studies", 5)
    assert walk(s, {"status": 1, "studies": 2}, [(True, False)]) == [("status", 0)]
    s.go("printer")
    assert walk(s, {"status": 1}, [(True, False)]) == [("status", 0)]  # the page went away: start over
