"""Vietnamese agency identifiers (mã định danh): parse both legal forms, store one.

Two forms are in use:

* QCVN 102:2016/BTTTT (edXML document exchange): ``V1V2V3.Z1Z2.Y1Y2.MX1X2``, written from
  level 4 inwards to level 1, always four groups, absent levels zero-filled. ``MX1X2`` is the
  level-1 code (a letter and two digits: ``H41`` a provincial People's Committee, ``G12`` a
  ministry), ``Y1Y2`` level 2, ``Z1Z2`` level 3 and ``V1V2V3`` level 4, all digits.
  ``000.00.00.H41`` is the province itself, ``000.00.18.H41`` one of its departments.
* QĐ 20/2020/QĐ-TTg (amended by QĐ 09/2025/QĐ-TTg, data sharing): at most 35 characters of
  ``[0-9A-Z.]``, groups separated by dots and "developed from left to right", level 1 first,
  with as many groups as the agency has levels: ``H41``, ``H41.18``, ``G12.18.01``.

The canonical stored form is the QĐ 20 one, level 1 first, because: it is the newer, general
form and can express a tree of any depth (QCVN 102 stops at four levels); it has no zero
filling, so each agency has exactly one spelling; and every descendant of an agency starts with
the agency's code followed by a dot, so "this agency and everything below it" is one prefix
(one index range) on the stored column. The QCVN 102 form is rendered on demand for edXML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_QD20_LENGTH = 35
QCVN102_LEVELS = 4

_QCVN102 = re.compile(r"([0-9]{3})\.([0-9]{2})\.([0-9]{2})\.([A-Y][0-9]{2})\Z")
_LEVEL1 = re.compile(r"[A-Z][0-9]{2}\Z")
_LEVEL1_QCVN = re.compile(r"[A-Y][0-9]{2}\Z")
_INNER_GROUP = re.compile(r"[0-9A-Z]+\Z")
# Widths of levels 2, 3 and 4 in the QCVN 102 form (Y1Y2, Z1Z2, V1V2V3).
_QCVN102_WIDTHS = (2, 2, 3)


class AgencyCodeError(ValueError):
    """The text is not a valid agency identifier in either form; the message says why."""


@dataclass(frozen=True, slots=True, order=True)
class AgencyCode:
    """An agency identifier as its groups, level 1 first: ``("H41", "18", "01")``.

    Build it with :func:`parse_agency_code`; ``str()`` gives the canonical (QĐ 20) form.
    """

    groups: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_groups(self.groups)

    @property
    def level(self) -> int:
        """The agency's level: 1 for ``H41``, 2 for ``H41.18``, and so on."""
        return len(self.groups)

    def parent(self) -> AgencyCode | None:
        """The agency one level up, or ``None`` for a level-1 agency."""
        if len(self.groups) == 1:
            return None
        return AgencyCode(self.groups[:-1])

    def contains(self, other: AgencyCode) -> bool:
        """True when ``other`` is this agency or lies below it in the tree."""
        return other.groups[: len(self.groups)] == self.groups

    def qd20(self) -> str:
        """The QĐ 20/2020 form, level 1 first: ``G12.18.01``. Also the stored form."""
        return ".".join(self.groups)

    def qcvn102(self) -> str:
        """The QCVN 102:2016 form, level 4 first, zero-filled: ``000.01.18.G12``.

        Raises :class:`AgencyCodeError` when the code does not fit that form: more than four
        levels, letters below level 1, or a group of another width.
        """
        if len(self.groups) > QCVN102_LEVELS:
            raise AgencyCodeError(
                f"{self.qd20()} has {len(self.groups)} levels; QCVN 102:2016 holds at most 4"
            )
        if not _LEVEL1_QCVN.match(self.groups[0]):
            raise AgencyCodeError(
                f"level-1 code {self.groups[0]} is outside QCVN 102:2016 (a letter A-Y "
                "and two digits)"
            )
        inner: list[str] = []
        for level, width in enumerate(_QCVN102_WIDTHS, start=2):
            if level <= len(self.groups):
                group = self.groups[level - 1]
                if not (group.isdigit() and len(group) == width):
                    raise AgencyCodeError(
                        f"level-{level} group {group!r} of {self.qd20()} is not {width} digits, "
                        "as QCVN 102:2016 requires"
                    )
                inner.append(group)
            else:
                inner.append("0" * width)
        level2, level3, level4 = inner
        return f"{level4}.{level3}.{level2}.{self.groups[0]}"

    def __str__(self) -> str:
        return self.qd20()


def _check_groups(groups: tuple[str, ...]) -> None:
    if not groups:
        raise AgencyCodeError("an agency code needs at least the level-1 group")
    if not _LEVEL1.match(groups[0]):
        raise AgencyCodeError(
            f"level-1 group {groups[0]!r} must be a capital letter and two digits, e.g. H41"
        )
    for level, group in enumerate(groups[1:], start=2):
        if not _INNER_GROUP.match(group):
            raise AgencyCodeError(
                f"level-{level} group {group!r} must be digits or capital letters A-Z"
            )
        if set(group) == {"0"}:
            raise AgencyCodeError(
                f"level-{level} group {group!r} is all zeros, which means 'no agency' in "
                "QCVN 102:2016 and cannot name one"
            )
    length = sum(len(group) for group in groups) + len(groups) - 1
    if length > MAX_QD20_LENGTH:
        raise AgencyCodeError(
            f"agency code is {length} characters; QĐ 20/2020 allows at most {MAX_QD20_LENGTH}"
        )


def parse_agency_code(text: str) -> AgencyCode:
    """Parse an agency identifier written in the QCVN 102:2016 or the QĐ 20/2020 form.

    Surrounding white space is ignored and lower-case letters are accepted (``h41.18``).
    The QCVN form is recognised by its leading digit (its first group is level 4, all
    digits); anything else is read as the QĐ 20 form. Raises :class:`AgencyCodeError`.
    """
    code = text.strip()
    if not code:
        raise AgencyCodeError("agency code is empty")
    if not code.isascii():
        raise AgencyCodeError(f"agency code {code!r} contains non-ASCII characters")
    code = code.upper()
    if len(code) > MAX_QD20_LENGTH:
        raise AgencyCodeError(
            f"agency code is {len(code)} characters; QĐ 20/2020 allows at most {MAX_QD20_LENGTH}"
        )
    if not set(code) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ."):
        raise AgencyCodeError(f"agency code {code!r} may only hold 0-9, A-Z and '.'")
    groups = code.split(".")
    if "" in groups:
        raise AgencyCodeError(f"agency code {code!r} has an empty group (stray '.')")
    if code[0].isdigit():
        return _parse_qcvn102(code)
    return AgencyCode(tuple(groups))


def _parse_qcvn102(code: str) -> AgencyCode:
    match = _QCVN102.match(code)
    if not match:
        raise AgencyCodeError(
            f"{code!r} starts with a digit but is not the QCVN 102:2016 form "
            "V1V2V3.Z1Z2.Y1Y2.MX1X2 (e.g. 000.00.18.H41)"
        )
    level4, level3, level2, level1 = match.groups()
    groups = [level1]
    # Zero-filled levels are absent; an agency cannot sit below an absent level.
    seen_absent = False
    for level, group in ((2, level2), (3, level3), (4, level4)):
        if set(group) == {"0"}:
            seen_absent = True
        elif seen_absent:
            raise AgencyCodeError(
                f"{code!r} gives level {level} ({group}) below an absent (zero) level"
            )
        else:
            groups.append(group)
    return AgencyCode(tuple(groups))
