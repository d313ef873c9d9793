"""The power-cut campaign's harness (issue 13, item 2): the real service with its buffer on the
power-cut test bed (tests/powercut_fs.py is the model of what a cut loses), cut at random instants
while it receives and forwards, restarted on what survived, and checked.

One cycle (one cut):

1. The gateway (``python -m gateway.cli run``, tests/peers.GatewayProcess) runs with its buffer on
   the bed and a destination (DCMTK storescp, off the bed: it stands for the PACS on another box)
   receiving its forwards. One to three storescu send small objects at once, each in its own
   association; what the previous cycle's senders did not get Success for is sent again (as a
   modality would).
2. At the cycle's instant, in the cycle's phase (PHASES), the gateway is killed (SIGKILL) and the
   power cut (``PowerCutMount.cut``): everything the gateway did not make durable is gone. The
   senders are modalities on other boxes: they are not cut, they read the responses already on
   their socket and end (killed after SENDER_GRACE_S if not).
3. The gateway starts again on what survived; it must log its recovery and reach READY (the
   listener's "listening as" line: the port itself is bound before recovery, associations are
   accepted only after it and the workers).
4. It drains the forward queue, then the invariants hold (``Campaign.check``):
   - every instance a sender got Success for is in the index and its file holds the data set
     bytes as sent (tests/fault_support.check_buffer, the kill -9 campaign's check);
   - the index agrees with the files after the service's recovery: no row without its file, no
     object file without its row, incoming/ empty, SQLite's integrity check ok (same check);
   - no forward job lost: every acknowledged instance has a done job and is at the destination,
     byte-identical; nothing is at the destination that was not acknowledged, except an instance
     whose Success was on its way to the sender at the cut and that is durable in the buffer.
     Forwarding starts once the index is committed, which may be a moment before the response
     leaves; and a response that did leave can still be lost: the killed gateway's socket, with
     the sender's next request unread in it, closes with a reset, and the sender's kernel then
     drops what it had not yet read. The data is safe and the sender sends it again; each cut's
     line counts these;
   - no sender was refused (a Store Response other than Success, a rejected association): a cut
     must never make the service turn work away.

The phases (a dict, PHASES; the print and media-export phases come later and go there, with
their own peers and their own invariants in ``Campaign.check``, as storage commitment did):

- ``ingest``: cut at a random instant while the senders send (forwarding runs too), over the
  time the last complete send took here;
- ``forward``: the destination is down while the senders send (a backlog builds), comes back,
  and the cut lands at a random instant after the first forward arrives, over about the time the
  backlog takes to drain (FORWARD_S_PER_OBJECT), so batches are cut between claim and done;
- ``startup``: kill -9 while receiving (no cut), start again, cut at a random instant from the
  port bound (recovery next) to as long again after READY: the interpreter's imports, which
  touch nothing on the bed, are not what is cut.

With storage commitment (``Campaign(..., commitment=True)``, COMMIT_PHASES) the destination is
Orthanc, which commits and sends its N-EVENT-REPORT back on a new association; the ``commit`` phase
cuts just after a commitment became pending, so the report finds the gateway dead or is answered
and lost in the cut. The drain then also waits for ``committing`` jobs, and no commitment may stay
pending: a lost report times out (COMMITMENT_TIMEOUT_S, noticed within the service's housekeeping
tick) and its instances are sent and committed again.

The cost of a cycle is the service's start, about 1.5 s of it the interpreter importing the
gateway before it touches the buffer; with small objects and one bed mount for all cuts (cut()
mounts again) a cycle takes 2.5-3 s on this 2-core machine, so the default budget usually ends the
campaign short of 100 cuts when other tests run beside it.

Replay and size: the seed is printed (and in every failure message); ``POWERCUT_SEED=<seed>``
repeats its phases, instants and sender counts (the machine's timing still varies).
``POWERCUT_CUTS`` (default 100) sets the number of cuts; ``POWERCUT_BUDGET_S`` (default 200)
stops the campaign early, after the cut that passes it, on a machine too slow for all of them:
the test prints how many ran. Neither is asserted on: tests never assert wall-clock times.

Errors: a broken invariant raises AssertionError with one line naming the seed, the cut, its phase
and instant, and what was lost; a peer that does not start raises what tests/peers raises.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

from datasets import make_series
from dicom_bytes import dataset_bytes as bytes_of_dataset
from dicom_bytes import file_dataset_bytes as dataset_bytes
from fault_support import StoreSCU, check_buffer, job_states, last_recovery, pending_txns, query, sop_uid_of
from peers import GatewayProcess, Orthanc, free_port, kill_group, require, wait_port, wait_until

# Small objects make a cycle cheap: 32 x 32 x 16 bit, about 2 KiB a data set.
ROWS = 32
NEW_PER_SENDER = (3, 8)  # new instances per sender and cycle, inclusive range
SENDERS = (1, 1, 2, 3)  # how many associations at once: one most often, several sometimes
SENDER_GRACE_S = 5.0  # s a sender gets to read what reached its socket before the cut and end
FORWARD_S_PER_OBJECT = 0.004  # s; small objects to a local storescp, batches of 5 (measured ~2.5)
DRAIN_TIMEOUT_S = 60.0  # s for the restarted service to forward its whole queue
START_TIMEOUT_S = 30.0  # s for the service to reach READY
DESTINATION_AET = "TESTPACS"
READY_LINE = "listening as EDGE on "  # gateway.dicom.listener, logged once it accepts
# True: the harness makes the buffer directory (durably) before the first start, as an install
# would; False (the default): a fresh box, the service makes it (see Campaign.start).
PRECREATE_BUFFER = False
# Phase -> weight. Later phases (print, media export) are added here, in Campaign.run_cycle (how
# the instant is picked) and Campaign.check (their invariants: no film printed twice...).
PHASES = {"ingest": 5, "forward": 3, "startup": 2}
# With storage commitment (Orthanc as the PACS): the commit phase cuts while a commitment is
# pending; a report lost in the cut times out (COMMITMENT_TIMEOUT_S, noticed within the service's
# housekeeping tick) and the instances are sent and committed again.
COMMIT_PHASES = {"ingest": 1, "forward": 1, "commit": 2}
COMMITMENT_TIMEOUT_S = 2.0


def seed_from_env() -> int:
    """POWERCUT_SEED, or a fresh random one; printed either way (pytest -s or the failure report)."""
    seed = int(os.environ.get("POWERCUT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"POWERCUT_SEED={seed}")
    return seed


def cuts_from_env() -> tuple[int, float]:
    """(POWERCUT_CUTS, POWERCUT_BUDGET_S): the number of cuts and the time budget in seconds."""
    return int(os.environ.get("POWERCUT_CUTS", "100")), float(os.environ.get("POWERCUT_BUDGET_S", "200"))


class StoreSCPDestination:
    """DCMTK storescp as the forwards' destination, writing each object to DIR/<modality>.<SOP UID>
    (a re-sent instance overwrites its file: forwarding is at least once, the content is what
    counts). The campaign's destinations offer: port, start(), stop(), snapshot() (changes when
    anything arrives), received() (the SOP Instance UIDs held) and dataset(uid) (its data set
    bytes)."""

    def __init__(self, workdir: Path):
        self.exe = require("storescp", "dcmtk")
        self.dir = workdir / "received"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = workdir / "storescp.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "StoreSCPDestination":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.exe, "-aet", DESTINATION_AET, "-od", str(self.dir), "--socket-timeout", "20",
                 str(self.port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(self.port, 30, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            kill_group(self.proc)

    def snapshot(self) -> set[tuple[str, int]]:
        """(name, mtime in ns) of every file: a new or re-sent object changes it."""
        return {(e.name, e.stat().st_mtime_ns) for e in os.scandir(self.dir)}

    def received(self) -> dict[str, Path]:
        """SOP Instance UID -> file, from the names storescp gives ("CT.1.2.3...")."""
        return {p.name.split(".", 1)[1]: p for p in self.dir.iterdir() if "." in p.name}

    def dataset(self, uid: str) -> bytes:
        return dataset_bytes(self.received()[uid])


class OrthancDestination:
    """Orthanc (tests/peers.Orthanc) as the destination: it answers storage commitment, sending
    its N-EVENT-REPORT on a new association to the gateway (gateway_port). Same offer as
    StoreSCPDestination."""

    def __init__(self, workdir: Path, gateway_port: int):
        self.orthanc = Orthanc(workdir, gateway_port, aet=DESTINATION_AET)
        self.port = self.orthanc.dicom

    def start(self) -> "OrthancDestination":
        self.orthanc.start()
        return self

    def stop(self) -> None:
        self.orthanc.stop()

    def snapshot(self) -> int:
        """Orthanc's last change number: a new instance adds one."""
        return int(self.orthanc.get("/changes?last")["Last"])

    def received(self) -> dict[str, str]:
        """SOP Instance UID -> Orthanc's id."""
        return {i["MainDicomTags"]["SOPInstanceUID"]: i["ID"] for i in self.orthanc.get("/instances?expand")}

    def dataset(self, uid: str) -> bytes:
        return bytes_of_dataset(self.orthanc.instance_file(uid))


def refusals(log: str) -> list[str]:
    """The lines of a storescu -v log where the gateway turned work away: a Store Response other
    than Success, or a rejected association. (A lost association, the cut, is not a refusal.)"""
    bad = []
    for line in log.splitlines():
        if "Received Store Response (" in line and "(Success)" not in line:
            bad.append(line.strip())
        elif "Association Rejected" in line:
            bad.append(line.strip())
    return bad


class Campaign:
    """The service on the bed, its destination and senders, and what was acknowledged so far.

    bed: a started tests/powercut_support.PowerCutMount; workdir: a directory off the bed (config,
    logs, the objects to send, the destination's folder)."""

    def __init__(self, bed, workdir: Path, seed: int, commitment: bool = False):
        self.bed = bed
        self.workdir = workdir
        self.seed = seed
        self.rng = random.Random(seed)
        self.commitment = commitment
        self.phases = COMMIT_PHASES if commitment else PHASES
        port = free_port()
        self.destination = (OrthancDestination(workdir / "orthanc", port) if commitment
                            else StoreSCPDestination(workdir / "destination"))
        self.buffer = Path(bed.path) / "buffer"
        (workdir / "gw").mkdir(parents=True, exist_ok=True)
        commit = {"storage_commitment": True, "commitment_timeout_s": COMMITMENT_TIMEOUT_S} if commitment else {}
        self.gw = GatewayProcess(workdir / "gw", port=port, config={
            "buffer": {"path": str(self.buffer)},
            # Its own start-up is part of every cycle; the status page is an observer only.
            "status_http": {"enabled": False},
            # Small batches and quick retries: a cut often lands between claim and done, and a
            # requeued job goes out again at once.
            "destinations": {"pacs": {"ae_title": DESTINATION_AET, "host": "127.0.0.1",
                                      "port": self.destination.port, "batch_size": 5,
                                      "retry_initial_s": 0.1, "retry_max_s": 0.3, **commit}},
        })
        self.gw.buffer = self.buffer  # GatewayProcess assumes workdir/buffer; ours is on the bed
        self.acked: dict[str, Path] = {}  # SOP Instance UID -> the file sent, Success seen
        self.sent: dict[str, Path] = {}  # every instance offered to the gateway
        self.carry: list[Path] = []  # sent, no Success yet: sent again next cycle
        self.checked: set[str] = set()  # acknowledged instances whose bytes were compared already
        self.early: set[str] = set()  # delivered before their Success reached the sender
        self.start_s = 2.0  # s the last start took, process start to READY (printed)
        self.ready_s = 0.2  # s of it from the port bound to READY (the startup phase's range)
        self.send_s = 1.0  # s the last complete send took (the ingest phase's range), measured
        self.summary: list[tuple] = []
        self._batch = 0

    # --- peers ------------------------------------------------------------------------------

    def start(self) -> None:
        """The destination, then the service, which creates its buffer on the bed itself (a fresh
        box; PRECREATE_BUFFER = True starts it on a buffer directory made durable first, as an
        install would leave it)."""
        self.destination.start()
        if PRECREATE_BUFFER:
            self.buffer.mkdir()
            self.bed.make_durable()
        self._start_gateway()

    def _launch(self, ctx: str = "first start") -> int:
        """Start the service; return once its port is bound, which App.start does first, before
        recovery. Returns where this start's lines begin in the log. AssertionError (naming ctx
        and the service's last log line) when it does not start."""
        mark = len(self.gw.log)
        try:
            self.gw.start(timeout=START_TIMEOUT_S)
        except RuntimeError:
            # A kill -9 may leave the port briefly busy (as tests/fault_support.restart).
            time.sleep(1.0)
            mark = len(self.gw.log)
            try:
                self.gw.start(timeout=START_TIMEOUT_S)
            except (RuntimeError, TimeoutError) as exc:
                last = (self.gw.log[mark:].strip().splitlines() or ["(nothing logged)"])[-1]
                raise AssertionError(f"{ctx}: the service did not start: {exc}; its last line: {last}") from None
        return mark

    def _start_gateway(self, ctx: str = "first start") -> None:
        """Start the service and wait (bounded) for READY: the listener's "listening as" line,
        logged when associations are accepted, after recovery and the workers. Measures the
        start-up proper (port bound to READY), the startup phase's range."""
        t0 = time.monotonic()
        mark = self._launch(ctx)
        bound = time.monotonic()

        def ready():
            if self.gw.proc.poll() is not None:
                raise AssertionError(f"{ctx}: the service exited with {self.gw.proc.returncode} before READY: "
                                     f"{self.gw.log[mark:][-500:]}")
            return READY_LINE in self.gw.log[mark:]
        wait_until(ready, START_TIMEOUT_S, 0.01, f"the service to reach READY ({ctx})")
        self.ready_s = time.monotonic() - bound
        self.start_s = time.monotonic() - t0

    def close(self) -> None:
        """Stop everything this campaign started; never raises (the bed is the fixture's)."""
        for stop in (lambda: self.gw.kill9(), self.destination.stop):
            try:
                stop()
            except Exception:  # noqa: BLE001 - the others must still be stopped
                pass
        if self.gw.proc is not None and self.gw.proc.poll() is None:
            kill_group(self.gw.proc)

    # --- one cycle ----------------------------------------------------------------------------

    def _senders(self, cut: int) -> list[StoreSCU]:
        """The cycle's senders: a random number of them, each with new objects and a share of
        what earlier senders got no Success for."""
        return self._senders_of(self.rng.choice(SENDERS), f"c{cut:03d}")

    def _senders_of(self, n: int, tag: str) -> list[StoreSCU]:
        """n storescu started together (the objects are written first), each with new objects and
        its share of the carried-over ones. One that fails to start stops the others."""
        carry, self.carry = self.carry, []
        batches = []
        for k in range(n):
            self._batch += 1
            files = make_series(self.workdir / "send" / f"b{self._batch:05d}",
                                self.rng.randint(*NEW_PER_SENDER), rows=ROWS, cols=ROWS)
            files = carry[k::n] + files
            for p in files:
                self.sent.setdefault(sop_uid_of(p), p)
            batches.append(files)
        senders: list[StoreSCU] = []
        try:
            for k, files in enumerate(batches):
                scu = StoreSCU(self.workdir, self.gw.port, files, f"{tag}-{k}")
                scu.files = files  # what it offers, for carrying over what got no Success
                senders.append(scu)
        except BaseException:
            for scu in senders:
                scu.close()
            raise
        return senders

    def _end_senders(self, senders: list[StoreSCU]) -> tuple[int, int, list[str]]:
        """Wait (bounded) for the senders, record their acknowledgements, carry the rest over.
        Returns (offered, acknowledged, refusal lines)."""
        offered = acked = 0
        refused: list[str] = []
        for scu in senders:
            try:
                scu.proc.wait(SENDER_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
            scu.close()  # kills it if it still runs
            got = scu.acknowledged()
            for p in got:
                self.acked[sop_uid_of(p)] = p
            done = set(self.acked.values())
            self.carry += [p for p in scu.files if p not in done]
            offered += len(scu.files)
            acked += len(got)
            refused += refusals(scu.output)
        return offered, acked, refused

    def run_cycle(self, cut: int) -> str:
        """One cut: send, kill, cut, restart, drain, check. Returns the line printed for it."""
        phase = self.rng.choices(list(self.phases), weights=list(self.phases.values()))[0]
        # Fractions of the phase's range, which is scaled by what this machine measured.
        instant, second = self.rng.random(), self.rng.random()
        before = None
        if phase == "forward":
            # A backlog: the destination is down while the senders send. (Its snapshot first:
            # once its port is up again it may get the whole backlog before a look afterwards.)
            before = self.destination.snapshot()
            self.destination.stop()
        senders = self._senders(cut)
        t0 = time.monotonic()
        try:
            if phase == "ingest":
                # Over the time the last complete send took (measured in the forward phase).
                at = instant * self.send_s
                time.sleep(max(0.0, t0 + at - time.monotonic()))
                self.gw.kill9()
                where = f"{at:.3f} s after the senders started"
            elif phase == "forward":
                # The destination comes back and the cut lands at a random instant after the
                # first forward of the backlog arrives.
                for scu in senders:
                    scu.proc.wait(60)
                self.send_s = time.monotonic() - t0
                self.destination.start()
                wait_until(lambda: self.destination.snapshot() != before, DRAIN_TIMEOUT_S, 0.005,
                           f"forwarding to resume once the destination is back (seed {self.seed}, cut {cut})")
                # Over about the time the backlog takes to drain here (a few ms an object).
                backlog = sum(len(scu.acknowledged()) for scu in senders)
                at = instant * FORWARD_S_PER_OBJECT * max(1, backlog)
                time.sleep(at)
                self.gw.kill9()
                where = f"{at:.3f} s after the first forward of a backlog of {backlog} arrived"
            elif phase == "commit":
                # The moment a new storage commitment is pending (the PACS's report then finds the
                # gateway dead), or a random instant after it; unless the queue drained first.
                old = set(pending_txns(self.buffer))
                try:
                    wait_until(lambda: set(pending_txns(self.buffer)) - old, 15, 0.005,
                               "a new pending storage commitment")
                    at = instant * 0.05
                    where = f"{at:.3f} s after a storage commitment became pending"
                except AssertionError:
                    at = 0.0
                    where = "no new commitment pending within 15 s (all committed): cut idle"
                time.sleep(at)
                self.gw.kill9()
            else:  # startup
                time.sleep(instant * self.send_s)
                self.gw.kill9()
                # The instant is spread over the start-up proper (recovery, the workers) and as
                # much again after READY, not over the interpreter's imports.
                mark = self._launch(f"seed {self.seed}, cut {cut}: the restart after kill -9")
                at = second * 2 * self.ready_s
                time.sleep(at)
                self.gw.kill9()
                state = "after READY" if READY_LINE in self.gw.log[mark:] else "before READY"
                where = (f"kill -9 {instant * self.send_s:.3f} s after the senders started, then "
                         f"{at:.3f} s after the restart bound its port ({state})")
        finally:
            self.gw.kill9()
            # The senders are on other boxes: they survive the cut and read what reached them.
            offered, acked, refused = self._end_senders(senders)
        t_cut = time.monotonic()
        self.bed.cut()
        t_cut = time.monotonic() - t_cut
        mark = len(self.gw.log)
        ctx = f"seed {self.seed}, cut {cut} ({phase}: {where})"
        self._start_gateway(ctx)
        assert refused == [], f"{ctx}: the gateway refused work: {refused[:3]}"
        rec = last_recovery(self.gw.log[mark:])
        t_check = time.monotonic()
        early = self.check(ctx)
        t_check = time.monotonic() - t_check
        self.summary.append((cut, phase, round(at, 3)))
        return (f"cut {cut}: {phase}, {where}; {acked}/{offered} acknowledged"
                f"{f', {early} delivered whose Success the sender never read' if early else ''}; "
                f"recovery removed {rec['partial']} partial and {rec['orphans']} orphan files, requeued "
                f"{rec['requeued']} jobs; cut {t_cut:.2f} s, READY {self.start_s:.2f} s, drain and check "
                f"{t_check:.2f} s; {len(self.acked)} acknowledged in all")

    # --- invariants ---------------------------------------------------------------------------

    def drain(self, ctx: str) -> dict[str, int]:
        """Wait (bounded) until the forward queue is empty and, with storage commitment, no
        transaction is pending; the job states then. (A report closes its jobs and then its
        transaction, in two index transactions: jobs done with the transaction still pending is a
        moment of every report, and after a cut between the two the transaction expires at its
        deadline with nothing left to resend.)"""
        def drained():
            s = job_states(self.buffer)
            if {"queued", "in_flight", "committing"} & set(s):
                return None
            if self.commitment and pending_txns(self.buffer):
                return None
            # A 1-tuple: an empty queue (no jobs at all) is an answer too, not a falsy "wait on".
            return (s,)
        return wait_until(drained, DRAIN_TIMEOUT_S, 0.1, f"the forward queue to drain ({ctx})")[0]

    def check(self, ctx: str, full: bool = False) -> int:
        """The module docstring's invariants. Bytes are compared for the instances not compared in
        an earlier check (all of them when full); presence is checked for all every time. Returns
        how many instances were newly found delivered without a Success the sender read."""
        states = self.drain(ctx)
        assert set(states) <= {"done"}, f"{ctx}: forward jobs not done after the drain: {states}"
        if self.commitment:
            commits = dict(query(self.buffer, "SELECT state, COUNT(*) FROM commitments GROUP BY state"))
            assert "pending" not in commits, f"{ctx}: storage commitments still pending: {commits}"
        new = {u: p for u, p in self.acked.items() if full or u not in self.checked}
        check_buffer(self.buffer, new, ctx)
        rows = {r[0] for r in query(self.buffer, "SELECT sop_uid FROM instances")}
        lost = sorted(set(self.acked) - rows)
        assert not lost, f"{ctx}: {len(lost)} acknowledged instances lost from the buffer: {lost[:3]}"
        undone = query(self.buffer, "SELECT i.sop_uid FROM instances i WHERE NOT EXISTS"
                       " (SELECT 1 FROM jobs j WHERE j.instance_fk = i.id AND j.state = 'done')")
        assert not undone, f"{ctx}: instances without a done forward job: {undone[:3]}"
        received = self.destination.received()
        missing = sorted(set(self.acked) - set(received))
        assert not missing, f"{ctx}: {len(missing)} acknowledged instances never reached the destination: {missing[:3]}"
        strangers = sorted(set(received) - set(self.sent))
        assert not strangers, f"{ctx}: the destination holds instances nobody sent: {strangers[:3]}"
        unconfirmed = set(received) - set(self.acked)
        not_durable = sorted(unconfirmed - rows)
        assert not not_durable, (f"{ctx}: delivered, never acknowledged, and not in the buffer after the "
                                 f"cut (forwarded before it was durable): {not_durable[:3]}")
        early = len(unconfirmed - self.early)
        self.early |= unconfirmed
        for uid, original in new.items():
            assert self.destination.dataset(uid) == dataset_bytes(original), (
                f"{ctx}: {uid} at the destination differs from the one sent")
        self.checked |= set(new)
        return early
