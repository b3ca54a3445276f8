"""IMAP load: govmail against Dovecot, same data, same hashing, same durability.

Modes (each runs on both servers and prints a markdown table with the ratio):
  mixed   C concurrent clients, each its own mailbox of M messages, run a realistic session mix
          for T seconds: LOGIN, SELECT, FETCH flags of all, FETCH headers of 20, FETCH 3 bodies,
          STORE flags, SEARCH (TEXT and SUBJECT), APPEND, IDLE/DONE, STORE \\Deleted + EXPUNGE,
          LOGOUT. Reports operations/s and p99 latency per command, and protocol errors.
  search  one folder of N messages; latency of UID SEARCH TEXT for a few needles (median).
  idle    K connections logged in and in IDLE; server RSS per idle connection.

Fairness: argon2id with the same parameters on both sides (Dovecot verifies our hashes through
its {ARGON2ID} scheme), Dovecot's auth cache off (govmail has none), Dovecot with
mail_fsync=always (govmail fsyncs before every reply that changes state). Both get the same
generated messages: govmail through its own delivery path, Dovecot as Maildir files indexed by a
first SELECT before any timing starts.

  python -m benchmarks.imap_load mixed --clients 20 --seconds 60 --messages 1000
  python -m benchmarks.imap_load search --messages 100000
  python -m benchmarks.imap_load idle --connections 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.imap_client import IMAPClient, Reply
from benchmarks.peers.dovecot import DovecotPeer, proportional_kib

PASSWORD = "Mat-khau#2026"
DOMAIN = "bench.gov.vn"
RESULTS = Path(__file__).parent / "results"
WORDS = (
    "văn bản công văn quyết định thông báo kế hoạch báo cáo tờ trình giấy mời ủy ban nhân "
    "dân sở khoa học công nghệ tài chính nội vụ giáo dục đào tạo y tế đường bộ hoà giải ngân "
    "sách đề nghị phê duyệt triển khai thực hiện chỉ đạo hướng dẫn tổng hợp số liệu năm quý "
    "tháng"
).split()
ARGON2 = {"time_cost": 2, "memory_kib": 19456}


def make_message(rng: random.Random, n: int, size: int = 4000) -> bytes:
    subject = " ".join(rng.choice(WORDS) for _ in range(6))
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word.encode()) + 1
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    body = "\r\n".join(lines)
    return (
        f"From: Văn thư <vanthu{n % 50}@so{n % 7}.{DOMAIN}>\r\n"
        f"To: nguoi.nhan@{DOMAIN}\r\n"
        f"Subject: {subject} số {n}\r\n"
        f"Date: Tue, 24 Nov 2026 09:{n % 60:02d}:00 +0700\r\n"
        f"Message-ID: <bench-{n}@{DOMAIN}>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"{body}\r\n"
    ).encode()


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---------------------------------------------------------------- servers


@dataclass
class Target:
    name: str
    host: str
    port: int
    rss_kib: Callable[[], int]


@contextmanager
def govmail_target(users: dict[str, list[bytes]]) -> Iterator[Target]:
    """An initialised govmail with ``users`` and their messages, served by a real process."""
    from benchmarks.govmail_process import provision, started_server

    with tempfile.TemporaryDirectory(prefix="govmail-bench-") as tmp:
        config = provision(Path(tmp), DOMAIN, users, PASSWORD, ARGON2)
        with started_server(config, ARGON2) as server:
            host, port = server.bound["imap"]
            yield Target("govmail", host, port, lambda: _rss_kib(server.process.pid))


@contextmanager
def dovecot_target(users: dict[str, list[bytes]]) -> Iterator[Target]:
    peer = DovecotPeer(argon2_time_cost=ARGON2["time_cost"], argon2_memory_kib=ARGON2["memory_kib"])
    peer.add_users(dict.fromkeys(users, PASSWORD))
    try:
        peer.start()
        for user, messages in users.items():
            peer.write_maildir(user, messages)
        yield Target("dovecot", "127.0.0.1", peer.port, peer.process_rss_kib)
    finally:
        peer.stop()


def _rss_kib(pid: int) -> int:
    """govmail's supervisor and its worker processes: their summed PSS (measured as for
    Dovecot's processes)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(proportional_kib(Path(f"/proc/{p}")) for p in [str(pid), *children])


# ---------------------------------------------------------------- mixed load


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def record(self, name: str, reply: Reply) -> Reply:
        self.latencies[name].append(reply.seconds)
        if reply.status != "OK":
            self.errors[name] += 1
        return reply


async def session(target: Target, user: str, stats: Stats, rng: random.Random, n: int) -> None:
    client = await IMAPClient.connect(target.host, target.port)
    try:
        stats.record("LOGIN", await client.command(f'LOGIN "{user}" "{PASSWORD}"'.encode()))
        selected = stats.record("SELECT", await client.command(b"SELECT INBOX"))
        exists = 0
        for line in selected.lines:
            if line.endswith(b" EXISTS\r\n"):
                exists = int(line.split()[1])
        stats.record("FETCH flags", await client.command(b"FETCH 1:* (UID FLAGS)"))
        low = max(1, exists - 19)
        stats.record(
            "FETCH headers",
            await client.command(
                b"FETCH %d:* (UID RFC822.SIZE FLAGS ENVELOPE "
                b"BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])" % low
            ),
        )
        for _ in range(3):
            seq = rng.randint(1, max(exists, 1))
            stats.record("FETCH body", await client.command(b"FETCH %d (BODY.PEEK[])" % seq))
        for _ in range(2):
            seq = rng.randint(1, max(exists, 1))
            stats.record("STORE", await client.command(b"STORE %d +FLAGS (\\Seen)" % seq))
        stats.record("SEARCH text", await client.command(b'UID SEARCH TEXT "ngan sach"'))
        stats.record("SEARCH subject", await client.command(b'UID SEARCH SUBJECT "bao cao"'))
        stats.record("APPEND", await client.command(b"APPEND INBOX (\\Seen)", make_message(rng, n)))
        stats.record("IDLE", await client.idle())
        stats.record("STORE", await client.command(b"STORE * +FLAGS (\\Deleted)"))
        stats.record("EXPUNGE", await client.command(b"EXPUNGE"))
        stats.record("LOGOUT", await client.command(b"LOGOUT"))
    finally:
        await client.close()


async def run_mixed(target: Target, users: list[str], seconds: float) -> Stats:
    stats = Stats()
    deadline = time.monotonic() + seconds

    async def worker(index: int, user: str) -> None:
        rng = random.Random(index)
        n = 10_000_000 + index * 100_000
        while time.monotonic() < deadline:
            n += 1
            try:
                await session(target, user, stats, rng, n)
            except (OSError, asyncio.IncompleteReadError, Exception) as exc:
                stats.errors[f"session:{type(exc).__name__}"] += 1

    await asyncio.gather(*(worker(i, u) for i, u in enumerate(users)))
    return stats


def summarise(stats: Stats, seconds: float) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for name, values in sorted(stats.latencies.items()):
        ordered = sorted(values)
        table[name] = {
            "ops_per_s": len(values) / seconds,
            "p50_ms": 1000 * ordered[len(ordered) // 2],
            "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            "errors": stats.errors.get(name, 0),
        }
    return table


def mixed(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(1)
    users = {
        f"u{i}@{DOMAIN}": [make_message(rng, i * 100_000 + j) for j in range(args.messages)]
        for i in range(args.clients)
    }
    results: dict[str, object] = {}
    for factory in (dovecot_target, govmail_target):
        with factory(users) as target:
            asyncio.run(_warm(target, list(users)))
            stats = asyncio.run(run_mixed(target, list(users), args.seconds))
            results[target.name] = {
                "commands": summarise(stats, args.seconds),
                "session_errors": {
                    k: v for k, v in stats.errors.items() if k.startswith("session")
                },
            }
    return results


async def _warm(target: Target, users: list[str]) -> None:
    """One SELECT per mailbox before timing (Dovecot builds its index here)."""
    for user in users:
        client = await IMAPClient.connect(target.host, target.port)
        await client.command(f'LOGIN "{user}" "{PASSWORD}"'.encode())
        await client.command(b"SELECT INBOX")
        await client.command(b"LOGOUT")
        await client.close()


# ---------------------------------------------------------------- search


SEARCH_NEEDLES = [b"ngan sach", b"hoa giai", b"quyet dinh so 4242", b"khong co tu nay"]


async def time_searches(target: Target, user: str, repeats: int) -> dict[str, float]:
    client = await IMAPClient.connect(target.host, target.port)
    await client.command(f'LOGIN "{user}" "{PASSWORD}"'.encode())
    await client.command(b"SELECT INBOX")
    medians: dict[str, float] = {}
    for needle in SEARCH_NEEDLES:
        timings = []
        for _ in range(repeats):
            reply = await client.command(b'UID SEARCH TEXT "' + needle + b'"')
            if reply.status != "OK":
                raise RuntimeError(f"{target.name} SEARCH failed: {reply}")
            timings.append(reply.seconds)
        medians[needle.decode()] = 1000 * statistics.median(timings)
    await client.command(b"LOGOUT")
    await client.close()
    return medians


def search(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(2)
    user = f"big@{DOMAIN}"
    users = {user: [make_message(rng, j) for j in range(args.messages)]}
    results: dict[str, object] = {}
    for factory in (govmail_target, dovecot_target):
        with factory(users) as target:
            asyncio.run(_warm(target, [user]))
            results[target.name] = asyncio.run(time_searches(target, user, args.repeats))
    return results


# ---------------------------------------------------------------- idle memory


async def hold_idle(target: Target, users: list[str], count: int) -> dict[str, float]:
    before = target.rss_kib()
    clients: list[IMAPClient] = []
    semaphore = asyncio.Semaphore(50)

    async def open_one(i: int) -> None:
        async with semaphore:
            client = await IMAPClient.connect(target.host, target.port)
            user = users[i % len(users)]
            reply = await client.command(f'LOGIN "{user}" "{PASSWORD}"'.encode())
            if reply.status != "OK":
                raise RuntimeError(f"login failed on {target.name}: {reply}")
            await client.command(b"SELECT INBOX")
            await client.start_idle()
            clients.append(client)

    await asyncio.gather(*(open_one(i) for i in range(count)))
    await asyncio.sleep(2)  # let the servers settle before reading RSS (measurement, not a test)
    after = target.rss_kib()
    for client in clients:
        await client.close()
    return {
        "connections": count,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": (after - before) / count,
    }


def idle(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(3)
    users = {f"idle{i}@{DOMAIN}": [make_message(rng, i)] for i in range(args.users)}
    results: dict[str, object] = {}
    for factory in (govmail_target, dovecot_target):
        with factory(users) as target:
            results[target.name] = asyncio.run(hold_idle(target, list(users), args.connections))
    return results


# ---------------------------------------------------------------- report


def markdown_table(mode: str, results: dict[str, object]) -> str:
    """The table for benchmarks/README.md: govmail, Dovecot, and their ratio."""
    ours, theirs = results["govmail"], results["dovecot"]
    if mode == "mixed":
        assert isinstance(ours, dict) and isinstance(theirs, dict)
        rows = [
            "| command | govmail ops/s | Dovecot ops/s | ratio | govmail p99 ms "
            "| Dovecot p99 ms | errors (g/d) |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, mine in ours["commands"].items():
            other = theirs["commands"].get(name, {"ops_per_s": 0, "p99_ms": 0, "errors": 0})
            ratio = mine["ops_per_s"] / other["ops_per_s"] if other["ops_per_s"] else 0
            rows.append(
                f"| {name} | {mine['ops_per_s']:.1f} | {other['ops_per_s']:.1f} | {ratio:.2f}x "
                f"| {mine['p99_ms']:.1f} | {other['p99_ms']:.1f} "
                f"| {mine['errors']}/{other['errors']} |"
            )
        return "\n".join(rows)
    if mode == "search":
        assert isinstance(ours, dict) and isinstance(theirs, dict)
        rows = ["| SEARCH TEXT needle | govmail ms | Dovecot ms | speed-up |", "|---|---|---|---|"]
        for needle, mine in ours.items():
            other = theirs[needle]
            rows.append(f"| {needle} | {mine:.1f} | {other:.1f} | {other / mine:.1f}x |")
        return "\n".join(rows)
    assert isinstance(ours, dict) and isinstance(theirs, dict)
    return (
        "| server | idle connections | KiB (PSS) per connection |\n|---|---|---|\n"
        f"| govmail | {ours['connections']} | {ours['kib_per_connection']:.1f} |\n"
        f"| Dovecot | {theirs['connections']} | {theirs['kib_per_connection']:.1f} |\n"
        f"| ratio | | {ours['kib_per_connection'] / theirs['kib_per_connection']:.2f} |"
    )


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("mixed")
    m.add_argument("--clients", type=int, default=20)
    m.add_argument("--seconds", type=float, default=60)
    m.add_argument("--messages", type=int, default=1000)
    s = sub.add_parser("search")
    s.add_argument("--messages", type=int, default=100_000)
    s.add_argument("--repeats", type=int, default=5)
    i = sub.add_parser("idle")
    i.add_argument("--connections", type=int, default=5000)
    i.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    raise_fd_limit()
    modes: dict[str, Callable[[argparse.Namespace], dict[str, object]]] = {
        "mixed": mixed,
        "search": search,
        "idle": idle,
    }
    started = time.time()
    results = modes[args.mode](args)
    record = {
        "mode": args.mode,
        "args": vars(args),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "cpus": os.cpu_count(),
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"imap_{args.mode}.json"
    out.write_text(json.dumps(record, indent=2, ensure_ascii=False))
    print(markdown_table(args.mode, results))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
