"""`[destinations.NAME]`: where received instances are forwarded, and how hard the forwarder tries."""

from __future__ import annotations

from pydantic import model_validator

from gateway.config.base import AETitle, FloatRange, Host, IntRange, Port, Section, backoff_problems


class DestinationSection(Section):
    ae_title: AETitle
    host: Host = "127.0.0.1"
    port: Port = 104
    enabled: bool = True
    storage_commitment: bool = False
    commitment_timeout_s: FloatRange(ge=1, le=7 * 24 * 3600) = 3600.0
    # After this many failed attempts a job is dead-lettered for a human to look at.
    max_attempts: IntRange(1, 10000) = 50
    retry_initial_s: FloatRange(gt=0, le=3600) = 5.0
    retry_max_s: FloatRange(gt=0, le=24 * 3600) = 600.0
    batch_size: IntRange(1, 10000) = 200

    @model_validator(mode="after")
    def _backoff_order(self) -> "DestinationSection":
        problems = backoff_problems(self.retry_initial_s, self.retry_max_s)
        if problems:
            raise ValueError("; ".join(problems))
        return self
