/* sync_shim.c: an LD_PRELOAD library that counts a process's sync calls and can make them slow.
 *
 * Used by bench/bench_sync.py (issue 13) and tests/unit/test_sync_shim.py. Build:
 *     cc -shared -fPIC -O2 -o bench/.cache/libsyncshim.so bench/sync_shim.c -ldl
 * Run:
 *     LD_PRELOAD=.../libsyncshim.so SYNC_SHIM_OUT=counts.json [SYNC_SHIM_DELAY_US=5000] program
 *
 * What it wraps (glibc symbols, looked up with dlsym(RTLD_NEXT)): fsync, fdatasync, syncfs, sync,
 * msync and sync_file_range. Python's os.fsync/os.fdatasync and SQLite's unix VFS both call these
 * through libc's dynamic symbols, so one shim sees both; a raw syscall(2) would not be seen (neither
 * CPython nor SQLite makes one for these).
 *
 * Counted separately, because they are not the same promise:
 *   fsync, fdatasync, syncfs, sync   durability syncs: each is one wait for the medium
 *   msync                            with MS_SYNC a durability sync; with MS_ASYNC ("msync_async")
 *                                    only a schedule-the-write-back hint, not counted as a sync
 *   sync_file_range                  a write-behind hint: starts or waits for write-back of a range
 *                                    but flushes no metadata and no drive cache; never a durability
 *                                    sync, so kept out of "syncs"
 * "syncs" in the output = fsync + fdatasync + syncfs + sync + msync (MS_SYNC). Counters are C11
 * atomics (the gateway syncs from many threads). "<call>_ns" is the wall time spent inside the real
 * call (monotonic clock, nanoseconds), before any added delay.
 *
 * SYNC_SHIM_DELAY_US=N (microseconds, default 0) sleeps N us after every real fsync, fdatasync and
 * syncfs: a slow medium (an SD card: 2-20 ms per flush) on a fast disk. The sleep happens where the
 * caller already waits for the disk (Python and SQLite release the GIL around these calls), so it
 * models the wait, not CPU work. "delay_ns" is the sleep actually added.
 *
 * Output: at exit (an ELF destructor, which runs after main returns or exit() is called, as CPython
 * does after a SIGTERM handled by the program) the counts are written as one JSON object to the
 * file named by SYNC_SHIM_OUT (written to "<file>.tmp" then renamed: a reader never sees half).
 * If SIGTERM still has its default action when the library loads, a handler is installed that
 * writes the counts and then dies of SIGTERM as before; a program that installs its own handler
 * (the gateway does) replaces it and exits normally, and the destructor writes. Nothing is written
 * after _exit() or a fatal signal other than SIGTERM.
 *
 * One process only: the constructor removes LD_PRELOAD and the SYNC_SHIM_* variables from the
 * environment before the program's main() runs (before CPython copies os.environ), so programs the
 * measured process starts are neither counted nor slowed; and a forked child that exits through
 * exit() does not overwrite the parent's file (only the pid that loaded the library writes).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum { C_FSYNC, C_FDATASYNC, C_SYNCFS, C_SYNC, C_MSYNC, C_MSYNC_ASYNC, C_SYNC_FILE_RANGE, C_N };
static const char *const NAMES[C_N] = {"fsync", "fdatasync", "syncfs", "sync", "msync", "msync_async",
                                       "sync_file_range"};

static atomic_ullong calls[C_N];
static atomic_ullong real_ns[C_N];
static atomic_ullong delay_ns;
static long delay_us;
static pid_t owner;
/* Copied at load time: the environment entry is removed for the children's sake. */
static char out_path[4096];

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_syncfs)(int);
static void (*real_sync)(void);
static int (*real_msync)(void *, size_t, int);
static int (*real_sync_file_range)(int, off64_t, off64_t, unsigned int);

static void resolve(void) {
    /* Idempotent and race-free enough: every thread stores the same pointer. */
    if (!real_fsync) real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (!real_fdatasync) real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (!real_syncfs) real_syncfs = (int (*)(int))dlsym(RTLD_NEXT, "syncfs");
    if (!real_sync) real_sync = (void (*)(void))dlsym(RTLD_NEXT, "sync");
    if (!real_msync) real_msync = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "msync");
    if (!real_sync_file_range)
        real_sync_file_range = (int (*)(int, off64_t, off64_t, unsigned int))dlsym(RTLD_NEXT, "sync_file_range");
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void account(int which, uint64_t t0) {
    atomic_fetch_add(&real_ns[which], now_ns() - t0);
    atomic_fetch_add(&calls[which], 1);
}

/* The simulated slow medium: sleep after the real flush, errno kept (nanosleep may set it). */
static void slow_medium(void) {
    if (delay_us <= 0) return;
    int saved = errno;
    uint64_t t0 = now_ns();
    struct timespec ts = {delay_us / 1000000, (delay_us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
    atomic_fetch_add(&delay_ns, now_ns() - t0);
    errno = saved;
}

int fsync(int fd) {
    resolve();
    uint64_t t0 = now_ns();
    int rc = real_fsync(fd);
    account(C_FSYNC, t0);
    slow_medium();
    return rc;
}

int fdatasync(int fd) {
    resolve();
    uint64_t t0 = now_ns();
    int rc = real_fdatasync(fd);
    account(C_FDATASYNC, t0);
    slow_medium();
    return rc;
}

int syncfs(int fd) {
    resolve();
    uint64_t t0 = now_ns();
    int rc = real_syncfs(fd);
    account(C_SYNCFS, t0);
    slow_medium();
    return rc;
}

void sync(void) {
    resolve();
    uint64_t t0 = now_ns();
    real_sync();
    account(C_SYNC, t0);
}

int msync(void *addr, size_t length, int flags) {
    resolve();
    uint64_t t0 = now_ns();
    int rc = real_msync(addr, length, flags);
    account((flags & MS_SYNC) ? C_MSYNC : C_MSYNC_ASYNC, t0);
    return rc;
}

int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags) {
    resolve();
    uint64_t t0 = now_ns();
    int rc = real_sync_file_range(fd, offset, nbytes, flags);
    account(C_SYNC_FILE_RANGE, t0);
    return rc;
}

/* -- output: async-signal-safe (no stdio, no malloc), because the SIGTERM path uses it too ------ */

static size_t put_str(char *buf, size_t pos, size_t cap, const char *s) {
    while (*s && pos + 1 < cap) buf[pos++] = *s++;
    return pos;
}

static size_t put_u64(char *buf, size_t pos, size_t cap, uint64_t v) {
    char digits[21];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && pos + 1 < cap) buf[pos++] = digits[--n];
    return pos;
}

static size_t put_field(char *buf, size_t pos, size_t cap, const char *name, uint64_t v) {
    pos = put_str(buf, pos, cap, ", \"");
    pos = put_str(buf, pos, cap, name);
    pos = put_str(buf, pos, cap, "\": ");
    return put_u64(buf, pos, cap, v);
}

static void write_counts(const char *how) {
    if (!out_path[0] || getpid() != owner) return;
    char buf[2048];
    size_t cap = sizeof buf, pos = 0;
    pos = put_str(buf, pos, cap, "{\"pid\": ");
    pos = put_u64(buf, pos, cap, (uint64_t)owner);
    pos = put_str(buf, pos, cap, ", \"written_at\": \"");
    pos = put_str(buf, pos, cap, how);
    pos = put_str(buf, pos, cap, "\"");
    pos = put_field(buf, pos, cap, "delay_us", (uint64_t)(delay_us > 0 ? delay_us : 0));
    uint64_t syncs = 0;
    for (int i = 0; i < C_N; i++) {
        uint64_t c = atomic_load(&calls[i]);
        if (i != C_MSYNC_ASYNC && i != C_SYNC_FILE_RANGE) syncs += c;
        pos = put_field(buf, pos, cap, NAMES[i], c);
    }
    pos = put_field(buf, pos, cap, "syncs", syncs);
    for (int i = 0; i < C_N; i++) {
        char key[40];
        size_t k = put_str(key, 0, sizeof key - 3, NAMES[i]);
        key[k++] = '_', key[k++] = 'n', key[k++] = 's', key[k] = 0;
        pos = put_field(buf, pos, cap, key, atomic_load(&real_ns[i]));
    }
    pos = put_field(buf, pos, cap, "delay_ns", atomic_load(&delay_ns));
    pos = put_str(buf, pos, cap, "}\n");

    char tmp[sizeof out_path + 8];
    tmp[put_str(tmp, put_str(tmp, 0, sizeof tmp, out_path), sizeof tmp, ".tmp")] = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    size_t done = 0;
    while (done < pos) {
        ssize_t w = write(fd, buf + done, pos - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    close(fd);  /* not fsynced on purpose: the shim must not add a sync of its own */
    if (done == pos) rename(tmp, out_path);
}

static void on_sigterm(int sig) {
    write_counts("sigterm");
    out_path[0] = 0;  /* the destructor must not write a second time */
    signal(sig, SIG_DFL);
    raise(sig);
}

__attribute__((constructor)) static void shim_load(void) {
    resolve();
    owner = getpid();
    const char *out = getenv("SYNC_SHIM_OUT");
    if (out && strlen(out) < sizeof out_path) memcpy(out_path, out, strlen(out) + 1);
    const char *d = getenv("SYNC_SHIM_DELAY_US");
    delay_us = d ? strtol(d, NULL, 10) : 0;
    /* This process only: see the header comment. */
    unsetenv("LD_PRELOAD");
    unsetenv("SYNC_SHIM_OUT");
    unsetenv("SYNC_SHIM_DELAY_US");
    struct sigaction old;
    if (sigaction(SIGTERM, NULL, &old) == 0 && old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigterm;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
    }
}

__attribute__((destructor)) static void shim_unload(void) {
    write_counts("exit");
}
