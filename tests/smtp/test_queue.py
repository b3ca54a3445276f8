"""The outbound queue: routing, pooled delivery, per-recipient status, retries with backoff,
delay warnings, bounces (RFC 3464), expiry, TLS policies, restarts, claims."""

from __future__ import annotations

import functools
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailserver.config import GovmailConfig, Route
from mailserver.delivery.dispatch import Delivery, QueueOptions, store_and_queue
from mailserver.delivery.queue import (
    OutboundRecipient,
    claim_due_entries,
    get_entry,
    retry_delay,
)
from mailserver.delivery.routing import (
    Destination,
    Router,
    RoutingError,
    TLSPolicy,
    match_route,
    order_mx,
)
from mailserver.delivery.runner import QueueRunner
from mailserver.tls import ensure_self_signed_cert, server_ssl_context
from storage.accounts import create_agency, create_domain, create_mailbox
from storage.blobs import BlobStore
from storage.db import open_database
from storage.models import Blob, Folder, Message
from storage.schema import upgrade_to_head
from storage.store import MailStore
from tests.smtp.fake_remote import RemoteHandler, start_remote
from tests.support.harness import test_config as make_config

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SENDER = "an@sotest.gov.vn"
MESSAGE = b"From: an@sotest.gov.vn\r\nTo: x@remote.example\r\nSubject: Cong van\r\n\r\nNoi dung\r\n"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class FakeMX:
    def __init__(self, answers: dict[str, list[tuple[int, str]] | RoutingError]) -> None:
        self.answers = answers

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        answer = self.answers[domain]
        if isinstance(answer, RoutingError):
            raise answer
        return answer


def test_static_routes_most_specific_first() -> None:
    routes = [
        Route(domain=".gov.vn", host="gw", port=25),
        Route(domain=".hanoi.gov.vn", host="hn", port=2525),
        Route(domain="sotp.hanoi.gov.vn", host="sotp", port=26),
    ]
    assert match_route(routes, "sotp.hanoi.gov.vn").host == "sotp"  # type: ignore[union-attr]
    assert match_route(routes, "SOYT.Hanoi.gov.vn.").host == "hn"  # type: ignore[union-attr]
    assert match_route(routes, "hue.gov.vn").host == "gw"  # type: ignore[union-attr]
    assert match_route(routes, "gov.vn") is None  # a suffix route is for names under it
    assert match_route(routes, "example.org") is None


async def test_dns_routing_mx_order_implicit_and_null_mx() -> None:
    resolver = FakeMX(
        {
            "a.example": [(20, "backup.a.example"), (10, "mx1.a.example"), (10, "mx2.a.example")],
            "noxm.example": [],
            "null.example": [(0, ".")],
            "gone.example": RoutingError("550 5.1.2 Domain gone.example does not exist", True),
        }
    )
    router = Router([], resolver, mx_port=2525, rng=random.Random(1))
    hosts = [d.host for d in await router.destinations("a.example")]
    assert (
        sorted(hosts[:2]) == ["mx1.a.example", "mx2.a.example"] and hosts[2] == "backup.a.example"
    )
    assert await router.destinations("noxm.example") == [Destination("noxm.example", 2525)]
    with pytest.raises(RoutingError) as null:
        await router.destinations("null.example")
    assert (null.value.permanent, null.value.reply[:10]) == (True, "556 5.1.10")
    with pytest.raises(RoutingError) as gone:
        await router.destinations("gone.example")
    assert gone.value.permanent
    assert order_mx([(5, "b"), (1, "a")], random.Random(0)) == ["a", "b"]


def test_backoff_doubles_up_to_the_maximum() -> None:
    assert [retry_delay(n, 300, 3600) for n in (1, 2, 3, 4, 5, 50)] == [
        300.0,
        600.0,
        1200.0,
        2400.0,
        3600.0,
        3600.0,
    ]


@pytest.fixture
async def world(tmp_path: Path, db_url: str) -> AsyncIterator[tuple[MailStore, int]]:
    """A store with the sender's local mailbox (where DSNs land)."""
    db = open_database(db_url)
    upgrade_to_head(db)
    store = MailStore(db, BlobStore(tmp_path / "blobs"))
    await store.start()

    def setup(session: Session) -> int:
        agency = create_agency(session, "t", "sotest", "So Test")
        assert agency.id is not None
        create_domain(session, "t", "sotest.gov.vn", agency.id)
        mailbox = create_mailbox(session, "t", SENDER, "", 10**9)
        assert mailbox.id is not None
        return mailbox.id

    mailbox_id = await store.write(setup)
    try:
        yield store, mailbox_id
    finally:
        await store.close()


def config_for(tmp_path: Path, port: int, tls: str = "none", **queue: object) -> GovmailConfig:
    return make_config(
        tmp_path / "cfg",
        "sqlite://",
        queue={"retry_base_seconds": 60, "delay_warning_seconds": 3600, **queue},
        routing={
            "routes": [{"domain": "remote.example", "host": "127.0.0.1", "port": port, "tls": tls}]
        },
    )


async def enqueue(
    store: MailStore, recipients: list[OutboundRecipient], sender: str = SENDER
) -> int:
    options = QueueOptions(sender=sender, now=T0, lifetime=timedelta(days=5))
    entry_id = await store_and_queue(store, MESSAGE, Delivery(remote=recipients), options)
    assert entry_id is not None
    return entry_id


async def inbox(store: MailStore, mailbox_id: int) -> list[bytes]:
    def job(session: Session) -> list[str]:
        folder = session.exec(
            select(Folder).where(Folder.mailbox_id == mailbox_id, Folder.name == "INBOX")
        ).one()
        return list(session.exec(select(Message.blob_sha256).where(Message.folder_id == folder.id)))

    return [store.blobs.read(d) for d in await store.read(job)]


def runner_for(store: MailStore, config: GovmailConfig, clock: Clock) -> QueueRunner:
    return QueueRunner(store, config, Router(config.routing.routes, FakeMX({})), clock=clock)


async def test_delivery_reuses_one_connection_and_releases_the_blob(
    world: tuple[MailStore, int], tmp_path: Path
) -> None:
    store, _ = world
    handler = RemoteHandler()
    remote, port = await start_remote(handler)
    try:
        runner = runner_for(store, config_for(tmp_path, port), Clock())
        ids = [await enqueue(store, [OutboundRecipient(f"u{n}@remote.example")]) for n in range(3)]
        assert await runner.run_once() == 3
        await runner.pool.close_all()
    finally:
        remote.close()
    assert runner.pool.opened == 1 and handler.connections == 1
    assert [(r.sender, r.recipients) for r in handler.received] == [
        (SENDER, [f"u{n}@remote.example"]) for n in range(3)
    ]
    assert handler.received[0].data == MESSAGE
    entries = [await store.read(functools.partial(get_entry, entry_id=i)) for i in ids]
    assert {(e.state, e.recipients[0].status) for e in entries if e} == {("done", "delivered")}
    refcounts = await store.read(lambda s: list(s.exec(select(Blob.refcount))))
    assert refcounts == [0]


async def test_per_recipient_status_bounce_and_retry(
    world: tuple[MailStore, int], tmp_path: Path
) -> None:
    store, mailbox_id = world
    handler = RemoteHandler(
        rcpt_replies={
            "nobody@remote.example": "550 5.1.1 <nobody@remote.example>: User unknown",
            "busy@remote.example": "451 4.3.0 Try later",
        }
    )
    remote, port = await start_remote(handler)
    clock = Clock()
    try:
        runner = runner_for(store, config_for(tmp_path, port), clock)
        entry_id = await enqueue(
            store,
            [
                OutboundRecipient("ok@remote.example"),
                OutboundRecipient("nobody@remote.example", orcpt="rfc822;nobody+40x"),
                OutboundRecipient("busy@remote.example"),
            ],
        )
        await runner.run_once()
        entry = await store.read(lambda s: get_entry(s, entry_id))
        assert entry is not None
        assert [(r.address, r.status) for r in entry.recipients] == [
            ("ok@remote.example", "delivered"),
            ("nobody@remote.example", "failed"),
            ("busy@remote.example", "pending"),
        ]
        assert (entry.state, entry.attempts, entry.next_attempt_at) == (
            "queued",
            1,
            T0 + timedelta(seconds=60),
        )
        assert await runner.run_once() == 0  # not due yet
        bounces = await inbox(store, mailbox_id)
        assert len(bounces) == 1
        dsn = bounces[0]
        assert b"Content-Type: multipart/report; report-type=delivery-status" in dsn
        assert b"To: <an@sotest.gov.vn>\r\nSubject: Undelivered Mail Returned to Sender" in dsn
        status = dsn.split(b"Content-Type: message/delivery-status\r\n\r\n")[1].split(b"\r\n--")[0]
        assert status.split(b"\r\n")[3:10] == [
            b"Original-Recipient: rfc822; nobody@x",
            b"Final-Recipient: rfc822; nobody@remote.example",
            b"Action: failed",
            b"Status: 5.1.1",
            b"Remote-MTA: dns; 127.0.0.1",
            b"Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.example>: User unknown",
            b"Last-Attempt-Date: Mon, 02 Mar 2026 08:00:00 +0000",
        ]
        assert b"Content-Type: message/rfc822\r\n\r\n" + MESSAGE in dsn

        handler.rcpt_replies.clear()
        clock.now = T0 + timedelta(seconds=61)
        assert await runner.run_once() == 1
        entry = await store.read(lambda s: get_entry(s, entry_id))
        assert entry is not None and entry.state == "done"
        assert [r.status for r in entry.recipients] == ["delivered", "failed", "delivered"]
        assert [r.recipients for r in handler.received] == [
            ["ok@remote.example"],
            ["busy@remote.example"],
        ]
        assert len(await inbox(store, mailbox_id)) == 1  # no second bounce
    finally:
        await runner.pool.close_all()
        remote.close()


async def test_delay_warning_once_then_expiry_bounce(
    world: tuple[MailStore, int], tmp_path: Path
) -> None:
    store, mailbox_id = world
    handler = RemoteHandler(data_reply="452 4.3.1 Insufficient system storage")
    remote, port = await start_remote(handler)
    clock = Clock()
    try:
        runner = runner_for(store, config_for(tmp_path, port), clock)
        entry_id = await enqueue(store, [OutboundRecipient("slow@remote.example")])
        await enqueue(store, [OutboundRecipient("quiet@remote.example", notify="NEVER")])
        await enqueue(store, [OutboundRecipient("slow@remote.example")], sender="")
        await runner.run_once()
        assert await inbox(store, mailbox_id) == []
        clock.now = T0 + timedelta(hours=2)  # past the 1 h warning of this config
        await runner.run_once()
        warnings = await inbox(store, mailbox_id)
        assert len(warnings) == 1
        assert b"Subject: Delayed Mail (still being retried)" in warnings[0]
        assert b"Action: delayed\r\nStatus: 4.3.1\r\n" in warnings[0]
        assert b"Will-Retry-Until: Sat, 07 Mar 2026 08:00:00 +0000" in warnings[0]
        assert b"Content-Type: text/rfc822-headers" in warnings[0]
        clock.now = T0 + timedelta(hours=3)
        await runner.run_once()
        assert len(await inbox(store, mailbox_id)) == 1  # warned once only
        clock.now = T0 + timedelta(days=5, seconds=1)
        await runner.run_once()
        final = await inbox(store, mailbox_id)
        assert len(final) == 2
        assert b"Action: failed\r\nStatus: 5.4.7\r\n" in final[1]
        entry = await store.read(lambda s: get_entry(s, entry_id))
        assert entry is not None and entry.state == "done"
    finally:
        await runner.pool.close_all()
        remote.close()


async def test_tls_policies(world: tuple[MailStore, int], tmp_path: Path) -> None:
    store, _ = world
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed_cert(cert, key, ["remote.example"])
    plain_handler, tls_handler = RemoteHandler(), RemoteHandler()
    plain, plain_port = await start_remote(plain_handler)
    secure, tls_port = await start_remote(tls_handler, server_ssl_context(cert, key))
    clock = Clock()
    try:
        required = runner_for(store, config_for(tmp_path, plain_port, "required"), clock)
        entry_id = await enqueue(store, [OutboundRecipient("a@remote.example")])
        await required.run_once()
        entry = await store.read(lambda s: get_entry(s, entry_id))
        assert entry is not None and entry.recipients[0].status == "pending"
        assert entry.recipients[0].last_reply == (
            "451 4.7.5 127.0.0.1 does not offer STARTTLS, which is required"
        )
        assert plain_handler.received == []
        clock.now = T0 + timedelta(minutes=5)
        opportunistic = runner_for(store, config_for(tmp_path, tls_port, "opportunistic"), clock)
        await opportunistic.run_once()
        assert [r.tls for r in tls_handler.received] == [True]
        await opportunistic.pool.close_all()
        verifying = config_for(tmp_path, tls_port, "required")
        verifying.routing.routes[0].verify_certificate = True  # self-signed: must fail
        await enqueue(store, [OutboundRecipient("b@remote.example")])
        clock.now = T0 + timedelta(minutes=10)
        strict = runner_for(store, verifying, clock)
        await strict.run_once()
        assert len(tls_handler.received) == 1
    finally:
        plain.close()
        secure.close()


async def test_queue_survives_a_restart_and_claims_do_not_overlap(
    world: tuple[MailStore, int], tmp_path: Path, db_url: str
) -> None:
    store, _ = world
    entry_id = await enqueue(store, [OutboundRecipient("a@remote.example")])
    lease = timedelta(minutes=10)
    first = await store.write(lambda s: claim_due_entries(s, "node-a", T0, lease, 10))
    second = await store.write(lambda s: claim_due_entries(s, "node-b", T0, lease, 10))
    assert ([e.id for e in first], second) == ([entry_id], [])
    await store.close()
    # A new process on the same database: the claim of the dead node runs out, then delivery.
    reopened = MailStore(open_database(db_url), BlobStore(tmp_path / "blobs"))
    await reopened.start()
    handler = RemoteHandler()
    remote, port = await start_remote(handler)
    clock = Clock()
    clock.now = T0 + lease + timedelta(seconds=1)
    try:
        runner = runner_for(reopened, config_for(tmp_path, port), clock)
        assert await runner.run_once() == 1
        assert [r.recipients for r in handler.received] == [["a@remote.example"]]
        await runner.pool.close_all()
    finally:
        remote.close()
        await reopened.close()


async def test_unreachable_destination_is_a_temporary_failure(
    world: tuple[MailStore, int], tmp_path: Path
) -> None:
    store, mailbox_id = world
    runner = runner_for(store, config_for(tmp_path, 9), Clock())
    entry_id = await enqueue(store, [OutboundRecipient("a@remote.example")])
    await runner.run_once()
    entry = await store.read(lambda s: get_entry(s, entry_id))
    assert entry is not None and entry.recipients[0].status == "pending"
    assert (entry.recipients[0].last_reply or "").startswith("451 4.4.1 Cannot talk to 127.0.0.1:9")
    assert await inbox(store, mailbox_id) == []
    assert Destination("h", 1).tls is TLSPolicy.OPPORTUNISTIC
