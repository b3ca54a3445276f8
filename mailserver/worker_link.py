"""The link between the supervisor and one worker process: messages, and sockets passed along.

A ``SOCK_SEQPACKET`` Unix socket pair: each message is one datagram holding a pickled tuple
(both ends are the same program, so pickle is safe here), and a client connection accepted by
the supervisor travels with its message as ``SCM_RIGHTS``. Both ends run on an asyncio loop:
reading is a reader callback; a send that finds the socket full is queued and finished when it
becomes writable, so neither side ever blocks its loop on the other.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import pickle
import socket
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

MAX_MESSAGE = 1 << 20  # one datagram; long change lists are sent in several
BUFFER_BYTES = 8 << 20
MAX_FDS = 4

Message = tuple[Any, ...]
Handler = Callable[[Message, list[int]], None]


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """Two connected ends with room for bursts (a few MiB of messages in flight)."""
    ends = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in ends:
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER_BYTES)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER_BYTES)
    return ends


class Link:
    """One end of a supervisor-worker link on the running loop."""

    def __init__(self, sock: socket.socket, on_message: Handler, on_closed: Callable[[], None]):
        self.sock = sock
        self.sock.setblocking(False)
        self._on_message = on_message
        self._on_closed = on_closed
        self._outbox: collections.deque[tuple[bytes, list[int]]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)

    def send(self, message: Message, fds: Sequence[int] = ()) -> None:
        """Queue ``message`` (and ``fds``, closed here once sent) for the other end."""
        if self.closed:
            for fd in fds:
                os.close(fd)
            return
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > MAX_MESSAGE:
            raise ValueError(f"link message of {len(data)} bytes is too large")
        self._outbox.append((data, list(fds)))
        if len(self._outbox) == 1:
            self._flush()

    def _flush(self) -> None:
        while self._outbox:
            data, fds = self._outbox[0]
            try:
                socket.send_fds(self.sock, [data], fds) if fds else self.sock.send(data)
            except BlockingIOError:
                assert self._loop is not None
                self._loop.add_writer(self.sock.fileno(), self._writable)
                return
            except OSError:
                self._lost()
                return
            self._outbox.popleft()
            for fd in fds:
                os.close(fd)

    def _writable(self) -> None:
        assert self._loop is not None
        self._loop.remove_writer(self.sock.fileno())
        self._flush()

    def _readable(self) -> None:
        while not self.closed:
            try:
                data, fds, flags, _ = socket.recv_fds(self.sock, MAX_MESSAGE, MAX_FDS)
            except BlockingIOError:
                return
            except OSError:
                self._lost()
                return
            if not data:
                self._lost()
                return
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                log.error("event=link_message_truncated bytes=%d", len(data))
                for fd in fds:
                    os.close(fd)
                continue
            try:
                message = pickle.loads(data)
            except Exception:
                log.exception("event=link_message_unreadable bytes=%d", len(data))
                for fd in fds:
                    os.close(fd)
                continue
            try:
                self._on_message(message, fds)
            except Exception:
                log.exception("event=link_handler_failed kind=%r", message[:1])

    def _lost(self) -> None:
        if self.closed:
            return
        self.close()
        self._on_closed()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.sock.fileno())
                self._loop.remove_writer(self.sock.fileno())
        for _data, fds in self._outbox:
            for fd in fds:
                os.close(fd)
        self._outbox.clear()
        self.sock.close()
