"""`[storage]`: what the Storage SCP accepts besides the standard's storage SOP classes."""

from __future__ import annotations

from gateway.config.base import Section, Uid


class StorageSection(Section):
    """Storage SOP classes accepted besides every one of PS3.6 Annex A (sop_classes.py): private
    ones such as vendor raw data. Proposed with any accepted transfer syntax, stored as received."""

    extra_sop_classes: list[Uid] = []
