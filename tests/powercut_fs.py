"""A FUSE file system that forgets what was not made durable: the power-cut test bed (issue 13).

The technique of LazyFS (Jepsen; VLDB 2024, "When Amnesia Strikes"): processes see a normal file
system, while a durable model records only what an fsync would have put on the medium. A simulated
power cut throws the rest away.

Run it in its own process (FUSE served from a pytest process would deadlock on the GIL):

    python tests/powercut_fs.py BACKING MOUNTPOINT [--control NAME]

BACKING holds live/ (the live tree: what processes see through MOUNTPOINT, a plain directory tree
mirrored operation for operation) and durable/ (one file per inode id: its durable bytes). The
durable directory entries are kept in memory. The process prints ``ready`` on stdout once the
kernel has mounted it. NAME is an abstract Unix socket (Linux, no path length limit); the control
protocol is one JSON line in, one JSON line out: ``{"op": "stats"}``, ``{"op": "cut"}``,
``{"op": "unmount"}``. tests/powercut_support.py drives it (``powercut_mount``).

The model (the contract the power-cut campaign relies on):

- A regular file's data AND size become durable when fsync or fdatasync is called on it, through
  any descriptor of that inode (hard links share it). Writes, truncates, fallocates (and writes
  through a shared mmap, which the kernel sends as writes) after the last sync are lost on a cut:
  the file comes back with exactly the bytes and size it had at its last sync. A file whose entry
  is durable but that was never synced comes back empty.
- A directory entry (create, mknod, mkdir, symlink, link, rename, unlink, rmdir) becomes durable
  only when fsync is called on that directory (FUSE's fsyncdir): the directory's whole current
  name -> inode map becomes its durable map. A rename is durable in each directory involved only
  once that directory is fsynced: a rename not made durable leaves the old name; a file created and
  fsynced whose directory was not fsynced is gone; an unlinked file whose directory was not
  fsynced comes back with its durable content. A directory reachable twice in the durable maps (a
  directory renamed across directories with only one side synced) comes back once, at the first
  place met in a depth-first walk in name order. A symlink's target is durable with its entry.
- Not modelled (either outcome is allowed by POSIX and by this bed): atime/mtime/ctime (they come
  back as the time of the rebuild), permission changes (they come back as the live tree had them at
  the cut), ownership (it comes back as the FUSE process's user), extended attributes (none
  offered: the kernel answers ENOTSUP/EOPNOTSUPP).
- An unlinked file still open lives on under a hidden name (libfuse's .fuse_hidden*), outside
  the model and readdir; a directory holding one cannot be removed until it is closed (ENOTEMPTY).
- A cut is: stop serving (every later request fails with EIO), unmount, rebuild live/ from the
  durable model, exit. The caller (powercut_support) kills the processes using the mount first and
  then mounts again with a new process, which starts from the rebuilt tree, all of it durable.
- A clean unmount keeps the live tree as it is (a clean shutdown); the next process again takes
  all of it as durable.

POSIX and BSD locks are left to the kernel (no lock/flock handler: the kernel then keeps them
locally, right for one host). No direct_io, so shared mmap works (SQLite's -shm in WAL mode). The
kernel's page cache in front of the mount is dropped at unmount, so it cannot hide a cut.
Durable copies are not themselves fsynced to the real disk: the bed models a cut, it does not
survive a real one.

Errors: operations answer with the errno the backing file system gave (EIO once cut); a bad
command line exits 2 with argparse's usage and one error line. Device nodes and sockets are kept
in the model as entries only and come back as FIFOs (nothing here makes them).
"""

import argparse
import ctypes
import errno
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time

import mfusepy

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
# libfuse renames a file unlinked while open to this prefix and unlinks it at the last close.
HIDDEN = ".fuse_hidden"
RENAME_NOREPLACE = 1
# Past this many recorded dirty ranges they are merged, and if still as many, replaced by the one
# range covering them all (copying clean bytes at the next sync is harmless): a file written in
# millions of small pieces between syncs costs bounded memory and time.
MERGE_AT = 512
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)


class Node:
    """One inode of the live tree: a directory (live and durable name -> Node maps), a regular
    file (durable copy id, dirty byte ranges since the last sync), a symlink or another kind."""

    __slots__ = ("id", "kind", "live", "durable", "dirty", "has_copy", "target", "mode")

    def __init__(self, node_id, kind, target=None, mode=None):
        self.id = node_id
        self.mode = mode  # permission bits as the live tree has them (None: leave the default)
        self.kind = kind  # "dir", "file", "symlink", "other"
        self.live = {} if kind == "dir" else None
        self.durable = {} if kind == "dir" else None
        self.dirty = []  # [start, end) byte ranges changed since the last sync
        self.has_copy = False  # durable/<id> exists; without it the durable content is empty
        self.target = target

    def mark(self, start, end):
        if end > start:
            self.dirty.append((start, end))
            if len(self.dirty) > MERGE_AT:
                self.dirty = merged(self.dirty)
                if len(self.dirty) > MERGE_AT // 2:
                    self.dirty = [(self.dirty[0][0], max(end for _, end in self.dirty))]


def merged(ranges):
    """Sorted, overlapping or touching [start, end) ranges joined."""
    out = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def path_kind(name, is_dir=False):
    """What the stats count a sync under: "dir", SQLite's "-wal"/"-journal"/"-shm", else the
    file's suffix (".dcm", ".db") or "(none)"."""
    if is_dir:
        return "dir"
    for suffix in ("-wal", "-journal", "-shm"):
        if name.endswith(suffix):
            return suffix
    base = name.rsplit("/", 1)[-1]
    if "." in base.lstrip("."):
        return "." + base.rsplit(".", 1)[1]
    return "(none)"


class PowerCutFS(mfusepy.Operations):
    """The operations: a passthrough to BACKING/live by path plus the durable model. One lock
    covers the model, because the control thread reads and freezes it."""

    use_ns = True

    def __init__(self, backing):
        self.backing = os.path.abspath(backing)
        self.live_dir = os.path.join(self.backing, "live")
        self.durable_dir = os.path.join(self.backing, "durable")
        self.mutex = threading.RLock()
        self.frozen = False
        self.mounted = threading.Event()
        self.next_id = 1
        self.handles = {}  # fh (a backing fd) -> Node
        self.handle_paths = {}  # fh -> the path it was opened by (FUSE may not pass it later)
        self.dir_handles = {}
        self.next_dir_handle = 1
        self.stats = {"fsync": {}, "fdatasync": {}, "fsyncdir": {}}
        self.root = self._load()

    # -- the durable model: start and rebuild ------------------------------------------------

    def _new_id(self):
        node_id = self.next_id
        self.next_id += 1
        return node_id

    def _load(self):
        """Build the tree from live/ and take all of it as durable (after a rebuild it is what
        survived; after a clean unmount or on first start it is all there is)."""
        os.makedirs(self.live_dir, exist_ok=True)
        manifest_path = os.path.join(self.backing, "manifest.json")
        manifest = {}
        if os.path.exists(manifest_path):
            with open(manifest_path) as f:
                manifest = json.load(f)
            os.unlink(manifest_path)
        else:
            shutil.rmtree(self.durable_dir, ignore_errors=True)
        os.makedirs(self.durable_dir, exist_ok=True)
        self.next_id = max([int(v) for v in manifest.values()], default=0) + 1
        by_ino = {}
        root = Node(self._new_id(), "dir")

        def walk(dir_node, rel):
            with os.scandir(os.path.join(self.live_dir, rel)) as entries:
                for entry in entries:
                    child_rel = os.path.join(rel, entry.name) if rel else entry.name
                    st = entry.stat(follow_symlinks=False)
                    if st.st_ino in by_ino:  # a hard link to a file met before
                        node = by_ino[st.st_ino]
                    elif stat.S_ISDIR(st.st_mode):
                        node = Node(self._new_id(), "dir")
                        walk(node, child_rel)
                    elif stat.S_ISLNK(st.st_mode):
                        node = Node(self._new_id(), "symlink", os.readlink(entry.path))
                    elif stat.S_ISREG(st.st_mode):
                        if child_rel in manifest:
                            node = Node(int(manifest[child_rel]), "file")
                            node.has_copy = True
                        else:
                            node = Node(self._new_id(), "file")
                            if st.st_size:
                                shutil.copyfile(entry.path, self._copy_path(node))
                                node.has_copy = True
                        by_ino[st.st_ino] = node
                    else:
                        node = Node(self._new_id(), "other")
                    if node.kind != "symlink":
                        node.mode = stat.S_IMODE(st.st_mode)
                    dir_node.live[entry.name] = node
                    dir_node.durable[entry.name] = node

        walk(root, "")
        return root

    def _copy_path(self, node):
        return os.path.join(self.durable_dir, str(node.id))

    def rebuild(self):
        """Replace live/ with the durable model (the cut's second half, after the unmount):
        every durable entry, files with their durable bytes, hard links kept."""
        new_live = os.path.join(self.backing, "live.rebuild")
        new_durable = os.path.join(self.backing, "durable.rebuild")
        for d in (new_live, new_durable):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        placed = {}  # Node.id -> first rel path, for hard links and directories met twice
        manifest = {}

        def walk(dir_node, rel):
            os.makedirs(os.path.join(new_live, rel), exist_ok=True)
            if dir_node.mode is not None:
                os.chmod(os.path.join(new_live, rel), dir_node.mode)
            for name in sorted(dir_node.durable):
                node = dir_node.durable[name]
                child_rel = os.path.join(rel, name) if rel else name
                dest = os.path.join(new_live, child_rel)
                if node.kind == "dir":
                    if node.id in placed:
                        continue
                    placed[node.id] = child_rel
                    walk(node, child_rel)
                elif node.kind == "file":
                    if node.id in placed:
                        os.link(os.path.join(new_live, placed[node.id]), dest)
                        continue
                    placed[node.id] = child_rel
                    if node.has_copy:
                        copy = os.path.join(new_durable, str(node.id))
                        os.rename(self._copy_path(node), copy)
                        shutil.copyfile(copy, dest)
                        manifest[child_rel] = node.id
                    else:
                        open(dest, "wb").close()
                    if node.mode is not None:
                        os.chmod(dest, node.mode)
                elif node.kind == "symlink":
                    os.symlink(node.target, dest)
                else:
                    os.mkfifo(dest)

        walk(self.root, "")
        for old, new in ((self.live_dir, new_live), (self.durable_dir, new_durable)):
            shutil.rmtree(old, ignore_errors=True)
            os.rename(new, old)
        with open(os.path.join(self.backing, "manifest.json"), "w") as f:
            json.dump(manifest, f)

    # -- helpers ----------------------------------------------------------------------------

    def _b(self, path):
        return os.path.join(self.live_dir, path.lstrip("/"))

    def _check(self):
        if self.frozen:
            raise mfusepy.FuseOSError(errno.EIO)

    def _lookup(self, path):
        node = self.root
        for part in path.strip("/").split("/"):
            if not part:
                continue
            if node.kind != "dir" or part not in node.live:
                raise mfusepy.FuseOSError(errno.ENOENT)
            node = node.live[part]
        return node

    def _parent(self, path):
        head, name = os.path.split(path.rstrip("/"))
        return self._lookup(head or "/"), name

    def _file(self, path, fh):
        if fh is not None and fh in self.handles:
            return self.handles[fh]
        return self._lookup(path)

    def _count(self, op, path, is_dir=False):
        kind = path_kind(path or "", is_dir)
        self.stats[op][kind] = self.stats[op].get(kind, 0) + 1

    def _snapshot(self, node, fd):
        """Make the file's current bytes and size its durable content (fsync/fdatasync)."""
        copy = self._copy_path(node)
        size = os.fstat(fd).st_size
        if not node.has_copy:
            if size == 0:
                node.dirty = []
                return
            with open(copy, "wb"):
                pass
            node.has_copy = True
            node.dirty = [(0, size)]
        # The descriptor may be write-only: read through a read-only reopen of the same inode
        # (/proc works for unlinked files too).
        src = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
        out = os.open(copy, os.O_WRONLY)
        try:
            for start, end in merged(node.dirty):
                start = min(start, size)
                end = min(end, size)
                pos = start
                while pos < end:
                    chunk = os.pread(src, min(1 << 20, end - pos), pos)
                    if not chunk:
                        break
                    os.pwrite(out, chunk, pos)
                    pos += len(chunk)
            os.ftruncate(out, size)
        finally:
            os.close(out)
            os.close(src)
        node.dirty = []

    # -- FUSE operations ----------------------------------------------------------------------

    def init_with_config(self, conn_info, config):
        if config is not None:
            # Requests on descriptors may come without a path: the handle is what we use. No
            # hard_remove: fstat of an open unlinked file has neither handle nor path then
            # (ESTALE), so libfuse's .fuse_hidden renames stay (see rename_flags).
            config.nullpath_ok = 1
        self.mounted.set()
        print("ready", flush=True)

    def getattr(self, path, fh=None):
        with self.mutex:
            self._check()
            if fh is not None and fh in self.handles:
                st = os.fstat(fh)
            else:
                st = os.lstat(self._b(path))
            attrs = {key: getattr(st, key) for key in (
                "st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks", "st_rdev")}
            if path and os.path.basename(path).startswith(HIDDEN):
                attrs["st_nlink"] -= 1  # unlinked as far as the process knows
            # Nanoseconds, as use_ns tells mfusepy.
            attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
            return attrs

    def access(self, path, amode):
        with self.mutex:
            self._check()
            if not os.access(self._b(path), amode):
                raise mfusepy.FuseOSError(errno.EACCES)
            return 0

    def readlink(self, path):
        with self.mutex:
            self._check()
            return os.readlink(self._b(path))

    def opendir(self, path):
        with self.mutex:
            self._check()
            node = self._lookup(path)
            handle = self.next_dir_handle
            self.next_dir_handle += 1
            self.dir_handles[handle] = (node, path)
            return handle

    def releasedir(self, path, fh):
        with self.mutex:
            self.dir_handles.pop(fh, None)
            return 0

    def readdir(self, path, fh):
        with self.mutex:
            self._check()
            node = self.dir_handles[fh][0] if fh in self.dir_handles else self._lookup(path)
            return [".", ".."] + list(node.live)

    def fsyncdir(self, path, datasync, fh):
        with self.mutex:
            self._check()
            node, opened = self.dir_handles.get(fh, (None, path))
            node = node or self._lookup(path)
            node.durable = dict(node.live)
            self._count("fsyncdir", opened, is_dir=True)
            return 0

    def statfs(self, path):
        with self.mutex:
            self._check()
            sv = os.statvfs(self.live_dir)
            return {key: getattr(sv, key) for key in (
                "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
                "f_favail", "f_flag", "f_namemax")}

    def _add(self, path, kind, target=None):
        parent, name = self._parent(path)
        mode = None if kind == "symlink" else stat.S_IMODE(os.lstat(self._b(path)).st_mode)
        node = Node(self._new_id(), kind, target, mode)
        parent.live[name] = node
        return node

    def mkdir(self, path, mode):
        with self.mutex:
            self._check()
            os.mkdir(self._b(path), mode)
            self._add(path, "dir")
            return 0

    def mknod(self, path, mode, dev):
        with self.mutex:
            self._check()
            os.mknod(self._b(path), mode, dev)
            self._add(path, "file" if stat.S_ISREG(mode) else "other")
            return 0

    def symlink(self, target, source):
        # mfusepy's order: the new link's path first, then what it points to.
        with self.mutex:
            self._check()
            os.symlink(source, self._b(target))
            self._add(target, "symlink", source)
            return 0

    def link(self, target, source):
        with self.mutex:
            self._check()
            node = self._lookup(source)
            os.link(self._b(source), self._b(target))
            parent, name = self._parent(target)
            parent.live[name] = node
            return 0

    def unlink(self, path):
        with self.mutex:
            self._check()
            os.unlink(self._b(path))
            parent, name = self._parent(path)
            parent.live.pop(name, None)
            return 0

    def rmdir(self, path):
        with self.mutex:
            self._check()
            os.rmdir(self._b(path))
            parent, name = self._parent(path)
            parent.live.pop(name, None)
            return 0

    def rename(self, old, new):
        return self.rename_flags(old, new, 0)

    def rename_flags(self, old, new, flags):
        with self.mutex:
            self._check()
            if flags & ~RENAME_NOREPLACE:
                raise mfusepy.FuseOSError(errno.EINVAL)  # RENAME_EXCHANGE, WHITEOUT: not offered
            if flags & RENAME_NOREPLACE and os.path.lexists(self._b(new)):
                raise mfusepy.FuseOSError(errno.EEXIST)
            old_parent, old_name = self._parent(old)
            new_parent, new_name = self._parent(new)
            if new_name.startswith(HIDDEN):
                # libfuse keeping an unlinked but open file: an unlink to the model, and the
                # name stays out of readdir; libfuse unlinks it at the last close.
                os.rename(self._b(old), self._b(new))
                old_parent.live.pop(old_name, None)
                return 0
            same = new_parent.live.get(new_name) is old_parent.live.get(old_name)
            os.rename(self._b(old), self._b(new))
            if same:
                return 0  # two links to one inode: POSIX rename does nothing
            new_parent.live[new_name] = old_parent.live.pop(old_name)
            return 0

    def chmod(self, path, mode):
        with self.mutex:
            self._check()
            os.chmod(self._b(path), mode)
            self._lookup(path).mode = stat.S_IMODE(mode)
            return 0

    def chown(self, path, uid, gid):
        with self.mutex:
            self._check()
            os.lchown(self._b(path), uid, gid)
            return 0

    def utimens_raw(self, path, times):
        """times: None (now) or ((sec, nsec) atime, (sec, nsec) mtime) with UTIME_NOW/OMIT."""
        with self.mutex:
            self._check()
            target = self._b(path)
            if times is None:
                os.utime(target, follow_symlinks=False)
                return 0
            st = os.lstat(target)
            now = None
            ns = []
            for (sec, nsec), current in zip(times, (st.st_atime_ns, st.st_mtime_ns)):
                if nsec == UTIME_OMIT:
                    ns.append(current)
                elif nsec == UTIME_NOW:
                    if now is None:
                        now = time.time_ns()
                    ns.append(now)
                else:
                    ns.append(sec * 10**9 + nsec)
            os.utime(target, ns=tuple(ns), follow_symlinks=False)
            return 0

    def utimens(self, path, times=None):
        raise mfusepy.FuseOSError(errno.ENOSYS)  # PowerCutFUSE routes utimens to utimens_raw

    def _open_backing(self, path, flags, mode=0o644):
        # O_APPEND is the kernel's business: it sends writes at the end offset, and pwrite on an
        # O_APPEND descriptor would ignore our offset (and the dirty range we record).
        return os.open(self._b(path), flags & ~os.O_APPEND, mode)

    def open(self, path, flags):
        with self.mutex:
            self._check()
            node = self._lookup(path)
            before = os.lstat(self._b(path)).st_size if flags & os.O_TRUNC else 0
            fd = self._open_backing(path, flags)
            node.mark(0, before)
            self.handles[fd] = node
            self.handle_paths[fd] = path
            return fd

    def create(self, path, mode, flags=os.O_WRONLY):
        with self.mutex:
            self._check()
            existed = os.path.lexists(self._b(path))
            if existed:
                node = self._lookup(path)
                node.mark(0, os.lstat(self._b(path)).st_size)
            fd = self._open_backing(path, flags | os.O_CREAT, mode)
            if not existed:
                node = self._add(path, "file")
            self.handles[fd] = node
            self.handle_paths[fd] = path
            return fd

    def read(self, path, size, offset, fh):
        with self.mutex:
            self._check()
            return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        with self.mutex:
            self._check()
            written = os.pwrite(fh, data, offset)
            self.handles[fh].mark(offset, offset + written)
            return written

    def truncate(self, path, length, fh=None):
        with self.mutex:
            self._check()
            node = self._file(path, fh)
            if fh is not None and fh in self.handles:
                before = os.fstat(fh).st_size
                os.ftruncate(fh, length)
            else:
                before = os.lstat(self._b(path)).st_size
                os.truncate(self._b(path), length)
            node.mark(min(before, length), max(before, length))
            return 0

    def fallocate(self, path, mode, offset, size, fh):
        with self.mutex:
            self._check()
            if LIBC.fallocate(fh, mode, offset, size) != 0:
                raise mfusepy.FuseOSError(ctypes.get_errno())
            node = self.handles[fh]
            # Conservative: the whole range may have changed (zero range, punch hole, growth).
            node.mark(offset, offset + size)
            return 0

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        with self.mutex:
            self.handles.pop(fh, None)
            self.handle_paths.pop(fh, None)
            os.close(fh)
            return 0

    def fsync(self, path, datasync, fh):
        with self.mutex:
            self._check()
            node = self.handles[fh]
            self._snapshot(node, fh)
            self._count("fdatasync" if datasync else "fsync", path or self.handle_paths.get(fh))
            return 0

    # -- control ------------------------------------------------------------------------------

    def freeze(self):
        """The instant of the cut: from here on nothing changes the model."""
        with self.mutex:
            self.frozen = True

    def stats_snapshot(self):
        with self.mutex:
            out = {op: dict(kinds) for op, kinds in self.stats.items()}
            for op in list(out):
                out[op + "_total"] = sum(out[op].values())
            return out


class PowerCutFUSE(mfusepy.FUSE):
    """mfusepy's FUSE with three callbacks passed on whole: truncate's file handle (ftruncate on
    an unlinked file has no path), rename's flags (mfusepy drops them, so RENAME_NOREPLACE would
    silently replace) and utimens' raw timespecs (UTIME_NOW and UTIME_OMIT do not survive
    mfusepy's conversion to nanoseconds)."""

    def truncate_fuse_3(self, path, length, fip):
        # mfusepy drops the handle here, and with nullpath_ok the path may be None.
        fh = fip.contents.fh if fip else None
        return self.operations.truncate(None if path is None else path.decode(), length, fh)

    def rename_fuse_3(self, old, new, flags):
        return self.operations.rename_flags(old.decode(), new.decode(), flags)

    def utimens_fuse_3(self, path, buf, fip):
        times = None
        if buf:
            pair = ctypes.cast(buf, ctypes.POINTER(mfusepy.c_timespec * 2)).contents
            times = tuple((t.tv_sec, t.tv_nsec) for t in pair)
        return self.operations.utimens_raw(None if path is None else path.decode(), times)


def serve_control(fs, name, mountpoint, outcome, finished):
    """Answer control requests on the abstract Unix socket NAME until a cut or an unmount, whose
    reply comes once main() has unmounted (and, for a cut, rebuilt): then the caller may mount
    again."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("\0" + name)
    server.listen(4)
    while True:
        conn, _ = server.accept()
        with conn, conn.makefile("rw") as stream:
            try:
                request = json.loads(stream.readline() or "{}")
            except ValueError:
                request = {}
            op = request.get("op")
            if op == "stats":
                reply = fs.stats_snapshot()
            elif op in ("cut", "unmount"):
                if op == "cut":
                    fs.freeze()
                outcome["op"] = op
                busy = subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True)
                reply = {"ok": busy.returncode == 0}
                if not reply["ok"]:
                    # A lazy unmount would wait for the last user: the caller must stop them.
                    reply["error"] = (busy.stderr.decode(errors="replace").strip()
                                      or "fusermount3 -u failed") + ": stop what uses the mount first"
                elif not finished.wait(60):
                    reply = {"ok": False, "error": "the FUSE loop did not end after the unmount"}
                else:
                    reply.update(outcome)
            else:
                reply = {"error": f"unknown op {op!r}: stats, cut or unmount"}
            stream.write(json.dumps(reply) + "\n")
            stream.flush()
            if op in ("cut", "unmount") and reply["ok"]:
                return


def main(argv=None):
    parser = argparse.ArgumentParser(description="power-cut test file system (see the docstring)")
    parser.add_argument("backing")
    parser.add_argument("mountpoint")
    parser.add_argument("--control", default=None,
                        help="abstract Unix socket name (default: powercut-<pid>)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.mountpoint):
        parser.error(f"mount point {args.mountpoint} is not a directory")
    os.makedirs(args.backing, exist_ok=True)
    fs = PowerCutFS(args.backing)
    outcome = {}
    finished = threading.Event()
    control = threading.Thread(target=serve_control, daemon=True, args=(
        fs, args.control or f"powercut-{os.getpid()}", os.path.abspath(args.mountpoint), outcome,
        finished))
    control.start()
    # One thread: the model changes in request order, and a lock would buy no parallelism.
    PowerCutFUSE(fs, args.mountpoint, foreground=True, nothreads=True, fsname="powercut")
    if outcome.get("op") == "cut":
        fs.rebuild()
        outcome["rebuilt"] = True
    finished.set()
    control.join(10)  # let the reply go out before the process ends
    return 0


if __name__ == "__main__":
    sys.exit(main())
