"""Incremental (sans-I/O) receiver that cuts the client's byte stream into IMAP requests.

The session feeds whatever it read from the socket and pulls events until `next_event()`
returns None (more data needed):

    receiver.feed(data)
    while (event := receiver.next_event()) is not None:
        match event:
            case NeedContinuation():  write b"+ Ready\\r\\n"  (synchronising literal)
            case Request():           parser.parse_command(event) and run it
            case RawLine():           AUTHENTICATE response or IDLE's DONE
            case ReceiveError():      write `TAG BAD|NO [CODE] text` (or `* BAD` without tag)

A request is the tag, the command text split at each literal, and the literal payloads:
`A1 LOGIN {4}\\r\\nuser pass\\r\\n` gives pieces (b"LOGIN ", b" pass") and one literal b"user".
The literal markers (`{4}`, `{4+}`, `~{4}`) are removed from the pieces; literal i comes right
after piece i.

Literals (RFC 9051 section 4.3, RFC 7888 LITERAL+, RFC 3516/9051 literal8): a synchronising
literal `{n}` yields NeedContinuation(n) first, because the client waits for `+` before sending
the octets. A non-synchronising `{n+}` is read straight on.

Limits (constructor arguments): line length outside literals, literal size (APPEND and other
commands separately), total request size, literals per request. A violation yields a
ReceiveError and the receiver resynchronises: for a refused synchronising literal the client
never sends the octets (RFC 9051 section 7.5: it gets the tagged answer instead of `+`), so the
next line is a new command; a refused non-synchronising literal is read and thrown away
(RFC 7888 section 4 lets the server discard it or close the connection), as is the rest of a
line that was too long.

Lines may end in CRLF or a bare LF. Parsing is lazy, so a session that got an AUTHENTICATE or
IDLE request can call `expect_raw_line()` before asking for the next event and receive the
next line verbatim as RawLine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

from mailserver.imap.response import StatusKind

DEFAULT_MAX_LINE_LENGTH = 8192
DEFAULT_MAX_APPEND_LITERAL_SIZE = 64 * 1024 * 1024
# Non-APPEND commands only need literals for names, passwords and search strings (mox uses
# 100 KiB for the same purpose).
DEFAULT_MAX_COMMAND_LITERAL_SIZE = 100 * 1024
DEFAULT_MAX_REQUEST_SIZE = DEFAULT_MAX_APPEND_LITERAL_SIZE + 1024 * 1024
DEFAULT_MAX_LITERALS = 1000

# A literal size beyond this many digits cannot be a real size (number64 has 19 digits).
_MAX_SIZE_DIGITS = 20
# Bytes kept from a discarded line so a literal marker at its end is still seen.
_MARKER_TAIL = _MAX_SIZE_DIGITS + 4

# RFC 9051 section 9: tag = 1*<any ASTRING-CHAR except "+">.
_NOT_TAG_CHARS = (
    frozenset(b'(){ %*"\\+') | frozenset(range(0x00, 0x20)) | frozenset(range(0x7F, 0x100))
)


@dataclass(frozen=True)
class Literal:
    """A literal's payload; `binary` for literal8 `~{n}`, `synchronizing` for `{n}`."""

    data: bytes
    binary: bool = False
    synchronizing: bool = True

    def __repr__(self) -> str:  # payloads may be passwords or whole messages
        return f"Literal(size={len(self.data)}, binary={self.binary})"


@dataclass(frozen=True)
class Request:
    """One complete command: tag, text pieces (literal markers removed) and literal payloads.

    Invariant: len(pieces) == len(literals) + 1; literal i follows pieces[i]. pieces[0] starts
    with the command name (the tag and its space are removed).
    """

    tag: str
    pieces: tuple[bytes, ...]
    literals: tuple[Literal, ...] = ()

    @property
    def command_name(self) -> str:
        """The first word after the tag, upper-cased ("" if none)."""
        return _command_word(self.pieces[0])


@dataclass(frozen=True)
class NeedContinuation:
    """The client announced a synchronising literal of `size` octets: send `+ ...` now."""

    tag: str
    size: int


@dataclass(frozen=True)
class RawLine:
    """A line read verbatim (without its line ending) after `expect_raw_line()`."""

    data: bytes

    def __repr__(self) -> str:  # AUTHENTICATE responses carry credentials
        return f"RawLine(size={len(self.data)})"


@dataclass(frozen=True)
class ReceiveError:
    """The input broke a limit or was not a command. Answer `tag status [code] text`.

    `tag` is None when the tag was not known or invalid (answer with `*`). `code` is a
    response code name such as "TOOBIG", or None.
    """

    tag: str | None
    status: StatusKind
    code: str | None
    text: str


Event = Request | NeedContinuation | RawLine | ReceiveError


class _Mode(Enum):
    COMMAND_START = auto()  # next line starts a new request
    COMMAND_CONTINUED = auto()  # next line continues the request after a literal
    LITERAL = auto()  # reading literal octets
    DISCARD_LINE = auto()  # skipping the rest of a refused request's line
    DISCARD_LITERAL = auto()  # skipping a refused non-synchronising literal


@dataclass(frozen=True)
class _Marker:
    size: int | None  # None: too many digits to be a size
    synchronizing: bool
    binary: bool
    start: int  # index in the line where the marker begins


def _command_word(piece: bytes) -> str:
    word = piece.split(b" ", 1)[0]
    return word.decode("ascii", errors="replace").upper()


def find_literal_marker(line: bytes) -> _Marker | None:
    """Return the literal marker ending the line (outside any quoted string), if any."""
    if not line.endswith(b"}"):
        return None
    # A quoted string cannot span lines, so a scan of this line alone tells whether the "}"
    # is inside quotes (RFC 9051 section 4.3: quoted strings hold no CR or LF).
    in_quote = False
    escaped = False
    for byte in line:
        if escaped:
            escaped = False
        elif in_quote and byte == 0x5C:
            escaped = True
        elif byte == 0x22:
            in_quote = not in_quote
    if in_quote:
        return None
    open_index = line.rfind(b"{")
    if open_index < 0:
        return None
    inner = line[open_index + 1 : -1]
    synchronizing = True
    if inner.endswith(b"+"):
        synchronizing = False
        inner = inner[:-1]
    if not inner or not inner.isdigit():
        return None
    binary = open_index > 0 and line[open_index - 1] == 0x7E  # "~"
    start = open_index - 1 if binary else open_index
    size = int(inner) if len(inner) <= _MAX_SIZE_DIGITS else None
    return _Marker(size, synchronizing, binary, start)


class Receiver:
    """Push receiver: `feed(bytes)`, then `next_event()` until it returns None."""

    def __init__(
        self,
        *,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_literal_size: int = DEFAULT_MAX_APPEND_LITERAL_SIZE,
        max_command_literal_size: int = DEFAULT_MAX_COMMAND_LITERAL_SIZE,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        max_literals: int = DEFAULT_MAX_LITERALS,
    ) -> None:
        """Limits: `max_literal_size` applies to APPEND, `max_command_literal_size` to others."""
        self.max_line_length = max_line_length
        self.max_literal_size = max_literal_size
        self.max_command_literal_size = max_command_literal_size
        self.max_request_size = max_request_size
        self.max_literals = max_literals
        self._buffer = bytearray()
        self._mode = _Mode.COMMAND_START
        self._raw_line_wanted = False
        self._remaining = 0  # octets still to read (LITERAL) or skip (DISCARD_LITERAL)
        self._literal_binary = False
        self._literal_sync = True
        self._reset_request()

    def _reset_request(self) -> None:
        self._tag: str | None = None
        self._command = ""
        self._pieces: list[bytes] = []
        self._literals: list[Literal] = []
        self._request_size = 0

    # --- public API ------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Append bytes read from the connection."""
        self._buffer += data

    def expect_raw_line(self) -> None:
        """Return the next line verbatim as RawLine (AUTHENTICATE exchange, IDLE's DONE).

        Takes effect only between requests; it lasts for one line.
        """
        self._raw_line_wanted = True

    def refuse_continuation(self) -> None:
        """Drop the request whose NeedContinuation was just returned, without sending `+`.

        For a session that answers the command at once (e.g. APPEND in the wrong state): the
        client sends no literal octets then (RFC 9051 section 7.5), so the next line is a new
        command.
        """
        if self._mode is not _Mode.LITERAL or not self._literal_sync:
            raise RuntimeError("no synchronising literal is waiting for a continuation")
        self._reset_request()
        self._mode = _Mode.COMMAND_START

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed (e.g. pipelined after STARTTLS)."""
        return len(self._buffer)

    def discard_buffered(self) -> int:
        """Drop the bytes received but not yet consumed; returns how many were dropped.

        For STARTTLS: plaintext pipelined behind it must never be read as commands of the TLS
        session (RFC 9051 section 6.2.1; the CVE-2011-0411 command injection).
        """
        dropped = len(self._buffer)
        del self._buffer[:]
        return dropped

    @property
    def in_request(self) -> bool:
        """Whether a request has started but is not complete."""
        return self._mode is not _Mode.COMMAND_START

    def next_event(self) -> Event | None:
        """Return the next event, or None when more data must be fed."""
        while True:
            if self._mode is _Mode.LITERAL:
                if len(self._buffer) < self._remaining:
                    return None
                data = bytes(self._buffer[: self._remaining])
                del self._buffer[: self._remaining]
                self._literals.append(Literal(data, self._literal_binary, self._literal_sync))
                self._mode = _Mode.COMMAND_CONTINUED
                continue
            if self._mode is _Mode.DISCARD_LITERAL:
                skipped = min(self._remaining, len(self._buffer))
                del self._buffer[:skipped]
                self._remaining -= skipped
                if self._remaining:
                    return None
                self._mode = _Mode.DISCARD_LINE
                continue
            line = self._take_line()
            if line is None:
                return self._check_unterminated_line()
            if self._mode is _Mode.DISCARD_LINE:
                self._after_discarded_line(line)
                continue
            event = self._on_line(line)
            if event is not None:
                return event

    # --- lines -----------------------------------------------------------------------------

    def _take_line(self) -> bytes | None:
        end = self._buffer.find(b"\n")
        if end < 0:
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line[:-1] if line.endswith(b"\r") else line

    def _check_unterminated_line(self) -> Event | None:
        """Bound memory while a line is incomplete; report a line that is already too long."""
        if len(self._buffer) <= self.max_line_length:
            return None
        if self._mode is _Mode.DISCARD_LINE:
            del self._buffer[:-_MARKER_TAIL]
            return None
        if self._mode is _Mode.COMMAND_START and self._raw_line_wanted:
            self._raw_line_wanted = False
            del self._buffer[:-_MARKER_TAIL]
            self._mode = _Mode.DISCARD_LINE
            return ReceiveError(None, StatusKind.BAD, "TOOBIG", "Line too long")
        tag = self._tag if self._tag is not None else self._peek_tag()
        del self._buffer[:-_MARKER_TAIL]
        return self._fail(tag, "TOOBIG", "Command line too long", StatusKind.BAD)

    def _peek_tag(self) -> str | None:
        if self._mode is not _Mode.COMMAND_START or self._raw_line_wanted:
            return None
        candidate = bytes(self._buffer[: self.max_line_length]).split(b" ", 1)
        if len(candidate) < 2:
            return None
        return _valid_tag(candidate[0])

    def _after_discarded_line(self, line: bytes) -> None:
        marker = find_literal_marker(line)
        if marker is not None and not marker.synchronizing and marker.size is not None:
            self._mode = _Mode.DISCARD_LITERAL
            self._remaining = marker.size
        else:
            self._mode = _Mode.COMMAND_START

    def _fail(self, tag: str | None, code: str | None, text: str, status: StatusKind) -> Event:
        """Drop the current request and skip what belongs to it."""
        self._reset_request()
        self._mode = _Mode.DISCARD_LINE
        return ReceiveError(tag, status, code, text)

    def _fail_on_line(
        self, line: bytes, tag: str | None, code: str | None, text: str, status: StatusKind
    ) -> Event:
        """Refuse a request whose current line is complete: resync after its literal, if any."""
        event = self._fail(tag, code, text, status)
        self._after_discarded_line(line)
        return event

    def _on_line(self, line: bytes) -> Event | None:
        if self._mode is _Mode.COMMAND_START and self._raw_line_wanted:
            self._raw_line_wanted = False
            if len(line) > self.max_line_length:
                self._mode = _Mode.COMMAND_START
                return ReceiveError(None, StatusKind.BAD, "TOOBIG", "Line too long")
            return RawLine(line)
        if len(line) > self.max_line_length:
            tag = self._tag if self._tag is not None else _split_tag(line)[0]
            return self._fail_on_line(line, tag, "TOOBIG", "Command line too long", StatusKind.BAD)

        text = line
        if self._mode is _Mode.COMMAND_START:
            if not line:
                return ReceiveError(None, StatusKind.BAD, None, "Empty command line")
            tag, rest = _split_tag(line)
            if tag is None:
                return self._fail_on_line(line, None, None, "Invalid tag", StatusKind.BAD)
            if rest is None:
                return self._fail_on_line(line, tag, None, "Missing command", StatusKind.BAD)
            self._tag = tag
            self._command = _command_word(rest)
            text = rest
        tag = self._tag
        assert tag is not None

        self._request_size += len(line) + 2
        if self._request_size > self.max_request_size:
            return self._fail_on_line(line, tag, "TOOBIG", "Command too big", StatusKind.BAD)
        marker = find_literal_marker(text)
        if marker is None:
            self._pieces.append(text)
            request = Request(tag, tuple(self._pieces), tuple(self._literals))
            self._reset_request()
            self._mode = _Mode.COMMAND_START
            return request

        refusal = self._refuse_literal(marker)
        if refusal is not None:
            return self._fail_on_line(line, tag, refusal[0], refusal[1], refusal[2])
        assert marker.size is not None
        self._pieces.append(text[: marker.start])
        self._request_size += marker.size
        self._remaining = marker.size
        self._literal_binary = marker.binary
        self._literal_sync = marker.synchronizing
        self._mode = _Mode.LITERAL
        if marker.synchronizing:
            return NeedContinuation(tag, marker.size)
        return None

    def _refuse_literal(self, marker: _Marker) -> tuple[str | None, str, StatusKind] | None:
        """Return (code, text, status) if the announced literal breaks a limit."""
        # A refused synchronising literal is answered NO: the client sent nothing it should
        # not have and may retry smaller; a non-synchronising one was forced on us: BAD.
        status = StatusKind.NO if marker.synchronizing else StatusKind.BAD
        if len(self._literals) >= self.max_literals:
            return "LIMIT", "Too many literals in one command", StatusKind.BAD
        limit = (
            self.max_literal_size if self._command == "APPEND" else self.max_command_literal_size
        )
        if marker.size is None or marker.size > limit:
            return "TOOBIG", f"Literal too big (limit {limit} octets)", status
        if self._request_size + marker.size > self.max_request_size:
            return "TOOBIG", "Command too big", status
        return None


# Longer tags are treated as invalid, so an error reply never echoes a line-sized "tag".
MAX_TAG_LENGTH = 64


def _valid_tag(raw: bytes) -> str | None:
    if not raw or len(raw) > MAX_TAG_LENGTH or any(byte in _NOT_TAG_CHARS for byte in raw):
        return None
    return raw.decode("ascii")


def _split_tag(line: bytes) -> tuple[str | None, bytes | None]:
    """Split `tag SP rest`; (None, None) for an invalid tag, (tag, None) without a command."""
    raw_tag, space, rest = line.partition(b" ")
    tag = _valid_tag(raw_tag)
    if tag is None:
        return None, None
    if not space or not rest:
        return tag, None
    return tag, rest
