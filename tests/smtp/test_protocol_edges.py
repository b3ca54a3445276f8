"""Hostile input at the SMTP edge: protocol replies, never ``421 Internal error``; a closed
connection after any 421; one log line per failed STARTTLS; no AUTH-over-plaintext warning on
the implicit-TLS listener."""

from __future__ import annotations

import asyncio
import base64
import logging
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import pytest

from mailserver.smtp.mx import MXPolicy
from tests.smtp.helpers import DOMAIN, Dialogue, client_tls
from tests.support.harness import TEST_PASSWORD, LiveServer, serving
from tests.support.harness import test_config as make_config

USER = f"an@{DOMAIN}"
NOT_UTF8 = b"\xff\xfe\xc3(".decode("utf-8", "surrogateescape")

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
async def server(tmp_path: Path, db_url: str) -> AsyncIterator[LiveServer]:
    async with serving(make_config(tmp_path / "data", db_url), USER) as live:
        yield live


async def _starttls_dialogue(server: LiveServer) -> Dialogue:
    """A submission session after STARTTLS and EHLO."""
    dialogue = await Dialogue.open(server.address("smtp_submission"))
    assert await dialogue.last("STARTTLS") == "220 2.0.0 Ready to start TLS"
    await dialogue.writer.start_tls(client_tls())
    assert (await dialogue.send("EHLO client.example.org"))[-1].startswith("250 ")
    return dialogue


@pytest.mark.parametrize(
    "argument",
    [NOT_UTF8, f"<{NOT_UTF8}>", f"@{NOT_UTF8}", f"({NOT_UTF8}", f"a b {NOT_UTF8}"],
)
async def test_vrfy_with_bytes_that_are_not_utf8_is_a_syntax_error(
    server: LiveServer, argument: str
) -> None:
    dialogue = await Dialogue.open(server.address("smtp_mx"))
    assert await dialogue.send(f"VRFY {argument}") == ["501 5.5.2 Syntax error: not UTF-8"]
    assert await dialogue.last(f"VRFY <{USER}>") == (
        "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"
    )
    assert await dialogue.last("VRFY") == "501 5.5.4 Syntax: VRFY <address>"
    # Once an IndexError in aiosmtpd's address parser (421 too).
    assert (await dialogue.last("VRFY <")).startswith("252 ")
    await dialogue.close()


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
async def test_an_auth_answer_longer_than_a_line_is_500_and_the_session_goes_on(
    server: LiveServer, mechanism: str
) -> None:
    dialogue = await _starttls_dialogue(server)
    assert (await dialogue.last(f"AUTH {mechanism}")).startswith("334 ")
    assert await dialogue.send("A" * 5000) == ["500 5.5.2 Line too long"]
    # The AUTH exchange is over; the next command is read as a command.
    assert await dialogue.last("NOOP") == "250 2.0.0 OK"
    assert (await dialogue.last("AUTH LOGIN")).startswith("334 ")
    await dialogue.send(base64.b64encode(USER.encode()).decode())
    password = base64.b64encode(TEST_PASSWORD.encode()).decode()
    assert await dialogue.last(password) == "235 2.7.0 Authentication successful"
    await dialogue.close()


async def test_the_connection_is_closed_after_any_421(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_check_sender(*args: object) -> str | None:
        raise RuntimeError("storage is gone")

    monkeypatch.setattr(MXPolicy, "check_sender", failing_check_sender)
    dialogue = await Dialogue.open(server.address("smtp_mx"))
    assert await dialogue.send("MAIL FROM:<a@example.org>") == [
        "421 4.3.0 Internal error, closing connection"
    ]
    assert await dialogue.reply() == ["<closed>"]
    await dialogue.close()


@pytest.mark.parametrize("payload", [b"GARBAGE NOT TLS\r\n" * 4, b"\x16\x03\x01\x00\x05hello"])
async def test_a_failed_starttls_handshake_is_one_log_line_with_peer_and_reason(
    server: LiveServer, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dialogue = await Dialogue.open(server.address("smtp_mx"))
    assert await dialogue.last("STARTTLS") == "220 2.0.0 Ready to start TLS"
    caplog.clear()
    dialogue.writer.write(payload)
    await dialogue.writer.drain()
    assert await dialogue.reader.read() == b""  # the server hung up
    await dialogue.close()
    lines = [record for record in caplog.records if record.name != "sqlalchemy.engine.Engine"]
    assert [record.levelname for record in lines] == ["INFO"], caplog.text
    (line,) = lines
    assert line.exc_info is None and not line.exc_text
    text = line.getMessage()
    assert text.startswith("event=starttls_failed listener=smtp_mx peer=127.0.0.1 reason=")
    assert "SSL" in text.partition("reason=")[2]


async def test_implicit_tls_connections_log_no_auth_without_tls_warning(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    host, port = server.address("smtp_submissions")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with aiosmtplib.SMTP(
            hostname=host, port=port, use_tls=True, tls_context=client_tls()
        ) as client:
            await client.login(USER, TEST_PASSWORD)
            await client.noop()
    assert not [w for w in caught if "AUTH" in str(w.message)]
    assert "auth_require_tls" not in caplog.text
    # AUTH is still refused on 587 before STARTTLS (there it does need the upgrade).
    dialogue = await Dialogue.open(server.address("smtp_submission"))
    assert await dialogue.last("AUTH PLAIN AGFAYg==") == (
        "530 5.7.0 Must issue a STARTTLS command first"
    )
    await dialogue.close()


@pytest.mark.parametrize(("sent", "echoed"), [("HEL\rP", "HEL?P"), ("NO\x00OP", "NO?OP")])
async def test_control_characters_are_never_echoed_into_a_reply(
    server: LiveServer, sent: str, echoed: str
) -> None:
    dialogue = await Dialogue.open(server.address("smtp_mx"))
    assert await dialogue.send(sent) == [f'500 5.5.2 Error: command "{echoed}" not recognized']
    assert await dialogue.last("NOOP") == "250 2.0.0 OK"
    await dialogue.close()


async def test_starttls_once_tls_is_active_is_refused(server: LiveServer) -> None:
    """RFC 3207 4.2: no second TLS layer (aiosmtpd would start one inside the first)."""
    dialogue = await _starttls_dialogue(server)
    assert await dialogue.last("STARTTLS") == "503 5.5.1 TLS already active"
    assert await dialogue.last("NOOP") == "250 2.0.0 OK"
    await dialogue.close()
    host, port = server.address("smtp_submissions")
    reader, writer = await asyncio.open_connection(host, port, ssl=client_tls())
    implicit = Dialogue(reader, writer)
    assert (await implicit.reply())[0].startswith("220 ")
    assert (await implicit.send("EHLO client.example.org"))[-1].startswith("250 ")
    assert await implicit.last("STARTTLS") == "503 5.5.1 TLS already active"
    await implicit.close()
