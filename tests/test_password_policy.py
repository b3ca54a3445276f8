"""Tests for storage.password_policy.check_password."""

from __future__ import annotations

import unicodedata

import pytest

from storage.password_policy import check_password

ACCOUNT = "thanhnn.skhcn"
NAME = "Nguyễn Ngọc Thành"

TOO_SHORT = "Password must be at least 9 characters long."
NO_UPPER = "Password must contain an upper-case letter."
NO_LOWER = "Password must contain a lower-case letter."
NO_DIGIT = "Password must contain a digit."
NO_SYMBOL = "Password must contain a symbol (neither a letter nor a digit)."
HAS_ACCOUNT = "Password must not contain the account name."
HAS_FULL_NAME = "Password must not contain your full name."
HAS_GIVEN_NAME = "Password must not contain your given name."


@pytest.mark.parametrize(
    "password",
    ["Xuan#Hoa9z", "Mưa-Rào-2025", "Ab1!Ab1!A", "correct Horse 7 battery", "Đà#Lạt1999"],
)
def test_strong_passwords_are_accepted(password: str) -> None:
    assert check_password(password, ACCOUNT, NAME) == []


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("Ab1!Ab1!", [TOO_SHORT]),  # 8 characters
        ("ab1!ab1!ab", [NO_UPPER]),
        ("AB1!AB1!AB", [NO_LOWER]),
        ("Abc!Abc!Abc", [NO_DIGIT]),
        ("Abc1Abc1Abc", [NO_SYMBOL]),
        ("", [TOO_SHORT, NO_UPPER, NO_LOWER, NO_DIGIT, NO_SYMBOL]),
        ("aaaaaaaaa", [NO_UPPER, NO_DIGIT, NO_SYMBOL]),
        ("         ", [NO_UPPER, NO_LOWER, NO_DIGIT]),  # a space is a symbol
    ],
)
def test_strength_rules_each_reported(password: str, expected: list[str]) -> None:
    assert check_password(password, ACCOUNT, NAME) == expected


def test_vietnamese_letters_count_as_letters() -> None:
    # Ê is upper-case, ư lower-case: both count; no symbol is reported because '-' is one.
    assert check_password("Êm-đềm-ưa9", ACCOUNT, None) == []


def test_length_counts_characters_not_nfd_code_points() -> None:
    # Eight NFC characters are still too short when sent decomposed (NFD is longer).
    short = unicodedata.normalize("NFD", "Ấ1!ấấấấấ")
    assert len(short) > 9
    assert check_password(short, ACCOUNT, None) == [TOO_SHORT]


@pytest.mark.parametrize(
    "password",
    [
        "Thanhnn.Skhcn9!",
        "x1!THANHNN.SKHCN",
        "Thanhnn@2025!",  # the name piece alone
        "Skhcn#2025abc",  # the agency piece alone
        "THÀNHNN.sKHCN#1",  # diacritics added do not hide it
    ],
)
def test_account_name_is_refused(password: str) -> None:
    assert HAS_ACCOUNT in check_password(password, ACCOUNT, None)


def test_account_given_as_full_address_uses_the_local_part() -> None:
    assert HAS_ACCOUNT in check_password("Ab1!thanhnn", "thanhnn.skhcn@hanoi.gov.vn", None)
    # The domain is not the account name.
    assert check_password("Hanoi#Gov9vn", "thanhnn.skhcn@hanoi.gov.vn", None) == []


def test_short_account_pieces_are_ignored() -> None:
    assert check_password("Vp-Lan#2025x", "an.vp", None) == []
    assert HAS_ACCOUNT in check_password("x!9An.Vp", "an.vp", None)


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("Nguyenngocthanh1!", HAS_FULL_NAME),
        ("Nguyễn_Ngọc_Thành1", HAS_FULL_NAME),  # separators between the words
        ("NGUYEN.NGOC.THANH.9x", HAS_FULL_NAME),
        ("Thành@2025x", HAS_GIVEN_NAME),
        ("THANH@2025x", HAS_GIVEN_NAME),
        ("tha\u0300nh@2025X", HAS_GIVEN_NAME),  # NFD spelling
        ("9!xxTHANHxx", HAS_GIVEN_NAME),
    ],
)
def test_person_name_is_refused(password: str, problem: str) -> None:
    result = check_password(password, "someone.else", NAME)
    assert problem in result
    assert result == [problem]


def test_given_name_under_three_letters_is_allowed() -> None:
    assert check_password("Vynguyen?x9", "lan.stc", "Trần Vy") == []
    assert check_password("Tranvy#2025", "lan.stc", "Trần Vy") == [HAS_FULL_NAME]


def test_d_with_stroke_is_folded() -> None:
    assert check_password("Dinh#2025ab", "x.y", "Đặng Định") == [HAS_GIVEN_NAME]


def test_no_name_given() -> None:
    assert check_password("Thanh#2025x", "x.y", None) == []
    assert check_password("Thanh#2025x", "x.y", "   ") == []


def test_every_violation_is_listed_at_once() -> None:
    assert check_password("thanhnn", ACCOUNT, NAME) == [
        TOO_SHORT,
        NO_UPPER,
        NO_DIGIT,
        NO_SYMBOL,
        HAS_ACCOUNT,
        HAS_GIVEN_NAME,
    ]


def test_hostile_input_is_handled() -> None:
    huge = "Aa1!" * 250_000
    assert check_password(huge, ACCOUNT, NAME) == []
    assert check_password("Aa1!\x00\u202e\ud800xyz", "", None) == []
