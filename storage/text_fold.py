"""Fold text for accent- and case-insensitive search (Vietnamese first).

The search index kept at delivery stores ``fold_for_search(text)`` of each message's text, and
IMAP SEARCH compares it with ``fold_query(key)``: both are plain folded strings, so they feed
SQLite FTS5's ``trigram`` tokenizer and PostgreSQL ``pg_trgm`` (or a plain ``LIKE``/``instr``)
without any further tokenisation. "VĂN BẢN", "văn bản", "van ban", the NFD form and both tone
placements ("hòa"/"hoà") all fold to "van ban"/"hoa".

Folding is Unicode canonical caseless matching, D145 of Unicode ch. 3.13,
``NFD(casefold(NFD(X)))``, then every nonspacing mark (category Mn) removed, plus:

- đ/Đ (U+0111/U+0110) -> "d": TCVN 6909 treats đ as its own letter, and it has no
  decomposition, so removing marks alone would leave it.
- ð/Ð (U+00F0/U+00D0, eth) -> "d": Vietnamese text decoded as windows-1252 or latin-1 instead
  of windows-1258 shows Ð where Đ was meant (byte 0xD0 in both charsets).
- control characters other than whitespace, lone surrogates and format characters (Cf: soft
  hyphen, zero-width space and joiners, BOM) are removed, so the result always encodes as UTF-8
  and holds no NUL (PostgreSQL text columns reject it).
- runs of whitespace become one space.

The result is folded once more to the same string (idempotent). Mc marks, letters of other
scripts and punctuation are kept as they are.

``fold_exact`` and ``exact_query`` (at the end) keep the diacritics, for keys typed with them.
"""

import re
import unicodedata

# Per-character lookups in str.translate cost about 14 MB/s on Vietnamese text; removing the
# marks Vietnamese uses with str.replace first and translating only what is left is 2-3x faster
# (see the benchmark in tests/test_text_fold.py). The result is the same either way: every mark
# replaced here is also in the translate table.
_VIETNAMESE_MARKS = (
    "\u0300",  # grave (huyền)
    "\u0301",  # acute (sắc)
    "\u0303",  # tilde (ngã)
    "\u0309",  # hook above (hỏi)
    "\u0323",  # dot below (nặng)
    "\u0302",  # circumflex (â ê ô)
    "\u0306",  # breve (ă)
    "\u031b",  # horn (ơ ư)
)

_NON_ASCII_RUN = re.compile("[^\x00-\x7f]+")
# ASCII controls that are not whitespace (str.isspace counts \t-\r and \x1c-\x1f as space).
_ASCII_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x7f]+")

# Planes 0-3 and 14 hold every Mn, Cf, Cc and Cs code point (Unicode 14 and 15); planes 4-13 are
# unassigned and 15-16 are private use. Scanning only these keeps import under 60 ms.
_SCANNED_PLANES = (0, 1, 2, 3, 14)

# A run of remaining non-ASCII text is translated through a regex callback when such runs are
# sparse (mostly ASCII text with a few quotes or dashes); dense non-Latin text is translated in
# one call instead, which avoids one Python call per word.
_SPARSE_NON_ASCII_RATIO = 16


def _build_fold_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for plane in _SCANNED_PLANES:
        for code_point in range(plane << 16, (plane + 1) << 16):
            char = chr(code_point)
            category = unicodedata.category(char)
            if category in ("Mn", "Cf", "Cs") or (category == "Cc" and not char.isspace()):
                table[code_point] = None
    for letter in "đĐðÐ":
        table[ord(letter)] = "d"
    return table


_FOLD_TABLE = _build_fold_table()


def _translate_run(match: re.Match[str]) -> str:
    return match.group().translate(_FOLD_TABLE)


def _fold_characters(text: str) -> str:
    """Casefold, decompose and drop marks and unwanted characters; whitespace left as is."""
    if text.isascii():  # no marks to decompose or drop, and casefold() is lower() here
        return _drop_ascii_controls(text.lower())
    folded = unicodedata.normalize("NFD", text.casefold())
    for mark in _VIETNAMESE_MARKS:
        folded = folded.replace(mark, "")
    folded = folded.replace("đ", "d")
    if folded.isascii():  # the usual end of Vietnamese text
        return _drop_ascii_controls(folded)
    # The table below removes controls too, but the ASCII fast paths never reach it.
    folded = _ASCII_CONTROLS.sub("", folded)
    extra_bytes = len(folded.encode("utf-8", "surrogatepass")) - len(folded)
    if extra_bytes * _SPARSE_NON_ASCII_RATIO < len(folded):
        return _NON_ASCII_RUN.sub(_translate_run, folded)
    return folded.translate(_FOLD_TABLE)


# ASCII text goes through bytes: bytes.translate deletes and maps in one C loop, where a
# character-class regex over 10 KB took about 70 microseconds and str.split plus join 50.
_ASCII_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x1C), 0x7F])
# What str.split() counts as whitespace among ASCII characters, mapped to a space.
_ASCII_SPACES = bytes(
    0x20 if byte in b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f" else byte for byte in range(256)
)


def _drop_ascii_controls(text: str) -> str:
    return text.encode("ascii").translate(None, _ASCII_CONTROL_BYTES).decode("ascii")


def _collapse_ascii_spaces(data: bytes) -> str:
    """``" ".join(text.split())`` for ASCII text whose spaces are all b" " already."""
    while b"  " in data:
        data = data.replace(b"  ", b" ")
    return data.strip(b" ").decode("ascii")


def fold_for_search(text: str) -> str:
    """Fold a message's text for the search index: no case, no marks, đ -> d, one space."""
    if text.isascii():  # the common case: one pass (lower, drop controls, spaces) in bytes
        data = text.lower().encode("ascii").translate(_ASCII_SPACES, _ASCII_CONTROL_BYTES)
        return _collapse_ascii_spaces(data)
    folded = _fold_characters(text)
    if folded.isascii():
        return _collapse_ascii_spaces(folded.encode("ascii").translate(_ASCII_SPACES))
    return " ".join(folded.split())


def fold_query(text: str) -> str:
    """Fold an IMAP SEARCH key the way ``fold_for_search`` folds the indexed text.

    Unlike ``fold_for_search``, whitespace at either end is kept (collapsed to one space)
    instead of stripped. IMAP SEARCH matches substrings (RFC 3501 section 6.4.4: "Messages that
    contain the specified string"), so a key " ban" asks for a word starting with "ban" and
    stripping it would widen the search. An index that should match such keys at the very
    start or end of a text can store ``" " + fold_for_search(text) + " "``.

    Keys shorter than three characters after folding cannot use a trigram index; the caller
    must fall back to a scan (``instr``/``LIKE``) for them.
    """
    folded = _fold_characters(text)
    core = " ".join(folded.split())
    if not core:
        return " " if folded[:1].isspace() else ""
    leading = " " if folded[:1].isspace() else ""
    trailing = " " if folded[-1:].isspace() else ""
    return leading + core + trailing


# --- exact diacritics ------------------------------------------------------------------------
#
# A key typed with diacritics asks for those diacritics: "họp" (meeting) must not find "hộp"
# (box), nor "đồng chí" find "dong chi". The index stays accent-insensitive (it finds the
# candidates, and keys typed without diacritics keep finding everything); ``fold_exact`` gives
# the text a second filter confirms each candidate on. It ignores only case, Unicode
# normalisation (NFC/NFD/Windows-1258 style) and where the tone mark of oa, oe and uy sits: the
# old placement ("hòa", "hòe", "thúy") and the new one ("hoà", "hoè", "thuý") are the same word
# (Vietnamese orthography allows both), and both become the old one. Every other syllable has
# one accepted placement.

# The new placement, as NFC pairs, and the old one each becomes.
_NEW_TONE_PLACEMENT = {
    base + toned: unicodedata.normalize("NFC", base + tone) + plain
    for base, vowels in (("o", "ae"), ("u", "y"))
    for plain in vowels
    for tone in ("\u0300", "\u0301", "\u0303", "\u0309", "\u0323")
    for toned in [unicodedata.normalize("NFC", plain + tone)]
}
# One character class per first vowel: a 30-way alternation is about ten times slower.
_NEW_TONE = re.compile(
    "|".join(
        re.escape(first)
        + "["
        + "".join(pair[1] for pair in _NEW_TONE_PLACEMENT if pair[0] == first)
        + "]"
        for first in sorted({pair[0] for pair in _NEW_TONE_PLACEMENT})
    )
)
# What fold_for_search drops except the nonspacing marks (the exact text keeps those). Eth is
# read as đ (see the module doc).
_EXACT_TABLE: dict[int, str | None] = {
    code: None
    for code, value in _FOLD_TABLE.items()
    if value is None and unicodedata.category(chr(code)) != "Mn"
}


def _exact_characters(text: str) -> str:
    """Casefold, controls and format characters dropped, one space, NFC, old tone placement."""
    collapsed = " ".join(text.casefold().split())
    if not collapsed.isprintable():  # rare once whitespace is gone: controls, Cf, surrogates
        collapsed = " ".join(collapsed.translate(_EXACT_TABLE).split())
    composed = unicodedata.normalize("NFC", collapsed.replace("ð", "đ"))
    return _NEW_TONE.sub(lambda match: _NEW_TONE_PLACEMENT[match.group()], composed)


def fold_exact(text: str) -> str:
    """``text`` for the exact-diacritics filter: like ``fold_for_search`` but marks and đ kept.

    "" for text that is ASCII once folded so (no key with diacritics can match it), which keeps
    the stored copy empty for most non-Vietnamese mail.
    """
    if text.isascii():
        return ""
    exact = _exact_characters(text)
    return "" if exact.isascii() else exact


def exact_query(text: str) -> str | None:
    """The key for the exact-diacritics filter, or None when it has no diacritics.

    Whitespace at the ends is kept as ``fold_query`` keeps it.
    """
    if text.isascii():
        return None
    core = _exact_characters(text)
    if not core or core == fold_for_search(text):
        return None
    leading = " " if text[:1].isspace() else ""
    trailing = " " if text[-1:].isspace() else ""
    return leading + core + trailing
