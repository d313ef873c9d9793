"""Flow control for outgoing P-DATA: memory must not grow with the size of the object sent.

pynetdicom's sender reads a stored data set in PDU-sized chunks, but puts every resulting P-DATA
primitive on the DUL's unbounded to_provider_queue as fast as it can read the file; the DUL thread
sends them one per loop. Sending a 1 GB cine therefore held most of it in memory (measured by
bench/bench_memory.py: 555-1058 MB peak RSS on a box that may have 1 GB). This swaps the queue for
one where a P-DATA put waits while `limit` are already waiting, so the reader runs only as fast as
the socket drains. Other primitives (release, abort) never wait: an abort must get through a queue
full of data.

Where it is plugged into pynetdicom (the DUL's to_provider_queue swapped on an association):
pynetdicom_patches.limit_pending_pdata.
"""

from __future__ import annotations

import queue
from typing import Callable

from pynetdicom.pdu_primitives import P_DATA


class BoundedPDataQueue(queue.Queue):
    def __init__(self, limit: int, alive: Callable[[], bool]):
        super().__init__()
        self.limit = limit
        self.alive = alive

    def put(self, item, block: bool = True, timeout: float | None = None) -> None:
        if isinstance(item, P_DATA):
            with self.not_full:
                # Re-check liveness now and then: if the DUL stopped consuming (peer aborted),
                # waiting for room would hang the sender for good.
                while self._qsize() >= self.limit and self.alive():
                    self.not_full.wait(0.25)
        super().put(item, block, timeout)
