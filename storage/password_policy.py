"""The provincial password policy (STANDARDS.md): strength and no personal names.

A password must have at least 9 characters including an upper-case letter, a lower-case letter,
a digit and a symbol, and must not contain the account name or the person's name. Names are
compared with Vietnamese diacritics folded and case ignored, so "Thành@2025x" contains the
given name "Thành" as surely as "THANH@2025x" does.

The rules on changing the password (at first login, every 6 months) are about time and live
with the account, not here.
"""

from __future__ import annotations

import re
import unicodedata

from storage.text_fold import fold_for_search

MIN_LENGTH = 9
MIN_NAME_LETTERS = 3  # shorter names ("An", "Vy") would forbid too many harmless passwords

_SEPARATORS = re.compile(r"[.+_-]")


def _fold(text: str) -> str:
    """Case, marks, đ and invisible format characters folded away (:mod:`storage.text_fold`)."""
    return fold_for_search(text)


def _letters_only(text: str) -> str:
    return "".join(char for char in text if char.isalpha())


def check_password(password: str, account: str, full_name: str | None) -> list[str]:
    """Every rule ``password`` breaks, as messages for the user; an empty list means accepted.

    ``account`` is the login (``thanhnn.skhcn`` or ``thanhnn.skhcn@hanoi.gov.vn``); the password
    must not contain its local part, nor any dot-, plus-, hyphen- or underscore-separated
    piece of it of at least 3 letters. ``full_name`` (``Nguyễn Ngọc Thành``) must not appear
    with its spaces removed or with the letters of the password alone (``Nguyen_Ngoc_Thanh``),
    and the given name (the last word) must not appear if it has at least 3 letters.

    A symbol is any character that is neither a letter nor a digit (so a space counts).
    """
    text = unicodedata.normalize("NFC", password)
    problems: list[str] = []
    if len(text) < MIN_LENGTH:
        problems.append(f"Password must be at least {MIN_LENGTH} characters long.")
    if not any(char.isupper() for char in text):
        problems.append("Password must contain an upper-case letter.")
    if not any(char.islower() for char in text):
        problems.append("Password must contain a lower-case letter.")
    if not any(char.isdigit() for char in text):
        problems.append("Password must contain a digit.")
    if all(char.isalnum() for char in text):
        problems.append("Password must contain a symbol (neither a letter nor a digit).")

    folded = _fold(text)
    if _contains_account(folded, account):
        problems.append("Password must not contain the account name.")
    if full_name is not None:
        problems.extend(_name_problems(folded, full_name))
    return problems


def _contains_account(folded_password: str, account: str) -> bool:
    local_part = _fold(account.strip()).rpartition("@")[0] or _fold(account.strip())
    # A one- or two-letter account name ("a@...") is in almost every password: not a rule.
    if len(local_part) < MIN_NAME_LETTERS:
        return False
    if local_part in folded_password:
        return True
    pieces = (piece for piece in _SEPARATORS.split(local_part) if len(piece) >= MIN_NAME_LETTERS)
    return any(piece in folded_password for piece in pieces)


def _name_problems(folded_password: str, full_name: str) -> list[str]:
    words = [_letters_only(word) for word in _fold(full_name).split()]
    words = [word for word in words if word]
    if not words:
        return []
    joined = "".join(words)
    password_letters = _letters_only(folded_password)
    if len(joined) >= MIN_NAME_LETTERS and (
        joined in folded_password or joined in password_letters
    ):
        return ["Password must not contain your full name."]
    given = words[-1]
    if len(given) >= MIN_NAME_LETTERS and given in folded_password:
        return ["Password must not contain your given name."]
    return []
