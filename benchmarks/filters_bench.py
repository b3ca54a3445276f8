"""Filter benchmark: msg/s through the inbound pipeline with spamd on and off, and the cost of
DKIM signing and verifying per message.

The inbound pipeline is the default one (authentication: SPF + DKIM + ARC + DMARC over a static
DNS table; attachments; spam; sender_lists over a SQLite store), driven directly (no SMTP) by C
concurrent tasks over N messages: half DKIM-signed ham from a remote domain, half the
SpamAssassin corpus's ham sample. "spam check alone" runs only the spamd check, to show how much
of the spamd-on figure is spamd itself. spamd runs locally with C children (Debian's spamd,
local rules only). Signing and verifying are timed one message at a time in one thread.

    python benchmarks/filters_bench.py --messages 400 -c 4
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from filters.authentication import AuthenticationCheck  # noqa: E402
from filters.dkim_keys import ED25519, RSA, generate_key  # noqa: E402
from filters.dkim_sign import SigningKey, sign_message  # noqa: E402
from filters.dkim_verify import verify_dkim  # noqa: E402
from filters.dns import StaticDns  # noqa: E402
from filters.pipeline import Check, Direction, MessageContext, Pipeline  # noqa: E402
from filters.registry import build_pipelines  # noqa: E402
from mailserver.config import GovmailConfig, ServerSection, StorageSection  # noqa: E402
from mailserver.filter_config import DNSSection, SpamdSection  # noqa: E402
from mailserver.instance import open_instance  # noqa: E402
from storage.accounts import create_agency, create_domain, create_mailbox  # noqa: E402
from tests.support.spamd import running_spamd  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus" / "apache-spamassassin-tdata"
REMOTE = "doitac.example"
RECIPIENT = "lan@sotest.gov.vn"
RSA_KEY, ED_KEY = generate_key(RSA), generate_key(ED25519)
KEYS = [
    SigningKey(REMOTE, "r1", RSA, RSA_KEY.private_file),
    SigningKey(REMOTE, "e1", ED25519, ED_KEY.private_file),
]
DNS_TABLE = {
    REMOTE: {"TXT": ["v=spf1 ip4:192.0.2.0/24 -all"]},
    f"_dmarc.{REMOTE}": {"TXT": ["v=DMARC1; p=reject"]},
    f"r1._domainkey.{REMOTE}": {"TXT": [f"v=DKIM1; k=rsa; p={RSA_KEY.public_key}"]},
    f"e1._domainkey.{REMOTE}": {"TXT": [f"v=DKIM1; k=ed25519; p={ED_KEY.public_key}"]},
}
CONTEXT = MessageContext(
    Direction.INBOUND, "192.0.2.10", f"mx.{REMOTE}", f"a@{REMOTE}", (RECIPIENT,)
)


def remote_message() -> bytes:
    body = "\r\n".join(f"Dòng {i}: báo cáo tình hình thực hiện nhiệm vụ quý IV." for i in range(60))
    plain = (
        f"From: Doi tac <a@{REMOTE}>\r\nTo: {RECIPIENT}\r\nSubject: Bao cao\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 +0700\r\nMessage-ID: <b@doitac.example>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()
    return plain


def signed(message: bytes) -> bytes:
    return b"".join(f"{n}: {v}\r\n".encode() for n, v in sign_message(message, KEYS)) + message


def sample_messages() -> list[bytes]:
    ham_path = CORPUS / "sample-nonspam.txt"
    ham = ham_path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return [signed(remote_message()), ham]


def timed_per_message(fn: object, rounds: int) -> float:
    """Median microseconds of ``fn()`` over ``rounds`` calls."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


async def signing_costs(rounds: int) -> dict[str, float]:
    plain = remote_message()
    message = signed(plain)
    dns = StaticDns(DNS_TABLE)
    costs = {
        "sign rsa-sha256 (2048)": timed_per_message(lambda: sign_message(plain, KEYS[:1]), rounds),
        "sign ed25519-sha256": timed_per_message(lambda: sign_message(plain, KEYS[1:]), rounds),
        "sign both (what govmail does)": timed_per_message(
            lambda: sign_message(plain, KEYS), rounds
        ),
    }
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await verify_dkim(message, dns, offload=_inline)
        samples.append(time.perf_counter() - start)
    costs["verify both signatures"] = statistics.median(samples) * 1e6
    return costs


async def _inline(fn: object) -> object:
    return fn()  # type: ignore[operator]


async def throughput(pipeline: Pipeline, messages: list[bytes], total: int, tasks: int) -> float:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(messages[i % len(messages)])

    async def worker() -> None:
        while not queue.empty():
            message = queue.get_nowait()
            result = await pipeline.run(message, CONTEXT)
            assert result.reply is None, result.reply

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return total / (time.perf_counter() - start)


async def pipeline_rates(
    total: int, tasks: int, spamd: str | None, only: str | None = None
) -> float:
    with tempfile.TemporaryDirectory() as data:
        config = GovmailConfig(
            server=ServerSection(data_dir=Path(data), hostname="mail.sotest.gov.vn"),
            storage=StorageSection(fsync=False),
            dns=DNSSection(system_resolver=False),
            spamd=SpamdSection(enabled=spamd is not None, address=spamd or "127.0.0.1:783"),
        )
        instance = open_instance(config)
        store = instance.store

        def setup(session: object) -> None:
            agency = create_agency(session, "bench", "sotest", "So Test")  # type: ignore[arg-type]
            assert agency.id is not None
            create_domain(session, "bench", "sotest.gov.vn", agency.id)  # type: ignore[arg-type]
            create_mailbox(session, "bench", RECIPIENT, "x", 10**10)  # type: ignore[arg-type]

        await store.write(setup)
        inbound, _ = build_pipelines(instance)
        checks: list[Check] = []
        for check in inbound.checks:
            if isinstance(check, AuthenticationCheck):
                check.resolver = StaticDns(DNS_TABLE)
            if only is None or check.name == only:
                checks.append(check)
        pipeline = Pipeline(checks)
        await throughput(pipeline, sample_messages(), min(total, 20), tasks)  # warm-up
        rate = await throughput(pipeline, sample_messages(), total, tasks)
        await store.close()
        return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("-c", "--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=200, help="signing/verifying samples")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    costs = asyncio.run(signing_costs(args.rounds))
    off = asyncio.run(pipeline_rates(args.messages, args.concurrency, None))
    with running_spamd(children=args.concurrency) as address:
        on = asyncio.run(pipeline_rates(args.messages, args.concurrency, address))
        alone = asyncio.run(pipeline_rates(args.messages, args.concurrency, address, "spam"))
    print(f"| inbound pipeline, spamd off | {off:.0f} msg/s |")
    print(f"| inbound pipeline, spamd on ({args.concurrency} children) | {on:.1f} msg/s |")
    print(f"| spam check alone, spamd on ({args.concurrency} children) | {alone:.1f} msg/s |")
    for name, micros in costs.items():
        print(f"| {name} | {micros / 1000:.2f} ms/msg |")


if __name__ == "__main__":
    main()
