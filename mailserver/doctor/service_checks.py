"""Are spamd and clamd answering? One PING each, at the address the configuration gives.

spamd answers ``SPAMD/1.5 0 PONG`` to ``PING SPAMC/1.5``; clamd answers ``PONG`` to ``zPING``.
A spamd that govmail itself starts (``[spamd] managed``) is only up while govmail runs, so its
silence is reported as information, not as a failure.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from filters.services import ServiceAddress
from mailserver.config import GovmailConfig
from mailserver.doctor.results import CheckResult, fail, info, ok

MAX_REPLY = 256
SPAMD_PING = b"PING SPAMC/1.5\r\n\r\n"
CLAMD_PING = b"zPING\0"
PING_TIMEOUT = 5.0  # seconds; the scan timeouts of the config are far longer


@dataclass(frozen=True)
class Service:
    """How to ask one service whether it is alive."""

    check: str
    ping: bytes
    expect: bytes
    start_fix: str


SPAMD = Service(
    "spamd",
    SPAMD_PING,
    b"PONG",
    "start spamd (systemctl start spamd) or correct [spamd] address; [spamd] enabled = false"
    " turns the spam check off",
)
CLAMD = Service(
    "clamd",
    CLAMD_PING,
    b"PONG",
    "start clamd (systemctl start clamav-daemon) or correct [clamd] address",
)


def ask(address: ServiceAddress, request: bytes, timeout: float) -> bytes:
    """Send ``request``, read the reply until the peer closes or MAX_REPLY bytes."""
    if address.socket_path:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        target: str | tuple[str, int] = address.socket_path
        try:
            sock.connect(target)
        except OSError:
            sock.close()
            raise
    else:
        sock = socket.create_connection((address.host, address.port), timeout=timeout)
    with sock:
        sock.sendall(request)
        reply = b""
        while len(reply) < MAX_REPLY:
            chunk = sock.recv(MAX_REPLY)
            if not chunk:
                break
            reply += chunk
            if reply.endswith((b"\n", b"\0")):
                break
        return reply


def ping_service(
    service: Service, address_text: str, timeout: float, managed: bool = False
) -> CheckResult:
    """One PING to the service at ``address_text`` (host:port or a unix socket path)."""
    try:
        address = ServiceAddress.parse(address_text)
    except ValueError as exc:
        return fail(service.check, str(exc), f"correct [{service.check}] address")
    try:
        reply = ask(address, service.ping, min(timeout, PING_TIMEOUT))
    except OSError as exc:
        reason = f"{address_text} does not answer: {exc.strerror or exc}"
        if managed:
            return info(
                service.check, reason + " (govmail starts it: normal while govmail is stopped)"
            )
        return fail(service.check, reason, service.start_fix)
    if service.expect not in reply:
        return fail(
            service.check,
            f"{address_text} answered {reply[:80]!r}, not {service.expect.decode()}",
            f"is [{service.check}] address really {service.check}'s?",
        )
    return ok(service.check, f"{address_text} answers PONG")


def check_spamd(config: GovmailConfig) -> CheckResult:
    if not config.spamd.enabled:
        return ok(SPAMD.check, "disabled ([spamd] enabled = false)")
    managed = config.spamd.managed
    return ping_service(SPAMD, config.spamd_address, config.spamd.timeout_seconds, managed)


def check_clamd(config: GovmailConfig) -> CheckResult:
    if not config.clamd.enabled:
        return ok(CLAMD.check, "disabled ([clamd] enabled = false)")
    return ping_service(CLAMD, config.clamd.address, config.clamd.timeout_seconds)
