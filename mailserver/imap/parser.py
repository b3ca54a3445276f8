"""Recursive-descent parser: a received `Request` -> a `protocol.Command` (RFC 3501, RFC 9051).

`parse_command(request)` is the one entry point. It raises `ParseError` (tag, message, status,
code) for anything that does not follow the grammar; the session answers `TAG BAD message`
(or `NO [BADCHARSET]` for an unknown SEARCH charset, which RFC 9051 section 6.4.4 requires to
be a NO). One method per ABNF rule of RFC 9051 section 9 and the extension RFCs; the method
names follow the rule names. Keywords are case-insensitive.

Pure: no I/O, and recursion is bounded (`MAX_NESTING_DEPTH`) so hostile nesting such as
10,000 "(" or "NOT NOT NOT ..." fails cleanly instead of exhausting the stack.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Callable

from mailserver.imap import protocol as p
from mailserver.imap.receiver import Literal, Request
from mailserver.imap.response import StatusKind

MAX_NESTING_DEPTH = 50
MAX_NUMBER = 2**32 - 1  # RFC 9051 section 9: number is an unsigned 32-bit integer
MAX_NUMBER64 = 2**63 - 1  # number64 / mod-sequence-value (RFC 7162: up to 2^63-1)
# RFC 2971 section 3.3: at most 30 pairs, fields up to 30 octets, values up to 1024 octets.
MAX_ID_PAIRS = 30
MAX_ID_FIELD = 30
MAX_ID_VALUE = 1024

# RFC 9051 section 9: atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
# quoted-specials / resp-specials.
_CTL = frozenset(range(0x00, 0x20)) | {0x7F}
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | _CTL
_ATOM_CHARS = frozenset(range(0x01, 0x80)) - _ATOM_SPECIALS
_ASTRING_CHARS = _ATOM_CHARS | {ord("]")}
_LIST_CHARS = _ASTRING_CHARS | {ord("%"), ord("*")}
_DIGITS = frozenset(b"0123456789")
_SEQUENCE_CHARS = _DIGITS | frozenset(b":,*")
# Chars of fetch attribute and section names: stop at "[", "<", "(", ")", SP, "]".
_NAME_CHARS = _ATOM_CHARS - frozenset(b"[<")
_BASE64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
        start=1,
    )
}

_SYSTEM_FLAGS = {
    flag.upper(): flag
    for flag in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")
}
_SPECIAL_USE = {
    flag.upper(): flag
    for flag in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}

_LIST_SELECT_OPTIONS = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_LIST_RETURN_OPTIONS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"})

_SIMPLE_FETCH = {
    "ENVELOPE": p.FetchKind.ENVELOPE,
    "FLAGS": p.FetchKind.FLAGS,
    "INTERNALDATE": p.FetchKind.INTERNALDATE,
    "RFC822": p.FetchKind.RFC822,
    "RFC822.HEADER": p.FetchKind.RFC822_HEADER,
    "RFC822.SIZE": p.FetchKind.RFC822_SIZE,
    "RFC822.TEXT": p.FetchKind.RFC822_TEXT,
    "BODY": p.FetchKind.BODY,
    "BODYSTRUCTURE": p.FetchKind.BODYSTRUCTURE,
    "UID": p.FetchKind.UID,
    "MODSEQ": p.FetchKind.MODSEQ,
}
_FAST = ("FLAGS", "INTERNALDATE", "RFC822.SIZE")
_FETCH_MACROS = {
    "FAST": _FAST,
    "ALL": (*_FAST, "ENVELOPE"),
    "FULL": (*_FAST, "ENVELOPE", "BODY"),
}

# SEARCH keys without arguments (RFC 9051 section 6.4.4), as flag tests.
_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True),
    "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True),
    "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True),
    "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True),
    "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True),
    "UNSEEN": ("\\Seen", False),
    "RECENT": ("\\Recent", True),
    "OLD": ("\\Recent", False),
}
_DATE_KEYS = {
    "BEFORE": (p.DateField.INTERNAL, p.DateOp.BEFORE),
    "ON": (p.DateField.INTERNAL, p.DateOp.ON),
    "SINCE": (p.DateField.INTERNAL, p.DateOp.SINCE),
    "SENTBEFORE": (p.DateField.SENT, p.DateOp.BEFORE),
    "SENTON": (p.DateField.SENT, p.DateOp.ON),
    "SENTSINCE": (p.DateField.SENT, p.DateOp.SINCE),
}
_ADDRESS_KEYS = frozenset({"FROM", "TO", "CC", "BCC", "SUBJECT"})


class ParseError(Exception):
    """A command that does not follow the grammar.

    Answer `tag status [code] message`; tag is None when unknown (answer with `*`).
    """

    def __init__(
        self,
        tag: str | None,
        message: str,
        *,
        status: StatusKind = StatusKind.BAD,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.tag = tag
        self.message = message
        self.status = status
        self.code = code


def parse_command(request: Request) -> p.Command:
    """Parse one request from the receiver into a Command, or raise ParseError."""
    return _Parser(request).command()


class _Parser:
    """Cursor over the request's text pieces and literals, with one method per ABNF rule."""

    def __init__(self, request: Request) -> None:
        self.tag = request.tag
        self.pieces = request.pieces
        self.literals = request.literals
        self.index = 0
        self.pos = 0
        self.piece = request.pieces[0]
        self.charset: str | None = None
        self.depth = 0

    # --- cursor primitives -------------------------------------------------------------------

    def error(self, message: str) -> ParseError:
        return ParseError(self.tag, message)

    def peek(self) -> int | None:
        return self.piece[self.pos] if self.pos < len(self.piece) else None

    def peek_is(self, char: bytes) -> bool:
        return self.piece.startswith(char, self.pos)

    def at_literal(self) -> bool:
        return self.pos == len(self.piece) and self.index < len(self.literals)

    def at_end(self) -> bool:
        return self.pos == len(self.piece) and self.index == len(self.literals)

    def take_literal(self) -> Literal:
        if not self.at_literal():
            raise self.error("expected a literal")
        literal = self.literals[self.index]
        self.index += 1
        self.piece = self.pieces[self.index]
        self.pos = 0
        return literal

    def accept(self, token: bytes) -> bool:
        """Consume token (case-insensitively) if it comes next."""
        end = self.pos + len(token)
        if self.piece[self.pos : end].upper() == token.upper():
            self.pos = end
            return True
        return False

    def expect(self, token: bytes) -> None:
        if not self.accept(token):
            raise self.error(f"expected {token.decode('ascii')!r}{self.where()}")

    def sp(self) -> None:
        self.expect(b" ")

    def where(self) -> str:
        if self.at_literal():
            return " before literal"
        if self.pos >= len(self.piece):
            return " at end of command"
        snippet = self.piece[self.pos : self.pos + 20].decode("ascii", errors="backslashreplace")
        return f" at {snippet!r}"

    def take_chars(self, allowed: frozenset[int]) -> bytes:
        start = self.pos
        piece = self.piece
        end = len(piece)
        pos = start
        while pos < end and piece[pos] in allowed:
            pos += 1
        self.pos = pos
        return piece[start:pos]

    def end(self) -> None:
        if not self.at_end():
            raise self.error(f"unexpected characters{self.where()}")

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING_DEPTH:
            raise self.error("too deeply nested")

    # --- basic tokens (RFC 9051 section 9) -----------------------------------------------------

    def atom(self) -> str:
        raw = self.take_chars(_ATOM_CHARS)
        if not raw:
            raise self.error(f"expected an atom{self.where()}")
        return raw.decode("ascii")

    def keyword(self) -> str:
        """An atom compared case-insensitively: returned upper-cased."""
        return self.atom().upper()

    def digits(self, what: str) -> int:
        raw = self.take_chars(_DIGITS)
        if not raw:
            raise self.error(f"expected {what}{self.where()}")
        if len(raw) > 20:
            raise self.error(f"{what} too large")
        return int(raw)

    def number(self) -> int:
        value = self.digits("a number")
        if value > MAX_NUMBER:
            raise self.error("number too large")
        return value

    def nz_number(self) -> int:
        value = self.number()
        if value == 0:
            raise self.error("number must not be zero")
        return value

    def number64(self) -> int:
        value = self.digits("a number")
        if value > MAX_NUMBER64:
            raise self.error("number too large")
        return value

    def mod_sequence_value(self) -> int:
        value = self.number64()
        if value == 0:
            raise self.error("mod-sequence must not be zero")
        return value

    def quoted(self) -> bytes:
        self.expect(b'"')
        out = bytearray()
        piece = self.piece
        while True:
            if self.pos >= len(piece):
                raise self.error("unterminated quoted string")
            byte = piece[self.pos]
            self.pos += 1
            if byte == 0x22:
                return bytes(out)
            if byte == 0x5C:
                escaped = self.peek()
                if escaped not in (0x22, 0x5C):
                    raise self.error("invalid escape in quoted string")
                out.append(escaped)
                self.pos += 1
            elif byte == 0x00:
                raise self.error("NUL in quoted string")
            else:
                out.append(byte)

    def literal(self) -> bytes:
        literal = self.take_literal()
        if literal.binary:
            raise self.error("literal8 is only allowed for message data")
        if b"\x00" in literal.data:
            # RFC 9051 section 9: literal = "{" number64 ["+"] "}" CRLF *CHAR8 (no NUL).
            raise self.error("NUL in literal")
        return literal.data

    def string(self) -> bytes:
        if self.peek_is(b'"'):
            return self.quoted()
        if self.at_literal():
            return self.literal()
        raise self.error(f"expected a string{self.where()}")

    def astring(self) -> bytes:
        if self.peek_is(b'"') or self.at_literal():
            return self.string()
        raw = self.take_chars(_ASTRING_CHARS)
        if not raw:
            raise self.error(f"expected an astring{self.where()}")
        return raw

    def nstring(self) -> bytes | None:
        if self.accept_nil():
            return None
        return self.string()

    def accept_nil(self) -> bool:
        end = self.pos + 3
        if self.piece[self.pos : end].upper() == b"NIL" and (
            end == len(self.piece) or self.piece[end] not in _ATOM_CHARS
        ):
            self.pos = end
            return True
        return False

    def utf8(self, raw: bytes, what: str) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"{what} is not valid UTF-8") from None

    def text_astring(self) -> str:
        return self.utf8(self.astring(), "string")

    def search_string(self) -> str:
        """An astring in a SEARCH key, decoded with the command's CHARSET."""
        raw = self.astring()
        charset = self.charset or "UTF-8"
        try:
            return raw.decode(charset)
        except UnicodeDecodeError:
            raise self.error(f"search string is not valid {charset}") from None

    def mailbox(self) -> str:
        # RFC 9051 section 5.1: INBOX is case-insensitive; every other name is as sent.
        name = self.utf8(self.astring(), "mailbox name")
        return "INBOX" if name.upper() == "INBOX" else name

    def list_mailbox(self) -> str:
        if self.peek_is(b'"') or self.at_literal():
            return self.utf8(self.string(), "mailbox pattern")
        raw = self.take_chars(_LIST_CHARS)
        if not raw:
            raise self.error(f"expected a mailbox pattern{self.where()}")
        return raw.decode("ascii")

    def flag(self) -> str:
        if self.accept(b"\\"):
            name = self.atom()
            flag = "\\" + name
            return _SYSTEM_FLAGS.get(flag.upper(), flag)
        return self.atom()

    def flag_list(self) -> tuple[str, ...]:
        self.expect(b"(")
        flags: list[str] = []
        while not self.accept(b")"):
            if flags:
                self.sp()
            flags.append(self.flag())
        return tuple(flags)

    def paren_atoms(self) -> list[str]:
        """`"(" [atom *(SP atom)] ")"`, upper-cased."""
        self.expect(b"(")
        words: list[str] = []
        while not self.accept(b")"):
            if words:
                self.sp()
            words.append(self.keyword())
        return words

    # --- dates -------------------------------------------------------------------------------

    def date_month(self) -> int:
        raw = self.piece[self.pos : self.pos + 3].upper().decode("ascii", errors="replace")
        month = _MONTHS.get(raw)
        if month is None:
            raise self.error(f"invalid month{self.where()}")
        self.pos += 3
        return month

    def date_text(self) -> datetime.date:
        start = self.pos
        day_raw = self.take_chars(_DIGITS)
        if not 1 <= len(day_raw) <= 2:
            self.pos = start
            raise self.error(f"invalid day{self.where()}")
        self.expect(b"-")
        month = self.date_month()
        self.expect(b"-")
        year_raw = self.take_chars(_DIGITS)
        if len(year_raw) != 4:
            raise self.error("year must have 4 digits")
        try:
            return datetime.date(int(year_raw), month, int(day_raw))
        except ValueError:
            raise self.error("invalid date") from None

    def date(self) -> datetime.date:
        """date = date-text / DQUOTE date-text DQUOTE, e.g. 1-Feb-1994."""
        if self.accept(b'"'):
            value = self.date_text()
            self.expect(b'"')
            return value
        return self.date_text()

    def two_digits(self) -> int:
        raw = self.piece[self.pos : self.pos + 2]
        if len(raw) != 2 or not raw.isdigit():
            raise self.error(f"expected two digits{self.where()}")
        self.pos += 2
        return int(raw)

    def date_time(self) -> datetime.datetime:
        """date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE.

        date-day-fixed is (SP DIGIT) / 2DIGIT; a bare single digit is also accepted.
        """
        self.expect(b'"')
        self.accept(b" ")
        day = self.date_text()
        self.sp()
        hour = self.two_digits()
        self.expect(b":")
        minute = self.two_digits()
        self.expect(b":")
        second = self.two_digits()
        self.sp()
        sign_byte = self.peek()
        if sign_byte not in (ord("+"), ord("-")):
            raise self.error("time zone must start with + or -")
        self.pos += 1
        zone_hours = self.two_digits()
        zone_minutes = self.two_digits()
        self.expect(b'"')
        if zone_minutes > 59 or zone_hours > 23:
            raise self.error("invalid time zone")
        offset = datetime.timedelta(hours=zone_hours, minutes=zone_minutes)
        zone = datetime.timezone(-offset if sign_byte == ord("-") else offset)
        try:
            return datetime.datetime(
                day.year, day.month, day.day, hour, minute, second, tzinfo=zone
            )
        except ValueError:
            raise self.error("invalid time") from None

    # --- sequence sets -----------------------------------------------------------------------

    def seq_number(self, raw: bytes) -> int | None:
        if raw == b"*":
            return None
        if not raw or not raw.isdigit():
            raise self.error("invalid sequence set")
        if len(raw) > 10 or int(raw) > MAX_NUMBER:
            raise self.error("number too large in sequence set")
        if int(raw) == 0:
            raise self.error("0 is not a valid message number")
        return int(raw)

    def sequence_set(self, *, allow_saved: bool = True) -> p.SequenceSet:
        """sequence-set, or "$" (RFC 5182 seq-last-command) when allow_saved."""
        if allow_saved and self.accept(b"$"):
            return p.SequenceSet(saved=True)
        raw = self.take_chars(_SEQUENCE_CHARS)
        if not raw:
            raise self.error(f"expected a sequence set{self.where()}")
        ranges: list[p.SeqRange] = []
        for element in raw.split(b","):
            start_raw, colon, end_raw = element.partition(b":")
            start = self.seq_number(start_raw)
            end = self.seq_number(end_raw) if colon else start
            ranges.append(p.SeqRange(start, end))
        return p.SequenceSet(tuple(ranges))

    # --- command dispatch --------------------------------------------------------------------

    def command(self) -> p.Command:
        name = self.keyword()
        if name == "UID":
            self.sp()
            return self.uid_command()
        handler = self._handlers().get(name)
        if handler is None:
            raise self.error(f"unknown command {name}")
        command = handler()
        self.end()
        return command

    def uid_command(self) -> p.Command:
        name = self.keyword()
        handlers: dict[str, Callable[[], p.Command]] = {
            "FETCH": lambda: self.fetch(uid=True),
            "STORE": lambda: self.store(uid=True),
            "SEARCH": lambda: self.search(uid=True),
            "COPY": lambda: self.copy(uid=True),
            "MOVE": lambda: self.move(uid=True),
            "EXPUNGE": self.uid_expunge,
        }
        handler = handlers.get(name)
        if handler is None:
            raise self.error(f"UID {name} is not a command")
        command = handler()
        self.end()
        return command

    def _handlers(self) -> dict[str, Callable[[], p.Command]]:
        tag = self.tag
        return {
            "CAPABILITY": lambda: p.Capability(tag=tag),
            "NOOP": lambda: p.Noop(tag=tag),
            "LOGOUT": lambda: p.Logout(tag=tag),
            "STARTTLS": lambda: p.StartTls(tag=tag),
            "NAMESPACE": lambda: p.Namespace(tag=tag),
            "IDLE": lambda: p.Idle(tag=tag),
            "CHECK": lambda: p.Check(tag=tag),
            "CLOSE": lambda: p.Close(tag=tag),
            "UNSELECT": lambda: p.Unselect(tag=tag),
            "EXPUNGE": lambda: p.Expunge(tag=tag),
            "AUTHENTICATE": self.authenticate,
            "LOGIN": self.login,
            "ENABLE": self.enable,
            "ID": self.id_command,
            "SELECT": lambda: self.select(examine=False),
            "EXAMINE": lambda: self.select(examine=True),
            "CREATE": self.create,
            "DELETE": lambda: p.Delete(tag=tag, mailbox=self.sp_mailbox()),
            "SUBSCRIBE": lambda: p.Subscribe(tag=tag, mailbox=self.sp_mailbox()),
            "UNSUBSCRIBE": lambda: p.Unsubscribe(tag=tag, mailbox=self.sp_mailbox()),
            "RENAME": self.rename,
            "LIST": self.list_command,
            "LSUB": self.lsub,
            "STATUS": self.status,
            "APPEND": self.append,
            "SEARCH": lambda: self.search(uid=False),
            "FETCH": lambda: self.fetch(uid=False),
            "STORE": lambda: self.store(uid=False),
            "COPY": lambda: self.copy(uid=False),
            "MOVE": lambda: self.move(uid=False),
            "GETQUOTA": lambda: p.GetQuota(tag=tag, root=self.sp_quota_root()),
            "GETQUOTAROOT": lambda: p.GetQuotaRoot(tag=tag, mailbox=self.sp_mailbox()),
            "SETQUOTA": self.setquota,
        }

    def sp_mailbox(self) -> str:
        self.sp()
        return self.mailbox()

    # --- not authenticated ------------------------------------------------------------------

    def authenticate(self) -> p.Authenticate:
        """ "AUTHENTICATE" SP auth-type [SP initial-resp] (RFC 9051, RFC 4959)."""
        self.sp()
        mechanism = self.keyword()
        initial: bytes | None = None
        if self.accept(b" "):
            initial = self.initial_resp()
        return p.Authenticate(tag=self.tag, mechanism=mechanism, initial_response=initial)

    def initial_resp(self) -> bytes:
        """initial-resp = (base64 / "="); "=" is an empty response (RFC 4959 section 3)."""
        if self.accept(b"="):
            return b""
        raw = self.take_chars(_BASE64_CHARS)
        if not raw:
            raise self.error("expected a base64 initial response")
        try:
            return base64.b64decode(raw, validate=True)
        except binascii.Error:
            raise self.error("invalid base64 in initial response") from None

    def login(self) -> p.Login:
        self.sp()
        username = self.text_astring()
        self.sp()
        password = self.text_astring()
        return p.Login(tag=self.tag, username=username, password=password)

    # --- any state ---------------------------------------------------------------------------

    def enable(self) -> p.Enable:
        """ "ENABLE" 1*(SP capability) (RFC 5161)."""
        capabilities: list[str] = []
        while self.accept(b" "):
            capabilities.append(self.keyword())
        if not capabilities:
            raise self.error("ENABLE needs at least one capability")
        return p.Enable(tag=self.tag, capabilities=tuple(capabilities))

    def id_command(self) -> p.Id:
        """ "ID" SP ("(" string SP nstring *(SP string SP nstring) ")" / NIL) (RFC 2971)."""
        self.sp()
        if self.accept_nil():
            return p.Id(tag=self.tag, parameters=None)
        self.expect(b"(")
        pairs: list[tuple[str, str | None]] = []
        while not self.accept(b")"):
            if pairs:
                self.sp()
            if len(pairs) >= MAX_ID_PAIRS:
                raise self.error("too many ID parameters")
            field = self.string()
            self.sp()
            value = self.nstring()
            if len(field) > MAX_ID_FIELD or (value is not None and len(value) > MAX_ID_VALUE):
                raise self.error("ID field or value too long")
            pairs.append(
                (
                    self.utf8(field, "ID field"),
                    None if value is None else self.utf8(value, "ID value"),
                )
            )
        return p.Id(tag=self.tag, parameters=tuple(pairs))

    # --- authenticated -----------------------------------------------------------------------

    def select(self, *, examine: bool) -> p.Select:
        """mailbox [SP "(" select-param *(SP select-param) ")"] (RFC 7162 section 3.2.5)."""
        mailbox = self.sp_mailbox()
        condstore = False
        qresync: p.QResyncParams | None = None
        if self.accept(b" "):
            self.expect(b"(")
            first = True
            while not self.accept(b")"):
                if not first:
                    self.sp()
                first = False
                param = self.keyword()
                if param == "CONDSTORE":
                    condstore = True
                elif param == "QRESYNC" and qresync is None:
                    self.sp()
                    qresync = self.qresync_params()
                else:
                    raise self.error(f"unknown SELECT parameter {param}")
        cls = p.Examine if examine else p.Select
        return cls(tag=self.tag, mailbox=mailbox, condstore=condstore, qresync=qresync)

    def qresync_params(self) -> p.QResyncParams:
        """ "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"."""
        self.expect(b"(")
        uidvalidity = self.nz_number()
        self.sp()
        modseq = self.mod_sequence_value()
        known_uids: p.SequenceSet | None = None
        seq_match: tuple[p.SequenceSet, p.SequenceSet] | None = None
        if self.accept(b" ") and not self.peek_is(b"("):
            known_uids = self.star_free_set("known-uids")
            if self.accept(b" ") and not self.peek_is(b"("):
                raise self.error("expected seq-match-data")
        if self.accept(b"("):
            known_seqs = self.star_free_set("known-sequence-set")
            self.sp()
            known_seq_uids = self.star_free_set("known-uid-set")
            self.expect(b")")
            seq_match = (known_seqs, known_seq_uids)
        self.expect(b")")
        return p.QResyncParams(uidvalidity, modseq, known_uids, seq_match)

    def star_free_set(self, what: str) -> p.SequenceSet:
        # RFC 7162 section 3.2.5: "*" is not allowed in the QRESYNC UID and sequence sets.
        value = self.sequence_set(allow_saved=False)
        if value.uses_star():
            raise self.error(f"'*' is not allowed in {what}")
        return value

    def create(self) -> p.Create:
        """mailbox [SP "(" "USE" SP "(" [use-attr *(SP use-attr)] ")" ")"] (RFC 6154)."""
        mailbox = self.sp_mailbox()
        special_use: list[str] = []
        if self.accept(b" "):
            self.expect(b"(")
            param = self.keyword()
            if param != "USE":
                raise self.error(f"unknown CREATE parameter {param}")
            self.sp()
            for flag in self.flag_list():
                if not flag.startswith("\\"):
                    raise self.error("special-use attributes start with a backslash")
                special_use.append(_SPECIAL_USE.get(flag.upper(), flag))
            self.expect(b")")
        return p.Create(tag=self.tag, mailbox=mailbox, special_use=tuple(special_use))

    def rename(self) -> p.Rename:
        old = self.sp_mailbox()
        new = self.sp_mailbox()
        return p.Rename(tag=self.tag, mailbox=old, new_name=new)

    def list_command(self) -> p.List:
        """ "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]."""
        self.sp()
        selection: set[str] = set()
        extended = False
        if self.peek_is(b"("):
            extended = True
            selection = set(self.paren_atoms())
            unknown = selection - _LIST_SELECT_OPTIONS
            if unknown:
                raise self.error(f"unknown LIST selection option {sorted(unknown)[0]}")
            # RFC 5258 section 3.1: RECURSIVEMATCH alone (or with only REMOTE, which selects
            # nothing by itself) is a syntax error.
            if "RECURSIVEMATCH" in selection and not selection - {"RECURSIVEMATCH", "REMOTE"}:
                raise self.error("RECURSIVEMATCH needs another selection option")
            self.sp()
        reference = self.utf8(self.astring(), "reference name")
        self.sp()
        patterns: list[str] = []
        if self.accept(b"("):
            extended = True
            while not self.accept(b")"):
                if patterns:
                    self.sp()
                patterns.append(self.list_mailbox())
            if not patterns:
                raise self.error("empty pattern list")
        else:
            patterns.append(self.list_mailbox())
        return_options: set[str] = set()
        return_status: tuple[p.StatusItem, ...] | None = None
        if self.accept(b" "):
            extended = True
            if self.keyword() != "RETURN":
                raise self.error("expected RETURN")
            self.sp()
            self.expect(b"(")
            while not self.accept(b")"):
                if return_options or return_status is not None:
                    self.sp()
                option = self.keyword()
                if option == "STATUS" and return_status is None:
                    self.sp()
                    return_status = self.status_atts()
                elif option in _LIST_RETURN_OPTIONS:
                    return_options.add(option)
                else:
                    raise self.error(f"unknown LIST return option {option}")
        return p.List(
            tag=self.tag,
            reference=reference,
            patterns=tuple(patterns),
            selection=frozenset(selection),
            return_options=frozenset(return_options),
            return_status=return_status,
            extended=extended,
        )

    def lsub(self) -> p.Lsub:
        self.sp()
        reference = self.utf8(self.astring(), "reference name")
        self.sp()
        return p.Lsub(tag=self.tag, reference=reference, pattern=self.list_mailbox())

    def status_atts(self) -> tuple[p.StatusItem, ...]:
        """ "(" status-att *(SP status-att) ")"."""
        items: list[p.StatusItem] = []
        for word in self.paren_atoms():
            try:
                items.append(p.StatusItem(word))
            except ValueError:
                raise self.error(f"unknown STATUS item {word}") from None
        if not items:
            raise self.error("STATUS needs at least one item")
        return tuple(items)

    def status(self) -> p.Status:
        mailbox = self.sp_mailbox()
        self.sp()
        return p.Status(tag=self.tag, mailbox=mailbox, items=self.status_atts())

    def append(self) -> p.Append:
        """ "APPEND" SP mailbox 1*append-message (RFC 3502 MULTIAPPEND, RFC 6855 UTF8)."""
        mailbox = self.sp_mailbox()
        messages: list[p.AppendMessage] = []
        while self.accept(b" "):
            messages.append(self.append_message())
        if not messages:
            raise self.error("APPEND needs a message")
        return p.Append(tag=self.tag, mailbox=mailbox, messages=tuple(messages))

    def append_message(self) -> p.AppendMessage:
        """append-opts SP append-data; append-opts = [flag-list SP] [date-time SP]."""
        flags: tuple[str, ...] = ()
        internal_date: datetime.datetime | None = None
        if self.peek_is(b"("):
            flags = self.flag_list()
            self.sp()
        if self.peek_is(b'"'):
            internal_date = self.date_time()
            self.sp()
        if self.at_literal():
            # RFC 9051 section 9 forbids NUL in a plain literal, but Dovecot stores such
            # messages and mbsync aborts a whole channel on BAD: take the bytes as sent.
            literal = self.take_literal()
            return p.AppendMessage(literal.data, flags, internal_date, binary=literal.binary)
        if self.keyword() == "UTF8":
            # RFC 6855 section 4: append-data =/ "UTF8" SP "(" literal8 ")"
            self.sp()
            self.expect(b"(")
            literal = self.take_literal()
            if not literal.binary:
                raise self.error("UTF8 APPEND data must be a literal8")
            self.expect(b")")
            return p.AppendMessage(literal.data, flags, internal_date, binary=True, utf8=True)
        raise self.error("expected message literal")

    def setquota(self) -> p.SetQuota:
        """ "SETQUOTA" SP quota-root-name SP setquota-list (RFC 9208 section 4.1)."""
        root = self.sp_quota_root()
        self.sp()
        self.expect(b"(")
        limits: list[tuple[str, int]] = []
        while not self.accept(b")"):
            if limits:
                self.sp()
            resource = self.keyword()
            self.sp()
            limits.append((resource, self.number64()))
        return p.SetQuota(tag=self.tag, root=root, limits=tuple(limits))

    def sp_quota_root(self) -> str:
        self.sp()
        return self.text_astring()

    # --- selected ----------------------------------------------------------------------------

    def uid_expunge(self) -> p.Expunge:
        """ "UID EXPUNGE" SP sequence-set (RFC 4315 section 2.1)."""
        self.sp()
        return p.Expunge(tag=self.tag, uid=True, uid_set=self.sequence_set())

    def copy(self, *, uid: bool) -> p.Copy:
        self.sp()
        sequence_set = self.sequence_set()
        mailbox = self.sp_mailbox()
        return p.Copy(tag=self.tag, sequence_set=sequence_set, mailbox=mailbox, uid=uid)

    def move(self, *, uid: bool) -> p.Move:
        self.sp()
        sequence_set = self.sequence_set()
        mailbox = self.sp_mailbox()
        return p.Move(tag=self.tag, sequence_set=sequence_set, mailbox=mailbox, uid=uid)

    def store(self, *, uid: bool) -> p.Store:
        """ "STORE" SP sequence-set [store-modifiers] SP store-att-flags (RFC 7162 3.1.3)."""
        self.sp()
        sequence_set = self.sequence_set()
        self.sp()
        unchanged_since: int | None = None
        if self.accept(b"("):
            modifier = self.keyword()
            if modifier != "UNCHANGEDSINCE":
                raise self.error(f"unknown STORE modifier {modifier}")
            self.sp()
            unchanged_since = self.number64()  # mod-sequence-valzer: 0 is allowed
            self.expect(b")")
            self.sp()
        item = self.keyword()
        silent = item.endswith(".SILENT")
        if silent:
            item = item.removesuffix(".SILENT")
        try:
            mode = p.StoreMode(item)
        except ValueError:
            raise self.error(f"unknown STORE item {item}") from None
        self.sp()
        flags: tuple[str, ...]
        if self.peek_is(b"("):
            flags = self.flag_list()
        else:
            # store-att-flags allows a bare list: flag *(SP flag)
            bare = [self.flag()]
            while self.accept(b" "):
                bare.append(self.flag())
            flags = tuple(bare)
        return p.Store(
            tag=self.tag,
            sequence_set=sequence_set,
            mode=mode,
            flags=flags,
            silent=silent,
            unchanged_since=unchanged_since,
            uid=uid,
        )

    def fetch(self, *, uid: bool) -> p.Fetch:
        """ "FETCH" SP sequence-set SP (macro / fetch-att / "(" fetch-att...")") [modifiers]."""
        self.sp()
        sequence_set = self.sequence_set()
        self.sp()
        attributes: list[p.FetchAttribute] = []
        if self.accept(b"("):
            while not self.accept(b")"):
                if attributes:
                    self.sp()
                attributes.append(self.fetch_att())
            if not attributes:
                raise self.error("empty FETCH attribute list")
        else:
            start = self.pos
            word = self.take_chars(_NAME_CHARS).decode("ascii").upper()
            macro = _FETCH_MACROS.get(word)
            if macro is not None:
                attributes = [p.FetchAttribute(_SIMPLE_FETCH[name]) for name in macro]
            else:
                self.pos = start
                attributes.append(self.fetch_att())
        changed_since: int | None = None
        vanished = False
        if self.accept(b" "):
            self.expect(b"(")
            first = True
            while not self.accept(b")"):
                if not first:
                    self.sp()
                first = False
                modifier = self.keyword()
                if modifier == "CHANGEDSINCE" and changed_since is None:
                    self.sp()
                    changed_since = self.number64()
                elif modifier == "VANISHED" and not vanished:
                    vanished = True
                else:
                    raise self.error(f"unknown FETCH modifier {modifier}")
            # RFC 7162 section 3.2.6: VANISHED only in UID FETCH and only with CHANGEDSINCE.
            if vanished and (not uid or changed_since is None):
                raise self.error("VANISHED needs UID FETCH and CHANGEDSINCE")
        return p.Fetch(
            tag=self.tag,
            sequence_set=sequence_set,
            attributes=tuple(attributes),
            uid=uid,
            changed_since=changed_since,
            vanished=vanished,
        )

    def fetch_att(self) -> p.FetchAttribute:
        name = self.take_chars(_NAME_CHARS).decode("ascii").upper()
        if not name:
            raise self.error(f"expected a FETCH attribute{self.where()}")
        if self.peek_is(b"["):
            if name in ("BODY", "BODY.PEEK"):
                section = self.section()
                return p.FetchAttribute(
                    p.FetchKind.BODY_SECTION, section, self.partial(), peek=name == "BODY.PEEK"
                )
            if name in ("BINARY", "BINARY.PEEK"):
                part = self.section_binary()
                return p.FetchAttribute(
                    p.FetchKind.BINARY, part, self.partial(), peek=name == "BINARY.PEEK"
                )
            if name == "BINARY.SIZE":
                return p.FetchAttribute(p.FetchKind.BINARY_SIZE, self.section_binary())
            raise self.error(f"{name} takes no section")
        kind = _SIMPLE_FETCH.get(name)
        if kind is None:
            raise self.error(f"unknown FETCH attribute {name}")
        return p.FetchAttribute(kind)

    def section(self) -> p.SectionSpec:
        """section = "[" [section-spec] "]"."""
        self.expect(b"[")
        if self.accept(b"]"):
            return p.SectionSpec()
        spec = self.section_spec()
        self.expect(b"]")
        return spec

    def section_part(self) -> tuple[int, ...]:
        """section-part = nz-number *("." nz-number), stopping before a text specifier."""
        part = [self.nz_number()]
        while self.peek_is(b".") and self.pos + 1 < len(self.piece):
            if self.piece[self.pos + 1] not in _DIGITS:
                break
            self.pos += 1
            part.append(self.nz_number())
        return tuple(part)

    def section_spec(self) -> p.SectionSpec:
        """section-spec = section-msgtext / (section-part ["." section-text])."""
        part: tuple[int, ...] = ()
        if self.peek() in _DIGITS:
            part = self.section_part()
            if not self.accept(b"."):
                return p.SectionSpec(part)
        word = self.take_chars(_NAME_CHARS).decode("ascii").upper()
        try:
            text = p.SectionText(word)
        except ValueError:
            raise self.error(f"invalid section {word!r}") from None
        if text is p.SectionText.MIME and not part:
            raise self.error("MIME needs a part number")
        fields: tuple[str, ...] = ()
        if text in (p.SectionText.HEADER_FIELDS, p.SectionText.HEADER_FIELDS_NOT):
            self.sp()
            fields = self.header_list()
        return p.SectionSpec(part, text, fields)

    def header_list(self) -> tuple[str, ...]:
        """header-list = "(" header-fld-name *(SP header-fld-name) ")"."""
        self.expect(b"(")
        names: list[str] = []
        while not self.accept(b")"):
            if names:
                self.sp()
            names.append(self.header_fld_name())
        if not names:
            raise self.error("empty header list")
        return tuple(names)

    def header_fld_name(self) -> str:
        raw = self.astring()
        # RFC 5322 section 3.6.8: field names are printable ASCII without ":".
        if not raw or any(byte < 0x21 or byte > 0x7E or byte == 0x3A for byte in raw):
            raise self.error("invalid header field name")
        return raw.decode("ascii").upper()

    def section_binary(self) -> p.SectionSpec:
        """section-binary = "[" [section-part] "]" (RFC 3516)."""
        self.expect(b"[")
        if self.accept(b"]"):
            return p.SectionSpec()
        part = self.section_part()
        self.expect(b"]")
        return p.SectionSpec(part)

    def partial(self) -> p.Partial | None:
        """partial = "<" number64 "." nz-number64 ">"."""
        if not self.accept(b"<"):
            return None
        offset = self.number64()
        self.expect(b".")
        length = self.number64()
        if length == 0:
            raise self.error("partial length must not be zero")
        self.expect(b">")
        return p.Partial(offset, length)

    # --- SEARCH ------------------------------------------------------------------------------

    def search(self, *, uid: bool) -> p.Search:
        """ "SEARCH" [search-return-opts] SP search-program (RFC 9051, RFC 4731)."""
        self.sp()
        return_options: frozenset[p.SearchReturn] | None = None
        start = self.pos
        if self.take_chars(_ATOM_CHARS).upper() == b"RETURN" and self.peek_is(b" ("):
            self.sp()
            options: set[p.SearchReturn] = set()
            for word in self.paren_atoms():
                try:
                    options.add(p.SearchReturn(word))
                except ValueError:
                    raise self.error(f"unknown SEARCH return option {word}") from None
            return_options = frozenset(options)
            self.sp()
        else:
            self.pos = start
        start = self.pos
        if self.take_chars(_ATOM_CHARS).upper() == b"CHARSET" and self.peek_is(b" "):
            self.sp()
            self.charset = self.charset_name()
            self.sp()
        else:
            self.pos = start
        keys = [self.search_key()]
        while self.accept(b" "):
            keys.append(self.search_key())
        criteria = keys[0] if len(keys) == 1 else p.SearchAnd(tuple(keys))
        return p.Search(
            tag=self.tag,
            criteria=criteria,
            charset=self.charset,
            return_options=return_options,
            uid=uid,
        )

    def charset_name(self) -> str:
        name = self.utf8(self.astring(), "charset").upper()
        try:
            # A lookup alone would accept bytes-to-bytes codecs such as "rot13" or "hex".
            "a".encode(name)
        except LookupError:
            # RFC 9051 section 6.4.4: an unsupported charset is a tagged NO [BADCHARSET].
            raise ParseError(
                self.tag,
                f"unsupported charset {name}",
                status=StatusKind.NO,
                code="BADCHARSET",
            ) from None
        return name

    def search_key(self) -> p.SearchKey:
        self.nested()
        try:
            return self.search_key_inner()
        finally:
            self.depth -= 1

    def search_key_inner(self) -> p.SearchKey:
        if self.accept(b"("):
            keys = [self.search_key()]
            while self.accept(b" "):
                keys.append(self.search_key())
            self.expect(b")")
            return keys[0] if len(keys) == 1 else p.SearchAnd(tuple(keys))
        first = self.peek()
        if first is not None and (first in _DIGITS or first in b"*$"):
            return p.SearchSequence(self.sequence_set())
        key = self.keyword()
        if key in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[key]
            return p.SearchFlag(flag, present)
        if key in _DATE_KEYS:
            field, op = _DATE_KEYS[key]
            self.sp()
            return p.SearchDate(field, op, self.date())
        if key in _ADDRESS_KEYS:
            self.sp()
            return p.SearchHeader(key, self.search_string())
        return self.search_key_other(key)

    def search_key_other(self, key: str) -> p.SearchKey:
        if key == "ALL":
            return p.SearchAll()
        if key == "NEW":
            return p.SearchAnd((p.SearchFlag("\\Recent", True), p.SearchFlag("\\Seen", False)))
        if key in ("KEYWORD", "UNKEYWORD"):
            self.sp()
            return p.SearchFlag(self.atom(), key == "KEYWORD")
        if key in ("BODY", "TEXT"):
            self.sp()
            return p.SearchText(self.search_string(), body_only=key == "BODY")
        if key == "HEADER":
            self.sp()
            name = self.header_fld_name()
            self.sp()
            return p.SearchHeader(name, self.search_string())
        if key in ("LARGER", "SMALLER"):
            self.sp()
            return p.SearchSize(key == "LARGER", self.number64())
        if key == "UID":
            self.sp()
            return p.SearchUid(self.sequence_set())
        if key == "NOT":
            self.sp()
            return p.SearchNot(self.search_key())
        if key == "OR":
            self.sp()
            left = self.search_key()
            self.sp()
            return p.SearchOr(left, self.search_key())
        if key == "MODSEQ":
            return self.search_modseq()
        raise self.error(f"unknown search key {key}")

    def search_modseq(self) -> p.SearchModSeq:
        """ "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer (RFC 7162)."""
        self.sp()
        if self.peek() in _DIGITS:
            return p.SearchModSeq(self.number64())
        entry_name = self.utf8(self.string(), "entry name")
        self.sp()
        entry_type = self.keyword()
        if entry_type not in ("PRIV", "SHARED", "ALL"):
            raise self.error(f"invalid MODSEQ entry type {entry_type}")
        self.sp()
        return p.SearchModSeq(self.number64(), entry_name, entry_type)
