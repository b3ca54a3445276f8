"""IDLE (RFC 2177, RFC 9051 6.3.13): push changes until the client sends DONE.

While idling, the session waits on two things at once: the client's next line and its change
event, which the bus sets on the event loop right after a commit, so a delivery is announced
within milliseconds. Expunges may be sent during IDLE (a command is in progress).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from mailserver.imap import protocol as p
from mailserver.imap import response as r
from mailserver.imap.commands.base import Done
from mailserver.imap.errors import BadCommand, CloseConnection

if TYPE_CHECKING:
    from mailserver.imap.session import Session


async def idle(session: Session, command: p.Idle) -> Done:
    session.send(r.continuation("idling"))
    await session.flush_updates(allow_expunge=True)
    await session.drain()
    session.idling = True
    line_task = asyncio.ensure_future(session.read_raw_line())
    try:
        while True:
            if session.shutdown_requested:
                raise CloseConnection("Server shutting down")
            change_task = asyncio.ensure_future(session.changed.wait())
            try:
                await asyncio.wait({line_task, change_task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                change_task.cancel()
            if line_task.done():
                break
            await session.flush_updates(allow_expunge=True)
            await session.drain()
        line = line_task.result()
    finally:
        session.idling = False
        if not line_task.done():
            line_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await line_task
    if line is None:
        raise CloseConnection("Connection closed during IDLE")
    if line.strip().upper() != b"DONE":
        raise BadCommand("Expected DONE")
    return Done("IDLE terminated")
