"""`[mpps]`: where the box reports the procedures it captured, as Modality Performed Procedure
Steps (issue 10; the SCU is gateway/dicom/mpps_scu.py, PS3.4 Annex F), and how hard it tries.

    [mpps]
    enabled = false               # true: N-CREATE / N-SET to the MPPS SCP below
    ae_title = "RIS"              # the MPPS SCP's (called) AE title
    host = "127.0.0.1"
    port = 104
    calling_ae = ""               # the box's AE title towards the SCP; "" = [ae].title
    max_attempts = 20             # failed N-CREATE / N-SET answers before a step is dead-lettered
    retry_initial_s = 5.0         # backoff after a failure, doubling up to retry_max_s
    retry_max_s = 600.0

An SCP that cannot be reached uses up no attempt (as for forwards: a RIS down for a weekend must
not dead-letter Monday's steps); an SCP that answers a failure status does.
"""

from __future__ import annotations

from pydantic import field_validator, model_validator

from gateway.config.base import (AETitle, FloatRange, Host, IntRange, Port, Section, _check_ae_title,
                                 backoff_problems)


class MppsSection(Section):
    enabled: bool = False
    ae_title: AETitle = "RIS"
    host: Host = "127.0.0.1"
    port: Port = 104
    # "" means the box's own [ae].title; a RIS that knows the box by another title gets that one.
    calling_ae: str = ""
    max_attempts: IntRange(1, 10000) = 20
    retry_initial_s: FloatRange(gt=0, le=3600) = 5.0
    retry_max_s: FloatRange(gt=0, le=24 * 3600) = 600.0

    @field_validator("calling_ae")
    @classmethod
    def _calling_ae(cls, value: str) -> str:
        if value == "":
            return value
        return _check_ae_title(value)

    @model_validator(mode="after")
    def _backoff_order(self) -> "MppsSection":
        problems = backoff_problems(self.retry_initial_s, self.retry_max_s)
        if problems:
            raise ValueError("; ".join(problems))
        return self
