"""Shared helpers for the IMAP tests: SMTP delivery and blocking clients run off the loop."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib

from tests.support.harness import TEST_PASSWORD, LiveServer

USER = "vanban@sotest.gov.vn"

SAMPLE = (
    b"From: =?utf-8?q?Nguy=E1=BB=85n_V=C4=83n_A?= <a@sotest.gov.vn>\r\n"
    b"To: vanban@sotest.gov.vn\r\n"
    b"Subject: =?utf-8?b?VsSDbiBi4bqjbiBz4buRIDEyMw==?=\r\n"
    b"Date: Mon, 02 Mar 2026 09:15:00 +0700\r\n"
    b"Message-ID: <m1@sotest.gov.vn>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"K\xc3\xadnh g\xe1\xbb\xadi c\xc3\xa1c \xc4\x91\xe1\xbb\x93ng ch\xc3\xad.\r\n"
    b"\x00binary-ish tail \xff\r\n"
)


def smtp_deliver(server: LiveServer, raw: bytes, rcpt: str = USER) -> None:
    host, port = server.address("smtp_mx")
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.sendmail("sender@example.org", [rcpt], raw)


async def deliver(server: LiveServer, raw: bytes, rcpt: str = USER) -> None:
    await asyncio.to_thread(smtp_deliver, server, raw, rcpt)


def imap_login(server: LiveServer, user: str = USER) -> imaplib.IMAP4:
    host, port = server.address("imap")
    client = imaplib.IMAP4(host, port, timeout=10)
    client.login(user, TEST_PASSWORD)
    return client
