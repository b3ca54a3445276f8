"""No acknowledged message is lost, and no half-written one becomes visible, across crashes.

The process is killed at the two dangerous moments (after the blob is on disk but before its
row commits; just before the commit), and a real server is SIGKILLed under SMTP load, several
times over, on SQLite and PostgreSQL: every message that got its 250 must be there after
restart, exactly once.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import smtplib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from storage.blobs import BlobStore
from storage.db import open_database
from storage.inline_blobs import inline_source
from storage.models import Blob, Message
from storage.store import MailStore
from tests.storage.test_mailbox_semantics import folder_of, make_mailbox, message, uids
from tests.support.process import ServerProcess, govmail_env, run_cli, start_server

CRASH_SCRIPT = """
import asyncio, os, sys
from pathlib import Path
from storage.blobs import BlobStore
from storage.db import open_database
from storage.inline_blobs import inline_source
from storage.inline_blobs import inline_source
from storage.store import FAULT_ENV, MailStore

async def main() -> None:
    url, blob_dir, mailbox_id, point = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    store = MailStore(open_database(url), BlobStore(Path(blob_dir)))
    await store.start()
    first = await store.append(mailbox_id, "INBOX", sys.stdin.buffer.read(), ())
    print("ACK", first.uid, flush=True)
    os.environ[FAULT_ENV] = point
    await store.append(mailbox_id, "INBOX", b"Subject: doomed\\r\\n\\r\\nnever seen\\r\\n")
    print("NOT REACHED", flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("point", ["after_blob_write", "before_commit"])
async def test_crash_between_blob_and_commit(
    point: str, mail_store: MailStore, db_url: str, tmp_path: Path
) -> None:
    mailbox_id = await make_mailbox(mail_store, "an@sotest.gov.vn")
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-c",
            CRASH_SCRIPT,
            db_url,
            str(tmp_path / "blobs"),
            str(mailbox_id),
            point,
        ],
        input=message(1),
        capture_output=True,
        timeout=60,
        env=govmail_env(),
    )
    assert result.returncode == 137, result.stderr.decode()
    assert result.stdout.decode().split() == ["ACK", "1"]
    inbox = await folder_of(mail_store, mailbox_id)
    assert inbox.id is not None
    assert await uids(mail_store, inbox.id) == [1]  # the acknowledged one, only
    doomed = hashlib.sha256(b"Subject: doomed\r\n\r\nnever seen\r\n").hexdigest()
    # The doomed bytes may be on disk (written first, by design) but nothing refers to them.
    assert mail_store.blobs.exists(doomed)
    rows = await mail_store.read(lambda s: list(s.exec(select(Blob.sha256))))
    assert doomed not in rows and len(rows) == 1
    # The store carries on: the next message gets a UID above every visible one.
    again = await mail_store.append(mailbox_id, "INBOX", message(2))
    assert again.uid == 2
    assert await uids(mail_store, inbox.id) == [1, 2]


def _mail(n: int) -> bytes:
    return (
        f"From: load@example.gov.vn\r\nTo: an@sotest.gov.vn\r\nSubject: load {n}\r\n"
        f"Message-ID: <load-{n}@example.gov.vn>\r\n\r\nbody {n}\r\n"
    ).encode()


KILL_CYCLES = 3
ACKS_PER_CYCLE = 40


def _wait_for_banner(host: str, port: int) -> None:
    """Until the MX greets with 220: the restarted server really takes mail before the next kill."""
    with smtplib.SMTP(timeout=30) as probe:
        code, banner = probe.connect(host, port)
        assert code == 220, banner


def _load_until_killed(server: ServerProcess, counter: Iterator[int]) -> set[int]:
    """Four SMTP clients send until ACKS_PER_CYCLE messages are acknowledged; then SIGKILL.
    Returns the numbers of the messages that got their 250."""
    host, port = server.bound["smtp_mx"]
    _wait_for_banner(host, port)
    acknowledged: list[int] = []
    lock = threading.Lock()
    enough = threading.Event()

    def sender() -> None:
        try:
            with smtplib.SMTP(host, port, timeout=20) as client:
                while not enough.is_set():
                    with lock:
                        n = next(counter)
                    client.sendmail("load@example.gov.vn", ["an@sotest.gov.vn"], _mail(n))
                    with lock:
                        acknowledged.append(n)
                        if len(acknowledged) >= ACKS_PER_CYCLE:
                            enough.set()
        except (OSError, smtplib.SMTPException):
            return  # the server died under us: expected

    threads = [threading.Thread(target=sender) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        assert enough.wait(timeout=120), "the server acknowledged too few messages"
    finally:
        server.kill()  # also when the assertion fails: no server outlives the test
        for thread in threads:
            thread.join(timeout=60)
    with lock:
        return set(acknowledged)


@pytest.mark.timeout(300)  # four server starts
def test_sigkill_under_smtp_load_loses_no_acknowledged_message(tmp_path: Path, db_url: str) -> None:
    """Several kill -9 cycles, on SQLite and PostgreSQL, each carrying load: the server is
    killed while four clients send, restarted, and killed again once it greets."""
    env = govmail_env(GOVMAIL_DATABASE__URL="" if db_url.startswith("sqlite") else db_url)
    data = tmp_path / "inst"
    assert (
        run_cli("init", "--data-dir", str(data), "--domain", "sotest.gov.vn", env=env).returncode
        == 0
    )
    config = data / "govmail.toml"
    added = run_cli(
        "mailbox",
        "add",
        "an@sotest.gov.vn",
        "--password-stdin",
        "-c",
        str(config),
        stdin="Mat-khau#2026\n",
        env=env,
    )
    assert added.returncode == 0, added.stderr
    extra = {} if db_url.startswith("sqlite") else {"GOVMAIL_DATABASE__URL": db_url}
    counter = itertools.count()
    promised: set[int] = set()
    for _ in range(KILL_CYCLES):
        promised |= _load_until_killed(start_server(config, **extra), counter)
    assert len(promised) >= KILL_CYCLES * ACKS_PER_CYCLE

    restarted = start_server(config, **extra)
    try:
        url = db_url if not db_url.startswith("sqlite") else f"sqlite:///{data / 'govmail.sqlite3'}"
        db = open_database(url)
        with db.read_session() as session:
            ids = list(session.exec(select(Message.message_id)))
            shas = set(session.exec(select(Message.blob_sha256)))
        stored = [int(i.removeprefix("<load-").partition("@")[0]) for i in ids]
        assert len(stored) == len(set(stored)), "a message was delivered twice"
        missing = promised - set(stored)
        assert not missing, f"acknowledged but lost: {sorted(missing)}"
        # No row without its bytes: in its file, or still in the database (storage.inline_blobs).
        blobs = BlobStore(data / "blobs", inline_max_bytes=1 << 20, inline_source=inline_source(db))
        contents = blobs.read_many([(sha, None) for sha in sorted(shas)])
        assert [hashlib.sha256(raw).hexdigest() for raw in contents] == sorted(shas)
        db.dispose()
    finally:
        assert restarted.terminate() == 0
