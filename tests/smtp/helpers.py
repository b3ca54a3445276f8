"""Helpers for the SMTP tests: directory rows, folder contents, blocking clients off the loop."""

from __future__ import annotations

import asyncio
import contextlib
import email.message
import smtplib
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

import aiosmtplib
from sqlmodel import Session, col, select

from storage.accounts import find_mailbox
from storage.changes import Change, MessageAdded
from storage.models import (
    Alias,
    Domain,
    Folder,
    GroupMember,
    Mailbox,
    MailGroup,
    Message,
    SendAsGrant,
)
from tests.support.harness import TEST_PASSWORD, LiveServer

T = TypeVar("T")
DOMAIN = "sotest.gov.vn"


def mime_parts(message: email.message.Message) -> list[email.message.Message]:
    """The sub-parts of a multipart (or message/*) part, asserted to be parts, not text."""
    payload = message.get_payload()
    assert isinstance(payload, list), f"{message.get_content_type()} has no sub-parts"
    parts = [part for part in payload if isinstance(part, email.message.Message)]
    assert len(parts) == len(payload)
    return parts


def text_payload(message: email.message.Message) -> str:
    """The undecoded text of a non-multipart part."""
    payload = message.get_payload()
    assert isinstance(payload, str), f"{message.get_content_type()} is not a leaf part"
    return payload


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking client (smtplib) in a thread so the server keeps serving."""
    return await asyncio.to_thread(fn, *args)


def client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def folder_messages(server: LiveServer, address: str, folder: str = "INBOX") -> list[bytes]:
    """Every message in one folder of one account, in UID order, as stored."""
    store = server.running.instance.store

    def job(session: Session) -> list[str]:
        query = (
            select(Message.blob_sha256)
            .join(Folder, col(Folder.id) == col(Message.folder_id))
            .join(Mailbox, col(Mailbox.id) == col(Folder.mailbox_id))
            .where(Mailbox.address == address, Folder.name == folder)
            .order_by(col(Message.uid))
        )
        return list(session.exec(query))

    digests = await store.read(job)
    return [store.blobs.read(d) for d in digests]


async def _domain_id(server: LiveServer, domain: str) -> int:
    def job(session: Session) -> int:
        found = session.exec(select(Domain.id).where(Domain.name == domain)).first()
        assert found is not None
        return found

    return await server.running.instance.store.read(job)


async def add_alias(
    server: LiveServer, address: str, targets: list[str], owner: int | None = None
) -> None:
    domain_id = await _domain_id(server, address.rpartition("@")[2])

    def job(session: Session) -> None:
        session.add(
            Alias(
                address=address,
                domain_id=domain_id,
                targets="\n".join(targets),
                owner_mailbox_id=owner,
            )
        )

    await server.running.instance.store.write(job)


async def add_group(server: LiveServer, address: str, members: list[str], policy: str) -> None:
    domain_id = await _domain_id(server, address.rpartition("@")[2])

    def job(session: Session) -> None:
        group = MailGroup(address=address, domain_id=domain_id, send_policy=policy)
        session.add(group)
        session.flush()
        assert group.id is not None
        for member in members:
            session.add(GroupMember(group_id=group.id, address=member))

    await server.running.instance.store.write(job)


async def grant_send_as(server: LiveServer, mailbox_id: int, address: str) -> None:
    def job(session: Session) -> None:
        session.add(SendAsGrant(mailbox_id=mailbox_id, address=address))

    await server.running.instance.store.write(job)


async def set_mailbox(server: LiveServer, address: str, **values: Any) -> None:
    def job(session: Session) -> None:
        mailbox = session.exec(select(Mailbox).where(Mailbox.address == address)).one()
        for key, value in values.items():
            setattr(mailbox, key, value)
        session.add(mailbox)

    await server.running.instance.store.write(job)


async def mailbox_state(server: LiveServer, address: str) -> str:
    def job(session: Session) -> str:
        return session.exec(select(Mailbox.state).where(Mailbox.address == address)).one()

    return await server.running.instance.store.read(job)


def message(sender: str, to: str, subject: str = "Test", extra: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}\r\nNoi dung thu.\r\n"
    ).encode()


class Dialogue:
    """A raw SMTP conversation: exact lines in, exact replies out (asyncio streams)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, address: tuple[str, int], ehlo: bool = True) -> Dialogue:
        reader, writer = await asyncio.open_connection(*address)
        dialogue = cls(reader, writer)
        greeting = await dialogue.reply()
        assert greeting[0].startswith("220 "), greeting
        if ehlo:
            await dialogue.send("EHLO client.example.org")
        return dialogue

    async def reply(self) -> list[str]:
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), 10)
            if not raw:
                lines.append("<closed>")
                return lines
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return lines

    async def send(self, line: str) -> list[str]:
        self.writer.write(line.encode("utf-8", "surrogateescape") + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def last(self, line: str) -> str:
        return (await self.send(line))[-1]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


def sendmail(address: tuple[str, int], sender: str, rcpts: list[str], raw: bytes) -> dict[str, Any]:
    with smtplib.SMTP(*address, timeout=10) as client:
        return client.sendmail(sender, rcpts, raw)


async def submit_tls(
    server: LiveServer, user: str, sender: str, rcpts: list[str], raw: bytes
) -> str:
    """Submit over implicit TLS (465) as ``user`` with aiosmtplib; returns the final reply."""
    host, port = server.address("smtp_submissions")
    async with aiosmtplib.SMTP(
        hostname=host, port=port, use_tls=True, tls_context=client_tls()
    ) as client:
        await client.login(user, TEST_PASSWORD)
        errors, reply = await client.sendmail(sender, rcpts, raw)
        assert errors == {}
        return reply


class Arrivals:
    """Messages added to one account from now on, through the instance's change bus."""

    def __init__(self, server: LiveServer, mailbox_id: int) -> None:
        self.count = 0
        self.changed = asyncio.Event()
        server.running.instance.store.bus.subscribe(mailbox_id, self._on_change)

    @classmethod
    async def watch(cls, server: LiveServer, address: str) -> Arrivals:
        store = server.running.instance.store
        mailbox = await store.read(lambda s: find_mailbox(s, address))
        assert mailbox is not None and mailbox.id is not None
        return cls(server, mailbox.id)

    def _on_change(self, change: Change) -> None:
        if isinstance(change, MessageAdded):
            self.count += 1
            self.changed.set()

    async def reach(self, count: int) -> None:
        async with asyncio.timeout(20):
            while self.count < count:
                self.changed.clear()
                await self.changed.wait()
