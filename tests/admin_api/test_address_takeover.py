"""One agency's admin must not take another agency's addresses, by any path (both backends).

The attack: on the shared province domain an address ``<name>.<abbreviation>@hanoi.gov.vn``
belongs to the agency with that abbreviation. An agency admin who could give its own agency
(or a new child) another agency's abbreviation could create ``giamdoc.stc@hanoi.gov.vn``,
rename back and keep it. Abbreviations are therefore unique, and every path by which an
address comes to exist is tried here under each role. Also: no domain under another agency's
domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from storage.tokens import issue_token
from tests.admin_api.world import World

PASSWORD = "Zq7#mWx!pL2v"
STOLEN = "giamdoc.stc@hanoi.gov.vn"  # Sở Tài chính's name on the shared domain
# "province": an agency admin of the province (the root agency, owner of the shared domain).
ROLES = ("system", "province", "admin_a", "admin_b", "auditor")


@pytest.fixture(autouse=True)
async def province_admin(world_any: World) -> None:
    province = world_any.ids["province"]
    world_any.tokens["province"] = await world_any.instance.store.write(
        lambda s: issue_token(s, "seed", "admin-hn", "agency_admin", province)
    )


@dataclass(frozen=True)
class Attempt:
    method: str
    url: str
    body: dict[str, Any]


async def send(world: World, who: str, attempt: Attempt) -> int:
    response = await getattr(world, attempt.method)(who, attempt.url, json=attempt.body)
    return int(response.status_code)


# ---------------------------------------------------------------- abbreviations


def abbreviation_attempts(world: World) -> dict[str, Attempt]:
    a = world.ids["a"]
    return {
        "rename own agency": Attempt("patch", f"/v1/agencies/{a}", {"abbreviation": "stc"}),
        "rename, other case": Attempt("patch", f"/v1/agencies/{a}", {"abbreviation": " STC "}),
        "new child": Attempt(
            "post", "/v1/agencies", {"abbreviation": "stc", "name": "X", "parent_id": a}
        ),
        "new child, diacritics": Attempt(
            "post", "/v1/agencies", {"abbreviation": "Stc", "name": "X", "parent_id": a}
        ),
    }


# Nobody may reuse an abbreviation that forms addresses; the auditor may change nothing.
ABBREVIATION_EXPECTED = {
    "system": 409,
    "province": 409,
    "admin_a": 409,
    "admin_b": 404,
    "auditor": 403,
}


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize(
    "path", ["rename own agency", "rename, other case", "new child", "new child, diacritics"]
)
async def test_no_role_can_give_an_agency_another_agencys_abbreviation(
    world_any: World, who: str, path: str
) -> None:
    status = await send(world_any, who, abbreviation_attempts(world_any)[path])
    assert status == ABBREVIATION_EXPECTED[who], (who, path)
    agency = await world_any.get("system", f"/v1/agencies/{world_any.ids['a']}")
    assert agency.json()["abbreviation"] == "skhcn"


async def test_an_abbreviation_already_forming_someone_elses_addresses_is_refused(
    world_any: World,
) -> None:
    # An address ending in .tcct on the shared domain exists (made by the system admin for
    # Sở Tài chính): no agency may later take "tcct", or it would own that address's name.
    made = await world_any.post(
        "system",
        "/v1/aliases",
        json={
            "address": "vanthu.tcct@hanoi.gov.vn",
            "targets": ["lanpt@stc.hanoi.gov.vn"],
            "agency_id": world_any.ids["b"],
        },
    )
    assert made.status_code == 201, made.text
    a = world_any.ids["a"]
    renamed = await world_any.patch("admin_a", f"/v1/agencies/{a}", json={"abbreviation": "tcct"})
    child = await world_any.post(
        "system", "/v1/agencies", json={"abbreviation": "tcct", "name": "X", "parent_id": a}
    )
    assert (renamed.status_code, child.status_code) == (409, 409)
    # A fresh abbreviation is fine, and the agency's own addresses follow no rule of others.
    fresh = await world_any.patch("admin_a", f"/v1/agencies/{a}", json={"abbreviation": "khcn"})
    assert fresh.status_code == 200, fresh.text
    back = await world_any.patch("admin_a", f"/v1/agencies/{a}", json={"abbreviation": "skhcn"})
    assert back.status_code == 200, back.text


# ---------------------------------------------------------------- addresses


def address_attempts(world: World) -> dict[str, Attempt]:
    a, b = world.ids["a"], world.ids["b"]
    return {
        "mailbox": Attempt("post", "/v1/mailboxes", {"address": STOLEN, "password": PASSWORD}),
        "mailbox for own agency": Attempt(
            "post", "/v1/mailboxes", {"address": STOLEN, "password": PASSWORD, "agency_id": a}
        ),
        "mailbox for the other agency": Attempt(
            "post", "/v1/mailboxes", {"address": STOLEN, "password": PASSWORD, "agency_id": b}
        ),
        "alias": Attempt(
            "post",
            "/v1/aliases",
            {"address": STOLEN, "targets": ["thanhnn.skhcn@hanoi.gov.vn"], "agency_id": a},
        ),
        "group": Attempt("post", "/v1/groups", {"address": STOLEN, "agency_id": a}),
    }


# The owner's admin and the system admin may create the name; agency A may not, by any path.
ADDRESS_EXPECTED = {
    # No agency given: the name's own agency (by its abbreviation) is the owner.
    "mailbox": {"system": 201, "province": 201, "admin_a": 409, "admin_b": 201, "auditor": 403},
    "mailbox for own agency": {
        "system": 201,
        "province": 201,
        "admin_a": 409,
        "admin_b": 409,
        "auditor": 403,
    },
    "mailbox for the other agency": {
        "system": 201,
        "province": 201,
        "admin_a": 409,
        "admin_b": 201,
        "auditor": 403,
    },
    "alias": {"system": 201, "province": 201, "admin_a": 409, "admin_b": 409, "auditor": 403},
    "group": {"system": 201, "province": 201, "admin_a": 409, "admin_b": 409, "auditor": 403},
}


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize("path", list(ADDRESS_EXPECTED))
async def test_other_agencys_name_on_the_shared_domain_after_a_refused_rename(
    world_any: World, who: str, path: str
) -> None:
    # The attacker first tries to take the abbreviation (refused), then the address.
    await send(world_any, "admin_a", abbreviation_attempts(world_any)["rename own agency"])
    status = await send(world_any, who, address_attempts(world_any)[path])
    assert status == ADDRESS_EXPECTED[path][who], (who, path)


IMPORT_EXPECTED = {
    "system": "created",
    "province": "created",
    "admin_a": "error",
    "admin_b": "error",
    "auditor": 403,
}


@pytest.mark.parametrize("who", ROLES)
async def test_import_cannot_take_the_name_either(world_any: World, who: str) -> None:
    await send(world_any, "admin_a", abbreviation_attempts(world_any)["rename own agency"])
    csv = f"full_name,agency,position,address\nNguyễn Văn Giám,skhcn,Giám đốc,{STOLEN}\n"
    response = await world_any.post(
        who, "/v1/imports/staff", content=csv.encode(), headers={"Content-Type": "text/csv"}
    )
    expected = IMPORT_EXPECTED[who]
    if expected == 403:
        assert response.status_code == 403
        return
    # For admin_b the row names an agency outside its tree: an error row as well.
    assert response.status_code == 200, response.text
    assert response.json()["rows"][0]["status"] == expected, response.text


SEND_AS_EXPECTED = {"system": 201, "province": 201, "admin_a": 404, "admin_b": 404, "auditor": 403}


@pytest.mark.parametrize("who", ROLES)
async def test_send_as_reaches_only_addresses_of_the_callers_tree(
    world_any: World, who: str
) -> None:
    mailbox_a = world_any.ids["mailbox_a"]
    attempt = Attempt(
        "post", f"/v1/mailboxes/{mailbox_a}/send-as", {"address": "vanthu@stc.hanoi.gov.vn"}
    )
    assert await send(world_any, who, attempt) == SEND_AS_EXPECTED[who]


MOVE_MERGE_EXPECTED = {
    "system": 200,
    "province": 403,
    "admin_a": 403,
    "admin_b": 403,
    "auditor": 403,
}


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize("operation", ["move", "merge"])
async def test_move_and_merge_are_the_system_admins_and_keep_abbreviations_unique(
    world_any: World, who: str, operation: str
) -> None:
    a, b = world_any.ids["a"], world_any.ids["b"]
    # A child of B named like nothing else; moving or merging it into A changes no name.
    child = await world_any.post(
        "system", "/v1/agencies", json={"abbreviation": "ptc", "name": "Phòng", "parent_id": b}
    )
    assert child.status_code == 201, child.text
    child_id = child.json()["id"]
    body = {"parent_id": a} if operation == "move" else {"into_agency_id": a}
    attempt = Attempt("post", f"/v1/agencies/{child_id}/{operation}", body)
    status = await send(world_any, who, attempt)
    assert status == MOVE_MERGE_EXPECTED[who]
    # Whatever happened, A still cannot take B's names.
    refused = await send(world_any, "admin_a", address_attempts(world_any)["mailbox"])
    assert refused == 409


# ---------------------------------------------------------------- domains

DOMAIN_EXPECTED = {
    # x.stc.hanoi.gov.vn is under Sở Tài chính's own domain.
    "under the other agency's domain": {
        "system": 201,
        "province": 201,
        "admin_a": 409,
        "admin_b": 404,
        "auditor": 403,
    },
    # skhcn.hanoi.gov.vn is under the province's (A's parent's) domain: A may.
    "under the parent's domain": {
        "system": 201,
        "province": 201,
        "admin_a": 201,
        "admin_b": 404,
        "auditor": 403,
    },
}


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize("case", list(DOMAIN_EXPECTED))
async def test_no_domain_under_another_agencys_domain(
    world_any: World, who: str, case: str
) -> None:
    name = "x.stc.hanoi.gov.vn" if case.startswith("under the other") else "skhcn.hanoi.gov.vn"
    attempt = Attempt("post", "/v1/domains", {"name": name, "agency_id": world_any.ids["a"]})
    assert await send(world_any, who, attempt) == DOMAIN_EXPECTED[case][who]
