"""Tokens and roles: 401 for bad tokens, 403 for roles, 404 across agencies (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from storage.models import AuditEvent, Mailbox
from storage.password_setup import issue_setup_token
from storage.tokens import issue_token
from tests.admin_api.world import World

PROBLEM = "application/problem+json"


async def test_requests_without_a_valid_token_get_401_problem(world_any: World) -> None:
    client = world_any.client
    for headers in ({}, {"Authorization": "Bearer gm_nope"}, {"Authorization": "Basic eDp5"}):
        response = await client.get("/v1/mailboxes", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "detail": "a valid bearer token is required",
            "instance": "/v1/mailboxes",
        }


async def test_revoked_and_expired_tokens_stop_working(world_any: World) -> None:
    issued = await world_any.post(
        "system", "/v1/tokens", json={"name": "temp", "role": "auditor", "expires_in_days": 1}
    )
    assert issued.status_code == 201
    token, token_id = issued.json()["token"], issued.json()["info"]["id"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await world_any.client.get("/v1/tokens/me", headers=headers)).json()["name"] == "temp"
    revoked = await world_any.delete("system", f"/v1/tokens/{token_id}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert (await world_any.client.get("/v1/tokens/me", headers=headers)).status_code == 401


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("mailboxes", "mailbox_b"),
        ("aliases", "alias_b"),
        ("groups", "group_b"),
        ("domains", "b_domain"),
        ("agencies", "b"),
    ],
)
async def test_agency_admin_gets_404_for_the_other_agency_exactly_as_for_nothing(
    world_any: World, kind: str, key: str
) -> None:
    other = world_any.ids[key]
    missing = 999_999
    seen = await world_any.get("admin_a", f"/v1/{kind}/{other}")
    absent = await world_any.get("admin_a", f"/v1/{kind}/{missing}")
    assert seen.status_code == absent.status_code == 404
    assert seen.json()["detail"] == absent.json()["detail"].replace(str(missing), str(other))
    # Writes too: no change, and nothing in the audit log.
    changed = await world_any.delete("admin_a", f"/v1/{kind}/{other}")
    assert changed.status_code == 404
    assert (await world_any.get("system", f"/v1/{kind}/{other}")).status_code == 200


async def test_agency_admin_lists_and_searches_only_its_subtree(world_any: World) -> None:
    listed = (await world_any.get("admin_a", "/v1/mailboxes")).json()
    assert [m["address"] for m in listed["items"]] == ["thanhnn.skhcn@hanoi.gov.vn"]
    assert listed["total"] == 1
    # B's mailbox is found by the system admin's search, not by A's.
    assert (await world_any.get("system", "/v1/mailboxes", params={"q": "pham thi"})).json()[
        "total"
    ] == 1
    assert (await world_any.get("admin_a", "/v1/mailboxes", params={"q": "pham thi"})).json()[
        "total"
    ] == 0
    agencies = (await world_any.get("admin_a", "/v1/agencies")).json()["items"]
    assert [a["abbreviation"] for a in agencies] == ["skhcn"]
    for kind in ("aliases", "groups", "domains"):
        assert (await world_any.get("admin_a", f"/v1/{kind}")).json()["total"] == 0
    tokens = (await world_any.get("admin_a", "/v1/tokens")).json()["items"]
    assert [t["name"] for t in tokens] == ["admin-a"]


async def test_agency_admin_cannot_take_names_of_another_agency(world_any: World) -> None:
    body = {"address": "x.stc@hanoi.gov.vn", "password": "Zq7#mWx!pL2v"}
    refused = await world_any.post("admin_a", "/v1/mailboxes", json=body)
    taken = await world_any.post(
        "admin_a", "/v1/mailboxes", json={**body, "address": "thanhnn.skhcn@hanoi.gov.vn"}
    )
    other_domain = await world_any.post(
        "admin_a", "/v1/mailboxes", json={**body, "address": "new@stc.hanoi.gov.vn"}
    )
    assert refused.status_code == taken.status_code == other_domain.status_code == 409
    assert refused.json()["detail"] == "x.stc@hanoi.gov.vn is not available"
    assert taken.json()["detail"] == "thanhnn.skhcn@hanoi.gov.vn is not available"
    created = await world_any.post(
        "admin_a", "/v1/mailboxes", json={**body, "address": "annv.skhcn@hanoi.gov.vn"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["mailbox"]["agency_id"] == world_any.ids["a"]


async def test_audit_log_is_scoped_and_records_before_and_after(world_any: World) -> None:
    mailbox = world_any.ids["mailbox_a"]
    changed = await world_any.patch(
        "admin_a", f"/v1/mailboxes/{mailbox}", json={"display_name": "Nguyễn N. Thành"}
    )
    assert changed.status_code == 200
    events = (
        await world_any.get("admin_a", "/v1/audit", params={"action": "mailbox.update"})
    ).json()["items"]
    assert len(events) == 1
    event = events[0]
    assert event["actor"].endswith(":admin-a")
    assert event["object_id"] == "thanhnn.skhcn@hanoi.gov.vn"
    assert event["before"]["display_name"] == "Nguyễn Ngọc Thành"
    assert event["after"]["display_name"] == "Nguyễn N. Thành"
    assert "password_hash" not in event["after"]
    b_events = (await world_any.get("admin_b", "/v1/audit")).json()["items"]
    assert all(e["object_id"] != "thanhnn.skhcn@hanoi.gov.vn" for e in b_events)
    assert any(e["object_id"] == "lanpt@stc.hanoi.gov.vn" for e in b_events)


async def test_a_refused_change_leaves_no_audit_event(world_any: World) -> None:
    def count(session: Session) -> int:
        return len(session.exec(select(AuditEvent)).all())

    before = await world_any.instance.store.read(count)
    refused = await world_any.patch(
        "admin_a",
        f"/v1/mailboxes/{world_any.ids['mailbox_a']}",
        json={"agency_id": world_any.ids["b"]},
    )
    assert refused.status_code == 404
    assert await world_any.instance.store.read(count) == before


async def test_roles_auditor_reads_only_and_agency_admin_cannot_restructure(
    world_any: World,
) -> None:
    assert (await world_any.get("auditor", "/v1/mailboxes")).json()["total"] == 2
    for method, url, body in (
        ("post", "/v1/agencies", {"abbreviation": "x", "name": "X"}),
        ("delete", f"/v1/mailboxes/{world_any.ids['mailbox_a']}", None),
        ("post", "/v1/tokens", {"name": "t", "role": "auditor"}),
    ):
        kwargs = {"json": body} if body else {}
        response = await getattr(world_any, method)("auditor", url, **kwargs)
        assert response.status_code == 403, url
        assert response.json()["detail"] == "this token is read-only"
    a = world_any.ids["a"]
    moved = await world_any.post("admin_a", f"/v1/agencies/{a}/move", json={"parent_id": None})
    assert moved.status_code == 403
    escalate = await world_any.post(
        "admin_a", "/v1/tokens", json={"name": "root2", "role": "system_admin"}
    )
    assert escalate.status_code == 403
    foreign = await world_any.post(
        "admin_a",
        "/v1/tokens",
        json={"name": "b", "role": "agency_admin", "agency_id": world_any.ids["b"]},
    )
    assert foreign.status_code == 404
    queue = await world_any.get("admin_a", "/v1/queue")
    assert queue.status_code == 403


async def test_search_is_indexed_follows_renames_and_takes_wildcards_literally(
    world_any: World,
) -> None:
    async def found(q: str) -> list[str]:
        response = await world_any.get("system", "/v1/mailboxes", params={"q": q})
        return [m["address"] for m in response.json()["items"]]

    assert await found("THÀNH") == ["thanhnn.skhcn@hanoi.gov.vn"]  # indexed (3+ letters)
    assert await found("ng") == ["thanhnn.skhcn@hanoi.gov.vn"]  # short: a scan, same answer
    assert await found("%") == [] and await found("_") == []
    assert await found("ngoc thanh") == ["thanhnn.skhcn@hanoi.gov.vn"]
    await world_any.patch(
        "system", f"/v1/mailboxes/{world_any.ids['mailbox_a']}", json={"display_name": "Đỗ Hùng"}
    )
    assert await found("ngoc thanh") == []
    assert await found("do hung") == ["thanhnn.skhcn@hanoi.gov.vn"]
    await world_any.delete("system", f"/v1/mailboxes/{world_any.ids['mailbox_b']}")
    assert await found("lan") == ["lanpt@stc.hanoi.gov.vn"]  # retired, not yet deleted


async def test_expired_tokens_and_setup_links_are_refused(world_any: World) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)

    def expired_token(session: Session) -> str:
        return issue_token(session, "test", "old", "system_admin", None, past)

    token = await world_any.instance.store.write(expired_token)
    response = await world_any.client.get(
        "/v1/tokens/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401

    def expired_link(session: Session) -> str:
        mailbox = session.get(Mailbox, world_any.ids["mailbox_a"])
        assert mailbox is not None
        return issue_setup_token(
            session, "test", mailbox, timedelta(hours=1), past - timedelta(hours=1)
        )

    link = await world_any.instance.store.write(expired_link)
    used = await world_any.client.post(
        "/v1/password-setup", json={"token": link, "password": "Zq7#mWx!pL2v"}
    )
    assert used.status_code == 400
    assert used.json()["detail"] == "this link is not valid (used, expired or unknown)"
