"""`[[routes]]`: which destinations an instance goes to (gateway/routing.py applies them).

A route's criteria: `source` (where the object came from: "AE:CT1", "MEDIA:*", "CAPTURE:grabber0";
shell-style wildcards * ? [..] in the name, the kind spelled exactly), `calling_ae` (network peers
only, the older spelling of source = ["AE:<title>"]), `modality` and `sop_class`."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from gateway.config.base import Section, Uid

# The kinds of gateway.buffer.source.SourceKind, spelled here because config sits below the buffer;
# tests/unit/test_intake.py checks that the two lists agree.
SOURCE_KINDS = ("AE", "MEDIA", "CAPTURE")


def _check_source_pattern(value: str) -> str:
    kind, sep, name = value.partition(":")
    if not sep or kind not in SOURCE_KINDS or not name:
        raise ValueError(f"{value!r} is not a source pattern: write KIND:NAME with KIND one of "
                         f"{', '.join(SOURCE_KINDS)} (e.g. \"AE:CT1\", \"MEDIA:*\")")
    return value


SourcePattern = Annotated[str, AfterValidator(_check_source_pattern)]


class RouteSection(Section):
    to: Annotated[list[str], Field(min_length=1)]
    # Empty list = matches anything. Several criteria are ANDed; values in one list are ORed.
    source: list[SourcePattern] = []
    calling_ae: list[str] = []
    modality: list[str] = []
    sop_class: list[Uid] = []
