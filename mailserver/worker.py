"""One worker process of `govmail serve` (``python -m mailserver.worker FD INDEX COUNT``).

Started by the supervisor with one end of a link (``mailserver.worker_link``) as file
descriptor FD. The first message is the configuration; the worker then opens the instance as
``serve.start_servers`` does (its own store, group commit and queue runner over the shared
database) without binding the mail listeners, says ``ready``, and from then on:

- serves each connection the supervisor hands over (``conn``), refusing it with the protocol's
  own words when the supervisor counted too many from its address;
- sends its deliveries to the supervisor's one writer for the instance (``write``, answered by
  ``written``; ``mailserver.instance_writer``);
- tells the supervisor when a connection ends (``closed``) and what it committed (``changes``,
  for the IMAP sessions of the other workers), and applies what the supervisor relays from the
  others. (Failed logins per IP are counted in the database: every worker sees them.)

It stops on SIGTERM, on ``stop`` or when the link breaks, draining like a single process; and
it dies with the supervisor (PR_SET_PDEATHSIG), so a killed server leaves no orphan behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import socket
import sys
from pathlib import Path

from mailserver.config import GovmailConfig
from mailserver.instance_writer import RemoteWriter
from mailserver.logging_setup import configure_logging
from mailserver.serve import RunningServer, WorkerRole, settle_heap, start_servers
from mailserver.worker_link import Link, Message
from storage.changes import Change, in_pieces

log = logging.getLogger("govmail.worker")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the broken link still stops the worker
        pass


class Worker:
    def __init__(self, sock: socket.socket, role: WorkerRole) -> None:
        self.role = role
        self.link = Link(sock, self._on_message, self._on_link_lost)
        self.config: asyncio.Future[GovmailConfig] | None = None
        self.running: RunningServer | None = None
        self.stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.writer = RemoteWriter(self.link.send)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.config = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        self.link.start()
        config = await self.config
        configure_logging(config.server.log_level, config.server.log_format)
        running = self.running = await start_servers(config, self.role)
        self._wire(running)
        settle_heap()
        self.link.send(("ready", running.bound))
        await self.stop.wait()
        await running.stop(config.server.shutdown_grace_seconds)
        self.link.close()

    def _wire(self, running: RunningServer) -> None:
        instance = running.instance
        instance.store.bus.relay = self._relay_changes
        instance.store.delegate = self.writer
        for tracker in running.trackers:
            tracker.on_closed = lambda ip, name=tracker.name: self.link.send(("closed", name, ip))
        if running.imap is not None:
            running.imap.on_closed = lambda ip: self.link.send(("closed", "imap", ip))
            running.imap.id_prefix = f"w{self.role.index}i"

    def _relay_changes(self, changes: list[Change]) -> None:
        for piece in in_pieces(changes):
            self.link.send(("changes", piece))

    # ------------------------------------------------------------ from the supervisor

    def _on_message(self, message: Message, fds: list[int]) -> None:
        kind = message[0]
        if kind == "conn":
            _, listener, group, refuse, ip = message
            sock = socket.socket(fileno=fds[0])
            task = asyncio.create_task(self._serve(listener, group, refuse, ip, sock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "written":
            self.writer.on_reply(message[1], message[2], message[3])
        elif kind == "changes" and self.running is not None:
            self.running.instance.store.bus.publish_relayed(message[1])
        elif kind == "config" and self.config is not None and not self.config.done():
            config = GovmailConfig.model_validate_json(message[1])
            config.config_path = Path(message[2]) if message[2] else None
            self.config.set_result(config)
        elif kind == "stop":
            self.stop.set()

    async def _serve(
        self, listener: str, group: str, refuse: bool, ip: str, sock: socket.socket
    ) -> None:
        accept = self.running.accept.get(listener) if self.running is not None else None
        try:
            if accept is None:
                raise RuntimeError(f"no listener {listener} here")
            await accept(sock, refuse)
        except Exception as exc:  # before the protocol took it (a failed TLS handshake, say)
            log.info("event=handoff_failed listener=%s peer=%s error=%r", listener, ip, exc)
            sock.close()
            self.link.send(("closed", group, ip))

    def _on_link_lost(self) -> None:
        self.writer.close()
        if not self.stop.is_set():
            log.warning("event=supervisor_link_lost worker=%d", self.role.index)
        self.stop.set()


def main(argv: list[str]) -> None:
    _die_with_parent()
    fd, index, count = (int(arg) for arg in argv[:3])
    sock = socket.socket(fileno=fd)
    worker = Worker(sock, WorkerRole(index, count))
    asyncio.run(worker.run())


if __name__ == "__main__":
    main(sys.argv[1:])
