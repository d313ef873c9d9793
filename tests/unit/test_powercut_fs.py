"""The power-cut test bed tested (tests/powercut_fs.py; model in its docstring): what was made
durable survives a cut byte for byte, what was not is gone, SQLite's own guarantees hold on it (and
break when SQLite is told not to sync), and before a cut processes see a normal file system."""

import ctypes
import errno
import fcntl
import hashlib
import mmap
import os
import sqlite3
import subprocess
import sys

import powercut_support

# The fixture, bound by the name the tests ask for (a plain `from powercut_support import
# powercut_mount` works as well; pyflakes then calls it unused).
powercut_mount = powercut_support.powercut_mount

WAIT = 60  # s: bound on a helper process's step, never reached unless something hangs


fsync_dir = powercut_support.fsync_dir


def write(path, data, sync=False, datasync=False):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
        if datasync:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_unsynced_data_and_entries_are_gone_after_a_cut(powercut_mount):
    root = powercut_mount.path
    write(os.path.join(root, "never-synced"), b"lost")
    fsync_dir(root)  # both entries below come after this: neither is durable
    write(os.path.join(root, "written-after"), b"lost too")
    os.mkdir(os.path.join(root, "dir-after"))
    # The entry made durable, the data never synced: the file comes back, empty.
    assert powercut_mount.stats()["fsyncdir_total"] == 1

    powercut_mount.cut()

    assert sorted(os.listdir(root)) == ["never-synced"]
    assert read(os.path.join(root, "never-synced")) == b""


def test_synced_file_in_synced_directory_survives_byte_for_byte(powercut_mount):
    root = powercut_mount.path
    sub = os.path.join(root, "sub")
    os.mkdir(sub)
    fsync_dir(root)
    data = os.urandom(3 * 1024 * 1024 + 17)  # several FUSE writes, not block aligned
    write(os.path.join(sub, "big.dcm"), data, datasync=True)
    write(os.path.join(root, "small"), b"small", sync=True)
    # Written through a shared mmap (the kernel sends it as writes when flushed), then fsynced.
    mapped = os.path.join(root, "mapped")
    write(mapped, bytes(8192))
    with open(mapped, "r+b") as f, mmap.mmap(f.fileno(), 8192) as m:
        m[100:104] = b"mmap"
        m.flush()
        os.fsync(f.fileno())
    fsync_dir(sub)
    fsync_dir(root)
    stats = powercut_mount.stats()
    assert stats["fdatasync"] == {".dcm": 1, "(none)": 1}  # msync is an fdatasync to FUSE
    assert stats["fsync"] == {"(none)": 2}
    assert stats["fsyncdir"] == {"dir": 3}

    powercut_mount.cut()

    assert read(os.path.join(sub, "big.dcm")) == data
    assert read(os.path.join(root, "small")) == b"small"
    assert read(mapped) == bytes(100) + b"mmap" + bytes(8192 - 104)

    # A second cut starts from what the first left: unsynced changes on top are lost again.
    with open(os.path.join(sub, "big.dcm"), "r+b") as f:
        f.write(b"overwritten, never synced")
    os.unlink(os.path.join(root, "small"))
    powercut_mount.cut()

    assert read(os.path.join(sub, "big.dcm")) == data
    assert read(os.path.join(root, "small")) == b"small"


def test_synced_file_whose_directory_was_not_synced_is_gone(powercut_mount):
    root = powercut_mount.path
    write(os.path.join(root, "orphan"), b"data", sync=True)

    powercut_mount.cut()

    assert os.listdir(root) == []


def durable_file(root, name, data):
    write(os.path.join(root, name), data, sync=True)
    fsync_dir(root)


def test_rename_without_directory_sync_leaves_the_old_name(powercut_mount):
    root = powercut_mount.path
    durable_file(root, "old", b"content")
    durable_file(root, "kept-old", b"other")
    os.rename(os.path.join(root, "old"), os.path.join(root, "new"))
    # The same rename made durable: only the new name.
    os.rename(os.path.join(root, "kept-old"), os.path.join(root, "kept-new"))
    sub = os.path.join(root, "sub")
    os.mkdir(sub)
    fsync_dir(root)
    os.rename(os.path.join(root, "new"), os.path.join(sub, "moved"))
    fsync_dir(sub)  # only the target side of a cross-directory rename

    powercut_mount.cut()

    assert sorted(os.listdir(root)) == ["kept-new", "new", "sub"]
    assert read(os.path.join(root, "new")) == b"content"
    # Durable in sub, still durable in root: the inode comes back under both names (a link).
    assert read(os.path.join(sub, "moved")) == b"content"


def test_unlink_without_directory_sync_brings_the_file_back(powercut_mount):
    root = powercut_mount.path
    durable_file(root, "victim", b"durable content")
    with open(os.path.join(root, "victim"), "ab") as f:
        f.write(b" and more, never synced")
    os.unlink(os.path.join(root, "victim"))
    assert os.listdir(root) == []

    powercut_mount.cut()

    assert read(os.path.join(root, "victim")) == b"durable content"


def test_truncate_after_sync_brings_back_the_synced_size(powercut_mount):
    root = powercut_mount.path
    data = os.urandom(10000)
    durable_file(root, "f", data)
    os.truncate(os.path.join(root, "f"), 100)
    with open(os.path.join(root, "f"), "r+b") as f:
        os.posix_fallocate(f.fileno(), 0, 50000)
    assert os.stat(os.path.join(root, "f")).st_size == 50000

    powercut_mount.cut()

    assert read(os.path.join(root, "f")) == data


def test_many_scattered_writes_then_one_sync_survive_exactly(powercut_mount):
    """More dirty ranges than the bed keeps apart (it merges them): the synced bytes all the same."""
    root = powercut_mount.path
    path = os.path.join(root, "scattered")
    durable_file(root, "scattered", os.urandom(300_000))
    with open(path, "r+b", buffering=0) as f:
        for offset in range(7, 300_000, 97):  # ~3000 separate small writes
            f.seek(offset)
            f.write(os.urandom(5))
        f.seek(300_000 + 1000)  # and one past the end, leaving a hole
        f.write(b"tail")
        os.fsync(f.fileno())
    synced = read(path)
    with open(path, "r+b") as f:
        f.write(b"after the sync")

    powercut_mount.cut()

    assert read(path) == synced


# The writer commits one transaction a row, says so after each COMMIT returned, and then holds the
# connection open (no clean close, no checkpoint) until it is killed like a process at a power cut.
WRITER = r"""
import os, sqlite3, sys
db, synchronous, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = sqlite3.connect(db, isolation_level=None)
assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
con.execute("PRAGMA synchronous=" + synchronous)
for i in range(count):
    con.execute("BEGIN")
    con.execute("INSERT INTO t(id, payload) VALUES (?, ?)", (i, os.urandom(3000)))
    con.execute("COMMIT")
    print(i, flush=True)
print("done", flush=True)
sys.stdin.read()
"""


def committed_then_killed(db, synchronous, count):
    """Rows the writer saw committed before it was killed (kill -9, as at a power cut)."""
    setup = sqlite3.connect(db)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
    setup.commit()
    setup.close()
    fd = os.open(db, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    fsync_dir(os.path.dirname(db))  # the empty database is durable before the test starts
    writer = subprocess.Popen([sys.executable, "-c", WRITER, db, synchronous, str(count)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    committed = []
    try:
        for line in writer.stdout:  # ends at "done", or at EOF if the writer died
            if line.strip() == "done":
                break
            committed.append(int(line))
    finally:
        writer.kill()
        writer.wait(WAIT)
        writer.stdin.close()
        writer.stdout.close()
    assert len(committed) == count, f"writer failed after {len(committed)} commits"
    return committed


def test_sqlite_wal_full_keeps_every_commit_across_a_cut(powercut_mount):
    db = os.path.join(powercut_mount.path, "index.sqlite")
    committed = committed_then_killed(db, "FULL", 30)
    stats = powercut_mount.stats()
    assert stats["fdatasync"].get("-wal", 0) >= 30  # a sync per commit reached the bed

    powercut_mount.cut()

    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert {row[0] for row in con.execute("SELECT id FROM t")} >= set(committed)
    finally:
        con.close()


def test_sqlite_synchronous_off_loses_recent_commits(powercut_mount):
    """The bed is not forgiving: commits SQLite never synced do not survive it."""
    db = os.path.join(powercut_mount.path, "index.sqlite")
    committed = committed_then_killed(db, "OFF", 30)

    powercut_mount.cut()

    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT count(*) FROM t").fetchone()[0] < len(committed)
    finally:
        con.close()


LOCK_HOLDER = r"""
import fcntl, sys
f = open(sys.argv[1], "r+b")
fcntl.lockf(f, fcntl.LOCK_EX)
g = open(sys.argv[1] + ".flock", "w")
fcntl.flock(g, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def outcome(action):
    """What a call did: its result, or the errno's name it failed with."""
    try:
        return action()
    except OSError as e:
        return errno.errorcode.get(e.errno, e.errno)


def renameat2(old, new, flags):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, old.encode(), -100, new.encode(), flags) != 0:  # AT_FDCWD
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return 0


def file_ops(root):
    """A run of file operations; returns what a process observed, for comparison."""
    seen = []
    p = lambda *parts: os.path.join(root, *parts)  # noqa: E731
    os.mkdir(p("d"))
    write(p("d", "f"), b"hello")
    with open(p("d", "f"), "ab") as f:
        f.write(b" world")
    fd = os.open(p("d", "f"), os.O_RDWR)
    os.pwrite(fd, b"XY", 2)
    seen.append(os.pread(fd, 100, 0))
    os.ftruncate(fd, 3)
    os.ftruncate(fd, 10)
    seen.append(os.pread(fd, 100, 0))
    os.posix_fallocate(fd, 0, 8192)
    seen.append(os.fstat(fd).st_size)
    os.close(fd)
    seen.append(outcome(lambda: os.rename(p("d", "f"), p("d", "g"))))
    write(p("other"), b"other")
    seen.append(outcome(lambda: renameat2(p("other"), p("d", "g"), 1)))  # RENAME_NOREPLACE
    os.link(p("d", "g"), p("h"))
    seen.append(os.stat(p("h")).st_nlink)
    os.rename(p("h"), p("d", "g"))  # two links to one inode: a no-op
    seen.append(sorted(os.listdir(p("d"))) + sorted(os.listdir(root)))
    os.unlink(p("d", "g"))
    seen.append(os.stat(p("h")).st_nlink)
    os.symlink("h", p("s"))
    seen.append((os.readlink(p("s")), read(p("s"))[:3]))
    write(p("d", "keep"), b"")
    seen.append(outcome(lambda: os.rmdir(p("d"))))
    seen.append(outcome(lambda: os.mkdir(p("d"))))
    seen.append(outcome(lambda: os.open(p("missing"), os.O_RDONLY)))
    seen.append(outcome(lambda: os.unlink(p("d"))))
    write(p("m"), bytes(4096))
    with open(p("m"), "r+b") as f, mmap.mmap(f.fileno(), 4096) as m:
        m[100:102] = b"mm"
    seen.append(read(p("m"))[98:104])
    fd = os.open(p("m"), os.O_WRONLY | os.O_TRUNC)
    seen.append(os.fstat(fd).st_size)
    os.close(fd)
    fd = os.open(p("gone"), os.O_RDWR | os.O_CREAT, 0o644)
    os.unlink(p("gone"))
    os.write(fd, b"still writable")
    seen.append((os.pread(fd, 100, 0), os.fstat(fd).st_nlink))
    os.close(fd)
    os.utime(p("h"), ns=(1_000_000_000, 2_000_000_123))
    seen.append(os.stat(p("h")).st_mtime_ns)
    os.utime(p("h"))
    os.chmod(p("h"), 0o600)
    seen.append(oct(os.stat(p("h")).st_mode))
    seen.append(os.statvfs(root).f_bsize > 0)
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, p("h")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        seen.append(holder.stdout.readline().strip())
        with open(p("h"), "r+b") as f:
            seen.append(outcome(lambda: fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)))
        with open(p("h.flock"), "r") as f:
            seen.append(outcome(lambda: fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)))
    finally:
        holder.kill()
        holder.wait(WAIT)
        holder.stdin.close()
        holder.stdout.close()
    tree = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            digest = hashlib.sha256(read(full)).hexdigest() if os.path.isfile(full) and \
                not os.path.islink(full) else None
            tree.append((os.path.relpath(full, root), oct(st.st_mode), st.st_nlink,
                         None if digest is None else st.st_size, digest))
    seen.append(tree)
    return seen


def test_live_tree_behaves_as_a_plain_directory(powercut_mount, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    expected = file_ops(str(plain))
    assert file_ops(powercut_mount.path) == expected
