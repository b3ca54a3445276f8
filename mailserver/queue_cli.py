"""`govmail queue list | show ID | retry ID | delete ID | bounce ID`: the outbound queue by hand.

These work on the database directly, so they run beside a live server (or several): ``retry``
makes an entry due at once (a running server's workers pick it up within ``queue.poll_seconds``);
``bounce`` fails every pending recipient now and sends the DSN to the sender in the same
transaction; ``delete`` drops the entry without any DSN. Each is written to the audit table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mailserver.cli import CLI_ACTOR, ConfigOption, fail, opened, say_empty

if TYPE_CHECKING:
    from mailserver.delivery.queue import EntryView
    from mailserver.instance import Instance

queue_app: typer.Typer = typer.Typer(
    help="Inspect and manage the outbound queue.", no_args_is_help=True
)
BOUNCE_REPLY = "550 5.3.0 Returned to sender by the postmaster"


def _row(entry: EntryView) -> dict[str, Any]:
    return {
        "id": entry.id,
        "state": entry.state,
        "sender": entry.sender,
        "size": entry.size,
        "created_at": entry.created_at.isoformat(timespec="seconds"),
        "next_attempt_at": entry.next_attempt_at.isoformat(timespec="seconds"),
        "expires_at": entry.expires_at.isoformat(timespec="seconds"),
        "attempts": entry.attempts,
        "source": entry.source,
        "authenticated_user": entry.authenticated_user,
        "recipients": [
            {
                "address": r.address,
                "status": r.status,
                "attempts": r.attempts,
                "last_reply": r.last_reply,
            }
            for r in entry.recipients
        ],
    }


@queue_app.command("list")
def queue_list(
    include_done: Annotated[bool, typer.Option("--all", help="Include finished entries.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
    config: ConfigOption = None,
) -> None:
    """Entries: id, state, attempts, next attempt, sender, pending/total recipients."""
    from mailserver.delivery.queue import list_entries

    with opened(config) as instance, instance.db.read_session() as session:
        entries = list_entries(session, include_done)
    if as_json:
        typer.echo(json.dumps([_row(e) for e in entries], ensure_ascii=False))
        return
    if not entries:
        say_empty("queue entries" if include_done else "pending queue entries")
    for e in entries:
        typer.echo(
            f"{e.id}\t{e.state}\t{e.attempts}\t{e.next_attempt_at.isoformat(timespec='seconds')}"
            f"\t<{e.sender}>\t{len(e.pending())}/{len(e.recipients)}"
        )


@queue_app.command("show")
def queue_show(entry_id: int, config: ConfigOption = None) -> None:
    """One entry with every recipient's status and last reply (JSON)."""
    from mailserver.delivery.queue import get_entry

    with opened(config) as instance, instance.db.read_session() as session:
        entry = get_entry(session, entry_id)
    if entry is None:
        raise fail(f"no queue entry {entry_id}")
    typer.echo(json.dumps(_row(entry), ensure_ascii=False, indent=2))


def _admin(config: Path | None, entry_id: int, action: str, fn: Any) -> None:
    from mailserver.delivery.queue import QueueError
    from storage.accounts import audit

    with opened(config) as instance:
        try:
            with instance.db.write_session() as session:
                fn(session)
                audit(session, CLI_ACTOR, f"queue.{action}", "queue_entry", str(entry_id))
        except QueueError as exc:
            raise fail(str(exc)) from exc


@queue_app.command("retry")
def queue_retry(entry_id: int, config: ConfigOption = None) -> None:
    """Make an entry due now."""
    from datetime import UTC, datetime

    from mailserver.delivery.queue import retry_now

    _admin(config, entry_id, "retry", lambda s: retry_now(s, entry_id, datetime.now(UTC)))
    typer.echo(f"entry {entry_id} is due now")


@queue_app.command("delete")
def queue_delete(entry_id: int, config: ConfigOption = None) -> None:
    """Remove an entry without telling the sender."""
    from mailserver.delivery.queue import delete_entry

    _admin(config, entry_id, "delete", lambda s: delete_entry(s, entry_id))
    typer.echo(f"deleted entry {entry_id}")


async def bounce_entry(instance: Instance, entry_id: int) -> int:
    """Fail the entry's pending recipients now, with the DSN; returns how many were failed."""
    from datetime import UTC, datetime, timedelta

    from sqlmodel import Session

    from mailserver.delivery.queue import FAILED, RecipientOutcome, claim_entry
    from mailserver.delivery.routing import DNSMXResolver, Router
    from mailserver.delivery.runner import Attempt, QueueRunner
    from storage.accounts import audit

    store = instance.store
    await store.start()
    try:
        now = datetime.now(UTC)
        lease = timedelta(seconds=instance.config.queue.claim_seconds)

        def claim(session: Session) -> EntryView:
            entry = claim_entry(session, entry_id, "cli", now, lease)
            audit(session, CLI_ACTOR, "queue.bounce", "queue_entry", str(entry_id))
            return entry

        entry = await store.write(claim)
        pending = entry.pending()
        outcomes = {r.id: RecipientOutcome(r.id, FAILED, BOUNCE_REPLY) for r in pending}
        runner = QueueRunner(store, instance.config, Router([], DNSMXResolver()))
        message = await store.offload(store.blobs.read, entry.blob_sha256)
        await runner.conclude(entry, Attempt(outcomes, {}), message)
        return len(pending)
    finally:
        await store.close()


@queue_app.command("bounce")
def queue_bounce(entry_id: int, config: ConfigOption = None) -> None:
    """Give up on an entry now: its pending recipients fail and the sender gets a DSN."""
    import asyncio

    from mailserver.delivery.queue import QueueError

    with opened(config) as instance:
        try:
            count = asyncio.run(bounce_entry(instance, entry_id))
        except QueueError as exc:
            raise fail(str(exc)) from exc
    typer.echo(f"bounced entry {entry_id} ({count} recipients)")
