"""The power-cut test bed as a pytest fixture (the file system itself: tests/powercut_fs.py,
whose docstring is the model: what survives a cut and what does not).

How a test uses it:

    from powercut_support import powercut_mount  # the fixture (tests/ is on sys.path)

    def test_survives(powercut_mount):
        path = powercut_mount.path          # a directory on the bed: put the buffer here
        ...                                 # write the test's setup (config, seeded files)
        powercut_mount.make_durable()       # the setup on the medium (fsync files and dirs)
        ...                                 # start processes, work; kill them (kill -9)
        powercut_mount.cut()                # the power cut; the mount is back, holding what survived
        powercut_mount.stats()              # {"fsync": {kind: n}, "fdatasync": ..., "fsyncdir": ...,
                                            #  "fsync_total": n, ...} since the last (re)mount

cut() kills nothing: while a process still uses the mount the unmount is refused and cut() raises
PowerCutError naming that (the model stays frozen at that instant: later requests fail with EIO),
so stop them first. The fixture skips, naming the Debian package fuse3, when /dev/fuse or
fusermount3 is missing, and fails instead when the environment variable CI is set. It always
unmounts (fusermount3 -u, then -uz and the bed's process killed) even when the test fails.
"""

import importlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

FS_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "powercut_fs.py")
READY_TIMEOUT = 30.0  # s; a loaded 2-core machine starts Python and mounts in well under that
CONTROL_TIMEOUT = 60.0  # s; a cut copies the durable files back into the live tree


class PowerCutError(RuntimeError):
    """The bed did not mount, cut or unmount as asked (one line: what and why)."""


def fuse_available():
    """None when the bed can run here, else why not (naming the Debian package)."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse (kernel FUSE; Debian package fuse3 for the tools)"
    if shutil.which("fusermount3") is None:
        return "fusermount3 missing (Debian package fuse3)"
    try:
        importlib.import_module("mfusepy")  # loads libfuse3 through ctypes
    except (ImportError, OSError) as e:
        return f"mfusepy cannot load libfuse3 ({e}; Debian package fuse3, PyPI mfusepy)"
    return None


def fsync_dir(path):
    """fsync the directory `path` (its entries made durable on the bed)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mounted(path):
    """Whether PATH is a mount point in this namespace. From /proc/self/mountinfo, not
    os.path.ismount: a frozen or dead FUSE mount fails stat (EIO, ENOTCONN) and looks unmounted."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            # mountinfo escapes space, tab, newline and backslash as octal.
            for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
                point = point.replace(code, char)
            if point == target:
                return True
    return False


class PowerCutMount:
    """One mounted bed: .path (the mount point), .cut(), .stats(), .close().

    backing: the directory holding the live tree and the durable copies (see powercut_fs)."""

    def __init__(self, backing, mountpoint, log_path):
        self.backing = str(backing)
        self.path = str(mountpoint)
        self.log_path = str(log_path)
        self.control = f"powercut-{uuid.uuid4().hex}"
        self.process = None
        os.makedirs(self.backing, exist_ok=True)
        os.makedirs(self.path, exist_ok=True)

    def start(self):
        """Start the bed's process and wait until the kernel has the mount."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, FS_SCRIPT, self.backing, self.path, "--control", self.control],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        # The bed prints "ready" from FUSE's init, when the kernel has the mount.
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + READY_TIMEOUT
        line = b""
        try:
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise PowerCutError(f"the bed did not mount {self.path} in {READY_TIMEOUT:.0f} s "
                                        f"(log: {self.log_path})")
                chunk = os.read(self.process.stdout.fileno(), 64)
                if not chunk:
                    raise PowerCutError(f"the bed exited with {self.process.wait()} before mounting "
                                        f"{self.path} (log: {self.log_path})")
                line += chunk
        finally:
            selector.close()
        if line.strip() != b"ready":
            raise PowerCutError(f"the bed said {line!r}, not 'ready' (log: {self.log_path})")

    def _ask(self, op):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(CONTROL_TIMEOUT)
            conn.connect("\0" + self.control)
            conn.sendall(json.dumps({"op": op}).encode() + b"\n")
            with conn.makefile("r") as stream:
                reply = stream.readline()
        if not reply:
            raise PowerCutError(f"the bed closed the control socket on {op!r} (log: {self.log_path})")
        return json.loads(reply)

    def stats(self):
        """Sync calls seen since this mount: {"fsync"|"fdatasync"|"fsyncdir": {kind: count},
        "<op>_total": count}; kinds as powercut_fs.path_kind names them."""
        return self._ask("stats")

    def make_durable(self, path=None):
        """fsync every file and directory under PATH (default: the whole mount) and PATH's
        parents up to the mount: for a test's setup (a config, a seeded buffer), which a real
        install would have had on the medium long before any cut. Directories created by the
        test and not made durable this way are gone after a cut, as the model says."""
        top = os.path.realpath(path or self.path)
        for dirpath, dirnames, filenames in os.walk(top, topdown=False):
            for name in filenames:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            fsync_dir(dirpath)
        mount = os.path.realpath(self.path)
        while top != mount and top.startswith(mount + os.sep):
            top = os.path.dirname(top)
            fsync_dir(top)

    def cut(self):
        """Simulate a power cut and mount again on what survived. The caller has stopped every
        process using the mount. Raises PowerCutError when the bed could not unmount."""
        reply = self._ask("cut")
        if not reply.get("ok") or not reply.get("rebuilt"):
            raise PowerCutError(f"cut failed: {reply} (log: {self.log_path})")
        self._wait_exit()
        self.start()

    def _wait_exit(self):
        try:
            self.process.wait(CONTROL_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(CONTROL_TIMEOUT)
        self.process.stdout.close()

    def close(self):
        """Unmount and end the FUSE process, whatever state they are in; never raises. A clean
        unmount first; if something still holds the mount, a lazy one (fusermount3 -uz) and the
        bed's process killed, which aborts the FUSE connection."""
        if self.process is None:
            return
        clean = False
        if self.process.poll() is None:
            try:
                clean = bool(self._ask("unmount").get("ok"))
            except (OSError, ValueError, PowerCutError):
                pass
        if not clean and mounted(self.path):
            for flags in ("-u", "-uz"):
                if subprocess.run(["fusermount3", flags, self.path],
                                  capture_output=True).returncode == 0:
                    break
        if self.process.poll() is None and not clean:
            self.process.send_signal(signal.SIGKILL)
        try:
            self.process.wait(CONTROL_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(CONTROL_TIMEOUT)
        if not self.process.stdout.closed:
            self.process.stdout.close()
        self.process = None


@pytest.fixture
def powercut_mount(tmp_path):
    """A power-cut bed mounted at tmp_path/mnt (backing tmp_path/powercut-backing): see the
    module docstring."""
    why = fuse_available()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"power-cut bed unavailable in CI: {why}")
        pytest.skip(f"power-cut bed unavailable: {why}")
    bed = PowerCutMount(tmp_path / "powercut-backing", tmp_path / "mnt", tmp_path / "powercut.log")
    try:
        bed.start()
        yield bed
    finally:
        bed.close()
