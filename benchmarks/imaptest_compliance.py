"""IMAP compliance: Dovecot's imaptest scripted tests (and optionally its stress mode) against a
throwaway govmail and a throwaway Dovecot, provisioned with the same two users.

  python -m benchmarks.imaptest_compliance --imaptest /opt/imaptest/bin/imaptest \
      --tests /opt/imaptest/tests [--only govmail] [--group fetch-body] [--stress-secs 30]

Prints, per server: scripted groups passed / failed / skipped, base and extension commands
failed, and the names of the failing groups; with ``--stress-secs``, the stress run's error
count (imaptest tracks the state of every message and flag across its clients and reports each
inconsistency as an error). ``--verbose`` prints imaptest's own output. Dovecot needs root (it
installs the Debian packages and runs as a system user); ``--only govmail`` runs without it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

DOMAIN = "imaptest.gov.vn"
PASSWORD = "Imaptest#2026"
USERS = (f"testuser1@{DOMAIN}", f"testuser2@{DOMAIN}")
ARGON2 = {"time_cost": 1, "memory_kib": 1024}
SCRIPTED_TIMEOUT = 600.0

# imaptest's summary lines, e.g. "71 test groups: 11 failed, 0 skipped due to missing capabilities"
# and "base protocol: 32/457 individual commands failed".
GROUPS_LINE = re.compile(r"(\d+) test groups: (\d+) failed, (\d+) skipped")
COMMANDS_LINE = re.compile(r"(base protocol|extensions): (\d+)/(\d+) individual commands failed")
FAILED_GROUP = re.compile(r"^\*\*\* Test (\S+) command")
ERROR_LINE = re.compile(r"^Error: ", re.MULTILINE)


@dataclass
class ScriptedResult:
    groups: int = 0
    failed: int = 0
    skipped: int = 0
    commands: dict[str, tuple[int, int]] = field(default_factory=dict)
    failing_groups: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return self.groups - self.failed - self.skipped


def parse_scripted(output: str) -> ScriptedResult:
    result = ScriptedResult()
    match = GROUPS_LINE.search(output)
    if match:
        result.groups, result.failed, result.skipped = (int(x) for x in match.groups())
    for kind, failed, total in COMMANDS_LINE.findall(output):
        result.commands[kind] = (int(failed), int(total))
    seen: set[str] = set()
    for line in output.splitlines():
        found = FAILED_GROUP.match(line)
        if found:
            name = Path(found.group(1)).name
            if name not in seen:
                seen.add(name)
                result.failing_groups.append(name)
    return result


def imaptest_args(imaptest: str, port: int) -> list[str]:
    return [
        imaptest,
        "host=127.0.0.1",
        f"port={port}",
        f"user={USERS[0]}",
        f"pass={PASSWORD}",
        f"user2={USERS[1]}",  # imaptest has no pass2: both users share the password
    ]


def run_scripted(imaptest: str, tests: str, port: int, verbose: bool) -> ScriptedResult:
    command = [*imaptest_args(imaptest, port), f"test={tests}"]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=SCRIPTED_TIMEOUT, errors="replace"
    )
    output = completed.stdout + completed.stderr
    if verbose:
        print(output)
    return parse_scripted(output)


def run_stress(
    imaptest: str, tests: str, port: int, secs: int, clients: int, verbose: bool
) -> tuple[int, str]:
    """imaptest's default random workload with state tracking, appending messages from the
    tests' default.mbox; returns its error count and its last summary line."""
    command = [
        *imaptest_args(imaptest, port)[:5],
        f"mbox={Path(tests) / 'default.mbox'}",
        f"secs={secs}",
        f"clients={clients}",
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=secs + 120, errors="replace"
    )
    output = completed.stdout + completed.stderr
    if verbose:
        print(output)
    if "Fatal:" in output:
        raise RuntimeError(f"imaptest stress run failed: {output[-2000:]}")
    lines = [line for line in output.splitlines() if line.strip()]
    return len(ERROR_LINE.findall(output)), (lines[-1] if lines else "")


@contextmanager
def govmail_server(workers: int) -> Iterator[int]:
    from benchmarks.govmail_process import benchmark_env, provision
    from tests.support.process import start_server

    with tempfile.TemporaryDirectory(prefix="govmail-imaptest-") as tmp:
        config = provision(Path(tmp), DOMAIN, {user: [] for user in USERS}, PASSWORD, ARGON2)
        env = {**benchmark_env(ARGON2), "GOVMAIL_SERVER__WORKERS": str(workers)}
        server = start_server(config, **env)
        try:
            yield server.bound["imap"][1]
        finally:
            server.terminate()


@contextmanager
def dovecot_server(workers: int) -> Iterator[int]:  # workers: Dovecot sizes itself
    from benchmarks.peers.dovecot import DovecotPeer

    peer = DovecotPeer(argon2_time_cost=ARGON2["time_cost"], argon2_memory_kib=ARGON2["memory_kib"])
    peer.add_users(dict.fromkeys(USERS, PASSWORD))
    peer.start()
    try:
        yield peer.port
    finally:
        peer.stop()


SERVERS: dict[str, Callable[[int], AbstractContextManager[int]]] = {
    "govmail": govmail_server,
    "dovecot": dovecot_server,
}


def format_row(name: str, result: ScriptedResult) -> str:
    base = result.commands.get("base protocol", (0, 0))
    ext = result.commands.get("extensions", (0, 0))
    return (
        f"| {name} | {result.groups} | {result.passed} | {result.failed} | {result.skipped} "
        f"| {base[0]}/{base[1]} | {ext[0]}/{ext[1]} | {', '.join(result.failing_groups) or '-'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imaptest", default="/opt/imaptest/bin/imaptest")
    parser.add_argument("--tests", default="/opt/imaptest/tests")
    parser.add_argument("--group", help="run only this scripted group (a file in --tests)")
    parser.add_argument("--only", choices=sorted(SERVERS), action="append")
    parser.add_argument("--stress-secs", type=int, default=0, help="also run the stress mode")
    parser.add_argument("--stress-clients", type=int, default=10)
    parser.add_argument(
        "--workers", type=int, default=0, help="govmail's server.workers (0: one per core)"
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    tests = str(Path(args.tests) / args.group) if args.group else args.tests
    rows: list[str] = []
    stress: list[str] = []
    for name in args.only or ["govmail", "dovecot"]:
        with SERVERS[name](args.workers) as port:
            result = run_scripted(args.imaptest, tests, port, args.verbose)
            rows.append(format_row(name, result))
            if args.stress_secs:
                errors, last = run_stress(
                    args.imaptest,
                    args.tests,
                    port,
                    args.stress_secs,
                    args.stress_clients,
                    args.verbose,
                )
                stress.append(
                    f"| {name} | {args.stress_secs} s | {args.stress_clients} | {errors} "
                    f"| `{last.strip()}` |"
                )
    print(
        "| server | groups | passed | failed | skipped | base cmds failed | ext cmds failed "
        "| failing groups |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    print("\n".join(rows))
    if stress:
        print("\n| server | stress time | clients | errors | imaptest's last line |")
        print("| --- | ---: | ---: | ---: | --- |")
        print("\n".join(stress))


if __name__ == "__main__":
    main()
