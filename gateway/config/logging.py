"""`[logging]`: how much the service says, and where (gateway/logs.py acts on it)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator

from gateway.config.base import FloatRange, Section, upper


class LoggingSection(Section):
    # Any case: "info" is as clear as "INFO".
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(upper)] = "INFO"
    journald: Literal["auto", "on", "off"] = "auto"
    # A destination that stays down is logged again (WARNING) at this interval, not only once.
    down_reminder_s: FloatRange(ge=1, le=7 * 24 * 3600) = 900.0
