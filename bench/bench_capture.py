"""Video capture: sustained clip capture from the hw-sim frame source (issue 10, `make bench`).

Per size (640x480, 1920x1080, 30 fps, yuyv422 as a USB grabber sends it) and per encoding:

  (a) real path   the capture service as `dicom-gateway run` builds it: the device registry's
                  "grabber" kind "sim" (hw-sim's SimulatedGrabber sending YUYV at 30 fps over its
                  socket, read by the real V4l2Grabber: PyAV demux, swscale to RGB), CaptureService
                  (its reader thread, the clip's encoder thread behind the bounded queue that drops
                  and counts), a real Buffer + Intake in a scratch folder.  One clip of CLIP_S
                  seconds (x BENCH_SCALE, at least 1 s).  frames stored = the stored object's Number
                  of Frames; fps = frames stored / (first frame grabbed -> the object durable in the
                  buffer, i.e. wait_clip returned after the intake's fsync and index commit).
  (b) reference   the encoder alone, same settings, same disk: DISTINCT frames decoded by the same
                  driver from the same simulator (then the simulator is stopped), cycled through
                  ClipWriter.add as fast as it goes for as many frames as (a)'s clip should hold,
                  then ClipWriter.close (header, spool copy, fsync, rename, folder fsync).

Both run in a child process of their own (their own peak RSS: VmHWM), interleaved a, b, b, a, ...;
medians of BENCH_REPEAT runs.  ratio = (a) fps / min(source fps, (b) fps): the target (>= 0.8)
applies to it, because the source only offers 30 fps: a path that keeps up with the source has
done all it can, however much faster the encoder alone is.  The raw ratio (a)/(b) is printed beside
it (how much of the encoder's speed the live path uses; < 1 whenever the encoder is faster than
the source).

Dropped frames are counted where they happen: the simulator's late slots (the driver did not read
the socket in time), the driver's queue (V4l2Grabber.dropped: oldest frame dropped when the
service's reader is slower), the clip's encoder queue (CaptureStored.dropped).  missing = frames a
clip of its length holds at the source's rate (round(seconds x fps) + 1) - frames stored.

uncompressed only at 640x480: at 1920x1080 it is 6.2 MB a frame, 186 MB/s at 30 fps to the disk
(an SD card writes 10-90 MB/s): not a configuration a Pi could sustain, and on this VM it would
measure the page cache.  rle is run at 640x480 only by default: the RLE encoder alone takes ~135 ms
a 1080p frame here (~7 fps): add it with BENCH_CAPTURE_MATRIX="1920x1080:rle" to see it drop.

Measurements only: nothing asserts on a figure.  The simulator runs in the measured process (as it
does in `dicom-gateway run` with kind "sim"): its band drawing, YUYV conversion and socket writes
(~1 CPU s per 10 s clip at 1080p) and its pictures (~170 MB of RSS at 1080p) are charged to (a),
not to (b); path "apart" (BENCH_CAPTURE_APART, default 1920x1080) runs (a) with the simulator in a
process of its own, as a real grabber's kernel buffers are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (PY, REPEAT, ROOT, SCALE, cpu_seconds, drop_dirty, median, ratio,  # noqa: E402
                    rmtree, scratch, status_kb, table, write_summary)

FPS = 30.0
CLIP_S = 10.0
DISTINCT = 60          # frames cycled by the reference (~2 s of the source: all its speckle variants)
TARGET = 0.8
# (size, encodings): see the module docstring for why uncompressed and rle stop at 640x480.
DEFAULT_MATRIX = [((640, 480), ("jpeg-baseline", "jpeg-ls", "rle", "uncompressed")),
                  ((1920, 1080), ("jpeg-baseline", "jpeg-ls"))]


def matrix() -> list[tuple[tuple[int, int], str]]:
    """[(size, encoding)]: DEFAULT_MATRIX, or BENCH_CAPTURE_MATRIX="640x480:rle,1920x1080:jpeg-ls"."""
    text = os.environ.get("BENCH_CAPTURE_MATRIX", "").strip()
    if not text:
        return [(size, enc) for size, encs in DEFAULT_MATRIX for enc in encs]
    out = []
    for item in text.split(","):
        size, enc = item.strip().split(":")
        w, h = (int(v) for v in size.lower().split("x"))
        out.append(((w, h), enc))
    return out


def apart_sizes() -> set[str]:
    """Sizes ("1920x1080") that also run path "apart" (the simulator in its own process):
    BENCH_CAPTURE_APART, default 1920x1080; "none" for none."""
    text = os.environ.get("BENCH_CAPTURE_APART", "1920x1080").strip().lower()
    return set() if text in ("", "none") else {t.strip() for t in text.split(",")}


def clip_seconds() -> float:
    return max(1.0, CLIP_S * SCALE)


# -- the child runs -------------------------------------------------------------------------------

def _config(work: Path, size: tuple[int, int], encoding: str):
    from gateway.config import Config
    return Config.model_validate({
        "capture": {"enabled": True, "encoding": encoding, "clip_max_s": 600.0,
                    "grabber": {"kind": "sim", "width": size[0], "height": size[1], "fps": FPS,
                                "pixel_format": "yuyv422", "sim_dir": str(work / "grabber")}},
        "buffer": {"path": str(work / "buffer"), "reserve_mb": 0},
    })


def _procedure():
    from pydicom.dataset import Dataset

    from gateway.buffer.procedure import Procedure, encode_identifier
    ds = Dataset()
    ds.PatientID = "BENCH-0001"
    ds.PatientName = "BENCH^CAPTURE"
    return Procedure(key="UNSCHEDULED-BENCH", identifier=encode_identifier(ds), scheduled=False,
                     patient_id="BENCH-0001", modality="US")


def _equipment():
    from gateway.capture.iod import Equipment
    return Equipment(manufacturer="dicom-gateway", model_name="bench", software_versions="bench",
                     station_name="EDGE", analog=True)


def _grabber(cfg):
    """The grabber as gateway/app.py builds it: registry family "grabber", the config's kind."""
    from drivers import registry
    return registry.create("grabber", cfg.capture.grabber.kind, "grabber", cfg.capture.grabber, Path)


class _Fixed:
    """The procedure source: always the bench's procedure."""

    def __init__(self, procedure):
        self.procedure = procedure

    def for_capture(self):
        return self.procedure


# The simulator alone in a process of its own (path "apart"): serves until its stdin closes.
_SIM_PROCESS = """
import sys
from hwsim.grabber import SimulatedGrabber
sim = SimulatedGrabber(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), "yuyv422")
sim.start()
print("ready", flush=True)
sys.stdin.read()
sim.stop()
"""


class _SimApart:
    """hw-sim's frame source in another process; its counters read through its control folder."""

    def __init__(self, folder: Path, size: tuple[int, int]):
        self.folder = folder
        self.proc = subprocess.Popen([sys.executable, "-c", _SIM_PROCESS, str(folder), str(size[0]), str(size[1]),
                                      str(FPS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            self.stop()
            raise RuntimeError("the simulator process did not start")
        self.address = json.loads((folder / "grabber.json").read_text())["address"]

    def state(self) -> dict:
        from hwsim.grabber import send
        return send(self.folder, {"verb": "status"})

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(15)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)


def child_real(work: Path, size: tuple[int, int], encoding: str, seconds: float, apart: bool = False) -> dict:
    """(a): one clip through CaptureService over the sim grabber into a real buffer.  apart: the
    simulator in another process (the driver reads its socket as it would read a device's buffers),
    so that its sending does not compete with the capture for this process's GIL."""
    import pydicom

    from gateway.buffer.ingest import Buffer
    from gateway.buffer.intake import Intake
    from gateway.capture import clip_file  # noqa: F401 - imported before the clock runs, as after a first clip
    from gateway.capture.service import CaptureService
    from gateway.dicom.sop_classes import storage_sop_classes
    from gateway.event_kinds import CaptureStored
    from gateway.events import EventBus
    from gateway.part10.attributes import configure_pydicom
    from gateway.routing import Router

    configure_pydicom()
    cfg = _config(work, size, encoding)
    buf = Buffer(work / "buffer", 0, "replace", Router(cfg))
    buf.recover()
    events = EventBus()
    seen = events.subscribe(maxsize=10000)
    intake = Intake(cfg, buf, events, storage_sop_classes(cfg.storage.extra_sop_classes))
    sim_apart = None
    if apart:
        from drivers.grabber.pipe import PipeSource
        from drivers.grabber.v4l2 import V4l2Grabber
        sim_apart = _SimApart(work / "grabber", size)
        g = cfg.capture.grabber
        grabber = V4l2Grabber("grabber", "hw-sim", g.width, g.height, g.fps, g.pixel_format, g.analog,
                              open_timeout_s=g.signal_timeout_s,
                              source=PipeSource(sim_apart.address, "hw-sim frame source (another process)"))

        def counters() -> tuple[int, int]:
            st = sim_apart.state()
            return st["late"], st["frames_sent"]
    else:
        grabber = _grabber(cfg)

        def counters() -> tuple[int, int]:
            return grabber.simulator.late, grabber.simulator.frames_sent
    svc = CaptureService(cfg.capture, grabber, _Fixed(_procedure()), intake, buf.files.new_incoming_path, events,
                         equipment=_equipment(), station_ae="EDGE")
    try:
        svc.start()
        deadline = time.monotonic() + 30
        while svc.status()["signal"] != "up" and time.monotonic() < deadline:
            time.sleep(0.02)
        if svc.status()["signal"] != "up":
            raise RuntimeError(f"no signal from the simulator: {svc.last_line}")
        time.sleep(1.0)  # the stream settled (first frames, lazy imports of the decode path)
        rss_before = status_kb(os.getpid(), "VmRSS")
        (late0, sent0), drv0 = counters(), grabber.dropped
        cpu0, t_call = cpu_seconds(os.getpid()), time.monotonic()
        out = svc.clip(seconds)
        if not out.ok:
            raise RuntimeError(f"clip refused: {out.line}")
        clip = svc._clip  # bench only: the clip's first-frame time (Frame.at of the first frame it kept)
        result = svc.wait_clip(seconds * 20 + 120)
        t_done = time.monotonic()
        cpu1 = cpu_seconds(os.getpid())
        (late1, sent1), drv1 = counters(), grabber.dropped
        peak_kb = status_kb(os.getpid(), "VmHWM")
        if result is None or not result.ok:
            raise RuntimeError(f"clip not stored: {result.line if result else 'still running'}")
        stored = None
        while True:
            try:
                ev = seen.get_nowait()
            except Exception:  # noqa: BLE001 - queue.Empty
                break
            if isinstance(ev.payload, CaptureStored):
                stored = ev.payload
        files = sorted((work / "buffer").rglob("*.dcm"))
        ds = pydicom.dcmread(files[-1], stop_before_pixels=True)
        frames = int(ds.NumberOfFrames)
        nbytes = files[-1].stat().st_size
    finally:
        svc.stop(10)
        buf.close()
        if sim_apart is not None:
            sim_apart.stop()
    first = clip.first_at
    span = t_done - first
    expected = round(seconds * FPS) + 1
    return {"path": "apart" if apart else "real", "size": f"{size[0]}x{size[1]}", "encoding": encoding, "seconds": seconds,
            "frames": frames, "expected": expected, "missing": expected - frames,
            "dropped_encoder_queue": stored.dropped if stored is not None else None,
            "dropped_driver_queue": drv1 - drv0, "late_source_slots": late1 - late0, "frames_sent": sent1 - sent0,
            "fps": frames / span, "span_s": span, "tail_s": t_done - clip.last_at,
            "first_frame_after_call_s": first - t_call, "cpu_s": cpu1 - cpu0, "bytes": nbytes,
            "peak_rss_mb": peak_kb / 1024, "rss_before_mb": rss_before / 1024, "load": os.getloadavg()}


def child_encoder(work: Path, size: tuple[int, int], encoding: str, seconds: float) -> dict:
    """(b): the same settings' ClipWriter alone, on frames the same driver decoded."""
    from gateway.capture import iod
    from gateway.capture.clip_file import ClipWriter
    from gateway.part10.attributes import configure_pydicom

    configure_pydicom()
    cfg = _config(work, size, encoding)
    grabber = _grabber(cfg)
    fmt = grabber.open()
    try:
        frames = []
        while len(frames) < DISTINCT:
            frames.append(grabber.read(5.0).pixels)
    finally:
        grabber.close()
    rss_frames = status_kb(os.getpid(), "VmRSS")
    n = round(seconds * FPS) + 1
    (work / "out").mkdir(parents=True, exist_ok=True)
    writer = ClipWriter(work / "out" / "clip.dcm", _procedure(), iod.new_series(cfg.capture, 1), _equipment(),
                        cfg.capture, fmt, 1, datetime.now())
    cpu0, t0 = cpu_seconds(os.getpid()), time.monotonic()
    for i in range(n):
        writer.add(frames[i % DISTINCT])
    res = writer.close(datetime.now())
    t1 = time.monotonic()
    cpu1 = cpu_seconds(os.getpid())
    return {"path": "encoder", "size": f"{size[0]}x{size[1]}", "encoding": encoding, "seconds": seconds,
            "frames": res.frames, "fps": res.frames / (t1 - t0), "span_s": t1 - t0, "cpu_s": cpu1 - cpu0,
            "bytes": res.bytes, "peak_rss_mb": status_kb(os.getpid(), "VmHWM") / 1024,
            "rss_with_frames_mb": rss_frames / 1024, "load": os.getloadavg()}


# -- in this process: how long one frame's encode keeps the other threads out (the GIL) ---------

def _pyav_mjpeg(width: int, height: int):
    """A PyAV (libavcodec) MJPEG encoder, YUVJ422P (the YBR_FULL_422 a JPEG Baseline clip
    states), qscale 2: the alternative to Pillow proposed in the README (encodes without the GIL)."""
    import fractions

    import av
    cc = av.CodecContext.create("mjpeg", "w")
    cc.width, cc.height, cc.pix_fmt = width, height, "yuvj422p"
    cc.time_base = fractions.Fraction(1, int(FPS))
    cc.qmin = cc.qmax = 2
    cc.open()

    def encode(pixels):
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuvj422p")
        return b"".join(bytes(p) for p in cc.encode(frame))
    return encode


def gil_hold(cases: list[tuple[tuple[int, int], str]], frames: int = 20) -> list[dict]:
    """Per (size, encoding) of the matrix, and PyAV's MJPEG per size: ms per frame of
    iod.encode_pixels on the simulator's picture, and how late a thread that sleeps 1 ms at a time
    wakes meanwhile (median, p99, max): the wait the driver's decode thread and the service's
    reader see while the clip's encoder runs.  A codec that releases the GIL keeps it near 1 ms."""
    import threading

    # This checkout's code, as the child runs get through PYTHONPATH (run_all sets none).
    sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "hw-sim")) if p not in sys.path]
    from gateway.capture.iod import encode_pixels
    from hwsim.grabber import Picture

    out = []
    pictures: dict[tuple[int, int], list] = {}
    todo = [(size, enc) for size, enc in cases] + [(size, "pyav-mjpeg") for size in dict.fromkeys(s for s, _ in cases)]
    for size, enc in todo:
        if size not in pictures:
            pic = Picture(*size)
            pictures[size] = [pic.frame_rgb(i, "2026-01-01 00:00:00", i % 6) for i in range(6)]
        pics = pictures[size]
        if enc == "pyav-mjpeg":
            fn = _pyav_mjpeg(*size)
        else:
            settings = _config(Path("."), size, enc).capture
            fn = lambda px, s=settings: encode_pixels(px, s)  # noqa: E731
        fn(pics[0])
        stop, waits = threading.Event(), []

        def sleeper():
            while not stop.is_set():
                t = time.perf_counter()
                time.sleep(0.001)
                waits.append(time.perf_counter() - t)
        th = threading.Thread(target=sleeper)
        th.start()
        t0 = time.perf_counter()
        nbytes = sum(len(fn(pics[i % len(pics)])) for i in range(frames))
        per = (time.perf_counter() - t0) / frames
        stop.set()
        th.join()
        waits.sort()
        out.append({"size": f"{size[0]}x{size[1]}", "encoding": enc, "ms_per_frame": 1000 * per,
                    "kb_per_frame": nbytes / frames / 1000, "wake_median_ms": 1000 * waits[len(waits) // 2],
                    "wake_p99_ms": 1000 * waits[min(len(waits) - 1, int(len(waits) * 0.99))],
                    "wake_max_ms": 1000 * waits[-1]})
    return out


# -- the parent -----------------------------------------------------------------------------------

def run_child(path: str, size: tuple[int, int], encoding: str, seconds: float) -> dict:
    drop_dirty()  # the last run's write-back does not land in this one
    work = scratch(f"capture-{path}-")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "hw-sim"),
                                                        os.environ.get("PYTHONPATH", "")])}
    argv = [PY, str(Path(__file__).resolve()), "--child", path, f"{size[0]}x{size[1]}", encoding, str(seconds),
            str(work)]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds * 30 + 300, cwd=ROOT, env=env)
    finally:
        rmtree(work)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr or r.stdout)[-1500:]
        return {"path": path, "error": f"exit {r.returncode}: {tail}"}
    return json.loads(lines[-1])


def print_gil(rows: list[dict]) -> None:
    print(table(["size", "encoding", "ms/frame", "kB/frame", "1 ms sleeper woke after: median ms", "p99 ms",
                 "max ms"],
                [[r["size"], r["encoding"], r["ms_per_frame"], r["kb_per_frame"], r["wake_median_ms"], r["wake_p99_ms"],
                  r["wake_max_ms"]] for r in rows],
                "One frame's encode in this process, and how late a thread sleeping 1 ms wakes meanwhile (the GIL):"))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--gil"]:  # only the in-process GIL measurement
        rows = gil_hold(matrix())
        print_gil(rows)
        write_summary("capture_gil", {"gil": rows, "load": os.getloadavg()})
        return 0
    if argv[:1] == ["--child"]:
        path, size_text, encoding, seconds, work = argv[1:6]
        size = tuple(int(v) for v in size_text.split("x"))
        if path == "encoder":
            out = child_encoder(Path(work), size, encoding, float(seconds))
        else:
            out = child_real(Path(work), size, encoding, float(seconds), apart=path == "apart")
        print(json.dumps(out), flush=True)
        return 0

    seconds = clip_seconds()
    cases = matrix()
    print(f"== capture (BENCH_SCALE={SCALE}: {seconds:g} s clips at {FPS:g} fps from hw-sim, yuyv422; "
          f"{REPEAT} interleaved runs per path; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())})",
          flush=True)
    results: dict[str, dict] = {}
    for size, encoding in cases:
        key = f"{size[0]}x{size[1]} {encoding}"
        paths = ("real", "encoder") + (("apart",) if f"{size[0]}x{size[1]}" in apart_sizes() else ())
        runs: dict[str, list[dict]] = {p: [] for p in paths}
        for i in range(REPEAT):
            for path in (paths if i % 2 == 0 else paths[::-1]):
                r = run_child(path, size, encoding, seconds)
                runs[path].append(r)
                if "error" in r:
                    print(f"    {key} {path} run {i + 1}: FAILED {r['error']}", flush=True)
                elif path in ("real", "apart"):
                    print(f"    {key} {path:7} run {i + 1}/{REPEAT}: {r['frames']}/{r['expected']} frames, "
                          f"{r['fps']:.1f} fps, dropped: encoder queue {r['dropped_encoder_queue']}, driver "
                          f"{r['dropped_driver_queue']}, source late {r['late_source_slots']}; tail "
                          f"{r['tail_s']:.2f} s, CPU {r['cpu_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB "
                          f"(before the clip {r['rss_before_mb']:.0f}); load {r['load'][0]:.2f}", flush=True)
                else:
                    print(f"    {key} encoder run {i + 1}/{REPEAT}: {r['frames']} frames in {r['span_s']:.2f} s, "
                          f"{r['fps']:.1f} fps, CPU {r['cpu_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB "
                          f"(with its {DISTINCT} frames held); load {r['load'][0]:.2f}", flush=True)
        ok = {p: [r for r in rs if "error" not in r] for p, rs in runs.items()}
        if not ok["real"] or not ok["encoder"]:
            results[key] = {"runs": runs, "error": "a path failed every run"}
            continue
        real_keys = ("fps", "frames", "missing", "dropped_encoder_queue", "dropped_driver_queue", "late_source_slots",
                     "tail_s", "cpu_s", "peak_rss_mb", "rss_before_mb", "bytes")
        real = {k: median([r[k] for r in ok["real"]]) for k in real_keys}
        apart = {k: median([r[k] for r in ok["apart"]]) for k in real_keys} if ok.get("apart") else None
        enc = {k: median([r[k] for r in ok["encoder"]]) for k in ("fps", "span_s", "cpu_s", "peak_rss_mb", "bytes")}
        results[key] = {
            "size": f"{size[0]}x{size[1]}", "encoding": encoding, "real": real, "encoder": enc,
            "ratio": ratio(real["fps"], min(FPS, enc["fps"])), "raw_ratio": ratio(real["fps"], enc["fps"]),
            "pair_ratios": [ratio(a["fps"], min(FPS, b["fps"])) for a, b in zip(ok["real"], ok["encoder"])],
            "apart": apart, "apart_ratio": ratio(apart["fps"], min(FPS, enc["fps"])) if apart else None,
            "runs": runs}

    rows = []
    for key, r in results.items():
        if "error" in r:
            rows.append([key] + ["failed"] * 10)
            continue
        a, b, c = r["real"], r["encoder"], r.get("apart")
        rows.append([key, a["frames"], a["missing"],
                     f"{a['dropped_encoder_queue']:.0f}/{a['dropped_driver_queue']:.0f}/{a['late_source_slots']:.0f}",
                     a["fps"], b["fps"], r["ratio"], r["raw_ratio"], a["peak_rss_mb"], b["peak_rss_mb"],
                     f"{c['fps']:.1f} fps, {c['missing']:.0f} missing, {r['apart_ratio']:.2f}" if c else "-"])
    print()
    print(table(["size, encoding", "frames stored", "missing", "dropped enc/drv/src", "real fps",
                 "encoder-alone fps", "ratio", "raw ratio", "real peak RSS MB", "encoder peak RSS MB",
                 "sim apart: fps, missing, ratio"], rows,
                f"Clip capture from hw-sim at {FPS:g} fps, {seconds:g} s clips, median of {REPEAT} interleaved runs:"))
    print(f"\nratio = real fps / min({FPS:g}, encoder-alone fps), target >= {TARGET} (the source offers {FPS:g} "
          f"fps: keeping up with it is all a capture can do); raw ratio = real / encoder alone.")
    for key, r in results.items():
        if "error" not in r:
            verdict = "meets" if r["ratio"] >= TARGET else "BELOW"
            print(f"  {key}: ratio {r['ratio']:.2f} ({verdict} the target), raw {r['raw_ratio']:.2f}; per pair "
                  f"{', '.join(f'{p:.2f}' for p in r['pair_ratios'])}")
    load = os.getloadavg()
    print(f"load average at the end (the machine is shared): {', '.join(f'{x:.2f}' for x in load)}")
    print()
    gil = gil_hold(cases)
    print_gil(gil)
    out = write_summary("capture", {"fps": FPS, "clip_s": seconds, "distinct_frames": DISTINCT, "target": TARGET,
                                    "load": load, "results": results, "gil": gil})
    print(f"\nsummary: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
