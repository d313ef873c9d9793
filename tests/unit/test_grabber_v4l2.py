"""The real grabber driver (drivers/grabber/v4l2.py) over hw-sim's frame source (hwsim/grabber.py):
the PyAV decode path and swscale conversion of the box, fed through PipeSource instead of a
/dev/video node (there is no v4l2loopback here).  The simulator burns its frame counter into each
picture as blocks, so a frame the driver decoded is matched to the picture the simulator drew."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from drivers import registry
from drivers.grabber.interface import FormatChanged, GrabberError, SignalLost
from drivers.grabber.pipe import PipeSource
from drivers.grabber.v4l2 import V4l2Grabber
from gateway.config.capture import GrabberSection
from hwsim.grabber import VARIANTS

READ_S = 5.0  # generous: the machine is shared; no test asserts how long anything took


def _grabber_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("grabber-", "hwsim-grabber"))]


def _make(tmp_path, **keys):
    cfg = GrabberSection(kind="sim", sim_dir="grabber", **keys)
    return registry.create("grabber", "sim", "grabber", cfg, lambda p: tmp_path / p)


@pytest.fixture
def grabber(tmp_path):
    made = []

    def make(**keys):
        g = _make(tmp_path, **keys)
        made.append(g)
        return g

    yield make
    for g in made:
        g.close()


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("pixel_format", ["yuyv422", "mjpeg"])
def test_frames_are_rgb_of_the_configured_size_and_what_the_simulator_drew(grabber, pixel_format):
    g = grabber(pixel_format=pixel_format)
    fmt = g.open()
    assert (fmt.width, fmt.height, fmt.source_format, fmt.analog) == (640, 480, pixel_format, True)
    sim = g.simulator
    counters, indexes = [], []
    for _ in range(8):
        frame = g.read(READ_S)
        assert frame.pixels.shape == (480, 640, 3) and frame.pixels.dtype == np.uint8
        counter = sim.counter_of(frame.pixels)
        drawn = sim.frame_rgb(counter)
        assert drawn is not None, f"the simulator did not send a frame {counter}"
        # YUV 4:2:2 (or JPEG) and back: close to the picture, text band included.
        assert _mean_abs(frame.pixels, drawn) < 3.0
        assert _mean_abs(frame.pixels[:sim.picture.band], drawn[:sim.picture.band]) < 6.0
        y0, y1, x0, x1 = sim.picture.doppler_box()  # the colours, channel by channel
        assert _mean_abs(frame.pixels[y0:y1, x0:x1], drawn[y0:y1, x0:x1]) < 6.0
        counters.append(counter)
        indexes.append(frame.index)
    assert counters == sorted(set(counters)), counters     # the burned-in counter advances
    assert indexes == sorted(set(indexes)), indexes         # so does the driver's
    # The comparison tells frames apart: a frame of another speckle variant is far off.
    others = [c for c in counters if (c - counters[-1]) % VARIANTS]
    assert others, counters
    assert _mean_abs(frame.pixels, sim.frame_rgb(others[0])) > 5.0


def test_signal_lost_then_back(grabber):
    g = grabber()
    g.open()
    first = g.simulator.counter_of(g.read(READ_S).pixels)
    g.simulator.set_signal(False)
    with pytest.raises(SignalLost) as lost:
        for _ in range(20):  # the frames already queued or on their way, then nothing
            g.read(1.0)
    assert "no frame from hw-sim frame source within 1 s" in str(lost.value)
    assert "\n" not in str(lost.value)
    g.simulator.set_signal(True)
    back = g.read(READ_S)
    assert back.pixels.shape == (480, 640, 3)
    assert g.simulator.counter_of(back.pixels) > first


def test_a_source_dark_at_open_gives_the_requested_format_then_frames(grabber):
    g = grabber(signal_timeout_s=0.5)
    g.simulator.start()
    g.simulator.set_signal(False)
    fmt = g.open()
    assert (fmt.width, fmt.height) == (640, 480)
    with pytest.raises(SignalLost):
        g.read(0.5)
    g.simulator.set_signal(True)
    assert g.read(READ_S).pixels.shape == (480, 640, 3)


def test_a_resolution_change_is_format_changed_then_frames_of_the_new_size(grabber):
    g = grabber()
    g.open()
    g.read(READ_S)
    g.simulator.set_resolution(800, 600)
    with pytest.raises(FormatChanged) as changed:
        for _ in range(30):  # frames of the old size still queued come first
            assert g.read(READ_S).pixels.shape == (480, 640, 3)
    assert "changed from 640x480 to 800x600" in str(changed.value)
    assert (g.format.width, g.format.height) == (800, 600)
    frame = g.read(READ_S)
    assert frame.pixels.shape == (600, 800, 3)
    drawn = g.simulator.frame_rgb(g.simulator.counter_of(frame.pixels))
    assert drawn is not None and _mean_abs(frame.pixels, drawn) < 3.0


def test_an_mjpeg_frame_of_another_size_mid_stream_is_format_changed(grabber):
    """The other detection path: the stream goes on (no reopen), a decoded frame has another size."""
    g = grabber(pixel_format="mjpeg")
    g.open()
    g.read(READ_S)
    g.simulator.set_resolution(800, 600, end_stream=False)
    with pytest.raises(FormatChanged, match="changed from 640x480 to 800x600"):
        for _ in range(30):
            assert g.read(READ_S).pixels.shape == (480, 640, 3)
    assert g.read(READ_S).pixels.shape == (600, 800, 3)
    assert g.simulator.connections == 1  # one stream throughout


def test_a_device_that_does_not_exist_is_one_line_naming_it():
    g = V4l2Grabber("g0", "/dev/video-not-here-77", 640, 480, 30)
    with pytest.raises(GrabberError) as err:
        g.open()
    text = str(err.value)
    assert "/dev/video-not-here-77" in text and "no such device" in text and "\n" not in text
    assert g.format is None
    g.close()
    g.close()


def test_a_file_that_is_not_a_video_device_is_refused(tmp_path):
    path = tmp_path / "video0"
    path.write_bytes(b"")
    with pytest.raises(GrabberError, match="not a video device"):
        V4l2Grabber("g0", str(path), 640, 480, 30).open()


def test_a_character_device_that_is_not_v4l2_is_refused_by_the_v4l2_demuxer():
    """The real device path as far as it runs here: ffmpeg's v4l2 demuxer opens the node and its
    VIDIOC_QUERYCAP fails on /dev/null; the error is one line naming the node, no thread is left."""
    g = V4l2Grabber("g0", "/dev/null", 640, 480, 30)
    with pytest.raises(GrabberError) as err:
        g.open()
    assert str(err.value) == "grabber g0: /dev/null: Inappropriate ioctl for device"
    assert _grabber_threads() == []


def test_no_frame_source_at_the_socket_is_one_line(tmp_path):
    g = V4l2Grabber("g0", "sim", 640, 480, 30, source=PipeSource(str(tmp_path / "video.sock"), "hw-sim frame source"))
    with pytest.raises(GrabberError) as err:
        g.open()
    assert "hw-sim frame source: no such socket" in str(err.value) and "\n" not in str(err.value)
    g.close()


def test_a_socket_that_is_not_a_frame_source_is_one_line(tmp_path):
    import socket

    path = str(tmp_path / "other.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def answer():
        conn, _ = server.accept()
        conn.sendall(b"SSH-2.0-OpenSSH\r\n")
        conn.close()
    t = threading.Thread(target=answer)
    t.start()
    try:
        g = V4l2Grabber("g0", "sim", 640, 480, 30, source=PipeSource(path, "frame source"))
        with pytest.raises(GrabberError) as err:
            g.open()
        assert str(err.value) == "grabber g0: frame source: the stream header is not JSON"
        assert _grabber_threads() == []
    finally:
        t.join(10)
        server.close()


def test_a_reader_that_fails_is_said_by_read_not_taken_for_no_signal(grabber, monkeypatch):
    g = grabber()
    g.open()
    g.read(READ_S)
    monkeypatch.setattr(g, "_put", lambda frame: 1 / 0)  # a bug in the reader, after open
    with pytest.raises(GrabberError) as err:
        for _ in range(20):
            g.read(READ_S)
    assert not isinstance(err.value, SignalLost)
    assert str(err.value) == "grabber grabber: the reader failed: ZeroDivisionError: division by zero"


def test_close_twice_is_safe_and_leaves_no_thread(grabber):
    g = grabber()
    g.close()  # before open
    g.open()
    g.read(READ_S)
    assert _grabber_threads()
    g.close()
    g.close()
    assert _grabber_threads() == []
    with pytest.raises(GrabberError, match="not open"):
        g.read(0.1)
    g.open()  # and again: the simulator restarts with it
    assert g.read(READ_S).pixels.shape == (480, 640, 3)
    g.close()
    assert _grabber_threads() == []


def test_the_registry_knows_both_kinds_with_the_media_familys_factory_signature(tmp_path):
    assert {"v4l2", "sim"} <= set(registry.kinds("grabber"))
    cfg = GrabberSection(kind="v4l2", device="/dev/video-not-here-78", pixel_format="mjpeg", analog=False)
    g = registry.create("grabber", "v4l2", "grabber", cfg, lambda p: tmp_path / p)
    assert isinstance(g, V4l2Grabber) and g.name == "grabber" and g.format is None
    assert (g.requested.source_format, g.requested.analog) == ("mjpeg", False)
    with pytest.raises(GrabberError, match="grabber grabber: /dev/video-not-here-78: no such device"):
        g.open()


def test_the_grabber_config_is_strict_and_bounded():
    from pydantic import ValidationError

    ok = GrabberSection(kind="v4l2", device="/dev/video2", width=1920, height=1080, fps=25.0,
                        pixel_format="mjpeg", analog=False, signal_timeout_s=1.5)
    assert (ok.width, ok.pixel_format, ok.analog) == (1920, "mjpeg", False)
    for keys, why in (({"kind": "webcam"}, "grabber kind 'webcam' is not one of"),
                      ({"width": 641}, "width 641 must be even"),
                      ({"fps": 0.0}, "greater than 0"),
                      ({"height": 99999}, "less than or equal to 4096"),
                      ({"pixel_format": "h264"}, "'yuyv422' or 'mjpeg'"),
                      ({"signal_timeout": 2.0}, "Extra inputs are not permitted"),
                      ({"width": "640"}, "valid integer")):
        with pytest.raises(ValidationError, match=why):
            GrabberSection(**keys)
