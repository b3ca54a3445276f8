"""Hashing many passwords at once (bulk provisioning) on every core, and initial passwords.

argon2id is deliberately CPU-bound (~20 ms a hash with the default parameters), so 5,000 new
mailboxes are ~100 s of CPU: a process pool spreads it over all cores, away from the serving
process, whose threads and event loop stay free for mail while an import runs.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

from storage.password_policy import check_password
from storage.passwords import PasswordParams, Passwords

# No look-alikes (0/O, 1/l/I) in passwords people type from a printed sheet.
_LOWER = "abcdefghijkmnopqrstuvwxyz"
_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_DIGITS = "23456789"
_SYMBOLS = "#%+-=@!?"
INITIAL_PASSWORD_LENGTH = 14
HASH_CHUNK = 64

_worker_hasher: Passwords | None = None


def generate_initial_password(
    account: str, full_name: str | None, length: int = INITIAL_PASSWORD_LENGTH
) -> str:
    """A random password that passes the provincial policy for this account and person."""
    if length < 9:
        raise ValueError("initial passwords have at least 9 characters")
    alphabet = _LOWER + _UPPER + _DIGITS + _SYMBOLS
    while True:
        chars = [secrets.choice(group) for group in (_LOWER, _UPPER, _DIGITS, _SYMBOLS)]
        chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
        secrets.SystemRandom().shuffle(chars)
        password = "".join(chars)
        if not check_password(password, account, full_name):
            return password


def _init_worker(params: PasswordParams) -> None:
    global _worker_hasher
    _worker_hasher = Passwords(params)


def _hash_chunk(passwords: Sequence[str]) -> list[str]:
    assert _worker_hasher is not None
    return [_worker_hasher.hash(password) for password in passwords]


class PasswordHashPool:
    """argon2id hashing of batches across ``workers`` processes (0: one per core)."""

    def __init__(self, params: PasswordParams, workers: int = 0) -> None:
        self._params = params
        self._workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> PasswordHashPool:
        # forkserver: forking the threaded server process itself could copy a held lock.
        self._pool = ProcessPoolExecutor(
            self._workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_init_worker,
            initargs=(self._params,),
        )
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def hash_in_chunks(self, passwords: Sequence[str]) -> Iterator[list[str]]:
        """Hashes in order, one list per chunk of :data:`HASH_CHUNK`, as soon as each is done.

        Every chunk is submitted at once, so the workers stay busy while the caller stores the
        chunks already hashed.
        """
        assert self._pool is not None, "use PasswordHashPool as a context manager"
        chunks = [passwords[i : i + HASH_CHUNK] for i in range(0, len(passwords), HASH_CHUNK)]
        futures = [self._pool.submit(_hash_chunk, chunk) for chunk in chunks]
        for future in futures:
            yield future.result()
