"""The ``spam`` check: SpamAssassin's spamd through aiospamc, and its verdict in X-Spam-* fields.

Score and matched rules are written to X-Spam-Status / X-Spam-Score / X-Spam-Level (and
X-Spam-Flag: YES above the junk threshold); any X-Spam-* field that came with the message is
removed first, so a sender cannot pre-label its own mail. At ``junk_score`` the message goes to
Junk; at ``reject_score`` it is refused at DATA (550 5.7.1) so nothing is ever bounced. When spamd
cannot be reached the configured failure policy applies; messages above ``max_scan_size`` are
passed unscanned. A spamd that govmail runs itself may be (re)starting, which takes seconds: for
it, ``connect_wait_seconds`` > 0 keeps retrying a refused connection that long before the policy
applies, so a message arriving meanwhile waits at DATA instead of being refused.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import aiospamc
from aiospamc.exceptions import AIOSpamcConnectionFailed
from aiospamc.header_values import SpamValue

from filters.metrics import count
from filters.pipeline import Action, MessageContext, Verdict
from filters.services import ServiceAddress, unavailable_verdict

log = logging.getLogger(__name__)

SPAM_HEADERS = ("X-Spam-Status", "X-Spam-Score", "X-Spam-Level", "X-Spam-Flag", "X-Spam-Tests")
MAX_LEVEL_STARS = 50
MAX_RULES = 60
CONNECT_RETRY_SECONDS = 0.25


@dataclass(frozen=True)
class SpamScan:
    score: float
    rules: tuple[str, ...]


class SpamdClient:
    """Scans and teaches one spamd (CHECK via SYMBOLS, and TELL)."""

    def __init__(self, address: str, timeout: float, user: str = "") -> None:
        self.address = ServiceAddress.parse(address)
        self.timeout = timeout
        self.user = user or None

    def _where(self) -> dict[str, object]:
        if self.address.socket_path:
            return {"socket_path": Path(self.address.socket_path)}
        return {"host": self.address.host, "port": self.address.port}

    async def scan(self, message: bytes) -> SpamScan:
        response = await aiospamc.symbols(
            message, timeout=aiospamc.Timeout(total=self.timeout), user=self.user, **self._where()
        )
        spam = response.headers.get("Spam")
        score = spam.score if isinstance(spam, SpamValue) else 0.0
        rules = tuple(r.strip() for r in bytes(response.body).decode("ascii", "replace").split(","))
        return SpamScan(score, tuple(r for r in rules if r)[:MAX_RULES])

    async def tell(self, message: bytes, is_spam: bool) -> str:
        """Teach spamd's Bayes database (SPAMC TELL); returns what spamd says it did."""
        response = await aiospamc.tell(
            message,
            "spam" if is_spam else "ham",
            set_action="local",
            timeout=aiospamc.Timeout(total=self.timeout),
            user=self.user,
            **self._where(),
        )
        did = response.headers.get("DidSet")
        return "learned" if did is not None else "already known"


def spam_header_fields(scan: SpamScan, junk_score: float) -> tuple[tuple[str, str], ...]:
    is_spam = scan.score >= junk_score
    tests = ",".join(scan.rules) or "none"
    fields: list[tuple[str, str]] = [
        (
            "X-Spam-Status",
            f"{'Yes' if is_spam else 'No'}, score={scan.score:.1f} required={junk_score:.1f}"
            f"\r\n\ttests={tests}",
        ),
        ("X-Spam-Score", f"{scan.score:.1f}"),
        ("X-Spam-Level", "*" * max(0, min(int(scan.score), MAX_LEVEL_STARS))),
    ]
    if is_spam:
        fields.insert(0, ("X-Spam-Flag", "YES"))
    return tuple(fields)


class SpamCheck:
    """Scores a message with spamd and decides accept / Junk / refuse."""

    name = "spam"

    def __init__(
        self,
        client: SpamdClient,
        junk_score: float,
        reject_score: float,
        max_scan_size: int,
        on_failure: str,
        connect_wait_seconds: float = 0.0,
    ) -> None:
        self.client = client
        self.junk_score = junk_score
        self.reject_score = reject_score
        self.max_scan_size = max_scan_size
        self.on_failure = on_failure
        self.connect_wait_seconds = connect_wait_seconds

    async def _scan(self, message: bytes) -> SpamScan:
        """One scan; a refused connection is retried for ``connect_wait_seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_wait_seconds
        while True:
            try:
                return await self.client.scan(message)
            except AIOSpamcConnectionFailed:
                if loop.time() + CONNECT_RETRY_SECONDS > deadline:
                    raise
                count("spamd.connect_retried")
                await asyncio.sleep(CONNECT_RETRY_SECONDS)

    async def check(self, message: bytes, context: MessageContext) -> Verdict:
        if len(message) > self.max_scan_size:
            count("spamd.skipped_size")
            status = f"No, skipped (size {len(message)} > {self.max_scan_size})"
            return Verdict(
                self.name,
                add_headers=(("X-Spam-Status", status),),
                remove_headers=SPAM_HEADERS,
                detail="too large to scan",
            )
        try:
            scan = await self._scan(message)
        except Exception as exc:  # any failure of the service: refused, timeout, bad reply
            return unavailable_verdict(
                self.name,
                "spamd",
                self.on_failure,
                ("X-Spam-Status", "No, unchecked"),
                exc,
                SPAM_HEADERS,
            )
        count("spamd.scanned")
        fields = spam_header_fields(scan, self.junk_score)
        detail = f"score={scan.score:.1f} tests={','.join(scan.rules[:10])}"
        if scan.score >= self.reject_score:
            count("spamd.rejected")
            reply = f"550 5.7.1 Message refused as spam (score {scan.score:.1f})"
            return Verdict(self.name, Action.REJECT, reply, fields, SPAM_HEADERS, detail)
        if scan.score >= self.junk_score:
            count("spamd.junk")
            return Verdict(self.name, Action.JUNK, None, fields, SPAM_HEADERS, detail)
        return Verdict(self.name, Action.ACCEPT, None, fields, SPAM_HEADERS, detail)
