"""DKIM (RFC 6376, 8463) and ARC (RFC 8617) verification of inbound mail with dkimpy.

dkimpy asks for keys through a synchronous callback, so the key records are fetched first
through the async ``DnsResolver`` (all at once), and dkimpy then runs in a worker thread with
a callback that only reads what was fetched. The event loop never waits on DNS or RSA.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dkim

from filters.dns import DnsResolver, DnsTempError
from filters.message_headers import field_values, tag_list

log = logging.getLogger(__name__)

MAX_SIGNATURES = 8  # more DKIM-Signature fields than this are not all verified
MIN_RSA_BITS = 1024  # RFC 8301 3.2

Offload = Callable[[Callable[[], Any]], Awaitable[Any]]


@dataclass(frozen=True)
class DkimResult:
    """One signature's outcome, in RFC 8601 result words."""

    result: str  # pass | fail | neutral | temperror | permerror
    domain: str
    selector: str
    algorithm: str
    signature_prefix: str  # first 12 characters of b=, for header.b (RFC 6008)
    detail: str = ""


@dataclass(frozen=True)
class ArcResult:
    result: str  # pass | fail | none
    sealer: str = ""  # d= of the newest ARC-Seal
    detail: str = ""


async def _in_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


async def prefetch_keys(
    resolver: DnsResolver, names: Sequence[str]
) -> dict[str, list[str] | DnsTempError]:
    """TXT records of every ``selector._domainkey.domain`` name, looked up concurrently."""

    async def one(name: str) -> list[str] | DnsTempError:
        try:
            return await resolver.query(name, "TXT")
        except DnsTempError as exc:
            return exc

    unique = list(dict.fromkeys(n.lower() for n in names))
    answers = await asyncio.gather(*(one(n) for n in unique))
    return dict(zip(unique, answers, strict=True))


def _dnsfunc(records: dict[str, list[str] | DnsTempError]) -> Callable[..., bytes | None]:
    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        key = (name.decode("ascii", "replace") if isinstance(name, bytes) else name).lower()
        key = key.rstrip(".")
        found = records.get(key)
        if isinstance(found, DnsTempError):
            raise dkim.DnsTimeoutError(str(found))
        if not found:
            return None
        return found[0].encode("utf-8")

    return lookup


def _key_name(tags: dict[str, str]) -> str:
    return f"{tags.get('s', '')}._domainkey.{tags.get('d', '')}".lower()


def _verify_one(
    message: bytes, index: int, records: dict[str, list[str] | DnsTempError]
) -> tuple[bool | None, str]:
    try:
        verifier = dkim.DKIM(message, minkey=MIN_RSA_BITS)
        ok = bool(verifier.verify(idx=index, dnsfunc=_dnsfunc(records)))
    except dkim.NaClNotFoundError as exc:
        # RFC 8463 / RFC 6376 6.1.1: an algorithm the verifier lacks is not a failure.
        return None, str(exc)
    except dkim.DKIMException as exc:
        return False, str(exc)
    return ok, "" if ok else "signature did not verify"


async def verify_dkim(
    message: bytes, resolver: DnsResolver, offload: Offload = _in_thread
) -> list[DkimResult]:
    """The outcome of each DKIM-Signature of ``message`` (at most MAX_SIGNATURES), in order."""
    signatures = [tag_list(v) for v in field_values(message, "dkim-signature")][:MAX_SIGNATURES]
    if not signatures:
        return []
    records = await prefetch_keys(resolver, [_key_name(t) for t in signatures if "d" in t])

    def verify_all() -> list[DkimResult]:
        results: list[DkimResult] = []
        for index, tags in enumerate(signatures):
            domain, selector = tags.get("d", "").lower(), tags.get("s", "")
            common = (domain, selector, tags.get("a", ""), tags.get("b", "")[:12])
            if not domain or not selector or "b" not in tags or "bh" not in tags:
                results.append(DkimResult("permerror", *common, "malformed signature"))
                continue
            found = records.get(_key_name(tags))
            if isinstance(found, DnsTempError):
                results.append(DkimResult("temperror", *common, str(found)))
                continue
            if not found:
                results.append(DkimResult("permerror", *common, "no key record"))
                continue
            ok, detail = _verify_one(message, index, records)
            word = "neutral" if ok is None else "pass" if ok else "fail"
            results.append(DkimResult(word, *common, detail))
        return results

    outcome: list[DkimResult] = await offload(verify_all)
    return outcome


async def verify_arc(
    message: bytes, resolver: DnsResolver, offload: Offload = _in_thread
) -> ArcResult:
    """Validate the ARC chain (RFC 8617 5.2); "none" when the message carries no ARC sets."""
    seals = [tag_list(v) for v in field_values(message, "arc-seal")]
    signatures = [tag_list(v) for v in field_values(message, "arc-message-signature")]
    if not seals and not signatures:
        return ArcResult("none")
    newest = max(seals, key=lambda t: int(t["i"]) if t.get("i", "").isdigit() else 0, default={})
    sealer = newest.get("d", "").lower()
    names = [_key_name(t) for t in (*seals, *signatures)[: 2 * MAX_SIGNATURES] if "d" in t]
    records = await prefetch_keys(resolver, names)

    def run() -> ArcResult:
        try:
            cv, _, reason = dkim.arc_verify(message, dnsfunc=_dnsfunc(records), minkey=MIN_RSA_BITS)
        except Exception as exc:  # dkimpy raises odd errors on garbage; a broken chain fails
            return ArcResult("fail", sealer, f"{type(exc).__name__}: {exc}")
        verdict = cv.decode("ascii") if isinstance(cv, bytes) else str(cv)
        return ArcResult(verdict.lower(), sealer, str(reason))

    result: ArcResult = await offload(run)
    return result
