"""`govmail serve` with several worker processes: one supervisor binds, accepts and hands over.

Python runs one event loop on one core per process, so one process cannot use a machine. The
supervisor binds every mail listener (SMTP MX, submission, submissions; IMAP, IMAPS), starts
``server.workers`` worker processes (``mailserver.worker``) and then only does five things:

- accepts each connection, counts it against the per-IP limit of its listener (instance-wide,
  which no worker could do alone) and passes the socket to the worker with the fewest
  connections, with a flag when the address is over its limit (the worker then refuses it in
  the protocol's words: SMTP 421, IMAP BYE, after TLS on the implicit-TLS ports);
- relays what one worker publishes to all the others: committed mailbox changes (so IDLE and
  untagged responses see deliveries made by another worker);
- commits the deliveries of every worker in one group commit (``mailserver.instance_writer``);
- restarts a worker that died (its connections are gone; nothing committed is lost: every
  reply that promised something was sent after its commit);
- runs the managed spamd when ``[spamd] managed`` asks for one (``mailserver.scanners``): one
  for the whole instance, started before the workers and stopped after them.

SIGTERM or SIGINT stops accepting and asks every worker to drain as a single process would.
The admin API runs in worker 0. Each worker also has its own store and group commit for its
other writes over the shared database (SQLite files are written in turns through a lock file,
see ``storage.db``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field

from mailserver.config import GovmailConfig, parse_listen
from mailserver.instance_writer import InstanceWriter
from mailserver.scanners import (
    ManagedSpamd,
    report_scanners,
    start_managed_spamd,
    wait_for_managed_spamd,
)
from mailserver.tls import ensure_self_signed_cert
from mailserver.worker_link import Link, Message, socket_pair
from storage.changes import Change
from storage.db import open_database
from storage.schema import upgrade_to_head

log = logging.getLogger("govmail")

ACCEPTS_PER_WAKE = 64
READY_TIMEOUT_SECONDS = 120.0
RESTART_DELAY_SECONDS = 1.0


class WorkersFailed(RuntimeError):
    """The worker processes did not all start (their own log lines say why)."""


@dataclass
class _Listener:
    name: str
    group: str  # connections are counted per (group, IP): both IMAP ports share one limit
    sock: socket.socket
    limit: int


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    link: Link
    ready: asyncio.Future[dict[str, str]]
    # Live connections handed to this worker, per (group, IP).
    connections: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    total: int = 0


class Supervisor:
    def __init__(self, config: GovmailConfig, workers: int) -> None:
        self.config = config
        self.count = workers
        self.listeners: list[_Listener] = []
        self.workers: dict[int, _Worker] = {}
        self.per_ip: collections.Counter[tuple[str, str]] = collections.Counter()
        self.stopping = False
        self._stop = asyncio.Event()
        self._restarts: set[asyncio.Task[None]] = set()
        self.writer: InstanceWriter | None = None
        self.spamd: ManagedSpamd | None = None  # [spamd] managed: this process runs it

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        config = self.config
        await asyncio.to_thread(self._prepare)
        self._bind()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        scanners: asyncio.Task[list[str]] | None = None
        try:
            self.spamd = await start_managed_spamd(config)
            scanners = asyncio.create_task(report_scanners(config))
            self.writer = await asyncio.to_thread(InstanceWriter.open, config, self._broadcast)
            self.writer.start(config)
            for index in range(self.count):
                self._spawn(index)
            bound = await self._wait_ready()
            await scanners
            # Connections wait in the backlog, not refused, while the managed spamd starts.
            await wait_for_managed_spamd(self.spamd, config, self._stop)
        except BaseException:
            if scanners is not None:
                scanners.cancel()
            await self._shutdown()
            raise
        for listener in self.listeners:
            host, port = listener.sock.getsockname()[:2]
            bound.setdefault(listener.name, f"{host}:{port}")
            loop.add_reader(listener.sock.fileno(), self._accept, listener)
        order = ["smtp_mx", "smtp_submission", "smtp_submissions", "imap", "imaps", "admin_api"]
        listening = " ".join(f"{name}={bound[name]}" for name in order if name in bound)
        log.info(
            "event=listening %s data_dir=%s workers=%d", listening, config.data_dir, self.count
        )
        await self._stop.wait()
        log.info("event=stopping grace_seconds=%s", config.server.shutdown_grace_seconds)
        await self._shutdown()
        shared = self.writer.committed if self.writer is not None else 0
        log.info("event=stopped workers=%d shared_deliveries=%d", self.count, shared)

    def _prepare(self) -> None:
        """What must happen once, before any worker opens the instance."""
        config = self.config
        ensure_self_signed_cert(config.cert_file, config.key_file, [config.server.hostname])
        db = open_database(config.database_url, fsync=config.storage.fsync)
        try:
            upgrade_to_head(db)
        finally:
            db.dispose()

    def _bind(self) -> None:
        config = self.config
        for name, address, group, limit in (
            ("smtp_mx", config.smtp.mx_listen, "smtp_mx", config.smtp.max_connections_per_ip),
            (
                "smtp_submission",
                config.smtp.submission_listen,
                "smtp_submission",
                config.smtp.max_connections_per_ip,
            ),
            (
                "smtp_submissions",
                config.smtp.submissions_listen,
                "smtp_submissions",
                config.smtp.max_connections_per_ip,
            ),
            ("imap", config.imap.listen, "imap", config.imap.max_connections_per_ip),
            ("imaps", config.imap.tls_listen, "imap", config.imap.max_connections_per_ip),
        ):
            if not address:
                continue
            host, port = parse_listen(address)
            sock = socket.create_server((host, port), backlog=1024)
            sock.setblocking(False)
            self.listeners.append(_Listener(name, group, sock, limit))

    async def _wait_ready(self) -> dict[str, str]:
        """Every worker's bound addresses (the admin API's), once all are ready. A SIGTERM
        meanwhile is kept and acted on as soon as they are."""
        waits = [worker.ready for worker in self.workers.values()]
        try:
            results = await asyncio.wait_for(asyncio.gather(*waits), READY_TIMEOUT_SECONDS)
        except (TimeoutError, RuntimeError) as exc:
            raise WorkersFailed(f"the worker processes did not start: {exc}") from exc
        bound: dict[str, str] = {}
        for result in results:
            bound.update(result)
        return bound

    async def _shutdown(self) -> None:
        self.stopping = True
        loop = asyncio.get_running_loop()
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                loop.remove_reader(listener.sock.fileno())
            listener.sock.close()
        for task in self._restarts:
            task.cancel()
        for worker in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        deadline = self.config.server.shutdown_grace_seconds + 15
        for worker in list(self.workers.values()):
            try:
                await asyncio.wait_for(asyncio.to_thread(worker.process.wait), deadline)
            except TimeoutError:
                log.error("event=worker_kill worker=%d reason=drain_timeout", worker.index)
                worker.process.kill()
                await asyncio.to_thread(worker.process.wait)
            worker.link.close()
        if self.writer is not None:
            await self.writer.close()
        if self.spamd is not None:
            await self.spamd.stop()

    # ------------------------------------------------------------ workers

    def _spawn(self, index: int) -> None:
        ours, theirs = socket_pair()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mailserver.worker",
                str(theirs.fileno()),
                str(index),
                str(self.count),
            ],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        loop = asyncio.get_running_loop()
        link = Link(
            ours,
            lambda message, fds: self._on_message(worker, message, fds),
            lambda: self._on_worker_lost(worker),
        )
        worker = _Worker(index, process, link, loop.create_future())
        self.workers[index] = worker
        worker.link.start()
        config_path = str(self.config.config_path) if self.config.config_path else None
        worker.link.send(("config", self.config.model_dump_json(), config_path))

    def _on_message(self, worker: _Worker, message: Message, fds: list[int]) -> None:
        for fd in fds:  # workers never send sockets
            os.close(fd)
        kind = message[0]
        if kind == "write" and self.writer is not None:
            self.writer.handle(worker.link.send, message[1], message[2], message[3])
        elif kind == "closed":
            key = (message[1], message[2])
            if worker.connections[key] > 0:
                worker.connections[key] -= 1
                if not worker.connections[key]:
                    del worker.connections[key]
                worker.total -= 1
                self._release(key, 1)
        elif kind == "changes":
            for other in self.workers.values():
                if other is not worker and other.ready.done():
                    other.link.send(message)
        elif kind == "ready" and not worker.ready.done():
            worker.ready.set_result(dict(message[1]))
            log.info("event=worker_ready worker=%d pid=%d", worker.index, worker.process.pid)

    def _broadcast(self, changes: list[Change]) -> None:
        """What the instance writer committed, to every worker's IMAP sessions."""
        for worker in self.workers.values():
            if worker.ready.done():
                worker.link.send(("changes", changes))

    def _release(self, key: tuple[str, str], count: int) -> None:
        left = self.per_ip[key] - count
        if left > 0:
            self.per_ip[key] = left
        else:
            self.per_ip.pop(key, None)

    def _on_worker_lost(self, worker: _Worker) -> None:
        for key, count in worker.connections.items():
            self._release(key, count)
        worker.connections.clear()
        worker.total = 0
        if not worker.ready.done():
            worker.ready.set_exception(RuntimeError(f"worker {worker.index} exited at start"))
            worker.ready.exception()  # retrieved here; _wait_ready reports it
        if self.stopping or self.workers.get(worker.index) is not worker:
            return
        log.error("event=worker_died worker=%d pid=%d", worker.index, worker.process.pid)
        task = asyncio.create_task(self._restart(worker))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _restart(self, worker: _Worker) -> None:
        await asyncio.to_thread(worker.process.wait)
        await asyncio.sleep(RESTART_DELAY_SECONDS)  # a worker that dies at once must not spin
        if not self.stopping:
            self._spawn(worker.index)
            log.info("event=worker_restarted worker=%d", worker.index)

    # ------------------------------------------------------------ connections

    def _accept(self, listener: _Listener) -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                conn, peer = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, say: try again on the next wake
                log.error("event=accept_failed listener=%s error=%r", listener.name, exc)
                return
            ready = [w for w in self.workers.values() if w.ready.done() and not w.link.closed]
            if not ready:
                conn.close()
                continue
            ip = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
            key = (listener.group, ip)
            self.per_ip[key] += 1
            refuse = self.per_ip[key] > listener.limit
            worker = min(ready, key=lambda w: w.total)
            worker.connections[key] += 1
            worker.total += 1
            worker.link.send(("conn", listener.name, listener.group, refuse, ip), [conn.detach()])
