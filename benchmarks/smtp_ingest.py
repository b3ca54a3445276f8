"""SMTP ingest benchmark: N messages of SIZE bytes over C concurrent connections to the MX.

Measures, for govmail on SQLite and on PostgreSQL and for Postfix delivering over LMTP to
Dovecot (installed from Debian by this script and configured on loopback ports under a
temporary directory):
- accepted msg/s: messages that got the final 250, over the time the load ran;
- end-to-end msg/s: messages visible over IMAP (STATUS INBOX MESSAGES), over the time from the
  first message sent until the last one is visible;
- p50/p99 latency of the final 250 (from the end of the data to the reply);
- peak RSS of the server side (sum over its processes, sampled every 50 ms);
- lost: accepted but not visible;
- settled msg/s and server CPU until settled: govmail leaves two jobs for after a burst (the
  text index, FTS5 or pg_trgm, and writing small messages from the database to their blob
  files); "settled" is when both are done, and the CPU column until then includes them. For
  Postfix + Dovecot settled is end-to-end (no such work is left).
Every side keeps its durability: govmail commits the message (inside the database transaction
up to 128 KiB, else as an fsynced file first) and fsyncs that commit before 250; Postfix fsyncs
its queue file before 250; Dovecot (mail_fsync=optimized, the default) fsyncs a delivered mail
before answering LMTP. Filters are off on both sides (no SPF/DKIM/spam).

Run as root on a scratch machine:  python benchmarks/smtp_ingest.py --messages 2000 -c 16
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import imaplib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(REPO))

from tests.support.pg_cluster import create_database, throwaway_postgres  # noqa: E402
from tests.support.process import govmail_env, run_cli, start_server  # noqa: E402

DOMAIN = "bench.gov.vn"
USER = f"an@{DOMAIN}"
PASSWORD = "Mat-khau#2026"
APT_PACKAGES = ["postfix", "dovecot-core", "dovecot-lmtpd", "dovecot-imapd"]


@dataclass
class Result:
    name: str
    concurrency: int
    messages: int
    accepted: int
    accepted_per_s: float
    e2e_per_s: float
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    cpu_ms_per_msg: float
    lost: int
    settled_per_s: float = 0.0
    settled_cpu_ms_per_msg: float = 0.0


# ---------------------------------------------------------------- load


def make_message(n: int, size: int) -> bytes:
    header = (
        f"From: load@example.gov.vn\r\nTo: {USER}\r\nSubject: bench {n}\r\n"
        f"Message-ID: <bench-{n}@example.gov.vn>\r\nDate: Mon, 02 Mar 2026 09:00:00 +0700\r\n\r\n"
    ).encode()
    line = b"Noi dung thu kiem tra hieu nang he thong thu dien tu cong vu tinh.\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(header) - 2)]
    return header + body + b"\r\n"


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line or line[3:4] != b"-":
            return line


async def _connection(host: str, port: int, messages: list[bytes], latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    await _reply(reader)
    writer.write(b"EHLO bench.example\r\n")
    await _reply(reader)
    accepted = 0
    for raw in messages:
        writer.write(f"MAIL FROM:<load@example.gov.vn>\r\nRCPT TO:<{USER}>\r\nDATA\r\n".encode())
        for _ in range(3):  # pipelined: MAIL, RCPT, DATA (354)
            await _reply(reader)
        writer.write(raw.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        await writer.drain()
        started = time.perf_counter()
        final = await _reply(reader)
        if final.startswith(b"250"):
            latencies.append(time.perf_counter() - started)
            accepted += 1
    writer.write(b"QUIT\r\n")
    await _reply(reader)
    writer.close()
    return accepted


async def run_load(
    host: str, port: int, count: int, concurrency: int, size: int
) -> tuple[int, float, list[float]]:
    messages = [make_message(n, size) for n in range(count)]
    shares = [messages[i::concurrency] for i in range(concurrency)]
    latencies: list[float] = []
    started = time.perf_counter()
    accepted = await asyncio.gather(*(_connection(host, port, s, latencies) for s in shares))
    return sum(accepted), time.perf_counter() - started, latencies


def imap_count(host: str, port: int, user: str, password: str) -> int:
    with imaplib.IMAP4(host, port, timeout=30) as client:
        client.login(user, password)
        _, data = client.status("INBOX", "(MESSAGES)")
        text = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
        return int(text.rsplit("MESSAGES", 1)[1].strip(" )"))


def wait_visible(imap: tuple[str, int], user: str, password: str, want: int, limit: float) -> int:
    deadline = time.monotonic() + limit
    seen = 0
    while time.monotonic() < deadline:
        seen = imap_count(*imap, user, password)
        if seen >= want:
            return seen
        time.sleep(0.05)
    return seen


class RSSSampler:
    """Peak of the summed RSS of processes whose command line matches, and the CPU time they
    used (user + system, from /proc/PID/stat), sampled in a thread every 50 ms."""

    def __init__(self, match: Callable[[bytes], bool]) -> None:
        self.match = match
        self.peak_kb = 0
        self._first_cpu: dict[int, float] = {}
        self._last_cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def cpu_seconds(self) -> float:
        return sum(self._last_cpu[p] - self._first_cpu[p] for p in self._last_cpu)

    def sample_cpu(self) -> float:
        """CPU seconds used so far (a sample taken now)."""
        self._sample()
        return self.cpu_seconds

    def _sample(self, initial: bool = False) -> None:
        total = 0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                if self.match(cmdline):
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
                    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                    used = (int(fields[11]) + int(fields[12])) / tick
                    # A process first seen during the run counts from 0 (it started then).
                    self._first_cpu.setdefault(int(pid), used if initial else 0.0)
                    self._last_cpu[int(pid)] = used
        self.peak_kb = max(self.peak_kb, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.05)

    def __enter__(self) -> RSSSampler:
        self.peak_kb = 0
        self._first_cpu.clear()
        self._last_cpu.clear()
        self._stop.clear()
        self._sample(initial=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def measure(
    name: str,
    smtp: tuple[str, int],
    imap: tuple[str, int],
    user: str,
    password: str,
    args: argparse.Namespace,
    sampler: RSSSampler,
    concurrency: int,
    settle: Callable[[], None] = lambda: None,
) -> Result:
    before = imap_count(*imap, user, password)
    with sampler:
        started = time.perf_counter()
        accepted, duration, latencies = asyncio.run(
            run_load(*smtp, args.messages, concurrency, args.size)
        )
        seen = wait_visible(imap, user, password, before + accepted, 600) - before
        e2e = time.perf_counter() - started
        cpu_visible = sampler.sample_cpu()
        settle()
        settled = time.perf_counter() - started
    latencies.sort()
    return Result(
        name=name,
        concurrency=concurrency,
        messages=args.messages,
        accepted=accepted,
        accepted_per_s=accepted / duration,
        e2e_per_s=seen / e2e,
        p50_ms=statistics.median(latencies) * 1000 if latencies else 0.0,
        p99_ms=latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0,
        peak_rss_mb=sampler.peak_kb / 1024,
        cpu_ms_per_msg=1000 * cpu_visible / max(1, seen),
        lost=accepted - seen,
        settled_per_s=seen / settled,
        settled_cpu_ms_per_msg=1000 * sampler.cpu_seconds / max(1, seen),
    )


def measure_each(
    name: str,
    smtp: tuple[str, int],
    imap: tuple[str, int],
    args: argparse.Namespace,
    sampler: RSSSampler,
    settle: Callable[[], None] = lambda: None,
) -> list[Result]:
    """One run per connection count of ``args.concurrency``, on the same running server."""
    results = []
    for concurrency in args.concurrency:
        results.append(
            measure(name, smtp, imap, USER, PASSWORD, args, sampler, concurrency, settle)
        )
        print(table(results[-1:]), flush=True)
    return results


# ---------------------------------------------------------------- govmail


def run_govmail(backend: str, args: argparse.Namespace, work: Path) -> list[Result]:
    with contextlib.ExitStack() as stack:
        # Per-IP connection limit lifted, as Postfix's smtpd_client_connection_count_limit is.
        env_extra: dict[str, str] = {
            "GOVMAIL_FILTERS__INBOUND": "[]",
            "GOVMAIL_SMTP__MAX_CONNECTIONS_PER_IP": "10000",
        }
        if args.workers is not None:
            env_extra["GOVMAIL_SERVER__WORKERS"] = str(args.workers)
        if backend == "postgres":
            base = stack.enter_context(throwaway_postgres())
            env_extra["GOVMAIL_DATABASE__URL"] = create_database(base, "bench")
        data = work / f"govmail-{backend}"
        env = govmail_env(**env_extra)
        init = run_cli("init", "--data-dir", str(data), "--domain", DOMAIN, env=env)
        assert init.returncode == 0, init.stderr
        config = data / "govmail.toml"
        added = run_cli(
            "mailbox",
            "add",
            USER,
            "--password-stdin",
            "-c",
            str(config),
            stdin=PASSWORD + "\n",
            env=env,
        )
        assert added.returncode == 0, added.stderr
        server = start_server(config, **env_extra)
        url = env_extra.get("GOVMAIL_DATABASE__URL") or f"sqlite:///{data / 'govmail.sqlite3'}"
        try:
            sampler = RSSSampler(
                lambda cmd: b"mailserver serve" in cmd or b"mailserver.worker" in cmd
            )
            return measure_each(
                f"govmail ({backend})",
                server.bound["smtp_mx"],
                server.bound["imap"],
                args,
                sampler,
                lambda: wait_settled(url, 600),
            )
        finally:
            server.terminate()


def wait_settled(url: str, timeout: float) -> None:
    """Until govmail's upkeep is done: no message left only in the database (blob_inline)
    and every text row in the text index."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        with engine.connect() as connection:
            while time.monotonic() < deadline:
                inline = connection.execute(text("SELECT count(*) FROM blob_inline")).scalar()
                if engine.dialect.name == "sqlite":
                    behind = connection.execute(
                        text(
                            "SELECT count(*) FROM message_text WHERE id > "
                            "(SELECT indexed_upto FROM search_index_state)"
                        )
                    ).scalar()
                else:
                    behind = connection.execute(
                        text("SELECT count(*) FROM message_text WHERE NOT indexed")
                    ).scalar()
                connection.rollback()
                if not inline and not behind:
                    return
                time.sleep(0.05)
    finally:
        engine.dispose()
    raise RuntimeError("govmail's upkeep did not finish in time")


# ---------------------------------------------------------------- Postfix + Dovecot


def ensure_packages() -> None:
    missing = [
        p
        for p in APT_PACKAGES
        if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0
    ]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env)


@contextlib.contextmanager
def postfix_dovecot(work: Path, smtp_port: int, lmtp_port: int, imap_port: int) -> Iterator[None]:
    root = work / "pfdc"
    mail = root / "mail"
    mail.mkdir(parents=True)
    shutil.chown(mail, "mail", "mail")
    (root / "run").mkdir()
    passwd = root / "passwd"
    passwd.write_text(f"{USER}:{{PLAIN}}{PASSWORD}:8:8::{mail}/an::\n")
    dovecot_conf = root / "dovecot.conf"
    dovecot_conf.write_text(
        textwrap.dedent(
            f"""
            base_dir = {root}/run
            protocols = imap lmtp
            listen = 127.0.0.1
            ssl = no
            disable_plaintext_auth = no
            auth_mechanisms = plain login
            mail_location = maildir:{mail}/%d/%n
            mail_fsync = optimized
            mail_uid = mail
            mail_gid = mail
            first_valid_uid = 8
            log_path = {root}/dovecot.log
            passdb {{
              driver = passwd-file
              args = {passwd}
            }}
            userdb {{
              driver = static
              args = uid=mail gid=mail home={mail}/%d/%n
            }}
            service imap-login {{
              inet_listener imap {{
                address = 127.0.0.1
                port = {imap_port}
              }}
              inet_listener imaps {{
                port = 0
              }}
            }}
            service lmtp {{
              inet_listener lmtp {{
                address = 127.0.0.1
                port = {lmtp_port}
              }}
              process_min_avail = 4
            }}
            protocol lmtp {{
              auth_username_format = %Lu
            }}
            """
        )
    )
    pf = root / "postfix"
    pf.mkdir()
    queue = root / "spool"
    data = root / "pfdata"
    queue.mkdir()
    data.mkdir()
    shutil.chown(data, "postfix", "postfix")
    (pf / "main.cf").write_text(
        textwrap.dedent(
            f"""
            compatibility_level = 3.6
            queue_directory = {queue}
            data_directory = {data}
            myhostname = mail.{DOMAIN}
            inet_interfaces = 127.0.0.1
            inet_protocols = ipv4
            mydestination =
            virtual_mailbox_domains = {DOMAIN}
            virtual_mailbox_maps = static:ok
            virtual_transport = lmtp:inet:127.0.0.1:{lmtp_port}
            lmtp_destination_concurrency_limit = 20
            default_destination_concurrency_limit = 20
            smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
            mynetworks = 127.0.0.0/8
            maillog_file = {root}/postfix.log
            maillog_file_prefixes = /var, /dev/stdout, {work}
            smtpd_client_connection_count_limit = 0
            smtpd_client_message_rate_limit = 0
            smtpd_client_connection_rate_limit = 0
            """
        )
    )
    (pf / "master.cf").write_text(_master_cf(smtp_port))
    # postfix -c only accepts directories the default instance names.
    subprocess.run(["postconf", "-e", f"alternate_config_directories = {pf}"], check=True)
    subprocess.run(["postfix", "-c", str(pf), "set-permissions"], capture_output=True)
    subprocess.run(["dovecot", "-c", str(dovecot_conf)], check=True)
    subprocess.run(["postfix", "-c", str(pf), "start"], check=True)
    try:
        yield
    finally:
        subprocess.run(["postfix", "-c", str(pf), "stop"], capture_output=True)
        subprocess.run(["doveadm", "-c", str(dovecot_conf), "stop"], capture_output=True)


def _master_cf(smtp_port: int) -> str:
    """Debian's master.cf, SMTP on our port, no chroot (the temp queue has no /etc copy)."""
    lines = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        fields = line.split()
        if line[:1].isalnum() and len(fields) >= 8:
            if fields[0] == "smtp" and fields[1] == "inet":
                fields[0] = f"127.0.0.1:{smtp_port}"
            fields[4] = "n"
            line = "  ".join(fields)
        lines.append(line)
    return "\n".join(lines) + "\n"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_postfix(args: argparse.Namespace, work: Path) -> list[Result]:
    ensure_packages()
    smtp_port, lmtp_port, imap_port = free_port(), free_port(), free_port()
    with postfix_dovecot(work, smtp_port, lmtp_port, imap_port):
        wait_listening(("127.0.0.1", smtp_port))
        wait_listening(("127.0.0.1", imap_port))
        sampler = RSSSampler(
            lambda cmd: (
                b"postfix" in cmd
                or b"dovecot" in cmd
                or b"smtpd" in cmd
                or b"cleanup" in cmd
                or b"qmgr" in cmd
                or b"lmtp" in cmd
                or b"trivial-rewrite" in cmd
                or b"imap" in cmd
            )
        )
        return measure_each(
            "Postfix + Dovecot (LMTP)",
            ("127.0.0.1", smtp_port),
            ("127.0.0.1", imap_port),
            args,
            sampler,
        )


def wait_listening(address: tuple[str, int]) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(address, timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {address}")


# ---------------------------------------------------------------- report


def table(results: list[Result]) -> str:
    lines = [
        "| server | connections | messages | accepted msg/s | end-to-end msg/s | p50 250 (ms)"
        " | p99 250 (ms) | server CPU ms/msg | peak RSS (MB) | lost | settled msg/s"
        " | CPU ms/msg until settled |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.concurrency} | {r.accepted}/{r.messages} | {r.accepted_per_s:.0f}"
            f" | {r.e2e_per_s:.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.cpu_ms_per_msg:.2f}"
            f" | {r.peak_rss_mb:.0f} | {r.lost} | {r.settled_per_s:.0f}"
            f" | {r.settled_cpu_ms_per_msg:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", "-n", type=int, default=2000)
    parser.add_argument(
        "--concurrency",
        "-c",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[16],
        help="connections; a comma-separated list runs each in turn on the same server",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="govmail server.workers (default: its own)"
    )
    parser.add_argument("--size", type=int, default=10 * 1024)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--no-postfix", action="store_true")
    args = parser.parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="govmail-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        for backend in args.backends.split(","):
            results.extend(run_govmail(backend, args, work))
        baselines: dict[int, float] = {}
        if not args.no_postfix:
            for result in run_postfix(args, work):
                results.append(result)
                baselines[result.concurrency] = result.e2e_per_s
    print()
    print(f"{args.messages} messages of {args.size} bytes per run, {os.cpu_count()} CPUs")
    print(table(results))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "smtp_ingest.json"
    record = {
        "args": vars(args),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "results": [asdict(r) for r in results],
    }
    out.write_text(json.dumps(record, indent=2))
    print(f"written to {out}")
    for r in results:
        if r.concurrency in baselines and not r.name.startswith("Postfix"):
            ratio = r.e2e_per_s / baselines[r.concurrency]
            print(f"{r.name}, {r.concurrency} connections: end-to-end {ratio:.2f}x P+D")


if __name__ == "__main__":
    main()
