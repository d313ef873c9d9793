"""The appliance's configuration: one TOML file, typed and strict.

Unknown keys and out-of-range values are rejected with the dotted key and the reason, because on a box
with no screen a typo that silently falls back to a default is found only when a study goes missing.

Relative paths (buffer.path, print.printer.sim_out, ...) never depend on the process's cwd (which is /
under systemd). They resolve against the state directory, the first that applies:
1. $STATE_DIRECTORY, which systemd sets from the unit's StateDirectory= (/var/lib/dicom-gateway);
2. /var/lib/dicom-gateway when the config file is in /etc/dicom-gateway/ (the installed layout), so
   that a CLI command run by hand finds the buffer the service uses;
3. the config file's folder (a checkout: config/gateway.toml keeps its data in config/).
`check-config` prints where each path ends up.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from gateway.print.profile import PrintSection

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _check_ae_title(value: str) -> str:
    # PS3.5 AE VR: 16 characters, no backslash or control characters, not only spaces.
    if not value.strip():
        raise ValueError("AE title must not be empty")
    if len(value) > 16:
        raise ValueError(f"AE title {value!r} is longer than 16 characters")
    if any(ch == "\\" or ord(ch) < 0x20 or ord(ch) > 0x7E for ch in value):
        raise ValueError(f"AE title {value!r} contains a backslash or a non-printable character")
    return value.strip()




def _check_uid(value: str) -> str:
    # PS3.5 9.1: digits and dots, no empty component, at most 64 characters.
    if not _UID_RE.match(value) or len(value) > 64:
        raise ValueError(f"{value!r} is not a UID")
    return value


def _check_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        # "999.1.1.1" matches the host-name pattern below, but no resolver takes an all-numeric
        # name as a host: it is a mistyped IPv4 address.
        if re.fullmatch(r"[0-9.]+", value):
            raise ValueError(f"{value!r} is not a valid IPv4 address") from None
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", value):
            raise ValueError(f"{value!r} is neither an IP address nor a host name") from None
    return value


AETitle = Annotated[str, AfterValidator(_check_ae_title)]
Host = Annotated[str, AfterValidator(_check_host)]
Port = Annotated[int, Field(ge=1, le=65535)]
UID = Annotated[str, AfterValidator(_check_uid)]


class AESection(_Section):
    title: AETitle = "EDGE"
    bind: Host = "127.0.0.1"
    port: Port = 11112
    max_pdu: Annotated[int, Field(ge=4096, le=16 * 1024 * 1024)] = 131072
    max_associations: Annotated[int, Field(ge=1, le=256)] = 16
    # The seed product accepts any caller; a hospital network wants deny-by-default.
    accept_unknown_callers: bool = False
    tcp_nodelay: bool = True



class TimersSection(_Section):
    association_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    inactivity_s: Annotated[float, Field(gt=0, le=3600)] = 180.0
    session_s: Annotated[float, Field(ge=10, le=24 * 3600)] = 3600.0
    # A connection must finish association negotiation within this time, so half-open or stalled
    # sockets cannot hold association slots that real modalities need.
    handshake_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    # On SIGTERM, an object in hand (a C-STORE being received, a forward being sent) gets this long
    # to finish; past it, the association is aborted. Must stay below the unit's TimeoutStopSec (60 s)
    # with room for closing the index.
    stop_drain_s: Annotated[float, Field(ge=0, le=50)] = 30.0


class PeerSection(_Section):
    ae_title: AETitle
    host: Host = "127.0.0.1"
    port: Port = 104
    may_store: bool = True
    may_query: bool = False
    may_retrieve: bool = False
    may_print: bool = False



class DestinationSection(_Section):
    ae_title: AETitle
    host: Host = "127.0.0.1"
    port: Port = 104
    enabled: bool = True
    storage_commitment: bool = False
    commitment_timeout_s: Annotated[float, Field(ge=1, le=7 * 24 * 3600)] = 3600.0
    # After this many failed attempts a job is dead-lettered for a human to look at.
    max_attempts: Annotated[int, Field(ge=1, le=10000)] = 50
    retry_initial_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    retry_max_s: Annotated[float, Field(gt=0, le=24 * 3600)] = 600.0
    batch_size: Annotated[int, Field(ge=1, le=10000)] = 200


    @model_validator(mode="after")
    def _backoff_order(self) -> "DestinationSection":
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must not be smaller than retry_initial_s")
        return self


class RouteSection(_Section):
    to: Annotated[list[str], Field(min_length=1)]
    # Empty list = matches anything. Several criteria are ANDed; values in one list are ORed.
    calling_ae: list[str] = []
    modality: list[str] = []
    sop_class: list[UID] = []



class StorageSection(_Section):
    """Storage SOP classes accepted besides every one of PS3.6 Annex A (sop_classes.py): private
    ones such as vendor raw data. Proposed with any accepted transfer syntax, stored as received."""

    extra_sop_classes: list[UID] = []



class BufferSection(_Section):
    path: str = "/var/lib/dicom-gateway"
    # C-STOREs are refused with A700 when accepting one would leave less free space than this.
    reserve_mb: Annotated[int, Field(ge=0, le=10_000_000)] = 512
    # What a second copy of a SOP Instance UID with different content does: the seed product's
    # behaviour ("replace": the later one wins) or keep the first and discard the newcomer.
    duplicate_policy: Literal["replace", "keep-first"] = "replace"
    # Delete an instance's file once every route for it is done (and committed where configured):
    # retention's "evict at once" case.
    delete_when_done: bool = False
    # Retention (gateway/buffer/retention.py). An instance is delivered when it had at least one
    # job and every job for it is done (storage commitment included); only delivered instances are
    # ever evicted, oldest received first. Undelivered ones (a job queued, in flight, committing or
    # dead) never are: when they alone fill the disk, C-STOREs get A700.
    # false: nothing is evicted except by delete_when_done (the buffer as an archive).
    retention_enabled: bool = True
    # Keep at least this share of the buffer's file system free by evicting delivered instances
    # (never less than reserve_mb). Without it a box with the default config fills its card with
    # delivered images and then refuses everything.
    retention_free_percent: Annotated[int, Field(ge=0, le=90)] = 10
    # Also evict delivered instances received more than this many days ago; 0 = off.
    retention_max_age_days: Annotated[int, Field(ge=0, le=36500)] = 0
    # Instances no route matched were never to be delivered anywhere, so "delivered" does not
    # apply: they are kept (the gateway may hold the only copy, and a route mistake found weeks
    # later must still be fixable by re-forwarding) unless this is set: evicted this many days
    # after they were received. 0 = never evicted.
    retention_unrouted_max_age_days: Annotated[int, Field(ge=0, le=36500)] = 0


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class LoggingSection(_Section):
    # Any case: "info" is as clear as "INFO".
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = "INFO"
    journald: Literal["auto", "on", "off"] = "auto"
    # A destination that stays down is logged again (WARNING) at this interval, not only once.
    down_reminder_s: Annotated[float, Field(ge=1, le=7 * 24 * 3600)] = 900.0


class Config(_Section):
    ae: AESection = AESection()
    timers: TimersSection = TimersSection()
    peers: dict[str, PeerSection] = {}
    destinations: dict[str, DestinationSection] = {}
    routes: list[RouteSection] = []
    buffer: BufferSection = BufferSection()
    storage: StorageSection = StorageSection()
    logging: LoggingSection = LoggingSection()
    print: PrintSection = PrintSection()

    @model_validator(mode="after")
    def _cross_checks(self) -> "Config":
        problems = []
        for i, route in enumerate(self.routes):
            for name in route.to:
                if name not in self.destinations:
                    problems.append(f"routes[{i}].to: unknown destination {name!r}")
        # Two peers with one AE title: which peer's permissions apply would depend on dict order.
        seen: dict[str, str] = {}
        for name, peer in self.peers.items():
            if peer.ae_title in seen:
                problems.append(f"peers.{name}.ae_title: {peer.ae_title!r} is also the AE title of "
                                f"peers.{seen[peer.ae_title]}")
            else:
                seen[peer.ae_title] = name
        for name, dest in self.destinations.items():
            if _is_self(dest, self.ae):
                problems.append(f"destinations.{name}: {dest.host}:{dest.port} is this gateway's own listening "
                                f"address (ae.bind, ae.port): forwarding there would loop")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def peer_by_ae(self, ae_title: str) -> PeerSection | None:
        for peer in self.peers.values():
            if peer.ae_title == ae_title.strip():
                return peer
        return None


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _same_host(a: str, b: str) -> bool:
    def norm(h: str) -> str:
        h = h.lower()
        if h in _LOOPBACK_NAMES:
            return "loopback"
        try:
            ip = ipaddress.ip_address(h)
        except ValueError:
            return h
        return "loopback" if ip.is_loopback else ("any" if ip.is_unspecified else str(ip))

    na, nb = norm(a), norm(b)
    return na == nb or "any" in (na, nb) and "loopback" in (na, nb)


def _is_self(dest: "DestinationSection", ae: AESection) -> bool:
    """A destination at this gateway's own listening address (host and port): whatever AE title it
    names, what answers there is this gateway, so forwards would loop or be refused forever."""
    return dest.port == ae.port and _same_host(dest.host, ae.bind)


# The installed layout: config in /etc/dicom-gateway, data in the unit's StateDirectory.
INSTALLED_CONFIG_DIR = Path("/etc/dicom-gateway")
INSTALLED_STATE_DIR = Path("/var/lib/dicom-gateway")


def state_directory(source: Path | None) -> Path | None:
    """Where relative paths of the config at `source` resolve (see the module docstring)."""
    env = os.environ.get("STATE_DIRECTORY", "")
    if env:
        return Path(env.split(":")[0])  # systemd lists several when StateDirectory= names several
    if source is None:
        return None
    if source.parent == INSTALLED_CONFIG_DIR:
        return INSTALLED_STATE_DIR
    return source.parent


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    source: Path | None

    @property
    def state_dir(self) -> Path | None:
        return state_directory(self.source)

    def resolve(self, path: str) -> Path:
        """A path from the config, absolute: relative ones against the state directory."""
        p = Path(path)
        base = self.state_dir
        if p.is_absolute() or base is None:
            return p
        return (base / p).resolve()

    @property
    def buffer_dir(self) -> Path:
        return self.resolve(self.config.buffer.path)


class ConfigError(Exception):
    """Every problem found in a config, each naming its dotted key."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _format_errors(err: ValidationError) -> list[str]:
    out = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if not e["loc"] and e["type"] == "value_error":
            # Cross-checks (Config._cross_checks) name their own keys, one problem each.
            out.extend(e["msg"].removeprefix("Value error, ").split("; "))
            continue
        if e["type"] == "extra_forbidden":
            out.append(f"{key}: unknown key")
        elif e["type"] == "missing":
            out.append(f"{key}: required key is missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            shown = e.get("input")
            # Our own validators already quote the value; say it once.
            if isinstance(shown, (str, int, float, bool)) and repr(shown) not in msg and str(shown) not in msg:
                out.append(f"{key}: {msg} (got {shown!r})")
            else:
                out.append(f"{key}: {msg}")
    return out


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError([f"--set {item!r}: expected dotted.key=value"])
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError([f"--set {item!r}: empty key component"])
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word: take it as a string, like TOML would with quotes
    return parts, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for item in overrides:
        parts, value = _parse_override(item)
        node = data
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError([f"--set {item!r}: {p} is not a table"])
            node = nxt
        node[parts[-1]] = value
    return data


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def load(path: Path | str | None, overrides: list[str] | None = None) -> LoadedConfig:
    data: dict = {}
    source = None
    if path is not None:
        source = Path(os.path.abspath(path))
        try:
            with open(source, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError([f"{source}: no such config file"]) from None
        except IsADirectoryError:
            raise ConfigError([f"{source}: is a folder, not a config file"]) from None
        except PermissionError:
            raise ConfigError([f"{source}: cannot be read (permission denied for user "
                               f"{_user()})"]) from None
        except OSError as exc:
            raise ConfigError([f"{source}: cannot be read: {exc.strerror or exc}"]) from None
        except UnicodeDecodeError:
            raise ConfigError([f"{source}: not valid TOML: not UTF-8 text"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{source}: not valid TOML: {exc}"]) from None
    data = apply_overrides(data, overrides or [])
    try:
        return LoadedConfig(Config.model_validate(data), source)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
