"""Password hashing with argon2id; parameters come from the configuration.

Hashing and verifying are deliberately slow (tens of milliseconds): callers in the servers run
them through ``MailStore.offload`` so the event loop keeps serving.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# Verified when an account does not exist, so a wrong address costs as long as a wrong password.
_DUMMY_PASSWORD = "govmail-timing-equaliser"


@dataclass(frozen=True)
class PasswordParams:
    time_cost: int = 2
    memory_kib: int = 19456
    parallelism: int = 1


class Passwords:
    """argon2id hash and verify with one set of parameters."""

    def __init__(self, params: PasswordParams = PasswordParams()) -> None:
        self._hasher = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
        )
        self._dummy_hash = self._hasher.hash(_DUMMY_PASSWORD)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True if ``password`` matches; a missing hash still spends the same time."""
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and bool(
                password_hash
            )
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
