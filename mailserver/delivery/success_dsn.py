"""Success reports (RFC 3461 NOTIFY=SUCCESS): which recipients get one, and with what action.

At the end of DATA each accepted recipient that asked for SUCCESS is judged by what it resolved
to (RFC 3461 5.2.7, the choices Postfix's cleanup also weighs):
- one local mailbox (a mailbox, ``+tag``, or a single-target alias): ``delivered`` (5.2.3,
  5.2.7.2), once the commit that files the message is done;
- one outside address (submission to another domain, a single-target forward): nothing here;
  the queue passes NOTIFY and ORCPT on when the next server speaks DSN (5.2.1), or reports
  ``relayed`` when it does not (5.2.2; ``runner.py``);
- several targets (a group or multi-target alias): ``expanded`` now, and the targets inherit
  NOTIFY minus SUCCESS (RFC 3461 5.2.7.3), so the sender is not told once per member.

The report is written by ``dispatch.store_and_queue`` in the same transaction as the copies it
reports on: it exists if and only if the delivery committed, and is never sent twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mailserver.delivery.dsn import RecipientReport, build_dsn
from mailserver.delivery.queue import OutboundRecipient
from mailserver.smtp.esmtp import encode_xtext
from mailserver.smtp.protocol import AcceptedRecipient

LOCAL_DELIVERY = "delivered to mailbox"  # no SMTP code: no Diagnostic-Code line
EXPANDED = "expanded to several recipients"


@dataclass(frozen=True)
class SuccessRequest:
    """The success report one message owes its sender, built once the recipients are known."""

    reporting_mta: str
    reports: tuple[RecipientReport, ...]


def _expands(accepted: AcceptedRecipient) -> bool:
    return len(accepted.local_mailboxes) + len(accepted.remote) > 1


def _wants_success(accepted: AcceptedRecipient) -> bool:
    return "SUCCESS" in accepted.params.notify


def success_request(
    reporting_mta: str, accepted: Sequence[AcceptedRecipient]
) -> SuccessRequest | None:
    """What to report for ``accepted`` at commit time; None when nobody asked (the usual case)."""
    reports: list[RecipientReport] = []
    for recipient in accepted:
        if not _wants_success(recipient):
            continue
        if _expands(recipient):
            action, reply = "expanded", EXPANDED
        elif recipient.local_mailboxes:
            action, reply = "delivered", LOCAL_DELIVERY
        else:
            continue  # one outside address: the queue reports (relayed) or passes it on
        reports.append(
            RecipientReport(
                address=recipient.address, action=action, reply=reply, orcpt=recipient.params.orcpt
            )
        )
    return SuccessRequest(reporting_mta, tuple(reports)) if reports else None


def forwarded_recipient(accepted: AcceptedRecipient, address: str) -> OutboundRecipient:
    """The queue recipient for ``address``, one outside target of ``accepted``, with the DSN
    parameters RFC 3461 says travel on: NOTIFY (minus SUCCESS after an expansion, which was
    reported as ``expanded``), and ORCPT as the sender gave it, else the address the message
    was received for (RFC 3461 4.2: an added ORCPT names the RCPT address we received)."""
    notify = accepted.params.notify
    if _expands(accepted) and "SUCCESS" in notify:
        notify = tuple(n for n in notify if n != "SUCCESS") or ("NEVER",)
    orcpt = accepted.params.orcpt
    if orcpt is None and address != accepted.address:
        orcpt = f"rfc822;{encode_xtext(accepted.address)}"
    return OutboundRecipient(address, ",".join(notify) or None, orcpt)


def build_success_dsn(
    request: SuccessRequest,
    *,
    sender: str,
    original: bytes,
    arrival: datetime,
    envid: str | None,
    ret: str | None,
) -> bytes:
    """The report as a message (RFC 3464), from MAILER-DAEMON to ``sender``."""
    host = request.reporting_mta
    return build_dsn(
        reporting_mta=host,
        original_sender=sender,
        reports=request.reports,
        original=original,
        arrival=arrival,
        now=arrival,
        boundary=f"dsn-{secrets.token_hex(12)}",
        message_id=f"dsn.{secrets.token_hex(10)}@{host}",
        envid=envid,
        ret=ret,
    )
