"""One end of an association that this gateway drives itself, on a blocking socket: the socket, its
reader, the lock that keeps PDUs whole on the way out, and the close.

StorageAcceptor (the receive fast path) and StorageRequestor (the forwarder's sender) are its two
ends; pynetdicom's associations do not use it. What each end reads and when it may send stays with
it: the acceptor answers, the requestor asks.
"""

from __future__ import annotations

import socket
import threading

from gateway.dicom.net.pdu_socket import ConnectionClosed, SocketReader


class PduConnection:
    def __init__(self, sock: socket.socket, reader: SocketReader):
        self.sock = sock
        self.reader = reader
        # Sends, the close and each end's stop decision are serialised: a stop from another
        # thread (the service's) must not write into a PDU being sent, nor close under it.
        self._lock = threading.Lock()
        self._closed = False

    def _send(self, data: bytes) -> None:
        with self._lock:
            self._send_locked(data)

    def _send_locked(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionClosed()
        # One sendall per PDU: with TCP_NODELAY it leaves in as few segments as the data needs.
        self.sock.sendall(data)

    def _close(self) -> None:
        with self._lock:
            self._closed = True
        try:
            self.sock.close()
        except OSError:
            pass
