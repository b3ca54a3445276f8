"""STARTTLS reliability: N consecutive IMAP connections that upgrade with STARTTLS and log in.

Counts the connections that hang (no answer within the timeout) or fail, alternating imaplib
(``IMAP4.starttls``) and imapclient (``IMAPClient.starttls``), against a real `govmail serve`
on an initialised throwaway instance. Issue 13: before the fix, 15-27 % of connections hung
right after ``OK Begin TLS negotiation now``.

  python -m benchmarks.imap_starttls --connections 1000 --timeout 5
"""

from __future__ import annotations

import argparse
import imaplib
import ssl
import tempfile
import time
from collections import Counter
from pathlib import Path

from imapclient import IMAPClient

PASSWORD = "Mat-khau#2026"
DOMAIN = "bench.gov.vn"
USER = f"starttls@{DOMAIN}"
ARGON2 = {"time_cost": 1, "memory_kib": 1024}


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the throwaway instance's certificate is self-signed
    return context


def with_imaplib(host: str, port: int, timeout: float) -> None:
    with imaplib.IMAP4(host, port, timeout=timeout) as client:
        client.starttls(client_context())
        client.login(USER, PASSWORD)
        client.noop()


def with_imapclient(host: str, port: int, timeout: float) -> None:
    with IMAPClient(host, port, ssl=False, timeout=timeout) as client:
        client.starttls(client_context())
        client.login(USER, PASSWORD)
        client.noop()


def one_connection(index: int, host: str, port: int, timeout: float) -> str:
    """'ok', 'hang' (timed out) or the failure's class name."""
    run = with_imaplib if index % 2 == 0 else with_imapclient
    try:
        run(host, port, timeout)
    except TimeoutError:
        return "hang"
    except Exception as exc:
        return type(exc).__name__
    return "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()

    from benchmarks.govmail_process import provision, started_server

    with tempfile.TemporaryDirectory(prefix="govmail-starttls-") as tmp:
        config = provision(Path(tmp), DOMAIN, {USER: []}, PASSWORD, ARGON2)
        with started_server(config, ARGON2) as server:
            host, port = server.bound["imap"]
            outcomes: Counter[str] = Counter()
            started = time.monotonic()
            for index in range(args.connections):
                outcomes[one_connection(index, host, port, args.timeout)] += 1
            elapsed = time.monotonic() - started
    print(f"{args.connections} STARTTLS connections in {elapsed:.1f} s: {dict(outcomes)}")


if __name__ == "__main__":
    main()
