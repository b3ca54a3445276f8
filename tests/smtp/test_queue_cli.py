"""`govmail queue list | show | retry | delete | bounce` as a real process on a real data dir."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session, select

from mailserver.config import load_config
from mailserver.delivery.dispatch import Delivery, QueueOptions, store_and_queue
from mailserver.delivery.queue import OutboundRecipient
from mailserver.instance import open_instance
from storage.models import AuditEvent, Blob, Folder, Mailbox, Message
from tests.support.process import govmail_env, run_cli

SENDER = "an@sotest.gov.vn"


async def test_queue_commands(tmp_path: Path) -> None:
    env = govmail_env()
    data = tmp_path / "inst"
    assert (
        run_cli("init", "--data-dir", str(data), "--domain", "sotest.gov.vn", env=env).returncode
        == 0
    )
    config_path = data / "govmail.toml"
    added = run_cli(
        "mailbox",
        "add",
        SENDER,
        "--password-stdin",
        "-c",
        str(config_path),
        stdin="Mat-khau#2026\n",
        env=env,
    )
    assert added.returncode == 0, added.stderr
    instance = open_instance(load_config(config_path))
    store = instance.store
    await store.start()
    now = datetime.now(UTC)
    options = QueueOptions(sender=SENDER, now=now, lifetime=timedelta(days=5))
    raw = b"From: an@sotest.gov.vn\r\nSubject: x\r\n\r\nx\r\n"
    ids = [
        await store_and_queue(
            store, raw, Delivery(remote=[OutboundRecipient(f"u{n}@example.org")]), options
        )
        for n in range(3)
    ]
    await store.close()

    def cli(*args: str) -> str:
        result = run_cli("queue", *args, "-c", str(config_path), env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    lines = cli("list").splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(i) for i in ids]
    assert lines[0].split("\t")[1:3] == ["queued", "0"]
    assert lines[0].split("\t")[4:] == [f"<{SENDER}>", "1/1"]
    shown = json.loads(cli("show", str(ids[0])))
    assert shown["recipients"] == [
        {"address": "u0@example.org", "status": "pending", "attempts": 0, "last_reply": None}
    ]
    assert cli("retry", str(ids[0])) == f"entry {ids[0]} is due now\n"
    assert cli("delete", str(ids[1])) == f"deleted entry {ids[1]}\n"
    assert cli("bounce", str(ids[2])) == f"bounced entry {ids[2]} (1 recipients)\n"
    remaining = json.loads(cli("list", "--all", "--json"))
    assert [(e["id"], e["state"]) for e in remaining] == [(ids[0], "queued"), (ids[2], "done")]
    assert remaining[1]["recipients"][0]["status"] == "failed"
    missing = run_cli("queue", "show", "999", "-c", str(config_path), env=env)
    assert (missing.returncode, missing.stderr) == (1, "error: no queue entry 999\n")
    again = run_cli("queue", "bounce", str(ids[2]), "-c", str(config_path), env=env)
    assert again.stderr == f"error: queue entry {ids[2]} is already finished\n"

    with instance.db.read_session() as session:
        # Search columns hold folded text.
        assert _inbox_subjects(session) == ["undelivered mail returned to sender"]
        actions = session.exec(select(AuditEvent.action).where(AuditEvent.actor == "cli")).all()
        assert [a for a in actions if a.startswith("queue.")] == [
            "queue.retry",
            "queue.delete",
            "queue.bounce",
        ]
        # One queued message still holds the blob; the DSN is its own blob.
        refcounts = sorted(session.exec(select(Blob.refcount)).all())
        assert refcounts == [1, 1]
    instance.db.dispose()


def _inbox_subjects(session: Session) -> list[str]:
    rows = session.exec(
        select(Message.subject)
        .join(Folder, Folder.id == Message.folder_id)  # type: ignore[arg-type]
        .join(Mailbox, Mailbox.id == Folder.mailbox_id)  # type: ignore[arg-type]
        .where(Mailbox.address == SENDER, Folder.name == "INBOX")
    ).all()
    return list(rows)
