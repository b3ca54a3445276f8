"""A seeded fuzzer of SMTP and IMAP command lines, driven over real sockets, one line at a time.

``smtp_lines`` / ``imap_lines`` generate hostile lines from a vocabulary of valid commands
(mutated bytes, NUL, bare CR and LF, lines longer than every limit, bytes that are not UTF-8,
random garbage). ``fuzz_smtp`` / ``fuzz_imap`` send them in one protocol state (sessions are
re-opened into that state whenever the server ends one), read exactly the replies each line
causes, and record every reply code and every violation of the rules the servers must keep:
a well-formed reply to each line, never ``421 4.3.0`` (SMTP's internal error) nor ``NO
[SERVERBUG]`` (IMAP's), the connection closed after any 421 or BYE.

Used by tests/smtp/test_fuzz.py (bounded, seeded) and benchmarks/fuzz_protocols.py (long runs).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import re
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

READ_TIMEOUT = 15.0
VALID_SHARE = 0.3
SMTP_STATES = ("greeting", "ehlo", "transaction", "authenticated")
IMAP_STATES = ("not_authenticated", "authenticated", "selected")

_SMTP_REPLY = re.compile(rb"([2-5][0-9][0-9])(?:([ -])[^\r\n]*)?\r\n\Z")
_IMAP_LITERAL = re.compile(rb"\{([0-9]+)\+?\}\r\n\Z")
_IMAP_TAGGED = re.compile(rb"[^ *+\r\n][^ \r\n]* (OK|NO|BAD)( [^\r\n]*)?\r\n\Z")


@dataclass
class Target:
    """Where to connect, and the account the authenticated states log in as."""

    smtp_mx: tuple[str, int]
    smtp_submissions: tuple[str, int]  # implicit TLS (465)
    imap: tuple[str, int]
    imaps: tuple[str, int]  # implicit TLS (993)
    user: str
    password: str


@dataclass
class FuzzStats:
    commands: int = 0
    sessions: int = 0
    replies: Counter[str] = field(default_factory=Counter)  # reply code (or IMAP status)
    violations: list[str] = field(default_factory=list)

    def note(self, problem: str, line: bytes) -> None:
        if len(self.violations) < 50:
            self.violations.append(f"{problem}: after {line[:120]!r}")


def client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# ------------------------------------------------------------------ generators

_SMTP_VOCABULARY = [
    b"EHLO client.example.org",
    b"HELO client.example.org",
    b"EHLO [127.0.0.1]",
    b"MAIL FROM:<someone@example.org>",
    b"MAIL FROM:<> SIZE=1000 BODY=8BITMIME",
    b"MAIL FROM:<someone@example.org> SMTPUTF8 RET=HDRS ENVID=abc+2Bdef AUTH=<>",
    b"RCPT TO:<{user}>",
    b"RCPT TO:<{user}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;{user}",
    b"RCPT TO:<postmaster>",
    b'RCPT TO:<"quoted local"@example.org>',
    b"RCPT TO:<@relay.example:someone@example.org>",
    b"RCPT TO:<nguy\xe1\xbb\x85n@v\xc3\xad-d\xe1\xbb\xa5.vn>",
    b"RSET",
    b"NOOP",
    b"NOOP ignored argument",
    b"VRFY <{user}>",
    b"VRFY postmaster",
    b"EXPN staff",
    b"HELP",
    b"HELP MAIL",
    b"AUTH PLAIN {plain}",
    b"AUTH PLAIN",
    b"AUTH LOGIN",
    b"AUTH LOGIN {login}",
    b"AUTH CRAM-MD5",
    b"STARTTLS",
    b"DATA",
    b"BDAT 10 LAST",
    b"ETRN example.org",
    b"TURN",
]

_IMAP_VOCABULARY = [
    b"CAPABILITY",
    b"NOOP",
    b"LOGIN {user} {password}",
    b'LOGIN "{user}" "wrong password"',
    b"AUTHENTICATE PLAIN {plain}",
    b"STARTTLS",
    b'ID ("name" "fuzz" "version" "1")',
    b"ENABLE UTF8=ACCEPT CONDSTORE",
    b"SELECT INBOX",
    b"EXAMINE INBOX",
    b"SELECT INBOX (CONDSTORE)",
    b'CREATE "Fuzz/Th\xc6\xb0 m\xe1\xbb\xa5c"',
    b"CREATE Fuzz",
    b"DELETE Fuzz",
    b"RENAME Fuzz Fuzz2",
    b"SUBSCRIBE INBOX",
    b"UNSUBSCRIBE INBOX",
    b'LIST "" "*"',
    b'LIST (SUBSCRIBED) "" "%" RETURN (STATUS (MESSAGES))',
    b'LSUB "" "*"',
    b"STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)",
    b"APPEND INBOX (\\Seen) {{10}}",
    b"APPEND INBOX {{12+}}",
    b"CHECK",
    b"CLOSE",
    b"UNSELECT",
    b"EXPUNGE",
    b"SEARCH ALL",
    b'SEARCH CHARSET UTF-8 TEXT "th\xc6\xb0"',
    b"SEARCH OR SEEN (FROM x SINCE 1-Jan-2020) NOT DELETED",
    b"FETCH 1:* (FLAGS UID RFC822.SIZE)",
    b"FETCH 1 (BODY.PEEK[HEADER] BODYSTRUCTURE ENVELOPE)",
    b"FETCH 1 BODY.PEEK[1]<0.10>",
    b"STORE 1 +FLAGS (\\Seen)",
    b"STORE 1:* -FLAGS.SILENT (\\Flagged)",
    b"COPY 1 Junk",
    b"MOVE 1 Junk",
    b"UID FETCH 1:* (FLAGS)",
    b"UID SEARCH 1:*",
    b"UID STORE 1 +FLAGS (\\Answered)",
    b"NAMESPACE",
    b"GETQUOTAROOT INBOX",
    b"IDLE",
]

_NOT_UTF8 = [b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x80", b"\xc0\xaf"]
_LONG = [510, 1000, 1100, 5000, 70000]


def _mutate(rng: random.Random, line: bytes) -> bytes:
    """One hostile variation of ``line``, or (a third of the time) ``line`` itself, so that the
    sessions also move on through their states."""
    if rng.random() < VALID_SHARE:
        return line
    kind = rng.randrange(14)
    position = rng.randrange(len(line) + 1)
    if kind == 0:
        return line
    if kind == 1:  # flipped bytes
        data = bytearray(line)
        for _ in range(rng.randint(1, 3)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == 2:
        return line[:position] + b"\x00" + line[position:]
    if kind == 3:
        return line[:position] + b"\r" + line[position:]
    if kind == 4:  # a bare LF: the server sees two lines
        return line[:position] + b"\n" + line[position:]
    if kind == 5:
        return line + b" " + b"A" * rng.choice(_LONG)
    if kind == 6:
        return line[:position] + rng.choice(_NOT_UTF8) + line[position:]
    if kind == 7:
        return line[:position]
    if kind == 8:
        return line + b" " + line.partition(b" ")[2]  # parameters twice
    if kind == 9:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(200))).replace(b"\n", b"")
    if kind == 10:
        return b""
    if kind == 11:
        return line[:position] + "Đà Nẵng".encode() + line[position:]
    if kind == 12:
        return rng.choice([b" ", b"\t", b"  \t "]) + line.lower()
    return line.translate(bytes.maketrans(b"<>:=", b"><=:"))


def _fill(template: bytes, user: str, password: str) -> bytes:
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    login = base64.b64encode(user.encode()).decode()
    return (
        template.replace(b"{user}", user.encode())
        .replace(b"{password}", password.encode())
        .replace(b"{plain}", plain.encode())
        .replace(b"{login}", login.encode())
        .replace(b"{{", b"{")
        .replace(b"}}", b"}")
    )


def smtp_lines(rng: random.Random, count: int, user: str, password: str) -> list[bytes]:
    """``count`` hostile SMTP command lines (without their CRLF)."""
    return [_mutate(rng, _fill(rng.choice(_SMTP_VOCABULARY), user, password)) for _ in range(count)]


def imap_lines(rng: random.Random, count: int, user: str, password: str) -> list[bytes]:
    """``count`` hostile IMAP command lines (tagged, without their CRLF)."""
    lines = []
    for index in range(count):
        command = _fill(rng.choice(_IMAP_VOCABULARY), user, password)
        tag = b"f%d " % index if rng.random() < 0.9 else b""
        lines.append(_mutate(rng, tag + command))
    return lines


# ------------------------------------------------------------------ SMTP


class _Closed(Exception):
    """The server ended the session (as it may: QUIT, STARTTLS, too many bad commands)."""


class _SmtpSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def reply(self, stats: FuzzStats, sent: bytes) -> list[bytes]:
        """One complete reply; checks its form, counts its code; raises _Closed at EOF."""
        lines: list[bytes] = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), READ_TIMEOUT)
            if not line:
                if lines:
                    stats.note("reply cut short", sent)
                raise _Closed
            match = _SMTP_REPLY.match(line)
            if match is None:
                stats.note(f"malformed reply line {line[:80]!r}", sent)
                raise _Closed
            if lines and lines[0][:3] != line[:3]:
                stats.note("continuation with another code", sent)
            lines.append(line)
            if match.group(2) != b"-":
                break
        code = lines[-1][:3].decode()
        stats.replies[code] += 1
        if lines[-1].startswith(b"421 4.3.0"):
            stats.note("internal error", sent)
        if code == "421":
            await self._expect_close(stats, sent)
        return lines

    async def _expect_close(self, stats: FuzzStats, sent: bytes) -> None:
        try:
            rest = await asyncio.wait_for(self.reader.read(), READ_TIMEOUT)
        except (TimeoutError, ConnectionError):
            rest = b"?"
        if rest:
            stats.note("connection left open after 421", sent)
        raise _Closed

    async def send(self, line: bytes, stats: FuzzStats) -> list[bytes]:
        self.writer.write(line + b"\r\n")
        await self.writer.drain()
        return await self.reply(stats, line)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def _open_smtp(target: Target, state: str, stats: FuzzStats) -> _SmtpSession:
    """A session in ``state``: the setup's replies must all succeed."""
    if state == "authenticated":
        reader, writer = await asyncio.open_connection(*target.smtp_submissions, ssl=client_tls())
    else:
        reader, writer = await asyncio.open_connection(*target.smtp_mx)
    session = _SmtpSession(reader, writer)
    stats.sessions += 1
    setup = [b"EHLO fuzz.example.org"] if state != "greeting" else []
    if state == "transaction":
        setup += [b"MAIL FROM:<someone@example.org>", b"RCPT TO:<%s>" % target.user.encode()]
    if state == "authenticated":
        setup.append(_fill(b"AUTH PLAIN {plain}", target.user, target.password))
    try:
        greeting = await session.reply(stats, b"<connect>")
        for line in setup:
            reply = await session.send(line, stats)
            if reply[-1][:1] != b"2":
                raise AssertionError(f"setup {line!r} failed: {reply!r} ({greeting!r})")
    except BaseException:
        await session.close()
        raise
    return session


async def _smtp_step(session: _SmtpSession, line: bytes, stats: FuzzStats) -> None:
    """Send one fuzz line (each LF-ended part is a line to the server) and read its replies."""
    for part in line.split(b"\n"):
        stats.commands += 1
        reply = await session.send(part, stats)
        last = reply[-1]
        if last.startswith(b"354"):  # DATA: end the (empty) message at once
            await session.send(b".", stats)
        elif last[:3] in (b"220", b"221"):  # STARTTLS (a handshake is due, none follows), QUIT
            raise _Closed


async def fuzz_smtp(target: Target, state: str, lines: list[bytes], stats: FuzzStats) -> None:
    """Send ``lines`` in ``state``, re-opening the session whenever the server ends it."""
    session: _SmtpSession | None = None
    try:
        for line in lines:
            if session is None:
                session = await _open_smtp(target, state, stats)
            try:
                await _smtp_step(session, line, stats)
            except (_Closed, ConnectionError, ssl.SSLError):
                await session.close()
                session = None
            except TimeoutError:
                stats.note("no reply", line)
                await session.close()
                session = None
    finally:
        if session is not None:
            await session.close()


# ------------------------------------------------------------------ IMAP


class _ImapSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def _line(self) -> bytes:
        """One response line, with the literals it carries (``{n}`` then n octets)."""
        line = await asyncio.wait_for(self.reader.readline(), READ_TIMEOUT)
        whole = line
        while (literal := _IMAP_LITERAL.search(line)) is not None:
            whole += await asyncio.wait_for(
                self.reader.readexactly(int(literal.group(1))), READ_TIMEOUT
            )
            line = await asyncio.wait_for(self.reader.readline(), READ_TIMEOUT)
            whole += line
        return whole

    async def response(self, stats: FuzzStats, sent: bytes) -> bytes:
        """Lines up to the tagged response or a continuation request; its last line."""
        while True:
            line = await self._line()
            if not line:
                raise _Closed
            if not line.endswith(b"\r\n"):
                stats.note(f"response line without CRLF {line[:80]!r}", sent)
                raise _Closed
            if b"[SERVERBUG]" in line:
                stats.note(f"server bug {line[:120]!r}", sent)
            if line.startswith(b"* BYE"):
                stats.replies["BYE"] += 1
                await self._expect_close(stats, sent)
            if line.startswith(b"+"):
                stats.replies["+"] += 1
                return line
            if line.startswith(b"* BAD"):  # RFC 9051 7.1.3: no tag to answer with
                stats.replies["BAD"] += 1
                return line
            if line.startswith(b"* "):
                continue
            match = _IMAP_TAGGED.match(line)
            if match is None:
                stats.note(f"malformed response line {line[:80]!r}", sent)
                raise _Closed
            stats.replies[match.group(1).decode()] += 1
            return line

    async def _expect_close(self, stats: FuzzStats, sent: bytes) -> None:
        try:
            rest = await asyncio.wait_for(self.reader.read(), READ_TIMEOUT)
        except (TimeoutError, ConnectionError):
            rest = b"?"
        # The tagged OK of LOGOUT may follow the BYE.
        if rest and not _IMAP_TAGGED.match(rest):
            stats.note("connection left open after BYE", sent)
        raise _Closed

    async def send(self, data: bytes, stats: FuzzStats, sent: bytes) -> bytes:
        self.writer.write(data + b"\r\n")
        await self.writer.drain()
        return await self.response(stats, sent)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def _open_imap(target: Target, state: str, stats: FuzzStats) -> _ImapSession:
    if state == "not_authenticated":
        reader, writer = await asyncio.open_connection(*target.imap)
    else:
        reader, writer = await asyncio.open_connection(*target.imaps, ssl=client_tls())
    session = _ImapSession(reader, writer)
    stats.sessions += 1
    setup = []
    if state != "not_authenticated":
        setup.append(_fill(b"s1 LOGIN {user} {password}", target.user, target.password))
    if state == "selected":
        setup.append(b"s2 SELECT INBOX")
    try:
        greeting = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
        if not greeting.startswith(b"* OK"):
            raise AssertionError(f"IMAP greeting {greeting!r}")
        for line in setup:
            reply = await session.send(line, stats, line)
            if b" OK" not in reply:
                raise AssertionError(f"setup {line!r} failed: {reply!r}")
    except BaseException:
        await session.close()
        raise
    return session


async def _imap_step(session: _ImapSession, line: bytes, stats: FuzzStats) -> None:
    for part in line.split(b"\n"):
        stats.commands += 1
        data = part
        literal_plus = re.search(rb"\{([0-9]+)\+\}\Z", part)
        if literal_plus is not None and int(literal_plus.group(1)) <= 100_000:
            # LITERAL+: the octets follow without waiting (RFC 7888).
            data = part + b"\r\n" + b"x" * int(literal_plus.group(1))
        last = await session.send(data, stats, part)
        if not last.startswith(b"+"):
            continue
        # A continuation request: IDLE waits for DONE, AUTHENTICATE for an answer (cancel
        # it), a synchronising literal for its octets.
        literal = re.search(rb"\{([0-9]+)\}\Z", part)
        if part.upper().endswith(b"IDLE"):
            answer = b"DONE"
        elif literal is not None and int(literal.group(1)) <= 100_000:
            answer = b"x" * int(literal.group(1))
        else:
            answer = b"*"
        reply = await session.send(answer, stats, part)
        if reply.startswith(b"+"):  # still waiting: give up on this session
            raise _Closed


async def fuzz_imap(target: Target, state: str, lines: list[bytes], stats: FuzzStats) -> None:
    session: _ImapSession | None = None
    try:
        for line in lines:
            if session is None:
                session = await _open_imap(target, state, stats)
            try:
                await _imap_step(session, line, stats)
                if b"STARTTLS" in line.upper():
                    # An OK to STARTTLS wants a handshake; a new session is simpler.
                    raise _Closed
            except (_Closed, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
                await session.close()
                session = None
            except TimeoutError:
                stats.note("no response", line)
                await session.close()
                session = None
    finally:
        if session is not None:
            await session.close()


FuzzRun = Callable[[Target, str, list[bytes], FuzzStats], Awaitable[None]]
