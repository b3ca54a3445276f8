"""One IMAP connection: read requests, run them one at a time, map errors to responses.

Implementation notes (the invariants the command handlers rely on):
- One command at a time per connection: the next request is not even read from the socket
  until the current one is answered, so TCP flow control bounds what a pipelining client can
  queue, and handlers never race each other on the session's state.
- Commit before broadcast: the change bus delivers a change only after its transaction
  committed. The session notes it (``_on_change``, called on the event loop) and announces it
  later, at a moment RFC 3501 section 7.4.1 allows (``flush_updates``).
- Errors become responses in exactly one place, ``_run_command``: BadCommand -> BAD,
  CommandFailed and storage's MailboxError -> NO [CODE], CloseConnection -> BYE and close,
  anything else -> NO [SERVERBUG] with the stack in the log (never in the response).
- Nothing here blocks the event loop: database work goes through ``store.read``/``write``,
  blob reads through ``store.offload``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailserver.imap import response as r
from mailserver.imap.commands import COMMANDS, Done
from mailserver.imap.errors import BadCommand, CloseConnection, CommandFailed
from mailserver.imap.limits import (
    MAX_PENDING_CHANGES,
    PREAUTH_AUTOLOGOUT_SECONDS,
    PREAUTH_MAX_LITERAL,
    READ_CHUNK,
)
from mailserver.imap.parser import ParseError, parse_command
from mailserver.imap.protocol import Command
from mailserver.imap.receiver import (
    DEFAULT_MAX_COMMAND_LITERAL_SIZE,
    Event,
    NeedContinuation,
    RawLine,
    ReceiveError,
    Receiver,
    Request,
)
from mailserver.imap.selected import SelectedFolder, SelectedFolderGone
from mailserver.imap.state import SessionState
from mailserver.imap.utf7 import decode_mailbox_name, encode_mailbox_name
from mailserver.instance import Instance
from storage.changes import Change
from storage.mailbox_ops import (
    AccountNotFound,
    FolderExists,
    FolderNameInvalid,
    FolderNotFound,
    MailboxError,
    QuotaExceeded,
    normalise_folder_name,
)
from storage.recent import claim_recent
from storage.store import MailStore

if TYPE_CHECKING:
    from mailserver.imap.server import IMAPService

log = logging.getLogger(__name__)

# An over-long line's first word may be taken for its tag; never echo kilobytes of it back.
MAX_TAG_ECHO = 64

# RFC 5530 response codes for storage's refusals.
_MAILBOX_ERROR_CODES: tuple[tuple[type[MailboxError], str], ...] = (
    (FolderNotFound, "NONEXISTENT"),
    (FolderExists, "ALREADYEXISTS"),
    (QuotaExceeded, "OVERQUOTA"),
    (FolderNameInvalid, "CANNOT"),
    (AccountNotFound, "UNAVAILABLE"),
)


@dataclass(frozen=True)
class Account:
    """The authenticated user."""

    mailbox_id: int
    address: str


class Session:
    """State and I/O of one connection; command handlers receive it as their first argument."""

    def __init__(
        self,
        service: IMAPService,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        tls_active: bool,
        session_id: str,
    ) -> None:
        self.service = service
        self.instance: Instance = service.instance
        self.reader = reader
        self.writer = writer
        self.tls_active = tls_active
        self.session_id = session_id
        config = self.instance.config.imap
        self.receiver = Receiver(
            max_line_length=config.max_line_length,
            max_literal_size=PREAUTH_MAX_LITERAL,
            max_command_literal_size=PREAUTH_MAX_LITERAL,
            max_request_size=config.max_literal_size + 1024 * 1024,
        )
        self.state = SessionState.NOT_AUTHENTICATED
        self.account: Account | None = None
        self.selected: SelectedFolder | None = None
        self.enabled: set[str] = set()
        self.auth_failures = 0
        self.changed = asyncio.Event()
        self.waiting_for_command = False
        self.idling = False
        self.shutdown_requested = False
        self._unsubscribe: Callable[[], None] | None = None
        self._select_buffer: list[Change] | None = None
        self._pending_count = 0
        self.saved_search: list[int] | None = None  # RFC 5182 SEARCH RETURN (SAVE)
        self._task: asyncio.Task[object] | None = None  # the one running ``run``
        self._ending_now = False  # ``end_now`` cancelled it

    # ------------------------------------------------------------------ properties

    @property
    def store(self) -> MailStore:
        return self.instance.store

    @property
    def rev2(self) -> bool:
        """The client enabled IMAP4rev2 (RFC 9051): its response rules apply."""
        return "IMAP4rev2" in self.enabled

    @property
    def utf8(self) -> bool:
        """RFC 6855 UTF8=ACCEPT, or IMAP4rev2 (RFC 9051 5.1: mailbox names are UTF-8)."""
        return "UTF8=ACCEPT" in self.enabled or self.rev2

    @property
    def condstore(self) -> bool:
        """RFC 7162 3.1: CONDSTORE is on once a CONDSTORE-enabling command was seen."""
        return "CONDSTORE" in self.enabled or "QRESYNC" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def plaintext_auth_allowed(self) -> bool:
        """Whether LOGIN/AUTHENTICATE may be used now (RFC 9051 6.2.3, imap.allow_plaintext_auth).

        Always under TLS; before it, as configured: everywhere, nowhere, or only from loopback.
        """
        if self.tls_active:
            return True
        return plaintext_auth_permitted(
            self.instance.config.imap.allow_plaintext_auth, self.peer_ip()
        )

    def enable_condstore(self) -> None:
        """A CONDSTORE-enabling command was seen (RFC 7162 3.1). Turned on while a folder is
        selected, it announces the folder's HIGHESTMODSEQ first (RFC 7162 3.1.2.1)."""
        if self.condstore:
            return
        self.enabled.add("CONDSTORE")
        if self.selected is not None:
            code = r.ResponseCode("HIGHESTMODSEQ", (self.selected.highestmodseq,))
            self.send(r.untagged_ok("Highest", code))

    def require_account(self) -> Account:
        if self.account is None:
            raise BadCommand("Not authenticated")
        return self.account

    def require_selected(self) -> SelectedFolder:
        if self.selected is None:
            raise BadCommand("No mailbox selected")
        return self.selected

    # ------------------------------------------------------------------ output

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        """Wait until the client has taken what was sent; one that stops reading is dropped."""
        try:
            await asyncio.wait_for(self.writer.drain(), self.autologout_seconds())
        except TimeoutError:
            self.writer.transport.abort()
            raise ConnectionError("client stopped reading") from None

    def mailbox_name_out(self, name: str) -> bytes:
        """A folder name as a mailbox token: UTF-8 with UTF8=ACCEPT, else modified UTF-7."""
        if self.utf8:
            return r.astring(name, utf8=True)
        return r.astring(encode_mailbox_name(name))

    def mailbox_name_in(self, name: str) -> str:
        """A client's mailbox argument as the stored folder name (NFC, INBOX canonical)."""
        if not self.utf8:
            try:
                name = decode_mailbox_name(name)
            except ValueError as exc:
                raise CommandFailed(f"Invalid mailbox name: {exc}", "CANNOT") from exc
        try:
            return normalise_folder_name(name)
        except FolderNameInvalid as exc:
            raise CommandFailed(str(exc), "CANNOT") from exc

    # ------------------------------------------------------------------ account and changes

    def log_in(self, mailbox_id: int, address: str) -> None:
        # Only now may the client send APPEND-sized literals (RFC 9051 leaves limits to us).
        self.receiver.max_literal_size = self.instance.config.imap.max_literal_size
        self.receiver.max_command_literal_size = DEFAULT_MAX_COMMAND_LITERAL_SIZE
        self.account = Account(mailbox_id, address)
        self.state = SessionState.AUTHENTICATED
        self._unsubscribe = self.store.bus.subscribe(mailbox_id, self._on_change)

    def _on_change(self, change: Change) -> None:
        """Bus listener: runs on the event loop right after the change committed."""
        if self._select_buffer is not None:
            self._select_buffer.append(change)
        elif self.selected is None or not self.selected.note(change):
            return
        self._pending_count += 1
        self.changed.set()
        if self._pending_count > MAX_PENDING_CHANGES and not self.idling:
            # A client that never issues a command cannot make us hold changes forever.
            self.shutdown_requested = True
            self.writer.transport.abort()

    def begin_select(self) -> None:
        """Start buffering changes: a snapshot is being read for a SELECT."""
        self._select_buffer = []

    def finish_select(self, selected: SelectedFolder | None) -> None:
        """Install the new view (None if SELECT failed) with changes seen while reading it."""
        buffered = self._select_buffer or []
        self._select_buffer = None
        self.selected = selected
        self._pending_count = 0
        self.state = SessionState.SELECTED if selected else SessionState.AUTHENTICATED
        if selected is not None:
            for change in buffered:
                if selected.note(change):
                    self._pending_count += 1

    async def flush_updates(self, *, allow_expunge: bool) -> None:
        """Send the untagged updates that may be sent now (RFC 3501 7.4.1)."""
        self.changed.clear()
        selected = self.selected
        if selected is None or not selected.pending:
            return
        if selected.claims_recent:
            await self._claim_recent(selected)
        try:
            lines = selected.take_updates(
                allow_expunge=allow_expunge, with_modseq=self.condstore, vanished=self.qresync
            )
        except SelectedFolderGone as exc:
            raise CloseConnection("The selected mailbox was deleted or renamed") from exc
        self._pending_count = len(selected.pending)
        for line in lines:
            self.send(line)

    async def _claim_recent(self, selected: SelectedFolder) -> None:
        """Make the new messages about to be announced \\Recent here, unless another session
        claimed them first (storage.recent)."""
        added = selected.added_uids()
        if not added:
            return
        folder_id, below = selected.folder_id, max(added) + 1
        try:
            first = await self.store.write(lambda s: claim_recent(s, folder_id, below))
        except MailboxError:  # the folder is gone: the update that says so follows
            return
        selected.recent.update(uid for uid in added if uid >= first)

    # ------------------------------------------------------------------ input

    async def read_more(self) -> bool:
        """Read from the socket into the receiver; False at end of stream.

        Raises CloseConnection when the autologout timer runs out first.
        """
        try:
            data = await asyncio.wait_for(self.reader.read(READ_CHUNK), self.autologout_seconds())
        except TimeoutError:
            raise CloseConnection("Autologout; idle for too long") from None
        if not data:
            return False
        self.receiver.feed(data)
        return True

    def autologout_seconds(self) -> float:
        configured = self.instance.config.imap.autologout_seconds
        if self.state is SessionState.NOT_AUTHENTICATED:
            return min(configured, PREAUTH_AUTOLOGOUT_SECONDS)
        return configured

    def stop_reading_for_tls(self) -> int:
        """Stop reading plaintext before STARTTLS's OK is written; returns the bytes dropped.

        The transport reads on its own: its protocol fills the StreamReader whether or not a
        read is pending. Without this pause the client's first TLS record, sent the moment it
        sees the OK, could land in that plaintext buffer before ``start_tls`` took the socket
        over, and the handshake then waited forever (issue 13). ``loop.start_tls`` resumes
        reading once the TLS protocol is in place. Whatever was received after the STARTTLS
        line was pipelined behind it in plaintext: a protocol violation, and the way commands
        are injected into the TLS session (CVE-2011-0411), so it is dropped (RFC 9051 6.2.1).
        """
        transport = self.writer.transport
        if isinstance(transport, asyncio.ReadTransport):
            transport.pause_reading()
        return self.receiver.discard_buffered() + _discard_stream_buffer(self.reader)

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Upgrade the connection (reading was paused by ``stop_reading_for_tls``)."""
        await self.drain()
        await self.writer.start_tls(context, ssl_handshake_timeout=PREAUTH_AUTOLOGOUT_SECONDS)
        self.tls_active = True

    async def read_raw_line(self) -> bytes | None:
        """The next line verbatim (AUTHENTICATE responses, IDLE's DONE); None at end of stream."""
        self.receiver.expect_raw_line()
        while True:
            event = self.receiver.next_event()
            if isinstance(event, RawLine):
                return event.data
            if isinstance(event, ReceiveError):
                raise BadCommand(event.text, event.code)
            if event is not None:  # cannot happen: a raw line was asked for
                raise CloseConnection("Protocol confusion")
            if not await self.read_more():
                return None

    # ------------------------------------------------------------------ main loop

    def end_now(self, text: str) -> None:
        """Say BYE and end the session at once: for shutdown, while it waits for a command
        or idles (there is no command whose answer would be cut off).

        The session's task is cancelled rather than its connection closed from outside: a
        TLS close waits for the client's close_notify (up to 30 s, asyncio's
        ssl_shutdown_timeout), and the session, still reading, would wait with it (issue 18).
        Its ``finally`` closes the connection without waiting for the client.
        """
        self.shutdown_requested = True
        with contextlib.suppress(Exception):
            self.send(r.bye(text))
        if self._task is not None and not self._ending_now:
            self._ending_now = True
            self._task.cancel()

    async def run(self) -> None:
        """Serve the connection until LOGOUT, end of stream, autologout or shutdown."""
        self._task = asyncio.current_task()
        log.info(
            "event=imap_connect session=%s peer=%s tls=%s",
            self.session_id,
            self.peer_ip(),
            self.tls_active,
        )
        try:
            self.send(r.untagged_ok("govmail IMAP ready", self._capability_code()))
            await self.drain()
            await self._command_loop()
        except CloseConnection as exc:
            with contextlib.suppress(Exception):
                self.send(r.bye(exc.text))
                await self.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Our own cancel (``end_now``) ends the session normally; any other propagates.
            if self._task is None or not self._ending_now or self._task.uncancel() > 0:
                raise
        finally:
            self.state = SessionState.LOGOUT
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            self.selected = None
            with contextlib.suppress(Exception):
                self.writer.close()
            log.info("event=imap_disconnect session=%s", self.session_id)

    def peer_ip(self) -> str:
        peer = self.writer.get_extra_info("peername")
        return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"

    def _capability_code(self) -> r.ResponseCode:
        from mailserver.imap.commands.basic import capabilities

        return r.ResponseCode("CAPABILITY", tuple(capabilities(self)))

    async def _command_loop(self) -> None:
        while self.state is not SessionState.LOGOUT:
            if self.shutdown_requested:
                raise CloseConnection("Server shutting down")
            if self._pending_count > MAX_PENDING_CHANGES:
                raise CloseConnection("Too many changes pending; please reconnect")
            event = self.receiver.next_event()
            if event is None:
                self.waiting_for_command = not self.receiver.in_request
                try:
                    if not await self.read_more():
                        return
                finally:
                    self.waiting_for_command = False
                continue
            await self._handle_event(event)
            await self.drain()

    async def _handle_event(self, event: Event) -> None:
        if isinstance(event, NeedContinuation):
            self.send(r.continuation("Ready for literal data"))
        elif isinstance(event, ReceiveError):
            if event.tag is None or len(event.tag) > MAX_TAG_ECHO:
                self.send(r.untagged_status(event.status, event.text, _code(event.code)))
            else:
                self.send(r.tagged(event.tag, event.status, event.text, _code(event.code)))
        elif isinstance(event, RawLine):  # only asked for inside a command
            self.send(r.untagged_bad("Unexpected line"))
        elif isinstance(event, Request):
            await self._run_request(event)

    async def _run_request(self, request: Request) -> None:
        try:
            command = parse_command(request)
        except ParseError as exc:
            code = _code(exc.code)
            if exc.tag is None:
                self.send(r.untagged_status(exc.status, exc.message, code))
            else:
                self.send(r.tagged(exc.tag, exc.status, exc.message, code))
            return
        await self._run_command(command)

    async def _run_command(self, command: Command) -> None:
        tag = command.tag
        spec = COMMANDS.get(type(command))
        if spec is None:
            self.send(r.tagged_no(tag, f"{command.name} is not supported", _code("CANNOT")))
            return
        if self.state not in spec.states:
            self.send(r.tagged_bad(tag, f"{command.name} is not allowed in this state"))
            return
        try:
            done: Done = await spec.handler(self, command)
            if spec.sends_updates:
                await self.flush_updates(allow_expunge=spec.expunge_allowed(command))
        except BadCommand as exc:
            self.send(r.tagged_bad(tag, exc.text, _code(exc.code)))
        except CommandFailed as exc:
            self.send(r.tagged_no(tag, exc.text, _code(exc.code)))
        except MailboxError as exc:
            self.send(r.tagged_no(tag, str(exc), _code(_mailbox_error_code(exc))))
        except (CloseConnection, ConnectionError, ssl.SSLError):
            raise
        except Exception:
            log.exception(
                "event=imap_command_failed session=%s command=%s", self.session_id, command.name
            )
            self.send(r.tagged_no(tag, "Internal server error", _code("SERVERBUG")))
        else:
            self.send(r.tagged_ok(tag, done.text, done.code))
            if done.after is not None:
                await done.after()


def plaintext_auth_permitted(policy: str, peer_ip: str) -> bool:
    """``imap.allow_plaintext_auth`` for a connection from ``peer_ip`` that has no TLS."""
    if policy == "loopback":
        return _is_loopback(peer_ip)
    return policy == "always"


def _is_loopback(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _discard_stream_buffer(reader: asyncio.StreamReader) -> int:
    """Empty the StreamReader's buffer of received, unread bytes; returns how many it held.

    asyncio has no public way to take what is buffered without waiting for more, hence the
    private attribute (a bytearray since Python 3.4).
    """
    buffer = getattr(reader, "_buffer", None)
    if not isinstance(buffer, bytearray):
        return 0
    dropped = len(buffer)
    del buffer[:]
    return dropped


def _code(name: str | None) -> r.ResponseCode | None:
    return r.ResponseCode(name) if name else None


def _mailbox_error_code(exc: MailboxError) -> str | None:
    for kind, code in _MAILBOX_ERROR_CODES:
        if isinstance(exc, kind):
            return code
    return None
