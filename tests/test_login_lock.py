"""Account lockout as users meet it: a lock by failed logins is announced (in the account's own
INBOX and to the admins, in Vietnamese and English), optionally lifted after
``auth.auto_unlock_minutes``, and a reset link takes the old password away at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from mailserver.auth import check_login
from storage.accounts import require_mailbox
from storage.models import Folder, Mailbox, MailboxState, Message
from storage.store import MailStore
from tests.admin_api.world import PASSWORD, World, world_on

USER = "thanhnn.skhcn@hanoi.gov.vn"
ADMIN = "lanpt@stc.hanoi.gov.vn"  # the admin alert address of this test
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def clock() -> Clock:
    return Clock()


async def make_world(tmp_path: Path, clock: Clock, auto_unlock: int) -> AsyncIterator[World]:
    async with world_on(
        tmp_path,
        f"sqlite:///{tmp_path / 'govmail.sqlite3'}",
        auth={"max_failed_logins": 3, "auto_unlock_minutes": auto_unlock},
        smtp={"admin_alert_addresses": [ADMIN]},
    ) as world:
        world.instance.clock = clock
        yield world


@pytest.fixture
async def world(tmp_path: Path, clock: Clock) -> AsyncIterator[World]:
    async for built in make_world(tmp_path, clock, 0):
        yield built


@pytest.fixture
async def unlocking_world(tmp_path: Path, clock: Clock) -> AsyncIterator[World]:
    async for built in make_world(tmp_path, clock, 30):
        yield built


async def inbox(store: MailStore, address: str) -> list[EmailMessage]:
    def digests(session: Session) -> list[str]:
        query = (
            select(Message.blob_sha256)
            .join(Folder, col(Folder.id) == col(Message.folder_id))
            .join(Mailbox, col(Mailbox.id) == col(Folder.mailbox_id))
            .where(Mailbox.address == address, Folder.name == "INBOX")
            .order_by(col(Message.uid))
        )
        return list(session.exec(query))

    parsed = []
    for digest in await store.read(digests):
        message = message_from_bytes(store.blobs.read(digest), policy=policy.default)
        assert isinstance(message, EmailMessage)
        parsed.append(message)
    return parsed


async def state_of(world: World, address: str) -> str:
    return await world.instance.store.read(lambda s: require_mailbox(s, address).state)


async def lock_by_guessing(world: World) -> None:
    for attempt in range(3):
        result = await check_login(world.instance, USER, f"wrong-{attempt}", "imap")
        assert not result.ok
    assert await state_of(world, USER) == MailboxState.LOCKED


async def test_a_lock_is_announced_to_the_user_and_the_admins(world: World) -> None:
    store = world.instance.store
    await lock_by_guessing(world)
    for address in (USER, ADMIN):
        notices = await inbox(store, address)
        assert len(notices) == 1, address
        notice = notices[0]
        assert USER in str(notice["Subject"])
        assert notice["Auto-Submitted"] == "auto-generated"
        body = notice.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        assert "đã bị khóa" in text and "was locked" in text  # Vietnamese and English
        assert "3" in text  # how many failures
    # More wrong guesses on a locked account: no second notice.
    assert not (await check_login(world.instance, USER, "wrong-again", "imap")).ok
    assert len(await inbox(store, USER)) == 1


async def test_without_auto_unlock_a_lock_stays(world: World, clock: Clock) -> None:
    await lock_by_guessing(world)
    clock.now = T0 + timedelta(days=400)
    assert not (await check_login(world.instance, USER, PASSWORD, "imap")).ok
    assert await state_of(world, USER) == MailboxState.LOCKED


async def test_auto_unlock_lifts_a_failed_login_lock_after_its_time(
    unlocking_world: World, clock: Clock
) -> None:
    world = unlocking_world
    await lock_by_guessing(world)
    clock.now = T0 + timedelta(minutes=29)
    assert not (await check_login(world.instance, USER, PASSWORD, "imap")).ok
    assert await state_of(world, USER) == MailboxState.LOCKED
    clock.now = T0 + timedelta(minutes=30)
    result = await check_login(world.instance, USER, PASSWORD, "imap")
    assert result.ok
    assert await state_of(world, USER) == MailboxState.ACTIVE
    # The count starts again from zero: two more failures do not lock it.
    for attempt in range(2):
        assert not (await check_login(world.instance, USER, f"again-{attempt}", "imap")).ok
    assert await state_of(world, USER) == MailboxState.ACTIVE


async def test_auto_unlock_leaves_an_admins_lock_alone(
    unlocking_world: World, clock: Clock
) -> None:
    world = unlocking_world
    locked = await world.post("system", f"/v1/mailboxes/{world.ids['mailbox_a']}/lock")
    assert locked.status_code == 200, locked.text
    clock.now = T0 + timedelta(days=2)
    assert not (await check_login(world.instance, USER, PASSWORD, "imap")).ok
    assert await state_of(world, USER) == MailboxState.LOCKED


async def test_a_reset_link_revokes_the_old_password_at_once(world: World) -> None:
    assert (await check_login(world.instance, USER, PASSWORD, "imap")).ok
    reset = await world.post("admin_a", f"/v1/mailboxes/{world.ids['mailbox_a']}/password", json={})
    assert reset.status_code == 200, reset.text
    assert not (await check_login(world.instance, USER, PASSWORD, "imap")).ok
    token = reset.json()["setup_link"].partition("token=")[2]
    new_password = "Zq7#mWx!pL2v"
    spent = await world.client.post(
        "/v1/password-setup", json={"token": token, "password": new_password}
    )
    assert spent.status_code == 200, spent.text
    assert (await check_login(world.instance, USER, new_password, "imap")).ok
