"""What `run` needs from the machine before it starts, checked without starting: `check-config`
calls these so that it refuses everything `run` would refuse (the unit runs it as ExecStartPre),
and `run` calls the same functions, so the two cannot drift apart.

Each check returns problems as "dotted.key: what is wrong" lines; an empty list is fine.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path

from gateway.buffer import lock as buffer_lock
from gateway.config import LoadedConfig
from gateway.media.reconcile import check_mapping


def bind_address(loaded: LoadedConfig) -> list[str]:
    """ae.bind must be an address of this host: bind a test socket to it on port 0."""
    bind = loaded.config.ae.bind
    try:
        infos = socket.getaddrinfo(bind, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return [f"ae.bind: cannot resolve {bind!r}: {exc.strerror}"]
    family, kind, proto, _, addr = infos[0]
    try:
        with socket.socket(family, kind, proto) as s:
            s.bind(addr)
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            return [f"ae.bind: {bind} is not an address of this host"]
        return [f"ae.bind: cannot listen on {bind}: {exc.strerror or exc}"]
    return []


def port_problem(exc: OSError, loaded: LoadedConfig) -> str:
    """One line for a failed bind of the DICOM port."""
    c = loaded.config.ae
    if exc.errno == errno.EADDRINUSE:
        return f"ae.port: {c.bind}:{c.port} is in use by another program"
    if exc.errno == errno.EACCES:
        return (f"ae.port: {c.port} is below 1024 and this process may not bind it "
                "(needs CAP_NET_BIND_SERVICE, which the shipped unit grants)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"ae.bind: {c.bind} is not an address of this host"
    return f"ae.port: cannot listen on {c.bind}:{c.port}: {exc.strerror or exc}"


def port_free(loaded: LoadedConfig) -> list[str]:
    """The DICOM port can be bound (nobody else listens there)."""
    c = loaded.config.ae
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(c.bind, c.port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    except socket.gaierror:
        return []  # bind_address() names it
    try:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the listener does
            s.bind(addr)
    except OSError as exc:
        return [port_problem(exc, loaded)]
    return []


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def writable_folder(key: str, path: Path) -> list[str]:
    """`path` is a folder this process can write, or one it can create. Creates nothing that is
    not there (a probe file in an existing folder is removed at once)."""
    if path.exists():
        if not path.is_dir():
            return [f"{key}: {path} is a file, not a folder"]
        try:
            with tempfile.TemporaryFile(dir=path, prefix=".write-probe-"):
                pass
        except OSError as exc:
            return [f"{key}: cannot write in {path}: {exc.strerror or exc}"]
        return []
    base = _nearest_existing(path)
    if not base.is_dir():
        return [f"{key}: cannot create {path}: {base} is a file, not a folder"]
    # os.access says yes to root everywhere, even on /proc or a read-only mount: try it.
    try:
        os.rmdir(tempfile.mkdtemp(dir=base, prefix=".create-probe-"))
    except OSError as exc:
        return [f"{key}: cannot create {path}: creating anything in {base} fails ({exc.strerror or exc})"]
    return []


def buffer_folder(loaded: LoadedConfig) -> list[str]:
    """buffer.path can be created, or is a folder this process can write in."""
    return writable_folder("buffer.path", loaded.buffer_dir)


def other_folders(loaded: LoadedConfig) -> list[str]:
    """Folders of other sections that `run` creates or writes at start."""
    out = []
    printer = loaded.config.print.printer
    if loaded.config.print.enabled:
        if printer.sim_out and printer.kind.endswith("-sim"):
            out += writable_folder("print.printer.sim_out", loaded.resolve(printer.sim_out))
        if printer.kind == "file" and printer.folder:
            out += writable_folder("print.printer.folder", loaded.resolve(printer.folder))
    return out


def import_mapping(loaded: LoadedConfig) -> list[str]:
    """The reconciliation mapping file's problems (`[media.import] reconcile`), FILE:LINE each:
    `run` refuses to start on them rather than refuse every medium later."""
    return check_mapping(loaded.config.media.import_.reconcile)


def check(loaded: LoadedConfig) -> tuple[list[str], list[str]]:
    """Everything `run` would refuse at start. Returns (problems, notes): a buffer held by a
    running service is a note, not a problem (its port is then the service's own)."""
    problems = bind_address(loaded) + buffer_folder(loaded) + other_folders(loaded) + import_mapping(loaded)
    notes = []
    holder = buffer_lock.holder(loaded.buffer_dir) if loaded.buffer_dir.is_dir() else None
    if holder is not None:
        who = f"process {holder}" if holder > 0 else "another process"
        notes.append(f"the buffer is in use by {who} (a running service): port not checked; "
                     "a second `run` on this buffer would refuse to start")
    elif not problems:
        problems += port_free(loaded)
    return problems, notes
