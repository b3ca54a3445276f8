"""`govmail serve`: the listeners of one instance, and a clean shutdown.

Start-up opens the store, binds SMTP (MX, submission with STARTTLS, submissions with implicit
TLS), IMAP (plain with STARTTLS, implicit TLS) and the admin API, then logs one line naming all
bound addresses. SIGTERM or SIGINT stops accepting, lets open sessions finish for the grace
period, aborts what is left, and closes the store after its queued commits.

With ``server.workers`` above 1 this runs inside each worker process (``mailserver.worker``):
the supervisor (``mailserver.supervisor``) binds and accepts, and hands each connection to a
worker, so here nothing is bound but the admin API (worker 0 only); ``RunningServer.accept``
serves a handed-over socket with the same protocol objects a listener would use.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import uvicorn

from admin_api.app import create_app
from mailserver.config import GovmailConfig, parse_listen
from mailserver.connections import ConnectionTracker
from mailserver.delivery.routing import DNSMXResolver, Router
from mailserver.delivery.runner import QueueRunner
from mailserver.imap.server import IMAPService
from mailserver.instance import Instance, open_instance
from mailserver.scanners import report_scanners, start_managed_spamd, wait_for_managed_spamd
from mailserver.smtp.mx import MXPolicy
from mailserver.smtp.protocol import GovmailSMTP, Listener, SMTPPolicy
from mailserver.smtp.submission import SubmissionPolicy
from mailserver.tls import ensure_self_signed_cert, server_ssl_context
from storage.inline_blobs import BlobSpiller, start_blob_spiller
from storage.text_indexer import TextIndexer, start_text_indexer

log = logging.getLogger("govmail")


class _QuietUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: shutdown is ours."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


# Serves one accepted socket; the flag: refuse it (too many connections from its address).
AcceptFn = Callable[[socket.socket, bool], Awaitable[None]]


@dataclass(frozen=True)
class WorkerRole:
    """This process is worker ``index`` of ``count``; connections come from the supervisor."""

    index: int
    count: int


def settle_heap() -> None:
    """After start-up: everything allocated so far (modules, tables, engines) lives as long as
    the process, so the garbage collector is told not to scan it again (``gc.freeze``); full
    collections of it took tens of milliseconds each under load."""
    gc.collect()
    gc.freeze()


def worker_count(config: GovmailConfig) -> int:
    """``server.workers``, where 0 means one per CPU core."""
    return config.server.workers or os.cpu_count() or 1


@dataclass
class RunningServer:
    """What `serve` started, so that it (or a test) can stop it."""

    instance: Instance
    servers: list[asyncio.Server] = field(default_factory=list)
    trackers: list[ConnectionTracker] = field(default_factory=list)
    imap: IMAPService | None = None
    queue: QueueRunner | None = None
    api: _QuietUvicorn | None = None
    api_task: asyncio.Task[None] | None = None
    bound: dict[str, str] = field(default_factory=dict)
    accept: dict[str, AcceptFn] = field(default_factory=dict)
    text_indexer: TextIndexer | None = None
    blob_spiller: BlobSpiller | None = None

    async def stop(self, grace: float) -> None:
        for server in self.servers:
            server.close()
        if self.api is not None:
            self.api.should_exit = True
        aborted = 0
        for tracker in self.trackers:
            aborted += await tracker.drain(grace)
        if self.imap is not None:
            aborted += await self.imap.drain(grace)
        if self.api_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.api_task, grace)
        if self.queue is not None:
            await self.queue.stop()
        for upkeep in (self.text_indexer, self.blob_spiller):  # they write through the store
            if upkeep is not None:
                await upkeep.stop()
        await self.instance.store.close()
        log.info("event=stopped aborted_connections=%d", aborted)


def _smtp_factory(
    config: GovmailConfig,
    policy: SMTPPolicy,
    tracker: ConnectionTracker,
    **kw: Any,
) -> Callable[[], GovmailSMTP]:
    listener = Listener(tracker, config.smtp.max_connections_per_ip)

    def factory(refuse: bool = False) -> GovmailSMTP:
        return GovmailSMTP(
            policy,
            listener,
            refuse=refuse,
            hostname=config.server.hostname,
            ident="govmail ESMTP",
            data_size_limit=config.smtp.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=config.smtp.command_timeout_seconds,
            **kw,
        )

    return factory


def _smtp_accept(
    factory: Callable[..., GovmailSMTP], implicit_tls: ssl.SSLContext | None
) -> AcceptFn:
    async def accept(sock: socket.socket, refuse: bool) -> None:
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(lambda: factory(refuse), sock, ssl=implicit_tls)

    return accept


async def start_servers(config: GovmailConfig, role: WorkerRole | None = None) -> RunningServer:
    """Open the instance and bind every configured listener (an empty address is skipped);
    as a worker (``role``), prepare ``accept`` for each listener instead of binding it."""
    await asyncio.to_thread(
        ensure_self_signed_cert, config.cert_file, config.key_file, [config.server.hostname]
    )
    # As a worker: the supervisor migrated the schema before starting the workers.
    instance = await asyncio.to_thread(
        partial(
            open_instance,
            config,
            migrate=role is None,
            shared_by_processes=role is not None,
            serving=True,
        )
    )
    await instance.store.start()
    running = RunningServer(instance)
    if role is None:  # with workers, the supervisor's store commits deliveries and does these
        running.text_indexer = start_text_indexer(instance.store, config.search)
        running.blob_spiller = start_blob_spiller(instance.store, config.storage)
    tls = server_ssl_context(config.cert_file, config.key_file)
    loop = asyncio.get_running_loop()
    try:
        router = Router(
            config.routing.routes,
            DNSMXResolver(config.routing.dns_timeout_seconds),
            mx_port=config.routing.mx_port,
        )
        queue = QueueRunner(instance.store, config, router)
        running.queue = queue
        queue.start()
        handler = MXPolicy(instance, queue.wake)
        submission = SubmissionPolicy(instance, queue.wake)
        smtp_listeners: list[tuple[str, str, SMTPPolicy, dict[str, Any], ssl.SSLContext | None]] = [
            ("smtp_mx", config.smtp.mx_listen, handler, {"tls_context": tls}, None),
            (
                "smtp_submission",
                config.smtp.submission_listen,
                submission,
                {"tls_context": tls, "require_starttls": True, "auth_required": True},
                None,
            ),
            (
                "smtp_submissions",
                config.smtp.submissions_listen,
                submission,
                # Implicit TLS: the connection is encrypted before aiosmtpd sees it.
                {"auth_required": True, "implicit_tls": True},
                tls,
            ),
        ]
        for name, address, smtp_handler, options, implicit_tls in smtp_listeners:
            if not address:
                continue
            tracker = ConnectionTracker(name)
            running.trackers.append(tracker)
            factory = _smtp_factory(config, smtp_handler, tracker, **options)
            if role is not None:
                running.accept[name] = _smtp_accept(factory, implicit_tls)
                continue
            host, port = parse_listen(address)
            server = await loop.create_server(factory, host, port, ssl=implicit_tls)
            running.servers.append(server)
            running.bound[name] = _bound_address(server)

        imap = IMAPService(instance, tls)
        running.imap = imap
        for name, address, implicit in (
            ("imap", config.imap.listen, False),
            ("imaps", config.imap.tls_listen, True),
        ):
            if not address:
                continue
            if role is not None:
                running.accept[name] = partial(_imap_accept, imap, implicit)
                continue
            host, port = parse_listen(address)
            server = await imap.listen(host, port, implicit_tls=implicit)
            running.servers.append(server)
            running.bound[name] = _bound_address(server)

        if config.admin_api.listen and (role is None or role.index == 0):
            host, port = parse_listen(config.admin_api.listen)
            api = _QuietUvicorn(
                uvicorn.Config(
                    create_app(instance),
                    host=host,
                    port=port,
                    log_level="warning",
                    lifespan="off",
                    access_log=False,
                )
            )
            running.api = api
            running.api_task = asyncio.create_task(api.serve(), name="govmail-admin-api")
            while not api.started:
                if running.api_task.done():
                    running.api_task.result()
                    raise RuntimeError("admin API failed to start")
                await asyncio.sleep(0.01)
            running.bound["admin_api"] = f"{host}:{_uvicorn_port(api, port)}"
    except BaseException:
        await running.stop(grace=0)
        raise
    return running


async def _imap_accept(
    imap: IMAPService, implicit_tls: bool, sock: socket.socket, refuse: bool
) -> None:
    await imap.serve_accepted(sock, implicit_tls, refuse)


def _bound_address(server: asyncio.Server) -> str:
    host, port = server.sockets[0].getsockname()[:2]
    return f"{host}:{port}"


def _uvicorn_port(api: uvicorn.Server, configured: int) -> int:
    for server in getattr(api, "servers", []):
        for sock in server.sockets:
            return int(sock.getsockname()[1])
    return configured


async def serve(config: GovmailConfig) -> None:
    """Run until SIGTERM/SIGINT, then drain and exit (with a supervisor and its workers when
    ``server.workers`` asks for more than one process)."""
    if worker_count(config) > 1:
        from mailserver.supervisor import Supervisor

        await Supervisor(config, worker_count(config)).run()
        return
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    spamd = await start_managed_spamd(config)
    try:
        await report_scanners(config)
        await wait_for_managed_spamd(spamd, config, stop)  # no mail refused while it starts
        if stop.is_set():
            return
        running = await start_servers(config)
        settle_heap()
        listening = " ".join(f"{name}={addr}" for name, addr in running.bound.items())
        log.info("event=listening %s data_dir=%s", listening, config.data_dir)
        await stop.wait()
        log.info("event=stopping grace_seconds=%s", config.server.shutdown_grace_seconds)
        await running.stop(config.server.shutdown_grace_seconds)
    finally:
        if spamd is not None:
            await spamd.stop()
