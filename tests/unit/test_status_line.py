"""STATUS= and Gateway.status_line read the state snapshot (issue 7 item 3), not the queue: the
housekeeping tick's observe() counts the queue into it, events fold destinations into it."""

from __future__ import annotations

import pytest
import tomli_w

from gateway import config as config_mod
from gateway.app import Gateway
from gateway.event_kinds import DestinationDown, DestinationUp
from gateway.state import read_snapshot


@pytest.fixture
def gw(tmp_path):
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(tomli_w.dumps({"buffer": {"path": str(tmp_path / "buf")},
                                  "destinations": {"pacs": {"ae_title": "PACS", "port": 11122}}}))
    g = Gateway(config_mod.load(cfg, []))  # built, not started: nothing binds
    yield g
    g.close()


def test_status_line_reads_the_counts_and_destinations_of_the_snapshot(gw, tmp_path):
    assert gw.status_line().endswith("; jobs not counted yet")
    q = gw.buffer.queue
    q.enqueue("forward", "pacs", "")
    q.enqueue("forward", "pacs", "")
    dead = q.enqueue("print", "film", "")
    q.fail(dead, "printer gone", None)
    # The queue changed, the snapshot has not counted it yet: the line says what the snapshot says.
    assert gw.status_line().endswith("; jobs not counted yet")
    gw.observe()
    assert gw.status_line().endswith("; 2 jobs waiting, 1 dead-lettered"), gw.status_line()
    gw.events.publish(DestinationDown(target="pacs", reason="connection refused", retry_in=1.0))
    gw.state.sync()
    assert gw.status_line().endswith("; 2 jobs waiting, 1 dead-lettered; unreachable: pacs")
    gw.events.publish(DestinationUp(target="pacs"))
    gw.state.sync()
    assert "unreachable" not in gw.status_line()
    snap = read_snapshot(tmp_path / "buf")
    assert snap["queues"]["forward"]["pacs"]["queued"] == 2 and snap["queues"]["print"]["film"]["dead"] == 1
    assert snap["disk"]["free_bytes"] > 0 and snap["disk"]["below_reserve"] is False
