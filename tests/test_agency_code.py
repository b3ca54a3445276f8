"""Tests for storage.agency_code: QCVN 102:2016 and QĐ 20/2020 agency identifiers."""

from __future__ import annotations

import pytest

from storage.agency_code import AgencyCode, AgencyCodeError, parse_agency_code


@pytest.mark.parametrize(
    ("text", "groups"),
    [
        ("000.00.00.H41", ("H41",)),
        ("000.00.18.H41", ("H41", "18")),
        ("000.05.18.H41", ("H41", "18", "05")),
        ("123.05.18.H41", ("H41", "18", "05", "123")),
        ("000.00.04.G14", ("G14", "04")),
        ("H41", ("H41",)),
        ("G12.18.01", ("G12", "18", "01")),
        ("H41.18", ("H41", "18")),
        ("K54.01.02.003", ("K54", "01", "02", "003")),
        ("H41.18.01.001.A7.99", ("H41", "18", "01", "001", "A7", "99")),
        ("  g12.18.01\n", ("G12", "18", "01")),
        ("Z01.10", ("Z01", "10")),
    ],
)
def test_parse_both_forms(text: str, groups: tuple[str, ...]) -> None:
    assert parse_agency_code(text).groups == groups


def test_both_forms_give_the_same_stored_code() -> None:
    qcvn = parse_agency_code("000.01.18.G12")
    qd20 = parse_agency_code("G12.18.01")
    assert qcvn == qd20
    assert str(qcvn) == "G12.18.01"
    assert qcvn.qd20() == "G12.18.01"


@pytest.mark.parametrize(
    ("qd20", "qcvn"),
    [
        ("H41", "000.00.00.H41"),
        ("H41.18", "000.00.18.H41"),
        ("G12.18.01", "000.01.18.G12"),
        ("H41.18.01.123", "123.01.18.H41"),
    ],
)
def test_render_round_trip(qd20: str, qcvn: str) -> None:
    code = parse_agency_code(qd20)
    assert code.qcvn102() == qcvn
    assert parse_agency_code(qcvn).qd20() == qd20


def test_level_and_parent() -> None:
    code = parse_agency_code("123.05.18.H41")
    assert code.level == 4
    parent = code.parent()
    assert parent is not None
    assert parent.qd20() == "H41.18.05"
    assert parent.level == 3
    grandparent = parent.parent()
    assert grandparent is not None and grandparent.qcvn102() == "000.00.18.H41"
    province = grandparent.parent()
    assert province == AgencyCode(("H41",))
    assert province.level == 1
    assert province.parent() is None


def test_contains_is_the_subtree() -> None:
    province = parse_agency_code("H41")
    department = parse_agency_code("H41.18")
    assert province.contains(department)
    assert province.contains(province)
    assert not department.contains(province)
    assert not parse_agency_code("H41.1").contains(parse_agency_code("H41.18"))
    assert not parse_agency_code("H42").contains(department)


def test_stored_form_prefix_finds_descendants() -> None:
    department = parse_agency_code("H41.18")
    descendants = ["H41.18.01", "H41.18.01.001"]
    others = ["H41.180", "H41.19", "H41"]
    prefix = department.qd20() + "."
    assert [c for c in descendants + others if c.startswith(prefix)] == descendants


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("H4", "level-1 group 'H4' must be a capital letter and two digits"),
        ("41H", "not the QCVN 102:2016 form"),
        ("HH1.01", "level-1 group 'HH1'"),
        ("H41..18", "empty group"),
        ("H41.18.", "empty group"),
        (".H41", "empty group"),
        ("H41.00", "all zeros"),
        ("H41.18.000", "all zeros"),
        ("H41-18", "may only hold 0-9, A-Z and '.'"),
        ("H41 18", "may only hold"),
        ("H41.1８", "non-ASCII"),  # fullwidth digit
        ("H41.١٨", "non-ASCII"),  # Arabic-Indic digits pass str.isdigit()
        ("H41." + ".".join(["01"] * 11), "at most 35"),
        ("H" * 10_000, "at most 35"),
        ("00.00.00.H41", "not the QCVN 102:2016 form"),
        ("000.00.00.H4", "not the QCVN 102:2016 form"),
        ("000.00.00.Z41", "not the QCVN 102:2016 form"),  # QCVN 102 level 1 is A-Y
        ("000.00.00.H41.01", "not the QCVN 102:2016 form"),
        ("000.00.A1.H41", "not the QCVN 102:2016 form"),
        ("000.05.00.H41", "level 3 (05) below an absent (zero) level"),
        ("001.00.18.H41", "level 4 (001) below an absent (zero) level"),
    ],
)
def test_invalid_codes_say_why(text: str, message: str) -> None:
    with pytest.raises(AgencyCodeError) as caught:
        parse_agency_code(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("qd20", "message"),
    [
        ("H41.18.01.001.02", "5 levels; QCVN 102:2016 holds at most 4"),
        ("Z01.10", "level-1 code Z01 is outside QCVN 102:2016"),
        ("H41.1", "level-2 group '1' of H41.1 is not 2 digits"),
        ("H41.A1", "level-2 group 'A1'"),
        ("H41.18.01.12", "level-4 group '12' of H41.18.01.12 is not 3 digits"),
    ],
)
def test_qcvn102_refuses_codes_it_cannot_hold(qd20: str, message: str) -> None:
    code = parse_agency_code(qd20)
    with pytest.raises(AgencyCodeError) as caught:
        code.qcvn102()
    assert message in str(caught.value)


def test_direct_construction_is_validated() -> None:
    with pytest.raises(AgencyCodeError, match="at least the level-1 group"):
        AgencyCode(())
    with pytest.raises(AgencyCodeError, match="level-2 group 'x'"):
        AgencyCode(("H41", "x"))
