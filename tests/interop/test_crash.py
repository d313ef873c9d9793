"""Fault tests: kill -9 of the real `dicom-gateway run` at random moments.

The promise under test (../shared/DESIGN.md, principle 1; README "How an image travels"): Success goes out
only after the file is fsynced and renamed and the index is committed, so after a kill -9 at any
instant and a restart

- every instance a sender got Success for is in the index, its file exists and holds the data set
  bytes exactly as sent;
- nothing half-received survives (incoming/ empty, no file in objects/ unknown to the index);
- interrupted forward jobs are resumed, and every instance reaches the PACS (Orthanc) exactly once
  (Orthanc keeps one copy per SOP Instance UID: its count equals the number of instances sent),
  with storage commitment too (a report lost while the gateway was dead times out and the
  instances are sent and committed again).

The kill moments are random, from a seed that is printed and repeated in every assertion
message: `CRASH_SEED=<seed> pytest tests/interop/test_crash.py` replays a failing run's moments
(the machine's timing still varies). `CRASH_ROUNDS` (default 8) sets the number of kill rounds.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from datasets import make_series
from fault_support import (StoreSCU, check_buffer, dataset_bytes, job_states, last_recovery,
                           pending_txns, query, restart, sop_uid_of)
from peers import free_port, wait_until

pytestmark = [pytest.mark.interop, pytest.mark.crash]

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "8"))
SERIES_SIZE = 40
BACKLOG = int(os.environ.get("CRASH_BACKLOG", "150"))
# 256 x 256 x 16 bit: 128 KiB a data set, more than one P-DATA PDU at max_pdu 128 KiB, so a kill can
# land while a data set is half received (a partial file in incoming/).
ROWS = 256


def _seed() -> int:
    seed = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(2**32))
    print(f"CRASH_SEED={seed}")
    return seed


def _send_and_kill(tmp_path, gw, files, tag: str, delay: float, acked: dict) -> list:
    """storescu sends `files`; the gateway is killed `delay` s after storescu started. Records and
    returns the files storescu got Success for."""
    scu = StoreSCU(tmp_path, gw.port, files, tag)
    try:
        time.sleep(max(0.0, scu.started + delay - time.monotonic()))
        gw.kill9()
        scu.wait(60)
    finally:
        scu.close()
    got = scu.acknowledged()
    for p in got:
        acked[sop_uid_of(p)] = p
    return got


# --- receive rounds -----------------------------------------------------------------------------

def test_kill9_while_receiving_loses_nothing_acknowledged(tmp_path, gateway_factory):
    """kill -9 at a random moment while storescu sends 40 instances in one association; after a
    restart every acknowledged instance is in the buffer, byte for byte, and nothing partial is."""
    seed = _seed()
    rng = random.Random(seed)
    gw = gateway_factory({}, name="gw")

    # Calibration (and a clean baseline): how long one uninterrupted series takes here, so the
    # kill moments spread over the whole transfer on a slow or a fast machine.
    base_files = make_series(tmp_path / "series-base", SERIES_SIZE, rows=ROWS, cols=ROWS)
    scu = StoreSCU(tmp_path, gw.port, base_files, "base")
    rc = scu.wait(120)
    duration = time.monotonic() - scu.started
    assert rc == 0 and len(scu.acknowledged()) == SERIES_SIZE, scu.output[-2000:]
    acked: dict[str, Path] = {sop_uid_of(p): p for p in scu.acknowledged()}
    print(f"uninterrupted series of {SERIES_SIZE}: {duration:.2f} s")

    summary = []
    for rnd in range(ROUNDS):
        ctx = f"seed {seed}, round {rnd}"
        files = make_series(tmp_path / f"series-{rnd}", SERIES_SIZE, rows=ROWS, cols=ROWS)
        delay = rng.uniform(0.0, duration * 1.1)
        got = _send_and_kill(tmp_path, gw, files, f"r{rnd}", delay, acked)
        restart(gw)
        rec = last_recovery(gw.log)
        summary.append((rnd, round(delay, 3), len(got), rec["partial"], rec["orphans"]))
        print(f"round {rnd}: kill at {delay:.3f} s, {len(got)}/{SERIES_SIZE} acknowledged, "
              f"recovery removed {rec['partial']} partial and {rec['orphans']} orphan files")
        check_buffer(gw.buffer, acked, ctx)

    print(f"seed {seed}: {ROUNDS} rounds, {len(acked)} acknowledged instances in total: {summary}")
    # Across all rounds together, once more (a later recovery must not have removed earlier ones).
    check_buffer(gw.buffer, acked, f"seed {seed}, all rounds")


# --- forward rounds -----------------------------------------------------------------------------

def _pacs(orthanc, **extra) -> dict:
    return {"ae_title": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom,
            "retry_initial_s": 0.2, "retry_max_s": 1.0, **extra}


def _check_orthanc(orthanc, acked: dict[str, Path], ctx: str) -> None:
    count = orthanc.count()
    assert count == len(acked), f"{ctx}: Orthanc holds {count} instances, {len(acked)} were sent"
    for uid, original in acked.items():
        body = orthanc.instance_file(uid)
        assert body is not None, f"{ctx}: {uid} never reached Orthanc"
        tmp = original.with_suffix(".from-orthanc")
        tmp.write_bytes(body)
        assert dataset_bytes(tmp) == dataset_bytes(original), f"{ctx}: {uid} differs in Orthanc"
        tmp.unlink()


def _drained(buffer: Path, total_jobs: int) -> bool:
    s = job_states(buffer)
    return s.get("done", 0) == total_jobs and sum(s.values()) == total_jobs


def _send_all_remaining(tmp_path, gw, files: list[Path], acked: dict[str, Path], tag: str) -> None:
    pending = [p for p in files if p not in acked.values()]
    if pending:
        scu = StoreSCU(tmp_path, gw.port, pending, tag)
        rc = scu.wait(120)
        for p in scu.acknowledged():
            acked[sop_uid_of(p)] = p
        assert rc == 0 and len(scu.acknowledged()) == len(pending), scu.output[-2000:]


def test_kill9_while_receiving_and_forwarding_reaches_pacs_exactly_once(tmp_path, gateway_factory,
                                                                         orthanc_factory):
    """Each round sends a new batch while the forwarder drains the earlier ones, and the gateway
    is killed at a random moment; the next round re-sends what was not acknowledged (as a
    modality would). At the end every instance is in Orthanc once and every job is done."""
    seed = _seed()
    rng = random.Random(seed)
    port = free_port()
    orthanc = orthanc_factory(port)
    # Small batches: many associations, so a kill often lands between claim and done.
    gw = gateway_factory({"destinations": {"pacs": _pacs(orthanc, batch_size=5)}}, name="gw", port=port)

    per_round = 15
    acked: dict[str, Path] = {}
    all_files: list[Path] = []
    carry: list[Path] = []
    summary = []
    for rnd in range(ROUNDS):
        files = make_series(tmp_path / f"series-{rnd}", per_round)
        all_files += files
        batch = carry + files
        delay = rng.uniform(0.0, 2.0)
        got = _send_and_kill(tmp_path, gw, batch, f"r{rnd}", delay, acked)
        carry = [p for p in batch if p not in set(got)]
        restart(gw)
        rec = last_recovery(gw.log)
        summary.append((rnd, round(delay, 3), len(got), rec["requeued"]))
        print(f"round {rnd}: kill at {delay:.3f} s, {len(got)}/{len(batch)} acknowledged, "
              f"{rec['requeued']} interrupted forward jobs queued again, in Orthanc so far {orthanc.count()}")
        check_buffer(gw.buffer, acked, f"seed {seed}, round {rnd}")

    # Kills while only forwarding runs: build a backlog while Orthanc is down, bring it back and
    # kill the gateway at random moments while it drains the backlog.
    orthanc.stop()
    backlog = make_series(tmp_path / "backlog", BACKLOG, rows=128, cols=128)
    all_files += backlog
    _send_all_remaining(tmp_path, gw, backlog, acked, "backlog")
    orthanc.start()
    fwd_requeued = []
    for extra in range(max(2, ROUNDS // 2)):
        if job_states(gw.buffer).get("queued", 0) == 0:
            break
        # Kill at a random moment once forwarding is under way (the first instance of this round
        # reached Orthanc), not at a fixed time: how fast the backlog drains depends on the machine.
        before = orthanc.count()
        wait_until(lambda: orthanc.count() > before or job_states(gw.buffer).get("queued", 0) == 0, 30,
                   interval=0.02, what="forwarding under way")
        delay = rng.uniform(0.0, 0.2)
        time.sleep(delay)
        gw.kill9()
        restart(gw)
        rec = last_recovery(gw.log)
        fwd_requeued.append(rec["requeued"])
        summary.append((f"fwd{extra}", round(delay, 3), 0, rec["requeued"]))
        print(f"forward-only kill {extra}: {delay:.3f} s after the first arrival, "
              f"{rec['requeued']} interrupted jobs queued again, in Orthanc so far {orthanc.count()}")
    # The point of this phase: at least one kill hit a batch in the air (claimed, not confirmed).
    assert any(fwd_requeued), (f"seed {seed}: no kill landed while a forward batch was in flight "
                               f"({fwd_requeued}); the backlog drained too fast for this machine")

    _send_all_remaining(tmp_path, gw, all_files, acked, "rest")
    n = len(all_files)
    assert len(acked) == n
    ctx = f"seed {seed}"
    # One forward job per instance; jobs superseded by a re-queue are 'done' too.
    wait_until(lambda: job_states(gw.buffer).get("queued", 0) + job_states(gw.buffer).get("in_flight", 0) == 0,
               120, 0.2, f"forward queue to drain ({ctx})")
    states = job_states(gw.buffer)
    assert set(states) == {"done"}, f"{ctx}: jobs not all done: {states}"
    uncovered = query(gw.buffer, "SELECT i.sop_uid FROM instances i WHERE NOT EXISTS"
                      " (SELECT 1 FROM jobs j WHERE j.instance_fk = i.id AND j.state = 'done')")
    assert not uncovered, f"{ctx}: instances without a done forward job: {uncovered[:5]}"
    _check_orthanc(orthanc, acked, ctx)
    print(f"seed {seed}: {n} instances, kills {summary}, final jobs {states}")

    # Confirmed work is not sent again: one more restart finds nothing to resume or send.
    gw.kill9()
    mark = len(gw.log)
    restart(gw)
    time.sleep(1.5)
    assert last_recovery(gw.log)["requeued"] == 0
    assert "forwarded" not in gw.log[mark:], f"{ctx}: sent again after everything was done"
    assert orthanc.count() == n


def test_kill9_with_storage_commitment_pending(tmp_path, gateway_factory, orthanc_factory):
    """storage_commitment = true against Orthanc (it sends the N-EVENT-REPORT on a new association
    to the gateway's port): kill -9 while forwarding runs and while commitments are pending; after
    the restarts every job ends 'done' (a report that came while the gateway was dead is lost, the
    transaction times out after commitment_timeout_s and its instances are sent and committed
    again), and Orthanc holds each instance once."""
    seed = _seed()
    rng = random.Random(seed)
    port = free_port()
    orthanc = orthanc_factory(port)
    gw = gateway_factory({"destinations": {"pacs": _pacs(
        orthanc, batch_size=4, storage_commitment=True, commitment_timeout_s=5.0)}}, name="gw", port=port)

    # A backlog, received while Orthanc is down, so the kills below land while it drains.
    n = int(os.environ.get("CRASH_COMMIT_INSTANCES", "60"))
    files = make_series(tmp_path / "series", n, rows=128, cols=128)
    acked: dict[str, Path] = {}
    orthanc.stop()
    _send_all_remaining(tmp_path, gw, files, acked, "all")
    orthanc.start()

    rounds = max(4, ROUNDS // 2)
    kills = []
    for rnd in range(rounds):
        if rnd % 2 == 0:
            # A random moment while forwarding runs.
            delay = rng.uniform(0.5, 2.0)
            time.sleep(delay)
            how = f"random {delay:.3f} s"
        else:
            # The moment a transaction is pending: Orthanc's report then finds the port closed.
            # (A new transaction: earlier ones may still wait for their timeout.)
            t0 = time.monotonic()
            old = set(pending_txns(gw.buffer))
            try:
                wait_until(lambda: set(pending_txns(gw.buffer)) - old, 15, 0.002,
                           "a new pending storage commitment")
            except AssertionError:
                break  # the backlog is drained: nothing left to interrupt
            how = f"on committing, {time.monotonic() - t0:.3f} s"
        before = job_states(gw.buffer)  # just before the kill: what was in the air
        gw.kill9()
        restart(gw)
        rec = last_recovery(gw.log)
        kills.append((rnd, how, before.get("committing", 0), rec["requeued"]))
        print(f"round {rnd}: kill ({how}) with ~{before.get('committing', 0)} jobs committing; "
              f"{rec['requeued']} in-flight jobs queued again; in Orthanc so far {orthanc.count()}")
        check_buffer(gw.buffer, acked, f"seed {seed}, round {rnd}")
    ctx = f"seed {seed}"
    assert any(k[2] for k in kills), f"{ctx}: no kill landed while a commitment was pending: {kills}"

    def settled():
        s = job_states(gw.buffer)
        return s if set(s) <= {"done", "dead"} and sum(s.values()) >= n else None

    # Lost reports: 5 s timeout, noticed within one housekeeping tick (5 s), then sent again.
    states = wait_until(settled, 150, 0.5, f"every job done or dead ({ctx})")
    assert set(states) == {"done"}, f"{ctx}: {states}"
    commits = dict(query(gw.buffer, "SELECT state, COUNT(*) FROM commitments GROUP BY state"))
    assert "pending" not in commits, f"{ctx}: commitments still pending: {commits}"
    _check_orthanc(orthanc, acked, ctx)
    print(f"seed {seed}: {n} instances, kills (round, when, committing, requeued) {kills}, "
          f"jobs {states}, commitments {commits}")
