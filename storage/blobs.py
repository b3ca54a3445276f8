"""Content-addressed message bytes on disk: one file per sha256, written durably before use.

A blob is written to a temporary file, fsynced, renamed to its final name and its directory
fsynced; only then may a database row refer to it. A crash before the row commits leaves an
unreferenced file; it never leaves a row without its bytes. Unreferenced files (refcount 0, or
left by a crash) are not removed yet: a sweep must not race a delivery that found the file
already present and is about to reference it (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int


class BlobStore:
    """Files under ``root/ab/cd/<sha256>``."""

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        root.mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> StoredBlob:
        """Store ``data`` durably and return its address. Blocking: call from a worker thread."""
        sha256 = hashlib.sha256(data).hexdigest()
        final = self.path_for(sha256)
        if final.exists():
            return StoredBlob(sha256, len(data))
        new_dirs = [d for d in (final.parent.parent, final.parent) if not d.exists()]
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp", prefix=sha256[:8])
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            os.replace(tmp_name, final)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        if self.fsync:
            # The file's own entry, then the entries of any directory made for it.
            _fsync_dir(final.parent)
            for directory in reversed(new_dirs):
                _fsync_dir(directory.parent)
        return StoredBlob(sha256, len(data))

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def read_range(self, sha256: str, start: int, length: int) -> bytes:
        with self.path_for(sha256).open("rb") as handle:
            handle.seek(start)
            return handle.read(length)

    def read_many(self, wanted: list[tuple[str, int | None]]) -> list[bytes]:
        """Several blobs in one call: (sha256, how many leading bytes, or None for all)."""
        return [
            self.read(sha) if length is None else self.read_range(sha, 0, length)
            for sha, length in wanted
        ]

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
