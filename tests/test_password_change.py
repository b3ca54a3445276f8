"""A password that must be changed (admin's flag, or older than the maximum age) still proves
who the user is, but IMAP answers NO [EXPIRED] and SMTP 535 until it is changed on the
/v1/password-change page, which checks the current password and the provincial policy."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
from datetime import timedelta

import httpx
import pytest
from sqlmodel import Session

from mailserver.tls import client_ssl_context
from storage.accounts import require_mailbox
from storage.models import utcnow
from tests.support.harness import TEST_PASSWORD, LiveServer

USER = "thanhnn.skhcn@sotest.gov.vn"
NEW_PASSWORD = "Doi-mat-khau#2026"


async def imap_login(server: LiveServer, password: str) -> tuple[str, str]:
    host, port = server.address("imap")

    def attempt() -> tuple[str, str]:
        client = imaplib.IMAP4(host, port)
        try:
            client.login(USER, password)
            return "OK", ""
        except imaplib.IMAP4.error as exc:
            return "NO", str(exc)
        finally:
            client.shutdown()

    return await asyncio.to_thread(attempt)


async def smtp_auth(server: LiveServer, password: str) -> tuple[int, bytes]:
    host, port = server.address("smtp_submissions")
    context = client_ssl_context(verify=False, cafile=None)

    def attempt() -> tuple[int, bytes]:
        with smtplib.SMTP_SSL(host, port, context=context, timeout=10) as client:
            client.ehlo("client.test")
            try:
                return client.login(USER, password)
            except smtplib.SMTPAuthenticationError as exc:
                error = exc.smtp_error
                return exc.smtp_code, error if isinstance(error, bytes) else error.encode()

    return await asyncio.to_thread(attempt)


async def change(server: LiveServer, current: str, new: str) -> httpx.Response:
    host, port = server.address("admin_api")
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        return await client.post(
            "/v1/password-change",
            json={"address": USER, "current_password": current, "new_password": new},
        )


@pytest.mark.parametrize("reason", ["admin_flag", "too_old"])
async def test_expired_password_is_refused_until_changed(
    live_server: LiveServer, reason: str
) -> None:
    await live_server.add_mailbox(USER)

    def expire(session: Session) -> None:
        mailbox = require_mailbox(session, USER)
        if reason == "admin_flag":
            mailbox.must_change_password = True
        else:
            mailbox.password_changed_at = utcnow() - timedelta(days=181)
        session.add(mailbox)

    await live_server.running.instance.store.write(expire)

    status, text = await imap_login(live_server, TEST_PASSWORD)
    assert status == "NO" and "[EXPIRED]" in text and "/v1/password-change" in text
    code, message = await smtp_auth(live_server, TEST_PASSWORD)
    assert code == 535 and b"/v1/password-change" in message
    assert (await imap_login(live_server, "wrong password"))[1].find("[EXPIRED]") == -1

    wrong = await change(live_server, "wrong password", NEW_PASSWORD)
    assert wrong.status_code == 401
    assert wrong.headers["content-type"].startswith("application/problem+json")
    weak = await change(live_server, TEST_PASSWORD, "password")
    assert weak.status_code in (400, 422) and "password refused" in weak.json()["detail"]
    same = await change(live_server, TEST_PASSWORD, TEST_PASSWORD)
    assert same.status_code == 422

    changed = await change(live_server, TEST_PASSWORD, NEW_PASSWORD)
    assert changed.status_code == 200 and changed.json() == {"address": USER}
    assert await imap_login(live_server, NEW_PASSWORD) == ("OK", "")
    assert (await imap_login(live_server, TEST_PASSWORD))[0] == "NO"
    assert (await smtp_auth(live_server, NEW_PASSWORD))[0] == 235


async def test_the_change_page_is_served(live_server: LiveServer) -> None:
    host, port = live_server.address("admin_api")
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        page = await client.get("/v1/password-change")
    assert page.status_code == 200 and "Đổi mật khẩu" in page.text
