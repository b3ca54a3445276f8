"""Parsed IMAP commands and their arguments: frozen dataclasses, no I/O, no storage.

`parser.parse_command` produces one `Command` subclass per IMAP command; the server session
matches on the class (`match command: case Fetch(): ...`). Every command carries its `tag`.
Commands that have a UID form (FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE) carry `uid=True`
when sent as `UID <command>`.

Mailbox names are `str` exactly as sent (UTF-8 decoded bytes; only the name "INBOX" is
case-folded, RFC 3501 section 5.1). The session decodes modified UTF-7 with
`utf7.decode_mailbox_name` unless the client enabled UTF8=ACCEPT.
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

# --- sequence sets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SeqRange:
    """One element of a sequence set: `start:end`, a single number (start == end), or `*`.

    None stands for `*` (the largest number in use). Order is as sent: `4:2` and `*:3` are legal.
    """

    start: int | None
    end: int | None


@dataclass(frozen=True)
class SequenceSet:
    """A sequence set (RFC 9051 section 9 `sequence-set`) of message numbers or UIDs.

    `saved=True` is `$`, the result saved by a previous SEARCH ... RETURN (SAVE) (RFC 5182);
    the session substitutes the saved set with `SequenceSet.from_values` before use.

    `resolve(largest)` replaces `*` with `largest` (the highest sequence number or UID in the
    mailbox) and returns a `ResolvedSet`. When the mailbox is empty (largest == 0), elements
    that use `*` match nothing. Per RFC 9051 section 9, `559:*` always includes the largest
    UID even when 559 is above it; checking that numbers exist is the session's job.
    """

    ranges: tuple[SeqRange, ...] = ()
    saved: bool = False

    @classmethod
    def from_values(cls, values: list[int] | tuple[int, ...]) -> SequenceSet:
        """Build a set holding exactly the given numbers (e.g. a saved SEARCH result)."""
        return cls(tuple(SeqRange(value, value) for value in sorted(set(values))))

    def _require_resolved(self) -> None:
        if self.saved:
            raise ValueError("'$' must be replaced by the saved search result first")

    def uses_star(self) -> bool:
        """Whether any element mentions `*`."""
        return any(r.start is None or r.end is None for r in self.ranges)

    def resolve(self, largest: int) -> ResolvedSet:
        """Replace `*` with largest and merge: the set as sorted inclusive ranges."""
        self._require_resolved()
        spans: list[tuple[int, int]] = []
        for element in self.ranges:
            if (element.start is None or element.end is None) and largest == 0:
                continue
            start = largest if element.start is None else element.start
            end = largest if element.end is None else element.end
            spans.append((min(start, end), max(start, end)))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for low, high in spans:
            if merged and low <= merged[-1][1] + 1:
                if high > merged[-1][1]:
                    merged[-1] = (merged[-1][0], high)
            else:
                merged.append((low, high))
        return ResolvedSet(tuple(merged))

    def contains(self, value: int, largest: int) -> bool:
        """One-off membership test; resolve once and use `in` when testing many values."""
        return value in self.resolve(largest)


@dataclass(frozen=True)
class ResolvedSet:
    """A sequence set with `*` resolved: sorted, disjoint, non-adjacent inclusive ranges.

    `value in resolved` bisects the ranges, so `1:4294967295` costs two integers, not four
    billion; iteration is lazy.
    """

    spans: tuple[tuple[int, int], ...]

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        index = bisect.bisect_right(self.spans, (value, _AFTER_ANY)) - 1
        return index >= 0 and self.spans[index][0] <= value <= self.spans[index][1]

    def __iter__(self) -> Iterator[int]:
        for low, high in self.spans:
            yield from range(low, high + 1)

    def __len__(self) -> int:
        return sum(high - low + 1 for low, high in self.spans)

    def __bool__(self) -> bool:
        return bool(self.spans)

    def values_up_to(self, limit: int) -> Iterator[int]:
        """Yield members <= limit in ascending order (e.g. limit = number of messages)."""
        for low, high in self.spans:
            if low > limit:
                return
            yield from range(low, min(high, limit) + 1)

    def max_value(self) -> int:
        """The largest member, 0 when empty."""
        return self.spans[-1][1] if self.spans else 0


_AFTER_ANY = 2**64  # larger than any IMAP number64, so bisect lands after (value, high)


# --- FETCH -------------------------------------------------------------------------------------


class SectionText(StrEnum):
    """The text part of a section spec (RFC 9051 `section-msgtext` / `section-text`)."""

    HEADER = "HEADER"
    HEADER_FIELDS = "HEADER.FIELDS"
    HEADER_FIELDS_NOT = "HEADER.FIELDS.NOT"
    TEXT = "TEXT"
    MIME = "MIME"


@dataclass(frozen=True)
class SectionSpec:
    """`[1.2.HEADER.FIELDS (From To)]`: a part path (empty = whole message) and text specifier.

    `fields` holds the header names of HEADER.FIELDS(.NOT), upper-cased, in the order sent.
    """

    part: tuple[int, ...] = ()
    text: SectionText | None = None
    fields: tuple[str, ...] = ()

    def encode(self) -> str:
        """The section as it appears inside the brackets of a FETCH response."""
        pieces = [".".join(str(number) for number in self.part)] if self.part else []
        if self.text is not None:
            pieces.append(self.text.value)
        label = ".".join(pieces)
        if self.text in (SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT):
            label += " (" + " ".join(self.fields) + ")"
        return label


@dataclass(frozen=True)
class Partial:
    """`<offset.length>` of BODY[]/BINARY[]: octets offset..offset+length-1."""

    offset: int
    length: int


class FetchKind(StrEnum):
    """What a FETCH attribute asks for."""

    ENVELOPE = "ENVELOPE"
    FLAGS = "FLAGS"
    INTERNALDATE = "INTERNALDATE"
    RFC822 = "RFC822"
    RFC822_HEADER = "RFC822.HEADER"
    RFC822_SIZE = "RFC822.SIZE"
    RFC822_TEXT = "RFC822.TEXT"
    BODY = "BODY"  # non-extensible BODYSTRUCTURE
    BODYSTRUCTURE = "BODYSTRUCTURE"
    UID = "UID"
    MODSEQ = "MODSEQ"  # RFC 7162 section 3.1.4.1
    BODY_SECTION = "BODY[]"  # BODY[section]<partial> and BODY.PEEK[...]
    BINARY = "BINARY[]"  # RFC 3516 / RFC 9051: BINARY[part]<partial>, BINARY.PEEK[...]
    BINARY_SIZE = "BINARY.SIZE[]"


@dataclass(frozen=True)
class FetchAttribute:
    """One FETCH data item. `section`/`partial`/`peek` only for BODY_SECTION and BINARY(_SIZE).

    For BINARY and BINARY_SIZE, `section.part` holds the part path and `section.text` is None.
    """

    kind: FetchKind
    section: SectionSpec | None = None
    partial: Partial | None = None
    peek: bool = False

    def response_label(self) -> str:
        """How the item is named in the FETCH response, e.g. `BODY[HEADER]<0>`.

        RFC 9051 section 7.5.2: the response never has `.PEEK` and a partial fetch is labelled
        with its origin octet only.
        """
        if self.kind in (FetchKind.BODY_SECTION, FetchKind.BINARY, FetchKind.BINARY_SIZE):
            name = {
                FetchKind.BODY_SECTION: "BODY",
                FetchKind.BINARY: "BINARY",
                FetchKind.BINARY_SIZE: "BINARY.SIZE",
            }[self.kind]
            section = self.section.encode() if self.section is not None else ""
            label = f"{name}[{section}]"
            if self.partial is not None:
                label += f"<{self.partial.offset}>"
            return label
        return self.kind.value

    def sets_seen(self) -> bool:
        """Whether fetching this item implicitly sets \\Seen (RFC 9051 section 6.4.5)."""
        if self.kind in (FetchKind.BODY_SECTION, FetchKind.BINARY):
            return not self.peek
        return self.kind in (FetchKind.RFC822, FetchKind.RFC822_TEXT)


# --- SEARCH ------------------------------------------------------------------------------------


class SearchKey:
    """Base of the search criteria tree; a query is a tree of the subclasses below."""


@dataclass(frozen=True)
class SearchAll(SearchKey):
    """ALL: every message."""


@dataclass(frozen=True)
class SearchAnd(SearchKey):
    """All of the keys match (a space-separated list or a parenthesised group)."""

    keys: tuple[SearchKey, ...]


@dataclass(frozen=True)
class SearchOr(SearchKey):
    """OR key1 key2."""

    left: SearchKey
    right: SearchKey


@dataclass(frozen=True)
class SearchNot(SearchKey):
    """NOT key."""

    key: SearchKey


@dataclass(frozen=True)
class SearchFlag(SearchKey):
    r"""A flag is set (present=True) or not: ANSWERED, UNSEEN, KEYWORD x, UNKEYWORD x...

    System flags are given in their canonical spelling (`\Seen`). NEW is
    And(\Recent set, \Seen unset) and OLD is \Recent unset.
    """

    flag: str
    present: bool


class DateField(StrEnum):
    """Which date a date key compares: the internal date or the Date: header (SENT*)."""

    INTERNAL = "INTERNAL"
    SENT = "SENT"


class DateOp(StrEnum):
    """BEFORE (strictly earlier day), ON (same day), SINCE (same day or later)."""

    BEFORE = "BEFORE"
    ON = "ON"
    SINCE = "SINCE"


@dataclass(frozen=True)
class SearchDate(SearchKey):
    """BEFORE/ON/SINCE/SENTBEFORE/SENTON/SENTSINCE date (day granularity, RFC 9051 6.4.4)."""

    field: DateField
    op: DateOp
    date: datetime.date


@dataclass(frozen=True)
class SearchSize(SearchKey):
    """LARGER n (larger=True: size > n) or SMALLER n (size < n), RFC822.SIZE octets."""

    larger: bool
    size: int


@dataclass(frozen=True)
class SearchHeader(SearchKey):
    """HEADER name value; FROM/TO/CC/BCC/SUBJECT x become SearchHeader("FROM", x) etc.

    `name` is upper-cased. An empty value matches every message that has the field.
    """

    name: str
    value: str


@dataclass(frozen=True)
class SearchText(SearchKey):
    """BODY x (body_only=True) or TEXT x (headers and body): substring, case-insensitive."""

    value: str
    body_only: bool


@dataclass(frozen=True)
class SearchSequence(SearchKey):
    """A bare sequence set: messages by sequence number."""

    sequence_set: SequenceSet


@dataclass(frozen=True)
class SearchUid(SearchKey):
    """UID sequence-set: messages by UID."""

    sequence_set: SequenceSet


@dataclass(frozen=True)
class SearchModSeq(SearchKey):
    """MODSEQ [entry-name entry-type] n (RFC 7162 section 3.1.5): mod-sequence >= n.

    `entry_name` is the metadata item (e.g. `/flags/\\draft`) and `entry_type` one of
    "PRIV", "SHARED", "ALL"; both None when not given.
    """

    modseq: int
    entry_name: str | None = None
    entry_type: str | None = None


class SearchReturn(StrEnum):
    """ESEARCH result options (RFC 4731 section 3.1, RFC 5182 SAVE)."""

    MIN = "MIN"
    MAX = "MAX"
    ALL = "ALL"
    COUNT = "COUNT"
    SAVE = "SAVE"


# --- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Command:
    """Base of all parsed commands: the client's tag. `name` is the command word."""

    name: ClassVar[str] = ""
    tag: str


@dataclass(frozen=True, kw_only=True)
class Capability(Command):
    """CAPABILITY."""

    name: ClassVar[str] = "CAPABILITY"


@dataclass(frozen=True, kw_only=True)
class Noop(Command):
    """NOOP."""

    name: ClassVar[str] = "NOOP"


@dataclass(frozen=True, kw_only=True)
class Logout(Command):
    """LOGOUT."""

    name: ClassVar[str] = "LOGOUT"


@dataclass(frozen=True, kw_only=True)
class StartTls(Command):
    """STARTTLS (RFC 9051 section 6.2.1)."""

    name: ClassVar[str] = "STARTTLS"


@dataclass(frozen=True, kw_only=True)
class Authenticate(Command):
    """AUTHENTICATE mechanism [initial-response] (RFC 4959 SASL-IR).

    `mechanism` is upper-cased. `initial_response` is the base64-decoded initial response,
    b"" for "=" (an empty one), None when the client sent none (the session then sends `+ `
    and reads the next raw line with `Receiver.expect_raw_line`).
    """

    name: ClassVar[str] = "AUTHENTICATE"
    mechanism: str
    initial_response: bytes | None = None


@dataclass(frozen=True, kw_only=True)
class Login(Command):
    """LOGIN user password."""

    name: ClassVar[str] = "LOGIN"
    username: str
    password: str

    def __repr__(self) -> str:  # keep passwords out of logs and tracebacks
        return f"Login(tag={self.tag!r}, username={self.username!r}, password=<hidden>)"


@dataclass(frozen=True, kw_only=True)
class Enable(Command):
    """ENABLE cap... (RFC 5161); capability names upper-cased."""

    name: ClassVar[str] = "ENABLE"
    capabilities: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Id(Command):
    """ID (field value ...) or ID NIL (RFC 2971). `parameters` None for NIL."""

    name: ClassVar[str] = "ID"
    parameters: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, kw_only=True)
class Namespace(Command):
    """NAMESPACE (RFC 2342)."""

    name: ClassVar[str] = "NAMESPACE"


@dataclass(frozen=True)
class QResyncParams:
    """SELECT/EXAMINE (QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]])) (RFC 7162 3.2.5).

    `known_uids` is the client's known UID set; `seq_match` pairs a sequence-number set with
    the corresponding UID set (both None when not sent).
    """

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, kw_only=True)
class Select(Command):
    """SELECT mailbox [(CONDSTORE | QRESYNC (...))]."""

    name: ClassVar[str] = "SELECT"
    mailbox: str
    condstore: bool = False
    qresync: QResyncParams | None = None

    @property
    def read_only(self) -> bool:
        """EXAMINE opens read-only; SELECT read-write."""
        return False


@dataclass(frozen=True, kw_only=True)
class Examine(Select):
    """EXAMINE: SELECT read-only. A subclass of Select, so `case Select()` matches it too."""

    name: ClassVar[str] = "EXAMINE"

    @property
    def read_only(self) -> bool:
        """EXAMINE opens read-only."""
        return True


@dataclass(frozen=True, kw_only=True)
class Create(Command):
    """CREATE mailbox [(USE (\\Drafts ...))] (RFC 6154 section 3)."""

    name: ClassVar[str] = "CREATE"
    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Delete(Command):
    """DELETE mailbox."""

    name: ClassVar[str] = "DELETE"
    mailbox: str


@dataclass(frozen=True, kw_only=True)
class Rename(Command):
    """RENAME old new."""

    name: ClassVar[str] = "RENAME"
    mailbox: str
    new_name: str


@dataclass(frozen=True, kw_only=True)
class Subscribe(Command):
    """SUBSCRIBE mailbox."""

    name: ClassVar[str] = "SUBSCRIBE"
    mailbox: str


@dataclass(frozen=True, kw_only=True)
class Unsubscribe(Command):
    """UNSUBSCRIBE mailbox."""

    name: ClassVar[str] = "UNSUBSCRIBE"
    mailbox: str


class StatusItem(StrEnum):
    """STATUS data items (RFC 9051 section 6.3.11, RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE)."""

    MESSAGES = "MESSAGES"
    RECENT = "RECENT"
    UIDNEXT = "UIDNEXT"
    UIDVALIDITY = "UIDVALIDITY"
    UNSEEN = "UNSEEN"
    DELETED = "DELETED"
    SIZE = "SIZE"
    HIGHESTMODSEQ = "HIGHESTMODSEQ"
    APPENDLIMIT = "APPENDLIMIT"


@dataclass(frozen=True, kw_only=True)
class List(Command):
    """LIST, basic or extended (RFC 5258), with RETURN (STATUS (...)) (RFC 5819).

    `selection` holds the upper-cased selection options (SUBSCRIBED, REMOTE,
    RECURSIVEMATCH, SPECIAL-USE); `return_options` the return options other than STATUS
    (SUBSCRIBED, CHILDREN, SPECIAL-USE); `return_status` the STATUS items, None when absent.
    `extended` is True when the client used the LIST-EXTENDED syntax (selection options,
    a pattern list, or RETURN), which changes the response rules of RFC 5258 section 3.
    """

    name: ClassVar[str] = "LIST"
    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    return_options: frozenset[str] = frozenset()
    return_status: tuple[StatusItem, ...] | None = None
    extended: bool = False


@dataclass(frozen=True, kw_only=True)
class Lsub(Command):
    """LSUB reference pattern (IMAP4rev1 only)."""

    name: ClassVar[str] = "LSUB"
    reference: str
    pattern: str


@dataclass(frozen=True, kw_only=True)
class Status(Command):
    """STATUS mailbox (items...)."""

    name: ClassVar[str] = "STATUS"
    mailbox: str
    items: tuple[StatusItem, ...]


@dataclass(frozen=True)
class AppendMessage:
    """One message of an APPEND (several with MULTIAPPEND, RFC 3502).

    `internal_date` is timezone-aware, None when not given. `binary` is True for a literal8
    (`~{n}`); `utf8` for the RFC 6855 `UTF8 (~{n})` form.
    """

    data: bytes
    flags: tuple[str, ...] = ()
    internal_date: datetime.datetime | None = None
    binary: bool = False
    utf8: bool = False

    def __repr__(self) -> str:  # message bodies never go to logs
        return (
            f"AppendMessage(size={len(self.data)}, flags={self.flags!r}, "
            f"internal_date={self.internal_date!r}, binary={self.binary}, utf8={self.utf8})"
        )


@dataclass(frozen=True, kw_only=True)
class Append(Command):
    """APPEND mailbox [flags] [date-time] message [...more messages]."""

    name: ClassVar[str] = "APPEND"
    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True, kw_only=True)
class Idle(Command):
    """IDLE (RFC 2177): the session then reads raw lines until `DONE`."""

    name: ClassVar[str] = "IDLE"


@dataclass(frozen=True, kw_only=True)
class Check(Command):
    """CHECK (IMAP4rev1)."""

    name: ClassVar[str] = "CHECK"


@dataclass(frozen=True, kw_only=True)
class Close(Command):
    """CLOSE."""

    name: ClassVar[str] = "CLOSE"


@dataclass(frozen=True, kw_only=True)
class Unselect(Command):
    """UNSELECT (RFC 3691)."""

    name: ClassVar[str] = "UNSELECT"


@dataclass(frozen=True, kw_only=True)
class Expunge(Command):
    """EXPUNGE, or UID EXPUNGE uid-set (RFC 4315): `uid_set` set only for the UID form."""

    name: ClassVar[str] = "EXPUNGE"
    uid: bool = False
    uid_set: SequenceSet | None = None


@dataclass(frozen=True, kw_only=True)
class Search(Command):
    """[UID] SEARCH [RETURN (opts)] [CHARSET x] criteria.

    `return_options` None means no RETURN was given (answer with `* SEARCH`); an empty
    frozenset means RETURN () which RFC 4731 section 3.1 treats as RETURN (ALL).
    `charset` is upper-cased, None when absent.
    """

    name: ClassVar[str] = "SEARCH"
    criteria: SearchKey
    charset: str | None = None
    return_options: frozenset[SearchReturn] | None = None
    uid: bool = False


@dataclass(frozen=True, kw_only=True)
class Fetch(Command):
    """[UID] FETCH set items [(CHANGEDSINCE n [VANISHED])] (RFC 7162 3.1.4.1 / 3.2.6).

    Macros ALL/FAST/FULL are expanded into `attributes`. For UID FETCH the session must also
    return UID (RFC 9051 section 6.4.9) even if not asked.
    """

    name: ClassVar[str] = "FETCH"
    sequence_set: SequenceSet
    attributes: tuple[FetchAttribute, ...]
    uid: bool = False
    changed_since: int | None = None
    vanished: bool = False


class StoreMode(StrEnum):
    """FLAGS replaces, +FLAGS adds, -FLAGS removes."""

    REPLACE = "FLAGS"
    ADD = "+FLAGS"
    REMOVE = "-FLAGS"


@dataclass(frozen=True, kw_only=True)
class Store(Command):
    """[UID] STORE set [(UNCHANGEDSINCE n)] (+|-)FLAGS[.SILENT] (flags) (RFC 7162 3.1.3)."""

    name: ClassVar[str] = "STORE"
    sequence_set: SequenceSet
    mode: StoreMode
    flags: tuple[str, ...]
    silent: bool = False
    unchanged_since: int | None = None
    uid: bool = False


@dataclass(frozen=True, kw_only=True)
class Copy(Command):
    """[UID] COPY set mailbox."""

    name: ClassVar[str] = "COPY"
    sequence_set: SequenceSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True, kw_only=True)
class Move(Command):
    """[UID] MOVE set mailbox (RFC 6851)."""

    name: ClassVar[str] = "MOVE"
    sequence_set: SequenceSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True, kw_only=True)
class GetQuota(Command):
    """GETQUOTA root (RFC 9208 section 4.2)."""

    name: ClassVar[str] = "GETQUOTA"
    root: str


@dataclass(frozen=True, kw_only=True)
class GetQuotaRoot(Command):
    """GETQUOTAROOT mailbox (RFC 9208 section 4.3)."""

    name: ClassVar[str] = "GETQUOTAROOT"
    mailbox: str


@dataclass(frozen=True, kw_only=True)
class SetQuota(Command):
    """SETQUOTA root ((resource limit)...) (RFC 9208 section 4.1); resources upper-cased."""

    name: ClassVar[str] = "SETQUOTA"
    root: str
    limits: tuple[tuple[str, int], ...] = field(default=())
