"""Shared password logins: lockout counting; a login already stamped today commits nothing."""

from __future__ import annotations

from sqlmodel import Session

from mailserver.auth import check_login
from storage.models import Mailbox
from tests.support.harness import TEST_PASSWORD, LiveServer

USER = "an@sotest.gov.vn"


async def state_of(server: LiveServer, mailbox_id: int) -> Mailbox:
    def load(session: Session) -> Mailbox:
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        return mailbox

    return await server.running.instance.store.read(load)


async def test_login_stamps_once_and_failures_reset(live_server: LiveServer) -> None:
    instance = live_server.running.instance
    mailbox_id = await live_server.add_mailbox(USER)
    assert (await state_of(live_server, mailbox_id)).last_login_at is None

    first = await check_login(instance, USER, TEST_PASSWORD, "imap")
    assert first.ok and first.mailbox_id == mailbox_id
    stamped = (await state_of(live_server, mailbox_id)).last_login_at
    assert stamped is not None

    again = await check_login(instance, USER.upper(), TEST_PASSWORD, "smtp")
    assert again.ok
    assert (await state_of(live_server, mailbox_id)).last_login_at == stamped  # no write

    wrong = await check_login(instance, USER, "not the password", "imap")
    assert not wrong.ok
    assert (await state_of(live_server, mailbox_id)).failed_logins == 1
    assert (await check_login(instance, USER, TEST_PASSWORD, "imap")).ok
    assert (await state_of(live_server, mailbox_id)).failed_logins == 0  # the success was written


async def test_consecutive_failures_lock_the_account(live_server: LiveServer) -> None:
    instance = live_server.running.instance
    mailbox_id = await live_server.add_mailbox(USER)
    limit = instance.config.auth.max_failed_logins
    for _ in range(limit):
        assert not (await check_login(instance, USER, "wrong", "imap")).ok
    assert (await state_of(live_server, mailbox_id)).state == "locked"
    refused = await check_login(instance, USER, TEST_PASSWORD, "imap")
    assert not refused.ok and refused.reason == "account locked"
