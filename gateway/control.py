"""The control channel: the command line asks the running service to act on what the service owns.

Most operator verbs work on the buffer's index, which the CLI opens itself, and then wake the
service with SIGUSR1 (gateway/cli.py). A verb on a device the running service holds cannot: a
drive's medium is read by the service's drive worker (gateway/media/service.py), and a second
process reading or ejecting it would race that worker. So the service listens on a Unix-domain
stream socket, ``<buffer_dir>/control.sock``, and runs such verbs through its own Commands
facade (gateway/commands.py), on the thread that serves the connection.

Why a socket, and not a new table or a signal:
- the verbs are interactive: the operator waits for "imported 3" or "refused: drive cd is
  writing"; a table row has no one to answer it and a signal carries no argument and no answer;
- nothing is kept across a restart: a request dies with its connection, which is right for
  "eject now" (a queued eject replayed after a restart would eject a later medium);
- access control is the file system's: the socket is created mode 0600 in the buffer's folder,
  so only the service's own user (and root) can connect, the same rule as for the buffer itself;
- it is what long-running Linux services do: systemd's manager answers systemctl on
  /run/systemd/private, dockerd answers the docker CLI on /var/run/docker.sock, and Klipper's
  API server takes JSON requests on a Unix socket (`klippy.py -a /tmp/klippy_uds`).

The protocol, one request per connection: the client sends one JSON object on one line,
``{"verb": "eject", "args": {"drive": "cd"}}\\n`` (at most MAX_REQUEST_BYTES, within
READ_TIMEOUT_S), the service answers one JSON object on one line and closes:
``{"verb", "ok", "refused", "usage", "summary", "lines"}`` (the CommandResult as plain data,
``answer_of``). A malformed request (not JSON, too large, too slow, an unknown verb, wrong
arguments) gets the same shape with ``refused`` naming the problem in one line; nothing is run.

The server is started by the Gateway only while it holds the buffer's lock (a stale socket file
left by a kill -9 is then certainly nobody's and is replaced), and removed at stop. Each
connection is served in its own thread, so a slow verb (an import that reads a disc) never
blocks the service's housekeeping or another request.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.buffer.lock import BufferLock
    from gateway.commands import CommandResult

log = logging.getLogger("gateway.control")

SOCKET_NAME = "control.sock"
# A request is a verb and a few names; anything larger is not one of ours.
MAX_REQUEST_BYTES = 64 * 1024
# A client that connected and says nothing must not hold a thread for long.
MAX_CONNECTIONS = 8
READ_TIMEOUT_S = 5.0
# sun_path holds 108 bytes with its NUL; a longer path is reached through the folder's descriptor.
_SUN_PATH_MAX = 107


class ControlError(Exception):
    """The request could not be made or answered (a timeout, a broken answer): one line."""


class NoService(ControlError):
    """Nothing listens on the buffer's control socket: no service runs on that buffer, or one
    still starting (or one without a control channel)."""


@dataclass(frozen=True)
class Verb:
    """A verb the control channel runs: ``call(**args)`` -> CommandResult, ``args``: each
    argument's name -> its JSON type (str, int, float, bool); every one is required, no other
    is accepted."""

    call: Callable[..., "CommandResult"]
    args: Mapping[str, type]


def answer_of(result: "CommandResult") -> dict[str, Any]:
    """A CommandResult as plain data: {"verb": str, "ok": bool, "refused": str, "usage": bool,
    "summary": str, "lines": [str]} (lines: what the command line prints, CommandResult.lines)."""
    return {"verb": result.verb, "ok": result.ok, "refused": result.refused, "usage": result.usage,
            "summary": result.summary, "lines": result.lines()}


def _refusal(verb: str, message: str, usage: bool = True) -> dict[str, Any]:
    return {"verb": verb, "ok": False, "refused": message, "usage": usage, "summary": "", "lines": [message]}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def socket_path(buffer_dir: Path) -> Path:
    """Where the service of ``buffer_dir`` listens."""
    return Path(buffer_dir) / SOCKET_NAME


class _Address:
    """A socket path usable in bind/connect: itself when short enough, else through an open
    descriptor of its folder (/proc/self/fd/N/name), since sun_path holds 107 bytes and a
    buffer folder may be deeper. Close it after the bind or connect."""

    def __init__(self, path: Path):
        self._fd: int | None = None
        if len(os.fsencode(str(path))) <= _SUN_PATH_MAX:
            self.name = str(path)
        else:
            self._fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self.name = f"/proc/self/fd/{self._fd}/{path.name}"

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_line(conn: socket.socket, limit: int) -> bytes:
    """Bytes up to the first newline (or EOF); ValueError past ``limit`` bytes."""
    data = bytearray()
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise ValueError(f"more than {limit} bytes")
    return bytes(data.split(b"\n", 1)[0])


def parse_request(raw: bytes, verbs: Mapping[str, Verb]) -> tuple[str, dict[str, Any]] | dict[str, Any]:
    """One request line -> (verb, args), or the refusal to answer (answer_of's shape) naming the
    first problem: not JSON, not {"verb": NAME, "args": {...}}, an unknown verb, an argument
    missing, unknown or of the wrong type."""
    try:
        req = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return _refusal("", f"control: the request is not JSON ({_one_line(exc)})")
    if not isinstance(req, dict) or not isinstance(req.get("verb"), str) or not isinstance(req.get("args", {}), dict):
        return _refusal("", 'control: a request is one JSON object {"verb": NAME, "args": {...}}')
    name, args = req["verb"], req.get("args", {})
    if set(req) - {"verb", "args"}:
        return _refusal(name, f"control: unknown request keys {sorted(set(req) - {'verb', 'args'})}")
    verb = verbs.get(name)
    if verb is None:
        return _refusal(name, f"control: unknown verb {name!r} (verbs: {', '.join(sorted(verbs)) or 'none'})")
    for key, kind in verb.args.items():
        if key not in args:
            return _refusal(name, f"{name}: argument {key!r} is missing")
        value = args[key]
        # JSON has one number type; a bool is not a number here.
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) if kind is float \
            else isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if not ok:
            return _refusal(name, f"{name}: argument {key!r} must be a {kind.__name__}")
    extra = sorted(set(args) - set(verb.args))
    if extra:
        return _refusal(name, f"{name}: unknown arguments {extra} (takes: {', '.join(verb.args) or 'none'})")
    return name, dict(args)


class _Handler(socketserver.BaseRequestHandler):
    server: "_Server"

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(READ_TIMEOUT_S)
        try:
            raw = _read_line(conn, MAX_REQUEST_BYTES)
        except ValueError:
            answer = _refusal("", f"control: request larger than {MAX_REQUEST_BYTES} bytes")
        except socket.timeout:
            answer = _refusal("", f"control: no complete request within {READ_TIMEOUT_S:g} s")
        except OSError:
            return  # the client went away: nobody to answer
        else:
            answer = self.server.control.answer(raw)
        try:
            conn.sendall(json.dumps(answer).encode() + b"\n")
        except OSError:
            pass  # the client gave up waiting; the verb ran or was refused all the same


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True  # a verb still running at stop must not hold the process
    allow_reuse_address = False
    control: "ControlServer"
    # A thread per connection, at most MAX_CONNECTIONS at once: a client that loops on `import`
    # cannot make the service start threads without bound; the one too many is told so.
    slots: threading.BoundedSemaphore

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            try:
                # Read the request first (briefly: this is the accepting thread): a socket closed
                # with unread bytes resets, and the client would lose the answer.
                request.settimeout(0.5)
                _read_line(request, MAX_REQUEST_BYTES)
            except (OSError, ValueError):
                pass
            try:
                request.sendall(json.dumps(_refusal("", f"control: {MAX_CONNECTIONS} requests are "
                                                    "already being served; try again", usage=False)).encode()
                                + b"\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class ControlServer:
    """The service's end: ``<buffer_dir>/control.sock``, serving ``verbs`` (name -> Verb).

    ``lock``: the buffer's lock, held by this process (gateway/buffer/lock.py): the evidence that
    a control.sock already there is a stale one of a killed service, and may be replaced.
    start() raises OSError when the socket cannot be created; stop() removes it."""

    def __init__(self, buffer_dir: Path, lock: "BufferLock", verbs: Mapping[str, Verb]):
        self.path = socket_path(buffer_dir)
        if Path(lock.path).parent != Path(buffer_dir):
            raise ValueError(f"control: the lock {lock.path} is not the lock of buffer {buffer_dir}")
        self.lock = lock
        self.verbs = dict(verbs)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._inode: int | None = None

    def answer(self, raw: bytes) -> dict[str, Any]:
        """One request line -> its answer (answer_of's shape). A verb that raises is answered with
        one line; the traceback goes to the log, never to the client."""
        parsed = parse_request(raw, self.verbs)
        if isinstance(parsed, dict):
            log.info("control: refused a request: %s", parsed["refused"])
            return parsed
        name, args = parsed
        try:
            return answer_of(self.verbs[name].call(**args))
        except Exception as exc:  # noqa: BLE001 - the service keeps serving; the client gets one line
            log.error("control: %s failed", name, exc_info=True)
            return _refusal(name, f"{name}: internal error in the service: {type(exc).__name__}: {_one_line(exc)}",
                            usage=False)

    def start(self) -> None:
        """Bind on a temporary name, chmod 0600, then rename over control.sock: the socket never
        exists under its name with wider permissions, and a stale one is replaced atomically."""
        tmp = self.path.with_name(f".{SOCKET_NAME}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        addr = _Address(tmp)
        try:
            server = _Server(addr.name, _Handler, bind_and_activate=False)
            server.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
            try:
                server.server_bind()
                os.chmod(tmp, 0o600)
                server.server_activate()
                os.replace(tmp, self.path)
            except BaseException:
                server.server_close()
                tmp.unlink(missing_ok=True)
                raise
        finally:
            addr.close()
        server.control = self
        self._server = server
        self._inode = os.stat(self.path).st_ino
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="control", daemon=True)
        self._thread.start()
        log.info("control channel on %s", self.path)

    def is_alive(self) -> bool:
        """The accepting thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop accepting and remove the socket (only ours: a file replaced meanwhile is left)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        try:
            if os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
        except FileNotFoundError:
            pass


def request(buffer_dir: Path, verb: str, timeout: float, **args: Any) -> dict[str, Any]:
    """Ask the service running on ``buffer_dir`` to run ``verb`` with ``args``; its answer
    (answer_of's shape). ``timeout``: seconds for the whole exchange, the verb's run included.

    Raises NoService when nothing listens (no socket file, or a stale one: connection refused),
    ControlError on a timeout or an answer that is not one."""
    path = socket_path(buffer_dir)
    payload = json.dumps({"verb": verb, "args": args}).encode() + b"\n"
    addr = _Address(path) if path.parent.is_dir() else None
    if addr is None:
        raise NoService(f"no service is listening on {path} (no such folder)")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(addr.name)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NoService(f"no service is listening on {path}") from None
        except PermissionError:
            raise ControlError(f"not allowed to connect to {path} (run as the service's user)") from None
        finally:
            addr.close()
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            raw = _read_line(sock, MAX_REQUEST_BYTES * 16)
        except socket.timeout:
            raise ControlError(f"the service did not answer {verb!r} within {timeout:g} s") from None
        except ValueError:
            raise ControlError(f"the service's answer to {verb!r} is too large") from None
        except OSError as exc:
            if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                raise ControlError(f"the service closed the connection before answering {verb!r}") from None
            raise
    finally:
        sock.close()
    if not raw:
        raise ControlError(f"the service closed the connection before answering {verb!r} (stopping?)")
    try:
        answer = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ControlError(f"the service's answer to {verb!r} is not JSON") from None
    if not isinstance(answer, dict) or "refused" not in answer:
        raise ControlError(f"the service's answer to {verb!r} is not one")
    return answer


def capture_verbs(commands) -> dict[str, Verb]:
    """The capture's verbs (issue 10 item 3) on a Commands facade: capture {"clip_s": float,
    "wait_s": float} (0: a still / answer at once) and capture-end {"discontinued": bool}."""
    return {
        "capture": Verb(commands.capture, {"clip_s": float, "wait_s": float}),
        "capture-end": Verb(commands.end_procedure, {"discontinued": bool}),
    }


def worklist_verbs(commands) -> dict[str, Verb]:
    """The worklist's and the current procedure's verbs (issue 10 item 1) on a Commands facade
    (gateway/commands.py), for the ControlServer's table beside import / eject:
    worklist-refresh, worklist-status, procedure-select {"which": str}, procedure-next,
    procedure-previous, procedure-unscheduled."""
    c = commands
    return {
        "worklist-refresh": Verb(c.worklist_refresh, {}),
        "worklist-status": Verb(c.worklist_status, {}),
        "procedure-select": Verb(c.select_procedure, {"which": str}),
        "procedure-next": Verb(c.next_procedure, {}),
        "procedure-previous": Verb(c.previous_procedure, {}),
        "procedure-unscheduled": Verb(c.unscheduled_procedure, {}),
    }
