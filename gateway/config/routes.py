"""`[[routes]]`: which destinations an instance goes to (gateway/routing.py applies them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from gateway.config.base import Section, Uid


class RouteSection(Section):
    to: Annotated[list[str], Field(min_length=1)]
    # Empty list = matches anything. Several criteria are ANDed; values in one list are ORed.
    calling_ae: list[str] = []
    modality: list[str] = []
    sop_class: list[Uid] = []
