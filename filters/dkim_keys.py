"""DKIM signing keys of local domains: generation, files, rows, rotation and selection.

Every domain has an RSA 2048 (RFC 8301) and an Ed25519 (RFC 8463) key, each under its own dated
selector, and mail is signed with both. Private keys are files under the key directory (0700)
readable by the service only (0600); the ``dkim_key`` row holds the selector, the public key and
the file's path relative to the key directory.

Rotation publishes new selectors first: a new key signs only once ``publish_delay`` has passed
since its creation (resolvers have had time to see it), and the key it replaces stays published
until ``retire_after`` so mail signed before the switch still verifies.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlmodel import Session, col, select

from storage.accounts import audit, find_domain
from storage.mailbox_ops import MailboxError
from storage.models import DkimKey

RSA = "rsa-sha256"
ED25519 = "ed25519-sha256"
ALGORITHMS = (RSA, ED25519)
RSA_BITS = 2048
_SELECTOR_LETTER = {RSA: "r", ED25519: "e"}


@dataclass(frozen=True)
class KeyMaterial:
    """A freshly generated key: the private key file's content and the p= value."""

    algorithm: str
    private_file: bytes
    public_key: str


def generate_key(algorithm: str) -> KeyMaterial:
    """A new key pair in the forms dkimpy signs with (CPU-bound: call it off the event loop)."""
    if algorithm == RSA:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        private = rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        # RFC 6376 3.6.1: p= is the DER SubjectPublicKeyInfo, base64.
        public = rsa_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    elif algorithm == ED25519:
        ed_key = ed25519.Ed25519PrivateKey.generate()
        seed = ed_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        private = base64.b64encode(seed) + b"\n"
        # RFC 8463 4.2: p= is the raw 32-octet public key, base64.
        public = ed_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    else:
        raise ValueError(f"unsupported DKIM algorithm {algorithm!r}")
    return KeyMaterial(algorithm, private, base64.b64encode(public).decode("ascii"))


def generate_domain_keys() -> list[KeyMaterial]:
    """A new domain's first keys, one per algorithm (CPU-bound: call it off the event loop)."""
    return [generate_key(algorithm) for algorithm in ALGORITHMS]


def dated_selector(algorithm: str, now: datetime, taken: set[str]) -> str:
    """ "20261124r" (RSA) or "20261124e" (Ed25519); a letter is appended if the day is taken."""
    base = f"{now:%Y%m%d}{_SELECTOR_LETTER[algorithm]}"
    for suffix in ["", *"bcdefghijklmnopqrstuvwxyz"]:
        if base + suffix not in taken:
            return base + suffix
    raise MailboxError("too many DKIM selectors made today")


def key_record(key: DkimKey) -> str:
    """The TXT record value published at ``<selector>._domainkey.<domain>``."""
    kind = "ed25519" if key.algorithm == ED25519 else "rsa"
    return f"v=DKIM1; k={kind}; p={key.public_key}"


def write_private_key(key_dir: Path, relative: str, content: bytes) -> Path:
    """Create the key file with mode 0600 (directories 0700), durably; never overwrite one."""
    path = key_dir / relative
    for directory in (key_dir, path.parent):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def domain_keys(session: Session, domain_id: int) -> list[DkimKey]:
    return list(
        session.exec(
            select(DkimKey).where(DkimKey.domain_id == domain_id).order_by(col(DkimKey.id))
        )
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_keys(
    session: Session,
    actor: str,
    domain_name: str,
    key_dir: Path,
    materials: Sequence[KeyMaterial],
    now: datetime,
    replaces_until: datetime | None = None,
) -> list[DkimKey]:
    """Store new keys of a domain (files, then rows); older keys retire at ``replaces_until``."""
    domain = find_domain(session, domain_name)
    if domain is None or domain.id is None:
        raise MailboxError(f"domain {domain_name} is not served here")
    existing = domain_keys(session, domain.id)
    if replaces_until is not None:
        for old in existing:
            if old.retire_after is None or _aware(old.retire_after) > replaces_until:
                old.retire_after = replaces_until
                session.add(old)
    # Files left by a transaction that rolled back keep their selector taken too.
    taken = {k.selector for k in existing} | {p.stem for p in (key_dir / domain.name).glob("*.key")}
    created: list[DkimKey] = []
    for material in materials:
        selector = dated_selector(material.algorithm, now, taken)
        taken.add(selector)
        relative = f"{domain.name}/{selector}.key"
        write_private_key(key_dir, relative, material.private_file)
        key = DkimKey(
            domain_id=domain.id,
            selector=selector,
            algorithm=material.algorithm,
            private_key_file=relative,
            public_key=material.public_key,
            created_at=now,
        )
        session.add(key)
        created.append(key)
    session.flush()
    audit(
        session,
        actor,
        "dkim.rotate" if replaces_until else "dkim.create",
        "domain",
        domain.name,
        after={"selectors": [k.selector for k in created]},
    )
    return created


def published_keys(keys: Sequence[DkimKey], now: datetime) -> list[DkimKey]:
    """Keys whose public half must be in DNS now."""
    return [k for k in keys if k.retire_after is None or _aware(k.retire_after) > now]


def select_signing_keys(
    keys: Sequence[DkimKey], now: datetime, publish_delay: timedelta
) -> list[DkimKey]:
    """One key per algorithm: the newest that has been published long enough.

    A domain's very first keys sign at once (there is nothing older to sign with); after a
    rotation the previous key keeps signing until the new one is ``publish_delay`` old.
    """
    chosen: list[DkimKey] = []
    for algorithm in ALGORITHMS:
        usable = [
            k
            for k in published_keys(keys, now)
            if k.algorithm == algorithm and k.signing and _aware(k.created_at) <= now
        ]
        if not usable:
            continue
        usable.sort(key=lambda k: (_aware(k.created_at), k.id or 0))
        ripe = [k for k in usable if _aware(k.created_at) + publish_delay <= now]
        chosen.append(ripe[-1] if ripe else usable[0])
    return chosen


def ensure_keys(
    session: Session,
    actor: str,
    domain_name: str,
    key_dir: Path,
    now: datetime,
    materials: Sequence[KeyMaterial] = (),
) -> list[DkimKey]:
    """The domain's keys, creating its first RSA and Ed25519 keys if it has none.

    ``materials`` are keys generated beforehand (off the event loop); without them the keys are
    generated here. Domain creation paths call this right after ``create_domain``.
    """
    domain = find_domain(session, domain_name)
    if domain is None or domain.id is None:
        raise MailboxError(f"domain {domain_name} is not served here")
    keys = domain_keys(session, domain.id)
    if not keys:
        fresh = list(materials) or generate_domain_keys()
        add_keys(session, actor, domain.name, key_dir, fresh, now)
        keys = domain_keys(session, domain.id)
    return keys


def rotate_keys(
    session: Session,
    actor: str,
    domain_name: str,
    key_dir: Path,
    now: datetime,
    publish_delay: timedelta,
    overlap: timedelta,
    immediate: bool = False,
) -> list[DkimKey]:
    """New RSA and Ed25519 selectors for a domain.

    The new keys sign once ``publish_delay`` has passed (at once when ``immediate``, for a
    leaked key: the old keys stop signing now); the old keys stay published for ``overlap``
    after that, so mail signed before the switch still verifies.
    """
    existing = ensure_keys(session, actor, domain_name, key_dir, now)
    if immediate:
        publish_delay = timedelta(0)
        for old in existing:
            old.signing = False
            session.add(old)
    materials = [generate_key(a) for a in ALGORITHMS]
    retire = now + publish_delay + overlap
    return add_keys(session, actor, domain_name, key_dir, materials, now, retire)
