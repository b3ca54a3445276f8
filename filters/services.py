"""What the spamd and clamd checks share: where the service listens, and what to do when it
does not answer (a configurable tempfail or accept-with-header, logged and counted).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from filters.metrics import count
from filters.pipeline import Action, Verdict

log = logging.getLogger(__name__)

UNAVAILABLE_REPLY = "451 4.7.1 Content scanning is unavailable, try again later"


@dataclass(frozen=True)
class ServiceAddress:
    """A TCP ``host:port`` or a unix socket path (anything starting with "/")."""

    host: str = ""
    port: int = 0
    socket_path: str = ""

    @classmethod
    def parse(cls, text: str) -> ServiceAddress:
        if text.startswith("/"):
            return cls(socket_path=text)
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"service address {text!r} is neither host:port nor a socket path")
        return cls(host=host.strip("[]"), port=int(port))


def unavailable_verdict(
    check: str,
    service: str,
    on_failure: str,
    header: tuple[str, str],
    error: BaseException,
    remove_headers: tuple[str, ...] = (),
) -> Verdict:
    """The verdict when ``service`` failed: 451 4.7.1, or accept with ``header``."""
    count(f"{service}.unavailable")
    log.warning("event=%s_unavailable check=%s error=%r", service, check, error)
    if on_failure == "tempfail":
        return Verdict(
            check, Action.TEMPFAIL, UNAVAILABLE_REPLY, detail=f"{service} unavailable: {error!r}"
        )
    return Verdict(
        check,
        add_headers=(header,),
        remove_headers=remove_headers,
        detail=f"{service} unavailable, accepted",
    )
