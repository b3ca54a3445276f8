"""The staff CSV parser, new addresses and the initial passwords: pure functions, hostile input."""

from __future__ import annotations

import unicodedata

import pytest

from storage.accounts import InvalidAddress, check_new_address
from storage.password_batch import generate_initial_password
from storage.password_policy import check_password
from storage.staff_import import MAX_ROWS, ImportFileError, RowStatus, StaffRow, parse_staff_csv


def test_headers_in_english_or_vietnamese_any_normal_form_and_delimiter() -> None:
    nfd = unicodedata.normalize("NFD", "Họ và tên;Cơ quan;Chức vụ;Địa chỉ thư")
    rows, problems = parse_staff_csv(f"{nfd}\nLê Văn Tám;skhcn;Văn thư;tam@hanoi.gov.vn\n")
    assert problems == []
    assert rows == [StaffRow(2, "Lê Văn Tám", "skhcn", "Văn thư", "tam@hanoi.gov.vn")]
    rows, _ = parse_staff_csv('agency,full_name\r\n"skhcn","Trần, Thị ""Bé"" Na"\r\n')
    assert rows == [StaffRow(2, 'Trần, Thị "Bé" Na', "skhcn")]


def test_bad_rows_are_reported_by_line_and_good_ones_kept() -> None:
    text = (
        "full_name,agency\n"
        "\n"  # blank lines are skipped, but keep their numbers
        "An,skhcn,extra\n"
        "Bình,\n"
        "Chi,skhcn\n"
        f"{'Đ' * 256},skhcn\n"
    )
    rows, problems = parse_staff_csv(text)
    assert rows == [StaffRow(5, "Chi", "skhcn")]
    assert [(p.line, p.status, p.message) for p in problems] == [
        (3, RowStatus.ERROR, "more fields than the header has"),
        (4, RowStatus.ERROR, "full_name and agency are required"),
        (6, RowStatus.ERROR, "field too long"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("name\nAn\n", "the header must name the columns full_name and agency"),
        ("full_name,agency\n" + "An,x\n" * (MAX_ROWS + 1), f"at most {MAX_ROWS} rows"),
    ],
    ids=["empty", "no-agency-column", "too-many-rows"],
)
def test_unreadable_files(text: str, message: str) -> None:
    with pytest.raises(ImportFileError) as caught:
        parse_staff_csv(text)
    assert message in str(caught.value)


def test_an_unterminated_quote_cannot_smuggle_rows_or_newlines_into_a_name() -> None:
    rows, problems = parse_staff_csv('full_name,agency\n"An,skhcn\nBinh,skhcn\n')
    assert rows == []
    assert [(p.line, p.message) for p in problems] == [(2, "full_name and agency are required")]
    rows, problems = parse_staff_csv('full_name,agency\n"An\nB",skhcn\n')
    assert rows == [] and problems[0].message == "control characters in a field"


def test_initial_passwords_pass_the_policy_and_differ() -> None:
    seen = set()
    for _ in range(200):
        password = generate_initial_password("thanhnn.skhcn", "Nguyễn Ngọc Thành")
        assert len(password) == 14
        assert check_password(password, "thanhnn.skhcn", "Nguyễn Ngọc Thành") == []
        assert not set(password) & set("0O1lI")
        seen.add(password)
    assert len(seen) == 200
    with pytest.raises(ValueError):
        generate_initial_password("a", None, length=8)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("thanhnn", "no @ between a name and a domain"),
        ("@hanoi.gov.vn", "nothing before the @"),
        ("thanhnn@", "no domain after the @"),
        ("a b@hanoi.gov.vn", "may not contain ' '"),
        ("a@b@hanoi.gov.vn", "may not contain '@'"),
        ("a\x00b@hanoi.gov.vn", "may not contain '\\x00'"),
        ("bang!path@hanoi.gov.vn", "may not contain '!'"),
        ("thành@hanoi.gov.vn", "may not contain 'à'"),
        (".a@hanoi.gov.vn", "may not start or end with a dot"),
        ("a..b@hanoi.gov.vn", "nor hold two dots in a row"),
        ("x" * 65 + "@hanoi.gov.vn", "longer than 64 characters"),
        ("a@\udcff.vn", "the domain is not a valid domain name"),
    ],
)
def test_new_mailbox_addresses_are_checked_with_a_reason(address: str, reason: str) -> None:
    with pytest.raises(InvalidAddress) as caught:
        check_new_address(address)
    assert str(caught.value).startswith(f"invalid address {address!r}: ")
    assert reason in str(caught.value)


def test_valid_new_addresses_are_normalised() -> None:
    assert check_new_address(" Thanh.NN-2+x_y@HaNoi.gov.vn ") == "thanh.nn-2+x_y@hanoi.gov.vn"
    assert check_new_address("o'brien@sở.vn") == "o'brien@xn--s-lym.vn"
