"""Seeded fuzzing of SMTP (and IMAP commands) per protocol state, over real sockets.

For each state, a fixed number of hostile lines (tests/support/protocol_fuzz.py): every line
gets well-formed replies, never SMTP's ``421 4.3.0 Internal error`` nor IMAP's ``NO
[SERVERBUG]``, the connection is closed after any 421 (or BYE), nothing is logged as an error
or with a traceback, and a normal session works afterwards. benchmarks/fuzz_protocols.py runs
the same fuzzer for minutes.
"""

from __future__ import annotations

import imaplib
import logging
import random
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.smtp.helpers import DOMAIN, Arrivals, blocking, client_tls, message
from tests.support.harness import TEST_PASSWORD, LiveServer, serving
from tests.support.harness import test_config as make_config
from tests.support.protocol_fuzz import (
    IMAP_STATES,
    SMTP_STATES,
    FuzzStats,
    Target,
    fuzz_imap,
    fuzz_smtp,
    imap_lines,
    smtp_lines,
)

USER = f"an@{DOMAIN}"
SEED = 20261207
SMTP_LINES_PER_STATE = 2000
IMAP_LINES_PER_STATE = 1000

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
async def server(tmp_path: Path, db_url: str) -> AsyncIterator[LiveServer]:
    # Fuzzing is many sessions and wrong passwords from one address; the per-IP limit and the
    # lockouts are tested elsewhere.
    config = make_config(
        tmp_path / "data",
        db_url,
        smtp={"max_connections_per_ip": 1000},
        imap={"max_connections_per_ip": 1000},
        auth={"max_failed_logins": 1_000_000, "max_failures_per_ip": 1_000_000},
    )
    async with serving(config, USER) as live:
        yield live


def _target(server: LiveServer) -> Target:
    return Target(
        smtp_mx=server.address("smtp_mx"),
        smtp_submissions=server.address("smtp_submissions"),
        imap=server.address("imap"),
        imaps=server.address("imaps"),
        user=USER,
        password=TEST_PASSWORD,
    )


def _problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records that are errors or carry a traceback."""
    return [
        f"{record.name}: {record.getMessage()[:200]}"
        for record in caplog.records
        if record.levelno >= logging.ERROR or record.exc_info or record.exc_text
    ]


def _smtp_session_works(address: tuple[str, int]) -> None:
    with smtplib.SMTP(*address, timeout=10) as client:
        client.starttls(context=client_tls())
        client.sendmail("someone@example.org", [USER], message("someone@example.org", USER))


@pytest.mark.parametrize("state", SMTP_STATES)
async def test_smtp_fuzz(server: LiveServer, state: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    rng = random.Random(f"{SEED}-smtp-{state}")
    lines = smtp_lines(rng, SMTP_LINES_PER_STATE, USER, TEST_PASSWORD)
    stats = FuzzStats()
    await fuzz_smtp(_target(server), state, lines, stats)
    assert stats.violations == []
    assert stats.commands >= SMTP_LINES_PER_STATE
    assert _problems(caplog) == []
    # The fuzzer reached the replies it aims at (a run that only saw 500s would prove little).
    assert {"250", "500", "501"} <= set(stats.replies)
    arrivals = await Arrivals.watch(server, USER)
    await blocking(_smtp_session_works, server.address("smtp_mx"))
    await arrivals.reach(1)


def _imap_session_works(address: tuple[str, int]) -> tuple[str, list[bytes | None]]:
    with imaplib.IMAP4_SSL(*address, ssl_context=client_tls(), timeout=10) as client:
        client.login(USER, TEST_PASSWORD)
        result = client.select("INBOX")
        client.logout()
        return result[0], result[1]


@pytest.mark.parametrize("state", IMAP_STATES)
async def test_imap_fuzz(server: LiveServer, state: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await blocking(_smtp_session_works, server.address("smtp_mx"))  # something to FETCH
    rng = random.Random(f"{SEED}-imap-{state}")
    lines = imap_lines(rng, IMAP_LINES_PER_STATE, USER, TEST_PASSWORD)
    stats = FuzzStats()
    await fuzz_imap(_target(server), state, lines, stats)
    assert stats.violations == []
    assert stats.commands >= IMAP_LINES_PER_STATE
    assert _problems(caplog) == []
    assert {"OK", "BAD"} <= set(stats.replies)
    status, _ = await blocking(_imap_session_works, server.address("imaps"))
    assert status == "OK"
