"""Reading the config file: TOML in, a validated `Config` out, or a `ConfigError` that lists every
problem with its dotted key; `--set dotted.key=value` overrides; and where relative paths resolve
(the state directory: see gateway/config/__init__.py).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.config.root import Config


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
    """A validated config and the file it came from (None: defaults and --set only), which decides
    where its relative paths resolve."""

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


def _rule_names(loc: tuple, data: dict) -> tuple:
    """A `[[coercion]]` rule is named by its `name`, not its index (check-config names the
    rule): ("coercion", 2, "set") -> ("coercion", "ct1-legacy", "set") when rule 2 has a name."""
    if len(loc) >= 2 and loc[0] == "coercion" and isinstance(loc[1], int):
        rules = data.get("coercion")
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            name = rules[loc[1]].get("name")
            if isinstance(name, str) and name:
                return (loc[0], name) + tuple(loc[2:])
    return loc


def _format_errors(err: ValidationError, data: dict | None = None) -> list[str]:
    out = []
    for e in err.errors():
        loc = _rule_names(tuple(e["loc"]), data) if isinstance(data, dict) else e["loc"]
        key = ".".join(str(p) for p in loc) or "(top level)"
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
    """`--set dotted.key=value` items applied to the parsed TOML, before validation, so an override
    gets the same checks and the same dotted-key errors as the file."""
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
    """Read, override and validate the config at `path` (None: defaults only). Every problem, the
    file's own (missing, unreadable, not TOML) included, is raised as one ConfigError."""
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
        raise ConfigError(_format_errors(exc, data)) from None
