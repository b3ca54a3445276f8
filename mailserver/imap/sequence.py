"""Turning a command's sequence set into the UIDs of the selected folder's view.

RFC 9051 section 9 (seq-number): "*" is the largest number in use. Message sequence numbers
beyond the number of messages are an error (the client's view is out of date or broken); UIDs
that do not exist are simply skipped (RFC 9051 6.4.9: "non-existent UIDs are ignored").
"""

from __future__ import annotations

import bisect

from mailserver.imap.errors import BadCommand
from mailserver.imap.protocol import SequenceSet
from mailserver.imap.selected import SelectedFolder


def resolve_uids(
    selected: SelectedFolder, sequence_set: SequenceSet, uid: bool, saved: list[int] | None = None
) -> list[int]:
    """The UIDs (ascending) that the set names in the view."""
    if sequence_set.saved:
        # RFC 5182 "$": the last SEARCH ... RETURN (SAVE) result, as UIDs.
        if saved is None:
            return []
        present = [u for u in saved if selected.seq_of(u) is not None]
        return present
    if uid:
        resolved = sequence_set.resolve(selected.largest_uid)
        uids = selected.uids
        result: list[int] = []
        for low, high in resolved.spans:
            start = bisect.bisect_left(uids, low)
            end = bisect.bisect_right(uids, high)
            result.extend(uids[start:end])
        return result
    resolved = sequence_set.resolve(selected.exists)
    if resolved.max_value() > selected.exists:
        raise BadCommand("Invalid message sequence number")
    uids = selected.uids
    return [uid for low, high in resolved.spans for uid in uids[low - 1 : high]]
