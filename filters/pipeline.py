"""The message pipeline: an ordered list of checks applied to a message before it is accepted.

The SMTP handlers call ``Pipeline.run`` once per message at DATA, for inbound (MX) and outbound
(submission) mail separately. Each check is one class with one async method over the message
and its context, returning a ``Verdict``: headers to add or remove, and what to do with the
message. The pipeline applies the verdicts in order; the first reject or tempfail stops it.
Checks are composed from the configuration (``filters.registry``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

log = logging.getLogger(__name__)


class Direction(StrEnum):
    INBOUND = "inbound"  # from another server, through MX
    OUTBOUND = "outbound"  # from an authenticated user, through submission


class Action(StrEnum):
    ACCEPT = "accept"
    JUNK = "junk"  # accept, but into the Junk folder
    REJECT = "reject"  # permanent refusal at DATA (5xx), no bounce is ever generated
    TEMPFAIL = "tempfail"  # 4xx at DATA: the sender retries


@dataclass(frozen=True)
class MessageContext:
    """What a check may know about the transaction besides the bytes."""

    direction: Direction
    peer_ip: str
    helo: str
    mail_from: str  # envelope sender, "" for the null path
    recipients: tuple[str, ...]
    authenticated_user: str | None = None
    tls: bool = False
    queue_id: str = ""


@dataclass(frozen=True)
class Verdict:
    """One check's decision. ``reply`` is the SMTP reply for REJECT/TEMPFAIL."""

    check: str
    action: Action = Action.ACCEPT
    reply: str | None = None
    add_headers: tuple[tuple[str, str], ...] = ()  # prepended, in order
    remove_headers: tuple[str, ...] = ()  # names removed before adding (e.g. forged A-R)
    detail: str = ""  # for the log line
    # Per-recipient placement (sender allow/block lists): (lower-case address, ACCEPT or JUNK).
    recipient_actions: tuple[tuple[str, Action], ...] = ()


class Check(Protocol):
    """One check or transformation of the pipeline."""

    name: str

    async def check(self, message: bytes, context: MessageContext) -> Verdict: ...


@dataclass(frozen=True)
class PipelineResult:
    message: bytes  # with headers removed and added
    action: Action
    reply: str | None
    verdicts: tuple[Verdict, ...] = field(default_factory=tuple)
    recipient_actions: dict[str, Action] = field(default_factory=dict)

    def action_for(self, recipient: str) -> Action:
        """Where one recipient's copy goes (ACCEPT: INBOX, JUNK: Junk) when the message is
        accepted; a recipient's own allow/block entry wins over the message-wide verdict."""
        if self.action in (Action.REJECT, Action.TEMPFAIL):
            return self.action
        return self.recipient_actions.get(recipient.lower(), self.action)


def remove_header_fields(message: bytes, names: Sequence[str]) -> bytes:
    """Drop every header field named in ``names`` (case-insensitive), folded lines included."""
    if not names:
        return message
    wanted = {n.lower().encode("ascii") for n in names}
    end = message.find(b"\r\n\r\n")
    if end < 0:
        end = message.find(b"\n\n")
    header, body = (message, b"") if end < 0 else (message[: end + 2], message[end + 2 :])
    kept: list[bytes] = []
    dropping = False
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        dropping = name in wanted
        if not dropping:
            kept.append(line)
    return b"".join(kept) + body


def render_headers(fields: Sequence[tuple[str, str]]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode() for name, value in fields)


class Pipeline:
    """Runs checks in order; later checks see the headers earlier ones added."""

    def __init__(self, checks: Sequence[Check]) -> None:
        self.checks = list(checks)

    async def run(self, message: bytes, context: MessageContext) -> PipelineResult:
        verdicts: list[Verdict] = []
        action = Action.ACCEPT
        per_recipient: dict[str, Action] = {}
        for check in self.checks:
            verdict = await check.check(message, context)
            verdicts.append(verdict)
            log.info(
                "event=filter queue_id=%s check=%s action=%s detail=%r",
                context.queue_id,
                verdict.check,
                verdict.action,
                verdict.detail,
            )
            message = remove_header_fields(message, verdict.remove_headers)
            message = render_headers(verdict.add_headers) + message
            per_recipient.update(verdict.recipient_actions)
            if verdict.action in (Action.REJECT, Action.TEMPFAIL):
                return PipelineResult(message, verdict.action, verdict.reply, tuple(verdicts))
            if verdict.action is Action.JUNK:
                action = Action.JUNK
        return PipelineResult(message, action, None, tuple(verdicts), per_recipient)
