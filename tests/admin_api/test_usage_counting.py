"""The usage report counts what really happened: logins and deliveries, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

from sqlmodel import Session

from mailserver.delivery.dispatch import Delivery, QueueOptions, apply_delivery
from mailserver.delivery.queue import OutboundRecipient
from storage.accounts import note_login
from tests.admin_api.world import World

MESSAGE = b"From: lanpt@stc.hanoi.gov.vn\r\nSubject: Cong van\r\n\r\nNoi dung\r\n"


async def test_logins_and_deliveries_feed_the_report(world_any: World) -> None:
    store = world_any.instance.store
    thanh, lan = world_any.ids["mailbox_a"], world_any.ids["mailbox_b"]
    now = datetime.now(UTC)
    for success in (True, True, False):
        await store.write(partial(note_login, mailbox_id=thanh, success=success, max_failures=12))
    blob, indexed = await store.store_blob(MESSAGE)
    options = QueueOptions(
        sender="lanpt@stc.hanoi.gov.vn",
        now=now,
        lifetime=timedelta(days=5),
        authenticated_user="lanpt@stc.hanoi.gov.vn",
        source="submission",
    )
    # Lan sends one message to Thành (local) and to an outside address; then the MX delivers
    # one more to Thành from outside (no authenticated user: nothing "sent" by anyone here).
    delivery = Delivery([(thanh, "INBOX")], [OutboundRecipient("x@other.gov.vn")])

    def submit(session: Session) -> None:
        apply_delivery(session, blob, indexed, delivery, options)

    def inbound(session: Session) -> None:
        mx = QueueOptions(sender="x@other.gov.vn", now=now, lifetime=timedelta(days=5),
                          source="forward")  # fmt: skip
        apply_delivery(session, blob, indexed, Delivery([(thanh, "INBOX")]), mx)

    await store.write(submit)
    await store.write(inbound)
    report = (await world_any.get("system", "/v1/reports/usage")).json()
    by_name = {a["abbreviation"]: a["own"] for a in report["agencies"]}
    assert by_name["skhcn"] == {
        "mailboxes": 1, "active_7d": 1, "active_30d": 1, "sent": 0, "received": 2,
        "storage_bytes": 2 * len(MESSAGE), "never_used": 0,
    }  # fmt: skip
    assert (by_name["stc"]["sent"], by_name["stc"]["received"]) == (1, 0)
    assert by_name["stc"]["never_used"] == 1
    assert lan != thanh
