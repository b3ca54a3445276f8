"""`govmail serve` with two worker processes: a real supervisor, real workers, real clients.

The supervisor hands each connection to the worker with the fewest, so with nothing else open
the first connection lands on worker 0 and the second on worker 1 (the IMAP session ids in the
log, ``w0i…``/``w1i…``, confirm it). What one worker commits must reach the IMAP sessions of
the other; per-IP limits and the failed-login throttle count the whole instance; a worker that
dies is replaced without losing what was acknowledged.
"""

from __future__ import annotations

import imaplib
import os
import re
import signal
import smtplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.process import ServerProcess, govmail_env, run_cli, start_server

DOMAIN = "haiworker.gov.vn"
USERS = {f"u{i}@{DOMAIN}": f"Mat-khau#2026-{i}" for i in range(2)}
WAIT_SECONDS = 20.0


def _mail(n: int, to: str) -> bytes:
    return (
        f"From: ngoai@example.gov.vn\r\nTo: {to}\r\nSubject: thu {n}\r\n"
        f"Message-ID: <worker-{n}@example.gov.vn>\r\n\r\nnoi dung {n}\r\n"
    ).encode()


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[ServerProcess]:
    database = "" if db_url.startswith("sqlite") else db_url
    env = govmail_env(GOVMAIL_DATABASE__URL=database)
    data = tmp_path / "inst"
    assert run_cli("init", "--data-dir", str(data), "--domain", DOMAIN, env=env).returncode == 0
    config = data / "govmail.toml"
    for address, password in USERS.items():
        added = run_cli(
            "mailbox", "add", address, "--password-stdin", "-c", str(config),
            stdin=password + "\n", env=env,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    extra = {
        "GOVMAIL_SERVER__WORKERS": "2",
        "GOVMAIL_IMAP__MAX_CONNECTIONS_PER_IP": "3",
        "GOVMAIL_AUTH__MAX_FAILURES_PER_IP": "2",
        "GOVMAIL_AUTH__FAILED_LOGIN_DELAY_SECONDS": "0",
    }
    if database:
        extra["GOVMAIL_DATABASE__URL"] = database
    process = start_server(config, **extra)
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.terminate()


def _wait_for_log(server: ServerProcess, pattern: str, after: int = 0) -> re.Match[str]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for line in list(server.log_lines)[after:]:
            match = re.search(pattern, line)
            if match:
                return match
        time.sleep(0.05)
    raise AssertionError(f"no log line matching {pattern!r}")


def _imap(server: ServerProcess) -> imaplib.IMAP4:
    return imaplib.IMAP4(*server.bound["imap"], timeout=WAIT_SECONDS)


def _session_ids(server: ServerProcess) -> list[str]:
    found = []
    for line in list(server.log_lines):
        match = re.search(r"event=imap_connect session=(\S+)", line)
        if match:
            found.append(match.group(1))
    return found


def test_both_workers_serve_and_see_each_others_changes(server: ServerProcess) -> None:
    assert "workers=2" in "\n".join(server.log_lines)
    user, password = next(iter(USERS.items()))
    watcher = _imap(server)  # worker 0: nothing else is open
    watcher.login(user, password)
    watcher.select("INBOX")
    other = _imap(server)  # worker 1: worker 0 has one connection
    other.login(user, password)
    other.select("INBOX")
    assert [s[:2] for s in _session_ids(server)] == ["w0", "w1"]

    # A delivery committed by worker 1's SMTP session wakes worker 0's IDLE.
    tag = watcher._new_tag().decode()
    watcher.send(f"{tag} IDLE\r\n".encode())
    assert watcher.readline().startswith(b"+")
    with smtplib.SMTP(*server.bound["smtp_mx"], timeout=WAIT_SECONDS) as smtp:
        smtp.sendmail("ngoai@example.gov.vn", [user], _mail(1, user))
    assert re.match(rb"\* 1 EXISTS", watcher.readline())
    assert watcher.readline() == b"* 1 RECENT\r\n"  # the first session to see it
    watcher.send(b"DONE\r\n")
    assert watcher.readline().startswith(tag.encode() + b" OK")

    # A flag set on worker 1 is announced on worker 0 at a later command (the change travels
    # through the supervisor, so the first NOOP may come before it).
    other.noop()
    typ, _ = other.store("1", "+FLAGS", "(\\Flagged)")
    assert typ == "OK"
    deadline = time.monotonic() + WAIT_SECONDS
    announced: list[bytes] = []
    while not announced:
        assert time.monotonic() < deadline, "the flag change never reached worker 0"
        typ, _ = watcher.noop()
        assert typ == "OK"
        fetched = watcher.untagged_responses.pop("FETCH", [])
        announced = [i for i in fetched if isinstance(i, bytes) and b"\\Flagged" in i]
    for client in (watcher, other):
        client.logout()


def test_per_ip_limit_and_login_throttle_count_the_whole_instance(server: ServerProcess) -> None:
    held = [_imap(server) for _ in range(3)]  # two on one worker, one on the other
    with socket.create_connection(server.bound["imap"], timeout=WAIT_SECONDS) as refused:
        greeting = refused.makefile("rb").readline()
    assert greeting.startswith(b"* BYE [UNAVAILABLE]"), greeting
    held.pop().logout()
    # The supervisor learns of the close from the worker; a new connection is then admitted.
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            held.append(_imap(server))
            break
        except imaplib.IMAP4.error as exc:
            assert "UNAVAILABLE" in str(exc)
            assert time.monotonic() < deadline, "the closed connection was never released"
            time.sleep(0.05)

    # Failed logins: one on each worker uses up the limit of 2 for this address on both.
    user = next(iter(USERS))
    for client in held[:2]:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login(user, "wrong password")
    for client in held:
        with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
            client.login(user, USERS[user])
    for client in held:
        client.logout()


def test_a_dead_worker_is_replaced_and_nothing_acknowledged_is_lost(
    server: ServerProcess,
) -> None:
    user, password = list(USERS.items())[1]
    with smtplib.SMTP(*server.bound["smtp_mx"], timeout=WAIT_SECONDS) as smtp:
        for n in range(5):
            smtp.sendmail("ngoai@example.gov.vn", [user], _mail(100 + n, user))
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("ngoai@example.gov.vn", [f"khong-co@{DOMAIN}"], _mail(99, user))
    # One log line per accepted message, naming its recipients; refused recipients on their own.
    _wait_for_log(server, rf"event=rcpt .*rcpt=<?khong-co@{DOMAIN}")
    accepted = [line for line in list(server.log_lines) if "event=accepted" in line]
    assert len(accepted) == 5 and all(f"rcpts={user}" in line for line in accepted), accepted
    assert not any("event=rcpt " in line and user in line for line in server.log_lines)
    pid = int(_wait_for_log(server, r"event=worker_ready worker=1 pid=(\d+)").group(1))
    mark = len(server.log_lines)
    os.kill(pid, signal.SIGKILL)
    _wait_for_log(server, r"event=worker_died worker=1", mark)
    _wait_for_log(server, rf"event=worker_ready worker=1 pid=(?!{pid}\b)\d+", mark)

    clients = [_imap(server) for _ in range(2)]  # one on each worker, the new one included
    for client in clients:
        client.login(user, password)
        typ, data = client.select("INBOX")
        assert (typ, data) == ("OK", [b"5"])
        client.logout()
    assert server.terminate() == 0
    # The five were committed by the supervisor's one writer (mailserver.instance_writer).
    assert any("event=stopped workers=2 shared_deliveries=5" in line for line in server.log_lines)


def test_the_supervisor_indexes_and_spills_what_every_worker_delivered(
    server: ServerProcess, db_url: str, tmp_path: Path
) -> None:
    """The upkeep runs beside the instance writer: each message's bytes, committed inline with
    its delivery, reach their blob file, and its text reaches the text index."""
    user, password = next(iter(USERS.items()))
    for n in range(6):  # one connection each: the supervisor alternates the workers
        with smtplib.SMTP(*server.bound["smtp_mx"], timeout=WAIT_SECONDS) as smtp:
            smtp.sendmail("ngoai@example.gov.vn", [user], _mail(200 + n, user))
    url = (
        db_url if not db_url.startswith("sqlite") else f"sqlite:///{tmp_path}/inst/govmail.sqlite3"
    )
    engine = create_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    deadline = time.monotonic() + WAIT_SECONDS
    with engine.connect() as connection:
        while True:
            inline = connection.execute(text("SELECT count(*) FROM blob_inline")).scalar_one()
            last = connection.execute(text("SELECT max(id) FROM message_text")).scalar_one()
            if sqlite:
                upto = connection.execute(
                    text("SELECT indexed_upto FROM search_index_state")
                ).scalar_one()
            else:  # PostgreSQL marks rows instead (migration 0011)
                upto = connection.execute(
                    text("SELECT max(id) FROM message_text WHERE indexed")
                ).scalar_one()
            connection.rollback()
            if (inline == 0 and upto == last) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert (inline, upto, last) == (0, 6, 6)
        digests = connection.execute(text("SELECT sha256 FROM blob")).scalars().all()
        if sqlite:
            hits = connection.execute(
                text("SELECT count(*) FROM message_text_fts WHERE message_text_fts MATCH :q"),
                {"q": '"dung 203"'},
            ).scalar_one()
            assert hits == 1
    engine.dispose()
    blobs = tmp_path / "inst" / "blobs"
    assert len(digests) == 6
    assert all((blobs / d[:2] / d[2:4] / d).is_file() for d in digests)
    client = _imap(server)
    client.login(user, password)
    client.select("INBOX")
    assert client.uid("SEARCH", "BODY", '"noi dung 203"') == ("OK", [b"4"])
    typ, data = client.uid("FETCH", "4", "(BODY.PEEK[TEXT])")
    assert typ == "OK" and b"noi dung 203" in data[0][1]
    client.logout()


def test_a_huge_expunge_is_relayed_in_pieces_that_fit_the_link() -> None:
    import pickle

    from mailserver.worker_link import MAX_MESSAGE
    from storage.changes import FlagsChanged, MessagesExpunged, in_pieces

    change = MessagesExpunged(1, 2, tuple(range(1, 250_001)), 9)
    flags = FlagsChanged(1, 2, 7, 10, frozenset({"\\Seen"}))
    pieces = in_pieces([change, flags])
    flat = [one for piece in pieces for one in piece]
    expunges = [one for one in flat if isinstance(one, MessagesExpunged)]
    assert [uid for one in expunges for uid in one.uids] == list(change.uids)
    assert len(expunges) > 1 and flat[-1] == flags  # in order, the flag change last
    assert all(one.modseq == 9 and one.folder_id == 2 for one in expunges)
    assert all(len(pickle.dumps(("changes", piece))) < MAX_MESSAGE for piece in pieces)
    assert in_pieces([MessagesExpunged(1, 2, (5,), 3)]) == [[MessagesExpunged(1, 2, (5,), 3)]]


def test_a_worker_that_cannot_start_stops_the_server_with_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "inst"
    env = govmail_env()
    assert run_cli("init", "--data-dir", str(data), "--domain", DOMAIN, env=env).returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "serve",
            "--config",
            str(data / "govmail.toml"),
            env=govmail_env(
                GOVMAIL_SERVER__WORKERS="2",
                GOVMAIL_ADMIN_API__LISTEN=f"127.0.0.1:{port}",  # worker 0 cannot bind it
                GOVMAIL_SMTP__MX_LISTEN="127.0.0.1:0",
                GOVMAIL_SMTP__SUBMISSION_LISTEN="127.0.0.1:0",
                GOVMAIL_SMTP__SUBMISSIONS_LISTEN="127.0.0.1:0",
                GOVMAIL_IMAP__LISTEN="127.0.0.1:0",
                GOVMAIL_IMAP__TLS_LISTEN="127.0.0.1:0",
            ),
        )
    assert result.returncode != 0
    assert "cannot start: the worker processes did not start" in result.stderr
    assert "Traceback" not in result.stderr.splitlines()[-1]
