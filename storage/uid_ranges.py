"""A set of UIDs as the few index range scans that cover it.

Prepared statements (storage.fast_sql) take plain bound parameters, no IN lists, so the hot
paths read a set of UIDs as ``uid BETWEEN low AND high`` scans of the (folder_id, uid) index.
IMAP sets are mostly runs (``1:*``, the last 20, one message), so this is usually one
statement. Runs separated by a small gap are read as one range: a few rows read and dropped
cost less than another statement. Callers drop the rows whose UID they did not ask for.
"""

from __future__ import annotations

from collections.abc import Iterable

# Up to this many UIDs between two runs are read (and dropped) rather than split the scan.
MERGE_GAP = 64


def uid_ranges(uids: Iterable[int]) -> list[tuple[int, int]]:
    """Inclusive (low, high) ranges covering every UID of ``uids``, in ascending order."""
    ranges: list[tuple[int, int]] = []
    low = high = -1
    for uid in sorted(set(uids)):
        if low < 0:
            low = high = uid
        elif uid - high - 1 <= MERGE_GAP:
            high = uid
        else:
            ranges.append((low, high))
            low = high = uid
    if low >= 0:
        ranges.append((low, high))
    return ranges
