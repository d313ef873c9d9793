"""The strict base every config section is built on, and the value types sections share.

One `Section` setting (unknown keys refused, no type coercion, frozen) and one validator per kind of
value (AE title, host, port, UID, bounded numbers), so that a section added for a new feature (media,
capture, panel, query) states its keys and gets the same checks and the same error wording as the
rest, instead of copying them: before this module, the print section had its own copies.

This module imports nothing from the gateway (only drivers/registry.py, a floor below, for device
kinds): every section module may import it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from drivers.registry import RegistryError, kinds, unknown_kind_message

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class Section(BaseModel):
    """A config table. extra="forbid": a typo is an error, not a silently ignored key; strict: "5" is
    not 5, because a quoted number in a TOML file is most likely a mistake worth naming; frozen: the
    running service shares one config between threads and nobody may change it under another."""

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


def is_uid(value: str) -> bool:
    """PS3.5 9.1: digits and dots, no empty component, 1-64 characters. The same rule as the `Uid`
    type, as a plain predicate for checks outside a config (a received attribute, a CLI argument)."""
    return 0 < len(value) <= 64 and bool(_UID_RE.match(value))


def _check_uid(value: str) -> str:
    if not is_uid(value):
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


def upper(value: Any) -> Any:
    """A before-validator for keywords that any case spells as clearly ("info" is "INFO")."""
    return value.upper() if isinstance(value, str) else value


AETitle = Annotated[str, AfterValidator(_check_ae_title)]
Host = Annotated[str, AfterValidator(_check_host)]
Port = Annotated[int, Field(ge=1, le=65535)]
Uid = Annotated[str, AfterValidator(_check_uid)]


def IntRange(ge: int, le: int) -> Any:  # noqa: N802 (used like a type: `n: IntRange(1, 10) = 5`)
    """An int within [ge, le], both ends included: every count a section has is bounded, so that a
    slipped digit (max_associations = 2560) is refused at load time, not found on the box."""
    return Annotated[int, Field(ge=ge, le=le)]


def FloatRange(*, le: float, ge: float | None = None, gt: float | None = None) -> Any:  # noqa: N802
    """A float within (gt, le] or [ge, le]: durations and physical quantities. Exactly one lower
    bound: a timeout of 0 s is usually meaningless (gt=0), a drain time of 0 s is "do not wait"
    (ge=0), and the section says which it means."""
    if (ge is None) == (gt is None):
        raise TypeError("FloatRange needs exactly one of ge= or gt=")
    return Annotated[float, Field(ge=ge, gt=gt, le=le)]


def backoff_problems(retry_initial_s: float, retry_max_s: float) -> list[str]:
    """The one rule every retrying worker's section shares: the ceiling is not below the start."""
    if retry_max_s < retry_initial_s:
        return ["retry_max_s must not be smaller than retry_initial_s"]
    return []


def check_device_kind(family: str, value: str) -> str:
    """`value` is a device kind of `family` ("printer", "media") in the device registry: a kind
    from drivers/ or an installed package's entry point (hw-sim's simulators), so a section never
    lists kinds itself. Raises ValueError naming the known kinds (one line, also for a package's
    broken entry-point declaration)."""
    try:
        known = kinds(family)
    except RegistryError as exc:
        raise ValueError(str(exc)) from None
    if value not in known:
        raise ValueError(unknown_kind_message(family, value, known))
    return value


def DeviceKind(family: str) -> Any:  # noqa: N802 (used like a type: `kind: DeviceKind("media")`)
    """A device kind of `family`, checked against the registry (check_device_kind)."""
    return Annotated[str, AfterValidator(lambda value: check_device_kind(family, value))]
