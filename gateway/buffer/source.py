"""Where a received object came from: a C-STORE peer, a medium, a capture device.

Rendered "AE:CT1", "MEDIA:USB-2", "CAPTURE:grabber0". Routing matches on it; the index records it
(the `calling_ae` column keeps the bare AE title for a network peer, as it always has).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SourceKind(enum.Enum):
    AE = "AE"
    MEDIA = "MEDIA"
    CAPTURE = "CAPTURE"


@dataclass(frozen=True, slots=True)
class Source:
    kind: SourceKind
    name: str

    @classmethod
    def ae(cls, title: str) -> "Source":
        return cls(SourceKind.AE, title)

    @classmethod
    def media(cls, label: str) -> "Source":
        return cls(SourceKind.MEDIA, label)

    @classmethod
    def capture(cls, device: str) -> "Source":
        return cls(SourceKind.CAPTURE, device)

    @classmethod
    def parse(cls, text: str) -> "Source":
        """"AE:CT1" -> Source(AE, "CT1"). A bare name is an AE title (what the buffer was always
        given)."""
        kind, sep, name = text.partition(":")
        if sep and kind in SourceKind.__members__:
            return cls(SourceKind[kind], name)
        return cls.ae(text)

    @property
    def is_ae(self) -> bool:
        return self.kind is SourceKind.AE

    @property
    def label(self) -> str:
        """For log lines and the index: the bare title of a network peer (as before), else the
        rendered source."""
        return self.name if self.kind is SourceKind.AE else str(self)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.name}"
