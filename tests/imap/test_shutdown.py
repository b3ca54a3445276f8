"""SIGTERM to a real `govmail serve`: idle IMAP sessions get BYE and the process exits at once;
the grace period is for commands in flight only (issue 18: one idle TLS session took 32 s)."""

from __future__ import annotations

import imaplib
import signal
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.process import ServerProcess, govmail_env, run_cli, start_server

DOMAIN = "tatmay.gov.vn"
USER = f"vanthu@{DOMAIN}"
PASSWORD = "Mat-khau#2026"
GRACE_SECONDS = 30
# Well within the grace period: nothing is in flight, so nothing should be waited for.
EXIT_WITHIN_SECONDS = 5.0
CLIENT_TIMEOUT = 20.0


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the instance's certificate is self-signed
    return context


@pytest.fixture(params=["1", "2"], ids=["single-process", "two-workers"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    env = govmail_env()
    data = tmp_path / "inst"
    assert run_cli("init", "--data-dir", str(data), "--domain", DOMAIN, env=env).returncode == 0
    config = data / "govmail.toml"
    added = run_cli(
        "mailbox", "add", USER, "--password-stdin", "-c", str(config),
        stdin=PASSWORD + "\n", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    process = start_server(
        config,
        GOVMAIL_SERVER__WORKERS=request.param,
        GOVMAIL_SERVER__SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
    )
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.kill()


def _logged_in(server: ServerProcess, listener: str) -> imaplib.IMAP4:
    host, port = server.bound[listener]
    client: imaplib.IMAP4
    if listener == "imaps":
        client = imaplib.IMAP4_SSL(
            host, port, ssl_context=_insecure_context(), timeout=CLIENT_TIMEOUT
        )
    else:
        client = imaplib.IMAP4(host, port, timeout=CLIENT_TIMEOUT)
    client.login(USER, PASSWORD)
    return client


def test_sigterm_says_bye_to_idle_and_idling_sessions_and_exits_at_once(
    server: ServerProcess,
) -> None:
    # TLS sessions: closing one used to wait for the client's close_notify, which never came.
    waiting = _logged_in(server, "imaps")
    plain = _logged_in(server, "imap")
    idling = _logged_in(server, "imaps")
    idling.select("INBOX")
    idling.send(idling._new_tag() + b" IDLE\r\n")
    assert idling.readline() == b"+ idling\r\n"

    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    received = {
        name: client.readline()
        for name, client in (("waiting", waiting), ("plain", plain), ("idling", idling))
    }
    status = server.process.wait(timeout=GRACE_SECONDS + 15)
    elapsed = time.monotonic() - started

    assert received == dict.fromkeys(
        ("waiting", "plain", "idling"), b"* BYE Server shutting down\r\n"
    )
    assert status == 0
    assert elapsed < EXIT_WITHIN_SECONDS, f"exit took {elapsed:.1f} s"
    for client in (waiting, plain, idling):
        client.shutdown()
