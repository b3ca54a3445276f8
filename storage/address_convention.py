"""The provincial mailbox naming convention: ``<given name><initials>.<agency>``.

Provincial rules name a person's mailbox after the given name followed by the initials of the
surname and middle names, then a dot and the agency's abbreviation: Nguyễn Ngọc Thành at Sở
KH&CN (``skhcn``) is ``thanhnn.skhcn``. Choices made here (all documented in the functions):

* Vietnamese letters are folded to ASCII with the search fold (:mod:`storage.text_fold`):
  marks are dropped and đ/Đ, which do not decompose in Unicode, become d.
* The given name is the last word only: in Vietnamese usage "tên" is the last syllable and
  everything before it is "họ" and "tên đệm", so Nguyễn Văn Anh Tuấn -> ``tuannva``. A
  two-syllable given name (Anh Tuấn) cannot be told from a middle name by looking at the
  string; callers who know it is one pass ``given_name_words=2`` (-> ``anhtuannv``).
* Only the letters a-z survive in the name part, so hyphens, apostrophes (H'Hen Niê) and stray
  digits disappear and the collision suffix is never ambiguous.
* Collisions get a number after the name part, starting at 2: ``thanhnn.skhcn``, then
  ``thanhnn2.skhcn``, ``thanhnn3.skhcn``... The agency part stays intact because it is what
  readers look for, and "2" reads as "the second Thành NN at this agency".
"""

from __future__ import annotations

import re
from collections.abc import Callable

from storage.text_fold import fold_for_search

MAX_LOCAL_PART_OCTETS = 64  # RFC 5321 4.5.3.1.1
MAX_COLLISION_SUFFIX = 9999

_AGENCY_ABBREVIATION = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\Z")


def _ascii_letters(word: str) -> str:
    folded = fold_for_search(word)
    return "".join(char for char in folded if "a" <= char <= "z")


def name_part(full_name: str, *, given_name_words: int = 1) -> str:
    """The name part of the convention: ``Nguyễn Ngọc Thành`` -> ``thanhnn``.

    The last ``given_name_words`` words form the given name, written in full; every earlier
    word contributes its first letter. Extra spaces and capitalisation do not matter. Raises
    :class:`ValueError` when no letters remain.
    """
    if given_name_words < 1:
        raise ValueError("given_name_words must be at least 1")
    words = [letters for letters in map(_ascii_letters, full_name.split()) if letters]
    if not words:
        raise ValueError(f"no letters in the name {full_name!r}")
    given = "".join(words[-given_name_words:])
    initials = "".join(word[0] for word in words[:-given_name_words])
    return given + initials


def normalise_agency_abbreviation(abbreviation: str) -> str:
    """Lower-case and fold an agency abbreviation; ``SKHCN`` -> ``skhcn``.

    Raises :class:`ValueError` unless the result is letters, digits and inner hyphens.
    """
    folded = fold_for_search(abbreviation)
    if not _AGENCY_ABBREVIATION.match(folded):
        raise ValueError(
            f"agency abbreviation {abbreviation!r} must be letters a-z, digits and inner hyphens"
        )
    return folded


def generate_local_part(
    full_name: str,
    agency_abbrev: str,
    taken: Callable[[str], bool],
    *,
    given_name_words: int = 1,
) -> str:
    """The first free local part for a person: ``thanhnn.skhcn``, else ``thanhnn2.skhcn``...

    ``taken`` says whether a local part (lower-case, as returned) is already used; it is called
    with candidates in order until it answers False. Raises :class:`ValueError` for a name
    without letters, a bad abbreviation, a result longer than 64 octets, or when every suffix
    up to :data:`MAX_COLLISION_SUFFIX` is taken.
    """
    name = name_part(full_name, given_name_words=given_name_words)
    agency = normalise_agency_abbreviation(agency_abbrev)
    for number in range(1, MAX_COLLISION_SUFFIX + 1):
        candidate = f"{name}{number if number > 1 else ''}.{agency}"
        if len(candidate) > MAX_LOCAL_PART_OCTETS:
            raise ValueError(f"local part {candidate!r} would exceed 64 octets")
        if not taken(candidate):
            return candidate
    raise ValueError(f"every local part from {name}.{agency} to {candidate} is taken")
