"""The ``dkim_sign`` check: every message from a local domain leaves with two DKIM signatures.

The signing domain is the RFC5322.From domain (so DMARC aligns); the message is signed with the
domain's current RSA and Ed25519 keys (RFC 8463 3: a signer may add both, and verifiers that know
only RSA still find one). A domain without keys gets them on first use, so domains created by any
path sign. Key rows are cached briefly; signing runs off the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import dkim
from sqlmodel import Session

from filters.dkim_keys import (
    ALGORITHMS,
    domain_keys,
    ensure_keys,
    generate_key,
    select_signing_keys,
)
from filters.message_headers import from_domains, header_fields
from filters.pipeline import MessageContext, Verdict
from storage.accounts import find_domain
from storage.models import DkimKey, utcnow
from storage.store import MailStore

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
# Signed header fields (RFC 6376 5.4.1); From is listed twice so no second From can be added.
SIGNED_HEADERS = (
    b"from", b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to",
    b"in-reply-to", b"references", b"mime-version", b"content-type",
    b"content-transfer-encoding", b"content-disposition", b"list-id", b"list-unsubscribe",
    b"sender",
)  # fmt: skip


@dataclass(frozen=True)
class SigningKey:
    domain: str
    selector: str
    algorithm: str
    private_key: bytes


def sign_message(message: bytes, keys: list[SigningKey]) -> list[tuple[str, str]]:
    """DKIM-Signature fields for ``message``, one per key (CPU-bound)."""
    fields: list[tuple[str, str]] = []
    present = {name.encode("ascii", "replace") for name, _ in header_fields(message)}
    include = [h for h in SIGNED_HEADERS if h in present or h == b"from"]
    for key in keys:
        try:
            signed = dkim.sign(
                message,
                key.selector.encode("ascii"),
                key.domain.encode("ascii"),
                key.private_key,
                canonicalize=(b"relaxed", b"relaxed"),
                signature_algorithm=key.algorithm.encode("ascii"),
                include_headers=include,
            )
        except dkim.DKIMException as exc:
            # One unusable key (e.g. Ed25519 without PyNaCl) must not stop the other signature.
            log.error("event=dkim_sign_failed d=%s s=%s error=%r", key.domain, key.selector, exc)
            continue
        name, _, value = signed.decode("ascii").partition(":")
        fields.append((name, value.strip(" ").rstrip("\r\n")))
    return fields


class DkimSignCheck:
    """Adds DKIM signatures of the From domain when that domain is local."""

    name = "dkim_sign"

    def __init__(
        self,
        store: MailStore,
        key_dir: Path,
        publish_delay: timedelta,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.key_dir = key_dir
        self.publish_delay = publish_delay
        self.clock = clock
        self._cache: dict[str, tuple[float, list[SigningKey]]] = {}

    async def signing_keys(self, domain: str) -> list[SigningKey]:
        cached = self._cache.get(domain)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        now = self.clock()
        rows = await self.store.read(lambda s: _local_domain_keys(s, domain))
        if rows == []:
            rows = await self._create_first_keys(domain, now)
        chosen = select_signing_keys(rows or [], now, self.publish_delay)
        keys = await self.store.offload(self._load, domain, chosen)
        self._cache[domain] = (time.monotonic() + CACHE_SECONDS, keys)
        return keys

    def _load(self, domain: str, rows: list[DkimKey]) -> list[SigningKey]:
        return [
            SigningKey(
                domain,
                row.selector,
                row.algorithm,
                (self.key_dir / row.private_key_file).read_bytes(),
            )
            for row in rows
        ]

    async def _create_first_keys(self, domain: str, now: datetime) -> list[DkimKey]:
        materials = [await self.store.offload(generate_key, a) for a in ALGORITHMS]

        def create(session: Session) -> list[DkimKey]:
            return ensure_keys(session, self.name, domain, self.key_dir, now, materials)

        rows = await self.store.write(create)
        selectors = [k.selector for k in rows]
        log.info("event=dkim_keys_created domain=%s selectors=%s", domain, selectors)
        return rows

    async def check(self, message: bytes, context: MessageContext) -> Verdict:
        domains = from_domains(message)
        if len(domains) != 1:
            return Verdict(self.name, detail=f"not signed: {len(domains)} From domains")
        domain = domains[0]
        keys = await self.signing_keys(domain)
        if not keys:
            return Verdict(self.name, detail=f"not signed: {domain} is not local")
        fields = await self.store.offload(sign_message, message, keys)
        selectors = ",".join(k.selector for k in keys)
        return Verdict(self.name, add_headers=tuple(fields), detail=f"d={domain} s={selectors}")


def _local_domain_keys(session: Session, domain: str) -> list[DkimKey] | None:
    """The domain's keys; None when the domain is not served here."""
    found = find_domain(session, domain)
    if found is None or found.id is None:
        return None
    return domain_keys(session, found.id)
