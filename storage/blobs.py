"""Content-addressed message bytes on disk: one file per sha256, written durably before use.

A blob is written to a temporary file, fsynced, renamed to its final name and its directory
fsynced; only then may a database row refer to it. A crash before the row commits leaves an
unreferenced file; it never leaves a row without its bytes.

A small blob (at most ``inline_max_bytes``, when ``put`` is allowed to) is not written here at
all: it travels inline in its ``StoredBlob`` and is committed in the database with the rows that
refer to it (``storage.inline_blobs``), so the commit's one fsync covers it, instead of two
fsyncs of its own before the commit. The blob spiller writes it to its file later, off the
delivery path, and then deletes the database copy. Reads look for the file first, then the
database copy (``inline_source``), then the file again: the spiller writes the file before it
deletes the copy, so one of the three looks finds the bytes. Unreferenced files (refcount 0, or
left by a crash) are not removed yet: a sweep must not race a delivery that found the file
already present and is about to reference it (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    # The bytes, when they are to be committed in the database with the first reference.
    inline: bytes | None = field(default=None, repr=False, compare=False)


# Database copies of inline blobs by sha256, for the given digests (those it has).
InlineSource = Callable[[list[str]], dict[str, bytes]]


class BlobStore:
    """Files under ``root/ab/cd/<sha256>``, and small blobs inline until they are spilled."""

    def __init__(
        self,
        root: Path,
        fsync: bool = True,
        inline_max_bytes: int = 0,
        inline_source: InlineSource | None = None,
    ) -> None:
        self.root = root
        self.fsync = fsync
        self.inline_max_bytes = inline_max_bytes if inline_source is not None else 0
        self.inline_source = inline_source
        root.mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, may_inline: bool = False) -> StoredBlob:
        """Store ``data`` durably and return its address. Blocking: call from a worker thread.

        ``may_inline``: the caller commits the result with a reference in the database
        (``mailbox_ops``), so a small blob may be returned with its bytes instead of written.
        """
        sha256 = hashlib.sha256(data).hexdigest()
        final = self.path_for(sha256)
        if final.exists():
            return StoredBlob(sha256, len(data))
        if may_inline and len(data) <= self.inline_max_bytes:
            return StoredBlob(sha256, len(data), inline=data)
        return self.write_file(sha256, data)

    def write_file(self, sha256: str, data: bytes) -> StoredBlob:
        """Write ``data`` durably as the file of ``sha256`` (unless it is there already)."""
        self.write_files([(sha256, data)])
        return StoredBlob(sha256, len(data))

    def write_files(self, blobs: list[tuple[str, bytes]]) -> None:
        """Write each as its file: the file fsynced, renamed into place, then each directory
        that got a new entry fsynced once (not once per file)."""
        directories: dict[Path, None] = {}
        for sha256, data in blobs:
            final = self.path_for(sha256)
            if final.exists():
                continue
            new_dirs = self._place(sha256, data, fsync_file=self.fsync)
            # The file's own entry, then the entries of any directory made for it.
            directories[final.parent] = None
            for directory in reversed(new_dirs):
                directories[directory.parent] = None
        if self.fsync:
            for directory in directories:
                _fsync_dir(directory)

    def _place(self, sha256: str, data: bytes, fsync_file: bool) -> list[Path]:
        """Write ``data`` to a temporary file and rename it to its final name; returns the
        directories made for it (their parents' entries need an fsync too)."""
        final = self.path_for(sha256)
        new_dirs = [d for d in (final.parent.parent, final.parent) if not d.exists()]
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp", prefix=sha256[:8])
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                if fsync_file:
                    os.fsync(handle.fileno())
            os.replace(tmp_name, final)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return new_dirs

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists() or sha256 in self._inline([sha256])

    def read(self, sha256: str) -> bytes:
        return self.read_many([(sha256, None)])[0]

    def read_range(self, sha256: str, start: int, length: int) -> bytes:
        try:
            with self.path_for(sha256).open("rb") as handle:
                handle.seek(start)
                return handle.read(length)
        except FileNotFoundError:
            return self.read(sha256)[start : start + length]

    def read_many(self, wanted: list[tuple[str, int | None]]) -> list[bytes]:
        """Several blobs in one call: (sha256, how many leading bytes, or None for all)."""
        found: list[bytes | None] = [self._read_file(sha, length) for sha, length in wanted]
        missing = [sha for (sha, _), data in zip(wanted, found, strict=True) if data is None]
        if not missing:
            return [data for data in found if data is not None]
        copies = self._inline(missing)
        result: list[bytes] = []
        for (sha, length), data in zip(wanted, found, strict=True):
            if data is None:
                copy = copies.get(sha)
                # Spilled meanwhile: the file was written before the copy was deleted.
                data = copy if copy is not None else self.path_for(sha).read_bytes()
                data = data if length is None else data[:length]
            result.append(data)
        return result

    def _read_file(self, sha256: str, length: int | None) -> bytes | None:
        try:
            with self.path_for(sha256).open("rb") as handle:
                return handle.read() if length is None else handle.read(length)
        except FileNotFoundError:
            if self.inline_source is None:
                raise
            return None

    def _inline(self, digests: list[str]) -> dict[str, bytes]:
        return self.inline_source(digests) if self.inline_source is not None else {}

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def all_digests(self) -> Iterator[str]:
        for first in sorted(self.root.iterdir()):
            if len(first.name) != 2 or not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                for entry in sorted(second.iterdir()):
                    yield entry.name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
