"""LIST and LSUB (RFC 9051 6.3.9, RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154
SPECIAL-USE, RFC 3348 CHILDREN).

Matching is done on the Unicode folder names: "*" matches anything, "%" anything but the
hierarchy separator (RFC 9051 6.3.9). Every folder level exists (CREATE makes the parents), so
there are no \\Noselect placeholders; \\HasChildren/\\HasNoChildren are always sent.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlmodel import Session as DBSession

from mailserver.imap import protocol as p
from mailserver.imap import response as r
from mailserver.imap.commands.base import Done
from mailserver.imap.commands.status import status_line
from mailserver.imap.utf7 import decode_mailbox_name
from storage.mailbox_ops import HIERARCHY_SEPARATOR, INBOX
from storage.message_queries import FolderCounts, FolderInfo, all_folders, folder_counts
from storage.subscriptions import kept_subscriptions

if TYPE_CHECKING:
    from mailserver.imap.session import Session

_SEPARATOR = r.quoted(HIERARCHY_SEPARATOR)


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    """The folder names that `reference` + `pattern` matches (INBOX case-insensitively)."""
    full = reference + pattern
    parts: list[str] = []
    for char in full:
        if char == "*":
            parts.append(".*")
        elif char == "%":
            parts.append("[^" + re.escape(HIERARCHY_SEPARATOR) + "]*")
        else:
            parts.append(re.escape(char))
    regex = "".join(parts)
    if full[:5].upper() == INBOX and (len(full) == 5 or full[5] in "/*%"):
        regex = "INBOX" + "".join(parts[5:])
    return re.compile(regex, re.DOTALL)


def _decode_pattern(session: Session, text: str) -> str:
    if session.utf8:
        return text
    try:
        return decode_mailbox_name(text)
    except ValueError:
        return text


def _attributes(folder: FolderInfo, names: set[str], with_subscribed: bool) -> list[str]:
    prefix = folder.name + HIERARCHY_SEPARATOR
    has_children = any(other.startswith(prefix) for other in names)
    attributes = ["\\HasChildren" if has_children else "\\HasNoChildren"]
    if folder.special_use:
        attributes.append(folder.special_use)
    if with_subscribed and folder.subscribed:
        attributes.append("\\Subscribed")
    return attributes


def _unlisted_subscribed_child(
    folder: FolderInfo, folders: list[FolderInfo], regexes: list[re.Pattern[str]]
) -> bool:
    """Whether a subscribed descendant of ``folder`` matches none of the patterns."""
    prefix = folder.name + HIERARCHY_SEPARATOR
    return any(
        f.subscribed
        and f.name.startswith(prefix)
        and not any(regex.fullmatch(f.name) for regex in regexes)
        for f in folders
    )


async def list_command(session: Session, command: p.List) -> Done:
    account = session.require_account()
    reference = _decode_pattern(session, command.reference)
    patterns = [_decode_pattern(session, pattern) for pattern in command.patterns]
    if patterns == [""] and not command.extended:
        # RFC 9051 6.3.9: an empty pattern asks for the separator and root.
        session.send(r.untagged(b"LIST", b"(\\Noselect)", _SEPARATOR, r.quoted("")))
        return Done("LIST completed")
    subscribed_only = "SUBSCRIBED" in command.selection
    folders, kept = await session.store.read(
        lambda s: (
            all_folders(s, account.mailbox_id),
            kept_subscriptions(s, account.mailbox_id) if subscribed_only else [],
        )
    )
    names = {f.name for f in folders}
    regexes = [pattern_regex(reference, pattern) for pattern in patterns if pattern]
    special_only = "SPECIAL-USE" in command.selection
    recursive = "RECURSIVEMATCH" in command.selection
    with_subscribed = subscribed_only or "SUBSCRIBED" in command.return_options
    matched: list[tuple[FolderInfo, bytes]] = []
    for folder in folders:
        if not any(regex.fullmatch(folder.name) for regex in regexes):
            continue
        if special_only and not folder.special_use:
            continue
        extra = b""
        if subscribed_only:
            # RFC 5258 3.5: with RECURSIVEMATCH a folder with a subscribed descendant that the
            # patterns do not list is returned with CHILDINFO, subscribed itself or not.
            childinfo = recursive and _unlisted_subscribed_child(folder, folders, regexes)
            if not (folder.subscribed or childinfo):
                continue
            if childinfo:
                extra = b' ("CHILDINFO" ("SUBSCRIBED"))'
        attributes = _attributes(folder, names, with_subscribed)
        line = (
            b"* LIST "
            + r.paren_list([a.encode("ascii") for a in attributes])
            + b" "
            + _SEPARATOR
            + b" "
            + session.mailbox_name_out(folder.name)
            + extra
            + r.CRLF
        )
        matched.append((folder, line))
    if not special_only:
        # Subscriptions of deleted folders (RFC 5258 3.1: \NonExistent \Subscribed).
        for name in kept:
            if any(regex.fullmatch(name) for regex in regexes):
                kept_attributes = b"(\\NonExistent \\Subscribed)"
                mailbox = session.mailbox_name_out(name)
                session.send(r.untagged(b"LIST", kept_attributes, _SEPARATOR, mailbox))
    status_items = command.return_status
    counts: dict[int, FolderCounts] = {}
    if status_items:
        ids = [folder.id for folder, _ in matched]

        def load(s: DBSession) -> dict[int, FolderCounts]:
            found = {i: folder_counts(s, i) for i in ids}
            return {i: c for i, c in found.items() if c is not None}

        counts = await session.store.read(load)
    for folder, line in matched:
        session.send(line)
        if status_items and folder.id in counts:
            session.send(status_line(session, folder.name, counts[folder.id], status_items))
    return Done("LIST completed")


async def lsub(session: Session, command: p.Lsub) -> Done:
    account = session.require_account()
    reference = _decode_pattern(session, command.reference)
    pattern = _decode_pattern(session, command.pattern)
    if not pattern:
        session.send(r.untagged(b"LSUB", b"(\\Noselect)", _SEPARATOR, r.quoted("")))
        return Done("LSUB completed")
    folders, kept = await session.store.read(
        lambda s: (all_folders(s, account.mailbox_id), kept_subscriptions(s, account.mailbox_id))
    )
    regex = pattern_regex(reference, pattern)
    for name, selectable in lsub_matches(folders, kept, regex):
        attributes = b"()" if selectable else b"(\\Noselect)"
        session.send(r.untagged(b"LSUB", attributes, _SEPARATOR, session.mailbox_name_out(name)))
    return Done("LSUB completed")


def lsub_matches(
    folders: list[FolderInfo], kept: list[str], regex: re.Pattern[str]
) -> list[tuple[str, bool]]:
    """LSUB's answer: (name, listed as itself) for each subscribed folder the pattern matches.

    RFC 3501 6.3.9: when "%" stops short of a subscribed folder ("foo/bar" subscribed, "foo"
    not, pattern "%"), the level it reaches is returned, flagged \\Noselect. ``kept``:
    subscriptions of deleted folders (storage.subscriptions), listed like the others.
    """
    subscribed = [f.name for f in folders if f.subscribed] + kept
    chosen = {name for name in subscribed if regex.fullmatch(name)}
    parents: set[str] = set()
    for name in subscribed:
        levels = name.split(HIERARCHY_SEPARATOR)
        for depth in range(1, len(levels)):
            parent = HIERARCHY_SEPARATOR.join(levels[:depth])
            if parent not in chosen and regex.fullmatch(parent):
                parents.add(parent)
    return sorted([(name, True) for name in chosen] + [(name, False) for name in parents])
