"""Commands valid in any state and session-wide settings.

CAPABILITY, NOOP, LOGOUT (RFC 9051 section 6.1), CHECK (RFC 3501 6.4.1), ID (RFC 2971),
NAMESPACE (RFC 2342) and ENABLE (RFC 5161).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mailserver.imap import protocol as p
from mailserver.imap import response as r
from mailserver.imap.commands.base import Done
from mailserver.imap.state import SessionState

if TYPE_CHECKING:
    from mailserver.imap.session import Session

log = logging.getLogger(__name__)

# Advertised after authentication, and what ENABLE can turn on (RFC 5161 section 3.1).
AUTHENTICATED_CAPABILITIES = (
    "IMAP4rev1",
    "IMAP4rev2",
    "LITERAL+",
    "SASL-IR",
    "ID",
    "ENABLE",
    "IDLE",
    "NAMESPACE",
    "UIDPLUS",
    "MOVE",
    "UNSELECT",
    "CHILDREN",
    "SPECIAL-USE",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "CONDSTORE",
    "QRESYNC",
    "ESEARCH",
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "UTF8=ACCEPT",
    "SEARCHRES",
    "BINARY",
    "STATUS=SIZE",
)
# ENABLE names (upper-cased by the parser) and how ENABLED spells them back.
ENABLEABLE = {
    "CONDSTORE": "CONDSTORE",
    "QRESYNC": "QRESYNC",
    "UTF8=ACCEPT": "UTF8=ACCEPT",
    "IMAP4REV2": "IMAP4rev2",
}

SERVER_ID = (("name", "govmail"), ("vendor", "govmail"), ("support-url", None))


def capabilities(session: Session) -> list[str]:
    """The capability list for the session's current state (RFC 9051 section 7.2.2)."""
    if session.state is SessionState.NOT_AUTHENTICATED:
        caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
        if not session.tls_active and session.service.tls is not None:
            caps.append("STARTTLS")
        if session.plaintext_auth_allowed:
            caps.append("AUTH=PLAIN")
        else:
            caps.append("LOGINDISABLED")  # RFC 9051 6.2.3: and no AUTH= until STARTTLS
        return caps
    return list(AUTHENTICATED_CAPABILITIES)


async def capability(session: Session, command: p.Capability) -> Done:
    session.send(r.capability_data(capabilities(session)))
    return Done("CAPABILITY completed")


async def noop(session: Session, command: p.Noop) -> Done:
    # The session flushes pending updates before the tagged OK: NOOP exists for that.
    return Done("NOOP completed")


async def check(session: Session, command: p.Check) -> Done:
    # Every change is committed durably before it is acknowledged: nothing to checkpoint.
    return Done("CHECK completed")


async def logout(session: Session, command: p.Logout) -> Done:
    session.send(r.bye("govmail logging out"))
    session.state = SessionState.LOGOUT
    return Done("LOGOUT completed")


async def id_command(session: Session, command: p.Id) -> Done:
    """RFC 2971: answer with the server's own identification; the client's is only logged."""
    if command.parameters:
        fields = " ".join(f"{k}={v!r}" for k, v in command.parameters[:10])
        log.info("event=imap_client_id session=%s %s", session.session_id, fields)
    items: list[bytes] = []
    for name, value in SERVER_ID:
        items.append(r.quoted(name))
        items.append(r.nstring(value))
    session.send(r.untagged(b"ID", r.paren_list(items)))
    return Done("ID completed")


async def namespace(session: Session, command: p.Namespace) -> Done:
    """One personal namespace, "" with separator "/"; no other users' or shared ones."""
    personal = r.paren_list([r.paren_list([r.quoted(""), r.quoted("/")])])
    session.send(r.untagged(b"NAMESPACE", personal, r.NIL, r.NIL))
    return Done("NAMESPACE completed")


async def enable(session: Session, command: p.Enable) -> Done:
    """RFC 5161 3.1: list only what this command newly enabled; ignore unknown names."""
    newly: list[str] = []
    for requested in command.capabilities:
        name = ENABLEABLE.get(requested.upper())
        if name is not None and name not in session.enabled:
            session.enabled.add(name)
            newly.append(name)
            if name == "QRESYNC" and "CONDSTORE" not in session.enabled:
                # RFC 7162 3.2.3: enabling QRESYNC implies CONDSTORE.
                session.enabled.add("CONDSTORE")
    session.send(r.untagged(b"ENABLED", *(n.encode("ascii") for n in newly)))
    return Done("ENABLE completed")
