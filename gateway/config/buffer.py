"""`[buffer]`: where received instances are kept, the disk reserve, duplicates, and retention
(gateway/buffer/ acts on it; this module is the schema only, so the buffer imports it, not the
other way round)."""

from __future__ import annotations

from typing import Literal

from gateway.config.base import IntRange, Section


class BufferSection(Section):
    path: str = "/var/lib/dicom-gateway"
    # C-STOREs are refused with A700 when accepting one would leave less free space than this.
    reserve_mb: IntRange(0, 10_000_000) = 512
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
    retention_free_percent: IntRange(0, 90) = 10
    # Also evict delivered instances received more than this many days ago; 0 = off.
    retention_max_age_days: IntRange(0, 36500) = 0
    # Instances no route matched were never to be delivered anywhere, so "delivered" does not
    # apply: they are kept (the gateway may hold the only copy, and a route mistake found weeks
    # later must still be fixable by re-forwarding) unless this is set: evicted this many days
    # after they were received. 0 = never evicted.
    retention_unrouted_max_age_days: IntRange(0, 36500) = 0
