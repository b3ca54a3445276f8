"""FETCH and UID FETCH (RFC 9051 6.4.5 / 7.5.2, RFC 7162 CHANGEDSINCE and VANISHED).

Rows are loaded in batches; structure items come from the summary cached at delivery
(mailserver/imap/fetch_render.py), body sections from the blob store, read off the event loop.
Fetching a body section without .PEEK sets \\Seen first (in one write for the whole command),
and the new flags are returned in the same FETCH response (RFC 9051 6.4.5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from sqlmodel import Session as DBSession

from mailserver.imap import protocol as p
from mailserver.imap import response as r
from mailserver.imap.commands.base import Done
from mailserver.imap.errors import BadCommand, CommandFailed
from mailserver.imap.fetch_render import (
    find_part,
    render_bodystructure,
    render_envelope,
    section_bytes,
)
from mailserver.imap.limits import FETCH_BATCH, FETCH_FLUSH_BYTES
from mailserver.imap.sequence import resolve_uids
from storage.mailbox_ops import FlagMode, store_flags
from storage.message_queries import MessageRow, message_rows, vanished_since
from storage.message_summary import (
    KNOWN_TRANSFER_ENCODINGS,
    MessageSummary,
    decode_transfer_encoding,
)

if TYPE_CHECKING:
    from mailserver.imap.selected import SelectedFolder
    from mailserver.imap.session import Session
    from storage.blobs import BlobStore

_Encoder = Callable[[MessageRow, MessageSummary | None, bytes | None], bytes]

# Blob bytes read per worker-thread call: few thread hops, bounded memory.
READ_CHUNK_BYTES = 8 * 1024 * 1024
_HEADER_TEXTS = frozenset(
    {p.SectionText.HEADER, p.SectionText.HEADER_FIELDS, p.SectionText.HEADER_FIELDS_NOT}
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SUMMARY_KINDS = frozenset(
    {
        p.FetchKind.ENVELOPE,
        p.FetchKind.BODY,
        p.FetchKind.BODYSTRUCTURE,
        p.FetchKind.BODY_SECTION,
        p.FetchKind.BINARY,
        p.FetchKind.BINARY_SIZE,
        p.FetchKind.RFC822_HEADER,
        p.FetchKind.RFC822_TEXT,
    }
)
_RAW_KINDS = frozenset(
    {
        p.FetchKind.BODY_SECTION,
        p.FetchKind.BINARY,
        p.FetchKind.BINARY_SIZE,
        p.FetchKind.RFC822,
        p.FetchKind.RFC822_HEADER,
        p.FetchKind.RFC822_TEXT,
    }
)


def imap_datetime(value: datetime) -> bytes:
    """RFC 9051 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (day padded with a space)."""
    offset = value.strftime("%z") or "+0000"
    text = (
        f"{value.day:2d}-{_MONTHS[value.month - 1]}-{value.year:04d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} {offset}"
    )
    return r.quoted(text)


def _partial(data: bytes, partial: p.Partial | None) -> bytes:
    if partial is None:
        return data
    return data[partial.offset : partial.offset + partial.length]


class FetchRenderer:
    """Renders the requested items of one message (pure, given the row and its bytes)."""

    def __init__(
        self,
        attributes: tuple[p.FetchAttribute, ...],
        utf8: bool,
        recent: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        self.attributes = attributes
        self.utf8 = utf8
        self.recent = recent  # UIDs shown with \Recent (IMAP4rev1, mailserver/imap/selected.py)
        # A folder has few distinct flag sets; each is encoded once per command.
        self._flag_lists: dict[object, bytes] = {}
        # Each item's label and encoder, chosen once: FETCH 1:* renders thousands of rows.
        self._encoders: list[tuple[bytes, _Encoder]] = []
        simple: dict[p.FetchKind, _Encoder] = {
            p.FetchKind.UID: self._uid,
            p.FetchKind.FLAGS: self._flags,
            p.FetchKind.RFC822_SIZE: self._size,
            p.FetchKind.INTERNALDATE: self._internal_date,
            p.FetchKind.MODSEQ: self._modseq,
        }
        for attribute in attributes:
            label = attribute.response_label().encode("ascii")
            self._encoders.append(
                (label, simple.get(attribute.kind) or partial(self._value, attribute))
            )

    def render(
        self, seq: int, row: MessageRow, summary: MessageSummary | None, raw: bytes | None
    ) -> bytes:
        items: list[bytes] = []
        for label, encode in self._encoders:
            items.append(label)
            items.append(encode(row, summary, raw))
        return b"* %d FETCH (%s)\r\n" % (seq, b" ".join(items))

    def _uid(self, row: MessageRow, summary: object, raw: object) -> bytes:
        return r.number(row.uid)

    def _flags(self, row: MessageRow, summary: object, raw: object) -> bytes:
        is_recent = row.uid in self.recent
        key = (row.flags_key(), is_recent)
        encoded = self._flag_lists.get(key)
        if encoded is None:
            shown = sorted(row.flags)
            if is_recent:
                shown.insert(0, "\\Recent")
            encoded = self._flag_lists[key] = r.flag_list(shown)
        return encoded

    def _size(self, row: MessageRow, summary: object, raw: object) -> bytes:
        return r.number(row.size)

    def _internal_date(self, row: MessageRow, summary: object, raw: object) -> bytes:
        return imap_datetime(row.internal_date)

    def _modseq(self, row: MessageRow, summary: object, raw: object) -> bytes:
        return r.paren_list([r.number(row.modseq)])

    def _value(
        self,
        attribute: p.FetchAttribute,
        row: MessageRow,
        summary: MessageSummary | None,
        raw: bytes | None,
    ) -> bytes:
        kind = attribute.kind
        if kind is p.FetchKind.RFC822:  # the whole message: no summary is loaded for it
            assert raw is not None
            return r.literal(raw)
        assert summary is not None
        if kind is p.FetchKind.ENVELOPE:
            return render_envelope(summary, utf8=self.utf8)
        if kind in (p.FetchKind.BODY, p.FetchKind.BODYSTRUCTURE):
            return render_bodystructure(summary, kind is p.FetchKind.BODYSTRUCTURE, utf8=self.utf8)
        assert raw is not None
        if kind is p.FetchKind.RFC822_HEADER:
            return r.literal(section_bytes(raw, summary, (), "HEADER", None, False))
        if kind is p.FetchKind.RFC822_TEXT:
            return r.literal(section_bytes(raw, summary, (), "TEXT", None, False))
        section = attribute.section or p.SectionSpec()
        if kind is p.FetchKind.BODY_SECTION:
            data = section_bytes(
                raw,
                summary,
                section.part,
                section.text.value if section.text is not None else None,
                list(section.fields),
                False,
            )
            return r.literal(_partial(data, attribute.partial))
        decoded = _binary_part(raw, summary, section.part)
        if kind is p.FetchKind.BINARY_SIZE:
            return r.number(len(decoded))
        return r.literal(_partial(decoded, attribute.partial), binary=True)


def _binary_part(raw: bytes, summary: MessageSummary, part: tuple[int, ...]) -> bytes:
    """RFC 3516 BINARY[part]: the part's body with its transfer encoding undone."""
    if not part:
        return raw
    target = find_part(summary, part)
    if target is None:
        return b""
    if target.is_multipart:
        # A well-formed request this server cannot answer: NO, not BAD (RFC 3516 4.2).
        raise CommandFailed("BINARY of a multipart part is not defined")
    if (target.encoding or "").strip().lower() not in KNOWN_TRANSFER_ENCODINGS:
        # RFC 3516 4.3: an encoding the server cannot decode (x-uuencode, ...).
        raise CommandFailed(f"Unknown Content-Transfer-Encoding {target.encoding}", "UNKNOWN-CTE")
    return decode_transfer_encoding(raw[target.body_start : target.body_end], target.encoding)


def _with_implied(command: p.Fetch, condstore: bool) -> tuple[p.FetchAttribute, ...]:
    """Add UID for UID FETCH (RFC 9051 6.4.9) and MODSEQ under CONDSTORE (RFC 7162 3.1.4.1)."""
    attributes = list(command.attributes)
    kinds = {a.kind for a in attributes}
    if command.uid and p.FetchKind.UID not in kinds:
        attributes.insert(0, p.FetchAttribute(p.FetchKind.UID))
    wants_modseq = command.changed_since is not None or (condstore and p.FetchKind.FLAGS in kinds)
    if wants_modseq and p.FetchKind.MODSEQ not in kinds:
        attributes.append(p.FetchAttribute(p.FetchKind.MODSEQ))
    return tuple(attributes)


async def fetch(session: Session, command: p.Fetch) -> Done:
    selected = session.require_selected()
    if command.vanished and (not command.uid or not session.qresync):
        raise BadCommand("VANISHED needs UID FETCH with QRESYNC enabled")
    if command.vanished and command.changed_since is None:
        raise BadCommand("VANISHED needs CHANGEDSINCE")
    kinds = {a.kind for a in command.attributes}
    if command.changed_since is not None or p.FetchKind.MODSEQ in kinds:
        session.enable_condstore()
    attributes = _with_implied(command, session.condstore)
    uids = resolve_uids(selected, command.sequence_set, command.uid, session.saved_search)
    folder_id = selected.folder_id
    if command.vanished and command.changed_since is not None:
        since = command.changed_since
        wanted = set(uids) if not command.sequence_set.uses_star() else None
        gone = await session.store.read(lambda s: vanished_since(s, folder_id, since))
        gone = [u for u in gone if (wanted is None or u in wanted)]
        if gone:
            session.send(r.untagged(b"VANISHED", b"(EARLIER)", r.sequence_set(gone)))
    need_summary = any(a.kind in _SUMMARY_KINDS for a in attributes)
    need_raw = any(a.kind in _RAW_KINDS for a in attributes)
    header_only = need_raw and all(_header_only(a) for a in attributes if a.kind in _RAW_KINDS)
    sets_seen = not selected.read_only and any(a.sets_seen() for a in attributes)
    renderer = FetchRenderer(attributes, session.utf8, selected.recent)
    with_flags = (
        FetchRenderer(
            (*attributes, p.FetchAttribute(p.FetchKind.FLAGS)), session.utf8, selected.recent
        )
        if p.FetchKind.FLAGS not in kinds
        else renderer
    )

    blobs = session.store.blobs

    def rows_of(s: DBSession, batch: list[int]) -> list[MessageRow]:
        rows = message_rows(s, folder_id, batch, need_summary)
        if command.changed_since is not None:
            rows = [row for row in rows if row.modseq > command.changed_since]
        return rows

    def prepared(s: DBSession, batch: list[int]) -> _Batch:
        # Rows and (the first read of) their bytes in one trip to a worker thread.
        return _prepare(selected, rows_of(s, batch), need_raw, header_only, blobs)

    out = _Output(session)
    shows_flags = p.FetchKind.FLAGS in kinds
    shown: list[tuple[int, int, frozenset[str]]] = []  # (uid, modseq, flags) sent

    def flags_first(row: MessageRow, chosen: FetchRenderer) -> None:
        """Announce a keyword the row carries before it (RFC 3501 7.2.6), note what is sent."""
        if shows_flags or chosen is with_flags:
            for line in selected.announce_keywords(row.flags):
                out.add(line)
            shown.append((row.uid, row.modseq, row.flags))

    try:
        for start in range(0, len(uids), FETCH_BATCH):
            batch = uids[start : start + FETCH_BATCH]
            seen_now: set[int] = set()
            if sets_seen:
                rows = await session.store.read(partial(rows_of, batch=batch))
                rows, seen_now = await _mark_seen(session, folder_id, rows)
                loaded = _prepare(selected, rows, need_raw, header_only, None)
            else:
                loaded = await session.store.read(partial(prepared, batch=batch))
            numbered, summaries = loaded.numbered, loaded.summaries
            if not need_raw:
                for (seq, row), summary in zip(numbered, summaries, strict=True):
                    chosen = with_flags if row.uid in seen_now else renderer
                    flags_first(row, chosen)
                    if out.add(chosen.render(seq, row, summary, None)):
                        await out.flush()
                continue
            for number, chunk in enumerate(loaded.chunks):
                raws = loaded.first_raws if number == 0 else None
                if raws is None:
                    raws = await session.store.offload(blobs.read_many, _reads(numbered, chunk))
                for (index, _), raw in zip(chunk, raws, strict=True):
                    seq, row = numbered[index]
                    chosen = with_flags if row.uid in seen_now else renderer
                    flags_first(row, chosen)
                    if out.add(chosen.render(seq, row, summaries[index], raw)):
                        await out.flush()
    except Exception:
        out.send()  # what was rendered before the error, as if written one by one
        raise
    await out.flush()
    # What the client was just sent supersedes older pending flag changes of those messages.
    selected.forget_flag_changes(shown)
    return Done(f"{'UID ' if command.uid else ''}FETCH completed")


@dataclass
class _Batch:
    """One batch of a FETCH: (sequence number, row) in the view, summaries, bytes to read."""

    numbered: list[tuple[int, MessageRow]]
    summaries: list[MessageSummary | None]
    chunks: list[list[tuple[int, int | None]]]
    first_raws: list[bytes] | None


def _prepare(
    selected: SelectedFolder,
    rows: list[MessageRow],
    need_raw: bool,
    header_only: bool,
    blobs: BlobStore | None,
) -> _Batch:
    """Number the rows, parse their summaries and group their reads; with ``blobs``, read the
    first group too. Safe in a worker thread: the view does not change during a command
    (updates wait for flush_updates), and nothing here touches the event loop."""
    numbered = [
        (seq, row)
        for seq, row in zip(selected.seqs_of([row.uid for row in rows]), rows, strict=True)
        if seq is not None
    ]
    summaries = [
        MessageSummary.from_json(row.summary) if row.summary else None for _, row in numbered
    ]
    chunks = _read_chunks([row for _, row in numbered], summaries, header_only) if need_raw else []
    first_raws = None
    if blobs is not None and chunks:
        first_raws = blobs.read_many(_reads(numbered, chunks[0]))
    return _Batch(numbered, summaries, chunks, first_raws)


def _reads(
    numbered: list[tuple[int, MessageRow]], chunk: list[tuple[int, int | None]]
) -> list[tuple[str, int | None]]:
    return [(numbered[index][1].blob_sha256, length) for index, length in chunk]


class _Output:
    """FETCH responses gathered into few writes; waits for the client every FETCH_FLUSH_BYTES."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> bool:
        """Keep ``data``; True when enough is kept that the caller should ``flush``."""
        self.parts.append(data)
        self.size += len(data)
        return self.size >= FETCH_FLUSH_BYTES

    def send(self) -> None:
        if self.parts:
            self.session.send(b"".join(self.parts))
        self.parts = []
        self.size = 0

    async def flush(self) -> None:
        written = self.size
        self.send()
        if written >= FETCH_FLUSH_BYTES:
            await self.session.drain()


def _header_only(attribute: p.FetchAttribute) -> bool:
    """True when the item needs only the message's header bytes (HEADER, HEADER.FIELDS...)."""
    if attribute.kind is p.FetchKind.RFC822_HEADER:
        return True
    section = attribute.section
    return (
        attribute.kind is p.FetchKind.BODY_SECTION
        and section is not None
        and not section.part
        and section.text in _HEADER_TEXTS
    )


def _read_chunks(
    rows: list[MessageRow], summaries: list[MessageSummary | None], header_only: bool
) -> list[list[tuple[int, int | None]]]:
    """Group rows into reads of at most READ_CHUNK_BYTES: (row index, bytes wanted or None)."""
    chunks: list[list[tuple[int, int | None]]] = [[]]
    total = 0
    for index, row in enumerate(rows):
        summary = summaries[index]
        length = summary.root.body_start if header_only and summary is not None else None
        cost = length if length is not None else row.size
        if chunks[-1] and total + cost > READ_CHUNK_BYTES:
            chunks.append([])
            total = 0
        chunks[-1].append((index, length))
        total += cost
    return chunks if chunks[-1] else []


async def _mark_seen(
    session: Session, folder_id: int, rows: list[MessageRow]
) -> tuple[list[MessageRow], set[int]]:
    unseen = [row.uid for row in rows if "\\Seen" not in row.flags]
    if not unseen:
        return rows, set()
    result = await session.store.write(
        lambda s: store_flags(s, folder_id, unseen, ["\\Seen"], FlagMode.ADD)
    )
    selected = session.selected
    if selected is not None:
        selected.forget_flag_changes(result.updated)
    updated = {uid: (modseq, flags) for uid, modseq, flags in result.updated}
    refreshed: list[MessageRow] = []
    for row in rows:
        if row.uid in updated:
            modseq, flags = updated[row.uid]
            row = MessageRow(
                row.uid, modseq, flags, row.size, row.internal_date, row.blob_sha256, row.summary
            )
        refreshed.append(row)
    return refreshed, set(updated)
