"""A long fuzz run of SMTP and IMAP against a real `govmail serve` (its workers included).

    python benchmarks/fuzz_protocols.py --seconds 120 --seed 1

The fuzzer of tests/support/protocol_fuzz.py, in rounds: each round sends a batch of seeded
hostile lines in every protocol state (SMTP before EHLO, after EHLO, in a transaction, after
AUTH; IMAP not authenticated, authenticated, selected). Reports the lines sent, the sessions
opened, the RSS of the server's processes (start, peak, end), every reply code it provoked,
every rule broken (see protocol_fuzz) and the server's log lines at ERROR or with a traceback.
Exits 1 when anything was broken.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.govmail_process import benchmark_env, provision
from tests.support.process import ServerProcess, start_server
from tests.support.protocol_fuzz import (
    IMAP_STATES,
    SMTP_STATES,
    FuzzStats,
    Target,
    fuzz_imap,
    fuzz_smtp,
    imap_lines,
    smtp_lines,
)

DOMAIN = "fuzz.gov.vn"
USER = f"an@{DOMAIN}"
PASSWORD = "Mat-khau#2026"
ARGON2 = {"time_cost": 1, "memory_kib": 1024}
LINES_PER_BATCH = 500
# The fuzzer sends wrong passwords by the thousand from one address: the lockouts (tested
# elsewhere) would end the run; a short grace, as no connection is left to finish.
LIMITS_LIFTED = {
    "GOVMAIL_AUTH__MAX_FAILED_LOGINS": "100000000",
    "GOVMAIL_AUTH__MAX_FAILURES_PER_IP": "100000000",
    "GOVMAIL_AUTH__FAILED_LOGIN_DELAY_SECONDS": "0",
    "GOVMAIL_SERVER__SHUTDOWN_GRACE_SECONDS": "2",
}
SAMPLE_MESSAGE = (
    f"From: someone@example.org\r\nTo: {USER}\r\nSubject: fuzz\r\n\r\nNoi dung thu.\r\n".encode()
)


def _rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its children (the workers), from /proc."""
    pids = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            pids.append(int(stat.parent.name))
    total = 0
    for one in pids:
        try:
            status = Path(f"/proc/{one}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _bad_log_lines(server: ServerProcess) -> list[str]:
    return [
        line
        for line in server.log_lines
        if " ERROR " in line or " CRITICAL " in line or "Traceback" in line
    ]


async def _run(server: ServerProcess, seconds: float, seed: int) -> int:
    bound = server.bound
    target = Target(
        smtp_mx=bound["smtp_mx"],
        smtp_submissions=bound["smtp_submissions"],
        imap=bound["imap"],
        imaps=bound["imaps"],
        user=USER,
        password=PASSWORD,
    )
    rng = random.Random(seed)
    per_state: dict[str, FuzzStats] = {}
    pid = server.process.pid
    rss_start = rss_peak = _rss_kib(pid)
    started = time.monotonic()
    rounds = 0
    while time.monotonic() - started < seconds:
        rounds += 1
        for state in SMTP_STATES:
            stats = per_state.setdefault(f"smtp {state}", FuzzStats())
            await fuzz_smtp(target, state, smtp_lines(rng, LINES_PER_BATCH, USER, PASSWORD), stats)
        for state in IMAP_STATES:
            stats = per_state.setdefault(f"imap {state}", FuzzStats())
            await fuzz_imap(target, state, imap_lines(rng, LINES_PER_BATCH, USER, PASSWORD), stats)
        rss_peak = max(rss_peak, _rss_kib(pid))
    elapsed = time.monotonic() - started
    rss_end = _rss_kib(pid)
    return _report(per_state, elapsed, rounds, seed, (rss_start, rss_peak, rss_end), server)


def _report(
    per_state: dict[str, FuzzStats],
    elapsed: float,
    rounds: int,
    seed: int,
    rss: tuple[int, int, int],
    server: ServerProcess,
) -> int:
    commands = sum(s.commands for s in per_state.values())
    sessions = sum(s.sessions for s in per_state.values())
    print(f"seed {seed}, {elapsed:.0f} s, {rounds} rounds of {LINES_PER_BATCH} lines per state")
    print(f"lines sent: {commands} ({commands / elapsed:.0f}/s), sessions: {sessions}")
    print(f"server RSS (all processes): start {rss[0] // 1024} MiB, peak {rss[1] // 1024} MiB,")
    print(f"  end {rss[2] // 1024} MiB")
    print("| state | lines | sessions | replies (4xx/5xx, IMAP NO/BAD/BYE) |")
    print("| --- | ---: | ---: | --- |")
    for name, stats in per_state.items():
        refusals = Counter(
            {code: n for code, n in stats.replies.items() if code[:1] in "45" or code.isalpha()}
        )
        listed = ", ".join(f"{code}: {n}" for code, n in sorted(refusals.items()))
        print(f"| {name} | {stats.commands} | {stats.sessions} | {listed} |")
    violations = [v for stats in per_state.values() for v in stats.violations]
    bad_lines = _bad_log_lines(server)
    print(f"rules broken: {len(violations)}; server log lines at ERROR/traceback: {len(bad_lines)}")
    for line in (violations + bad_lines)[:30]:
        print("  " + line[:200])
    return 1 if violations or bad_lines else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to fuzz")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated lines")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="govmail-fuzz-") as base:
        config = provision(Path(base), DOMAIN, {USER: [SAMPLE_MESSAGE]}, PASSWORD, ARGON2)
        server = start_server(config, **benchmark_env(ARGON2), **LIMITS_LIFTED)
        try:
            return asyncio.run(_run(server, args.seconds, args.seed))
        finally:
            server.terminate()


if __name__ == "__main__":
    sys.exit(main())
