"""Tests for storage.address_convention: <given name><initials>.<agency> local parts."""

from __future__ import annotations

import unicodedata

import pytest

from storage.address_convention import (
    generate_local_part,
    name_part,
    normalise_agency_abbreviation,
)


def nothing_taken(candidate: str) -> bool:
    return False


@pytest.mark.parametrize(
    ("full_name", "agency", "expected"),
    [
        ("Nguyễn Ngọc Thành", "skhcn", "thanhnn.skhcn"),
        ("Trần Thị Hồng Nhung", "stc", "nhungtth.stc"),  # two middle names
        ("Đặng Đức Định", "sgtvt", "dinhdd.sgtvt"),  # đ does not decompose
        ("Lê Văn Ưng", "ubnd", "unglv.ubnd"),  # ư: u + horn
        ("Phạm Thị Ơn", "sct", "onpt.sct"),
        ("  nguyễn   NGỌC\tthành  ", "SKHCN", "thanhnn.skhcn"),  # spaces and capitals
        ("Thành", "skhcn", "thanh.skhcn"),  # a single word has no initials
        ("Nguyễn Hoà", "vp", "hoan.vp"),
        ("H'Hen Niê", "sldtbxh", "nieh.sldtbxh"),  # apostrophe dropped, one word
        ("Nguyễn Văn-Anh Tuấn", "snv", "tuannv.snv"),  # hyphenated word counts once
        ("Ksor Y Phôn", "ubnd-krongpa", "phonky.ubnd-krongpa"),
    ],
)
def test_generate_local_part(full_name: str, agency: str, expected: str) -> None:
    assert generate_local_part(full_name, agency, nothing_taken) == expected


def test_nfd_and_nfc_names_agree() -> None:
    name = "Nguyễn Ngọc Thành"
    nfd = unicodedata.normalize("NFD", name)
    assert nfd != name
    assert generate_local_part(nfd, "skhcn", nothing_taken) == "thanhnn.skhcn"


def test_both_tone_placements_agree() -> None:
    assert name_part("Nguyễn Hòa") == name_part("Nguyễn Hoà") == "hoan"
    assert name_part("Lê Thu\u1ef7") == name_part("Lê Thuy\u0309") == "thuyl"


def test_d_with_stroke_and_eth_fold_to_d() -> None:
    # Ð (eth) is what Đ looks like after a windows-1258 name was decoded as latin-1.
    assert name_part("ĐỖ ĐĂNG Ðông") == "dongdd"


def test_invisible_characters_do_not_split_or_hide_letters() -> None:
    assert name_part("Nguyễn Ngọc Th\u200bành") == "thanhnn"


def test_compound_given_name_when_caller_knows() -> None:
    assert generate_local_part("Nguyễn Văn Anh Tuấn", "snv", nothing_taken) == "tuannva.snv"
    assert (
        generate_local_part("Nguyễn Văn Anh Tuấn", "snv", nothing_taken, given_name_words=2)
        == "anhtuannv.snv"
    )
    assert name_part("Anh Tuấn", given_name_words=5) == "anhtuan"
    with pytest.raises(ValueError, match="at least 1"):
        name_part("Anh Tuấn", given_name_words=0)


def test_collision_suffix_sequence() -> None:
    existing = {"thanhnn.skhcn", "thanhnn2.skhcn", "thanhnn3.skhcn"}
    asked: list[str] = []

    def taken(candidate: str) -> bool:
        asked.append(candidate)
        return candidate in existing

    assert generate_local_part("Nguyễn Ngọc Thành", "skhcn", taken) == "thanhnn4.skhcn"
    assert asked == ["thanhnn.skhcn", "thanhnn2.skhcn", "thanhnn3.skhcn", "thanhnn4.skhcn"]


def test_collision_is_per_agency() -> None:
    existing = {"thanhnn.skhcn"}
    assert generate_local_part("Nguyễn Ngọc Thành", "stc", existing.__contains__) == "thanhnn.stc"


def test_digits_in_a_name_cannot_fake_a_suffix() -> None:
    assert generate_local_part("Nguyễn Ngọc Thành 2", "skhcn", nothing_taken) == "thanhnn.skhcn"


def test_all_taken_is_an_error_not_a_hang() -> None:
    with pytest.raises(ValueError, match=r"thanhnn9999\.skhcn is taken"):
        generate_local_part("Nguyễn Ngọc Thành", "skhcn", lambda candidate: True)


@pytest.mark.parametrize("full_name", ["", "   ", "123", "--- ''", "李小龍", "\u200b"])
def test_name_without_letters_is_refused(full_name: str) -> None:
    with pytest.raises(ValueError, match="no letters"):
        generate_local_part(full_name, "skhcn", nothing_taken)


@pytest.mark.parametrize(
    "agency", ["", "  ", "s khcn", "skh&cn", "-skhcn", "skhcn-", "sk.hcn", "skhcn@x", "ｓｋｈ"]
)
def test_bad_agency_abbreviation_is_refused(agency: str) -> None:
    with pytest.raises(ValueError, match="agency abbreviation"):
        generate_local_part("Nguyễn Ngọc Thành", agency, nothing_taken)


def test_agency_abbreviation_is_folded() -> None:
    assert normalise_agency_abbreviation(" SởYT ") == "soyt"


def test_overlong_result_is_refused() -> None:
    with pytest.raises(ValueError, match="exceed 64 octets"):
        generate_local_part("Nguyễn " + "a" * 60, "skhcn", nothing_taken)
    # A name that fits without a suffix but not with one fails only when the suffix is needed.
    name = "Nguyen " + "b" * 56  # "bbb...n" is 57 letters; ".skhcn" makes 63
    assert generate_local_part(name, "skhcn", nothing_taken) == "b" * 56 + "n.skhcn"
    with pytest.raises(ValueError, match="exceed 64 octets"):
        generate_local_part(name, "skhcn", lambda candidate: not candidate[56:57].isdigit())
