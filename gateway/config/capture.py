"""`[capture]`: the frame grabber and what a capture makes of its frames (issue 10; the grabber
drivers are drivers/grabber/, the capture service gateway/capture/, the objects
gateway/capture/iod.py and gateway/capture/clip_file.py).

    [capture]
    enabled = false               # true: a grabber is fitted and captures are taken
    encoding = "jpeg-baseline"    # "uncompressed" | "jpeg-baseline" | "rle" | "jpeg-ls"
    jpeg_quality = 95             # 60..100, JPEG Baseline only (PSNR >= 40 dB on ultrasound video)
    clip_max_s = 60.0             # a clip is closed after this many seconds (0.5..600)
    still_sop = "auto"            # "sc": Secondary Capture; "auto": VL Endoscopic for modality ES
    color = "rgb"                 # "rgb" | "grayscale" (grayscale clips: MF Grayscale Byte SC)
    uid_root = "1.2.826.0.1.3680043.8.498"   # the root the capture's UIDs are made under
    series_description = "Video capture"
    institution = ""              # Institution Name (0008,0080), left out when empty
    on_signal_lost = "keep"       # a clip cut by signal loss or a video mode change: "keep" what
                                  #  was captured (and say so) or "discard" it
    clip_s = 10.0                 # the clip the panel's long capture press and `capture --clip`
                                  #  without a length record

    [capture.grabber]
    kind = "sim"                  # a kind of the device registry's "grabber" family: "v4l2" (a
                                  # V4L2 capture node), "sim" (hw-sim's frame source)
    device = "/dev/video0"        # kind v4l2: the capture node
    width = 640                   # pixels asked of the device (even: YUYV pairs pixels)
    height = 480
    fps = 30.0                    # frames a second asked of the device
    pixel_format = "yuyv422"      # "yuyv422" | "mjpeg": what the device delivers
    analog = true                 # the modality's video reaches the grabber as analog video
                                  # (Conversion Type DV; false: digital, DI)
    signal_timeout_s = 2.0        # no frame for this long: signal lost
    sim_dir = "hw-sim/grabber"    # kind sim: the frame source's socket and control folder

    [capture.pedal]               # a foot pedal (foot switch) that triggers captures
    enabled = false               # true: a pedal is plugged in (needs [capture] enabled)
    kind = "sim"                  # a kind of the device registry's "pedal" family: "evdev" (a USB
                                  # foot switch or a gpio-keys pedal), "sim" (hw-sim's pedal)
    device = "/dev/input/by-id/usb-foot-switch-event-kbd"   # kind evdev: the input device node
    key_code = 48                 # the key the pedal sends (1..767; 48 KEY_B, 183 KEY_F13)
    long_press_s = 1.0            # a tap takes a still; held this long (0.3..5 s), a clip of
                                  #  capture.clip_s starts at once, without waiting for the release
    sim_dir = "hw-sim/pedal"      # kind sim: the FIFO and control folder
    sim_long_press_s = 2.0        # kind sim: how long `hw-sim pedal press --long` holds it
                                  #  (more than long_press_s)

Why these defaults:
- encoding "jpeg-baseline": every PACS and viewer decodes it (it is the transfer syntax video
  capture boxes have always sent), it is 10-20 times smaller than native RGB, which is what an SD
  card and a clinic network feel, and Pillow's libjpeg-turbo encodes a 640x480 frame in a few
  milliseconds on an ARM core.  The lossless encodings are there for sites that require them.
- jpeg_quality 95: measured on a synthetic ultrasound picture (speckled sector on black, white
  text; tests/unit/test_capture_iod.py): 90 gives 39.8 dB PSNR, 92 gives 41.3 dB, 95 gives 44.3 dB.
  95 keeps a margin over the 40 dB floor for noisier sources.
- the pedal: a tap is a still, a hold is a clip, the panel's capture button's gesture, because
  the sonographer's hands are on the probe and the keyboard and one foot switch has one key.  The
  clip starts when the hold reaches long_press_s (not at the release: the foot stays down and the
  recording has begun) and lasts capture.clip_s; "record while held" would need the capture
  service to stop a clip on request, which it does not offer.  key_code 48 (KEY_B): what common
  single USB foot switches send out of the box; the device is grabbed, so it never types a "b".
- uid_root: gateway/identity.py has no UID root of this product (only its implementation class
  UID, a 2.25 UUID UID, under which no arcs may be hung), so the default is pydicom's root, under
  which pydicom's generate_uid makes random UIDs.  A site with its own root sets it here.  At most
  40 characters, so that the random part of a UID keeps at least 23 digits (~76 bits).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, model_validator

from gateway.config.base import DeviceKind, FloatRange, IntRange, Section, Uid


class GrabberSection(Section):
    """The frame grabber (drivers/grabber/devices.py reads these keys by attribute)."""

    kind: DeviceKind("grabber") = "sim"
    device: str = "/dev/video0"
    width: IntRange(16, 4096) = 640
    height: IntRange(16, 4096) = 480
    fps: FloatRange(gt=0, le=120) = 30.0
    pixel_format: Literal["yuyv422", "mjpeg"] = "yuyv422"
    analog: bool = True
    signal_timeout_s: FloatRange(gt=0, le=60) = 2.0
    sim_dir: str = "hw-sim/grabber"

    @model_validator(mode="after")
    def _even_width(self) -> "GrabberSection":
        # YUYV carries two pixels in four bytes: an odd width is not a format a device offers.
        if self.pixel_format == "yuyv422" and self.width % 2:
            raise ValueError(f"width {self.width} must be even for pixel_format yuyv422")
        if not self.device.strip():
            raise ValueError("device must name the capture node (e.g. /dev/video0)")
        return self


class PedalSection(Section):
    """The foot pedal (drivers/pedal/devices.py and hwsim/pedal.py read these keys by attribute;
    gateway/capture/pedal.py the long press)."""

    enabled: bool = False
    kind: DeviceKind("pedal") = "sim"
    device: str = "/dev/input/by-id/usb-foot-switch-event-kbd"
    key_code: IntRange(1, 0x2FF) = 48   # KEY_MAX (linux/input-event-codes.h) is 0x2ff
    long_press_s: FloatRange(ge=0.3, le=5.0) = 1.0
    sim_dir: str = "hw-sim/pedal"
    sim_long_press_s: FloatRange(gt=0, le=30.0) = 2.0

    @model_validator(mode="after")
    def _checks(self) -> "PedalSection":
        if not self.device.strip():
            raise ValueError("device must name the pedal's input device (e.g. /dev/input/by-id/...-event-kbd)")
        if self.sim_long_press_s <= self.long_press_s:
            raise ValueError(f"sim_long_press_s {self.sim_long_press_s:g} must be more than long_press_s "
                             f"{self.long_press_s:g} (else the simulated long press is a short one)")
        return self


def _uid_root(value: str) -> str:
    if len(value) > 40:
        raise ValueError(f"uid_root {value!r} is longer than 40 characters (UIDs made under it need room)")
    return value


def _text(limit: int):
    def check(value: str) -> str:
        # LO (PS3.5 6.2): no backslash (the value separator), no control characters.
        if len(value) > limit:
            raise ValueError(f"{value!r} is longer than {limit} characters")
        if any(ch == "\\" or ord(ch) < 0x20 for ch in value):
            raise ValueError(f"{value!r} contains a backslash or a control character")
        return value

    return AfterValidator(check)


class CaptureSection(Section):
    enabled: bool = False
    grabber: GrabberSection = GrabberSection()
    encoding: Literal["uncompressed", "jpeg-baseline", "rle", "jpeg-ls"] = "jpeg-baseline"
    jpeg_quality: IntRange(60, 100) = 95
    clip_max_s: FloatRange(ge=0.5, le=600.0) = 60.0
    still_sop: Literal["sc", "auto"] = "auto"
    color: Literal["rgb", "grayscale"] = "rgb"
    uid_root: Annotated[Uid, AfterValidator(_uid_root)] = "1.2.826.0.1.3680043.8.498"
    series_description: Annotated[str, _text(64)] = "Video capture"
    institution: Annotated[str, _text(64)] = ""
    # A clip whose signal is lost or whose video mode changes mid-way: "keep" closes it with the
    # frames captured and says so; "discard" keeps nothing. Never a half-written object either way.
    on_signal_lost: Literal["keep", "discard"] = "keep"
    # What the panel's capture button and `dicom-gateway capture --clip` without a length record.
    clip_s: FloatRange(ge=0.5, le=600.0) = 10.0
    # A foot pedal triggering captures ([capture.pedal]).
    pedal: PedalSection = PedalSection()

    @model_validator(mode="after")
    def _pedal_needs_capture(self) -> "CaptureSection":
        if self.pedal.enabled and not self.enabled:
            raise ValueError("pedal.enabled = true needs [capture] enabled = true (a pedal without a grabber "
                             "captures nothing)")
        if self.clip_s > self.clip_max_s:
            # Every long press and pedal hold would be refused at run time: caught here instead.
            raise ValueError(f"clip_s {self.clip_s:g} is longer than clip_max_s {self.clip_max_s:g}")
        return self
