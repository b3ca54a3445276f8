"""The ``attachments`` check: refuse executables and scripts (and, optionally, macro documents).

A part is judged by every name it carries: Content-Disposition filename and Content-Type name,
RFC 2231 and encoded-word forms decoded, trailing dots and blanks dropped (Windows ignores
them: "x.exe." runs as "x.exe"), and by a few executable media types whatever the name. Parts
inside attached messages count too. The refusal names the file so the sender knows what to fix.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable

from filters.pipeline import Action, MessageContext, Verdict
from storage.message_summary import MimePart, decode_header_text, summarize_message

EXECUTABLE_TYPES = frozenset(
    {
        "application/x-msdownload",
        "application/x-msdos-program",
        "application/x-dosexec",
        "application/x-ms-installer",
        "application/x-msi",
        "application/vnd.microsoft.portable-executable",
        "application/x-sh",
        "application/hta",
    }
)
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


def part_names(part: MimePart) -> list[str]:
    names = []
    for raw in (part.disposition_param("filename"), part.param("name")):
        if raw:
            name = _UNPRINTABLE.sub("", decode_header_text(raw)).strip()
            if name:
                names.append(name)
    return names


def extension(name: str) -> str:
    """The extension Windows would use: after the last dot, ignoring trailing dots/blanks."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].rstrip(". \t")
    return base.rpartition(".")[2].lower() if "." in base else ""


def find_blocked_attachment(message: bytes, blocked: Iterable[str]) -> tuple[str, str] | None:
    """(file name or media type, reason) of the first forbidden part, or None."""
    wanted = {e.lower().lstrip(".") for e in blocked}
    root = summarize_message(message).root
    for part in root.walk():
        for name in part_names(part):
            ext = extension(name)
            if ext in wanted:
                return name, f".{ext}"
        media = f"{part.type}/{part.subtype}".lower()
        if media in EXECUTABLE_TYPES:
            return media, media
    return None


def _quoted(name: str) -> str:
    shown = name.encode("ascii", "replace").decode("ascii")[:80]
    return '"' + shown.replace('"', "'") + '"'


class AttachmentPolicyCheck:
    """Refuses a message with a blocked attachment: 552 5.7.0, naming the file and the rule."""

    name = "attachments"

    def __init__(self, blocked_extensions: Iterable[str]) -> None:
        self.blocked = frozenset(e.lower().lstrip(".") for e in blocked_extensions)

    async def check(self, message: bytes, context: MessageContext) -> Verdict:
        # Parsing a large message takes a while: keep it off the event loop.
        found = await asyncio.to_thread(find_blocked_attachment, message, self.blocked)
        if found is None:
            return Verdict(self.name)
        name, reason = found
        reply = (
            f"552 5.7.0 Message refused: attachment {_quoted(name)} has a blocked type ({reason});"
            " executables and scripts are not accepted, send documents instead"
        )
        return Verdict(self.name, Action.REJECT, reply, detail=f"blocked {reason}")
