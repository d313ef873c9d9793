"""The power-cut campaign (issue 13, item 2): random power cuts while the real service receives
and forwards, each followed by a restart on what survived and the invariants of
tests/powercut_campaign.py (its docstring: the cycle, the phases, POWERCUT_SEED / POWERCUT_CUTS /
POWERCUT_BUDGET_S). Print and media export phases come later (PHASES there)."""

from __future__ import annotations

import os
import time

import pytest

from powercut_campaign import Campaign, cuts_from_env, seed_from_env
from powercut_support import powercut_mount  # noqa: F401 - the fixture

CUTS, BUDGET_S = cuts_from_env()
COMMIT_CUTS = int(os.environ.get("POWERCUT_COMMIT_CUTS", "10"))

# The budget bounds the cuts; the rest is one start, the last cut's bounded waits and the final
# full check. The campaign is one test in one worker: xdist runs the rest of the suite beside it.
pytestmark = [pytest.mark.interop, pytest.mark.crash, pytest.mark.timeout(int(BUDGET_S) + 300)]


def test_power_cuts_while_receiving_and_forwarding_lose_nothing_acknowledged(powercut_mount, tmp_path):  # noqa: F811
    seed = seed_from_env()
    campaign = Campaign(powercut_mount, tmp_path / "campaign", seed)
    try:
        campaign.start()
        t0 = time.monotonic()
        done = 0
        for cut in range(CUTS):
            print(campaign.run_cycle(cut), flush=True)
            done += 1
            if time.monotonic() - t0 > BUDGET_S:
                break
        campaign.check(f"seed {seed}, after all {done} cuts", full=True)
        phases = {p: sum(1 for s in campaign.summary if s[1] == p) for p in {s[1] for s in campaign.summary}}
        print(f"seed {seed}: {done} of {CUTS} cuts ran (budget {BUDGET_S:.0f} s), phases {phases}; "
              f"{len(campaign.acked)} instances acknowledged, all in the buffer and at the destination; "
              f"{len(campaign.early)} delivered before their Success reached the sender (durable)")
    finally:
        campaign.close()


def test_power_cuts_with_storage_commitment_pending_lose_no_job(powercut_mount, tmp_path):  # noqa: F811
    """Orthanc as the PACS, storage commitment on: cuts while commitments are pending (and while
    receiving and forwarding); every job ends done, no commitment stays pending, every instance
    is in Orthanc byte-identical. Fewer cuts (POWERCUT_COMMIT_CUTS, default 10): a report lost in
    a cut costs the commitment timeout plus a housekeeping tick before the drain ends."""
    seed = seed_from_env()
    campaign = Campaign(powercut_mount, tmp_path / "campaign", seed, commitment=True)
    try:
        campaign.start()
        t0 = time.monotonic()
        done = 0
        for cut in range(COMMIT_CUTS):
            print(campaign.run_cycle(cut), flush=True)
            done += 1
            if time.monotonic() - t0 > BUDGET_S:
                break
        campaign.check(f"seed {seed}, after all {done} cuts", full=True)
        print(f"seed {seed}: {done} of {COMMIT_CUTS} cuts with storage commitment ran; "
              f"{len(campaign.acked)} instances acknowledged, all committed by Orthanc")
    finally:
        campaign.close()


def test_a_fresh_box_buffer_created_by_the_service_survives_a_power_cut(powercut_mount, tmp_path):  # noqa: F811
    # The smallest case the campaign found (any seed, cut 0, when the service made the buffer with
    # a plain mkdir, gateway/app.py, so its folder's name was never durable): one acknowledged
    # C-STORE, kill -9, cut; the instance must be in the index after the restart.
    seed = seed_from_env()
    campaign = Campaign(powercut_mount, tmp_path / "fresh", seed)
    try:
        campaign.destination.start()
        campaign._start_gateway()  # the service makes buffer/ on the bed itself
        (scu,) = campaign._senders_of(1, "fresh")
        scu.proc.wait(60)
        campaign.gw.kill9()
        campaign._end_senders([scu])
        assert campaign.acked, scu.output[-1000:]
        powercut_mount.cut()
        assert campaign.buffer.is_dir(), "the buffer directory is gone after the cut"
        campaign._start_gateway()
        campaign.check("fresh box, one acknowledged instance, cut after kill -9")
    finally:
        campaign.close()
