"""Every resource of the admin API, by the system admin: exact outputs, hostile input."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session, select

from storage.models import Mailbox, UsageDaily
from tests.admin_api.world import World


async def test_openapi_and_docs_are_served(world: World) -> None:
    spec = (await world.client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "govmail admin API"
    assert "/v1/mailboxes/{mailbox_id}/send-as" in spec["paths"]
    assert spec["components"]["schemas"]["Problem"]["properties"]["status"]["type"] == "integer"
    docs = await world.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_validation_errors_are_problems_without_echoing_input(world: World) -> None:
    response = await world.post(
        "system", "/v1/agencies", json={"abbreviation": "x\x00", "name": ""}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["title"] == "Unprocessable Entity" and body["status"] == 422
    assert {tuple(e["loc"]) for e in body["errors"]} == {
        ("body", "abbreviation"),
        ("body", "name"),
    }
    assert "\x00" not in response.text
    too_big = await world.get("system", f"/v1/mailboxes/{2**63}")
    assert too_big.status_code == 422
    bad_sort = await world.get("system", "/v1/mailboxes", params={"sort": "password_hash"})
    assert bad_sort.status_code == 400
    assert bad_sort.json()["detail"].startswith("cannot sort by 'password_hash'")


async def test_agencies_codes_in_both_forms_move_and_merge(world: World) -> None:
    province = world.ids["province"]
    created = await world.post(
        "system",
        "/v1/agencies",
        json={"abbreviation": "sgd", "name": "Sở Giáo dục", "parent_id": province,
              "code": "000.00.12.H01"},
    )  # fmt: skip
    assert created.status_code == 201
    sgd = created.json()
    assert (sgd["code"], sgd["code_qcvn102"]) == ("H01.12", "000.00.12.H01")
    duplicate = await world.post(
        "system", "/v1/agencies", json={"abbreviation": "y", "name": "Y", "code": "H01.12"}
    )
    assert duplicate.status_code == 409
    below = (await world.get("system", "/v1/agencies", params={"code": "H01"})).json()
    assert below["total"] == 4
    a, b = world.ids["a"], world.ids["b"]
    loop = await world.post("system", f"/v1/agencies/{province}/move", json={"parent_id": a})
    assert loop.status_code == 409
    moved = await world.post("system", f"/v1/agencies/{sgd['id']}/move", json={"parent_id": a})
    assert moved.json()["parent_id"] == a
    not_empty = await world.delete("system", f"/v1/agencies/{b}")
    assert not_empty.status_code == 409
    # Province merger: B goes into A; its domain becomes legacy, its objects and tokens follow.
    merged = await world.post("system", f"/v1/agencies/{b}/merge", json={"into_agency_id": a})
    assert merged.json() == {
        "children": 0, "domains": 1, "mailboxes": 0, "aliases": 0, "groups": 0,
        "tokens_revoked": 1,
    }  # fmt: skip
    domain = (await world.get("system", f"/v1/domains/{world.ids['b_domain']}")).json()
    assert (domain["agency_id"], domain["kind"]) == (a, "legacy")
    assert (await world.get("admin_b", "/v1/mailboxes")).status_code == 401
    assert (
        await world.get("admin_a", f"/v1/mailboxes/{world.ids['mailbox_b']}")
    ).status_code == 200


async def test_domains_and_dns_records(world: World) -> None:
    created = await world.post(
        "system", "/v1/domains", json={"name": "SKHCN.Hanoi.gov.vn", "agency_id": world.ids["a"]}
    )
    assert created.status_code == 201
    assert created.json()["name"] == "skhcn.hanoi.gov.vn"
    dns = (await world.get("system", f"/v1/domains/{created.json()['id']}/dns")).json()
    assert "skhcn.hanoi.gov.vn. 3600 IN MX 10 mail.test.gov.vn." in dns["zone_lines"]
    first = (await world.get("system", f"/v1/domains/{created.json()['id']}/dkim-keys")).json()
    # A new domain has its RSA and Ed25519 keys at once, so its first DNS records are complete.
    assert sorted(key["algorithm"] for key in first["items"]) == ["ed25519-sha256", "rsa-sha256"]
    assert sum("._domainkey." in line for line in dns["zone_lines"]) == 2
    rotated = await world.post(
        "system", f"/v1/domains/{created.json()['id']}/dkim-keys/rotate", json={}
    )
    assert rotated.status_code == 201
    selectors = {key["selector"] for key in rotated.json()}
    keys = (await world.get("system", f"/v1/domains/{created.json()['id']}/dkim-keys")).json()
    assert selectors <= {key["selector"] for key in keys["items"]}
    dns = (await world.get("system", f"/v1/domains/{created.json()['id']}/dns")).json()
    assert all(
        any(line.startswith(f"{s}._domainkey.") for line in dns["zone_lines"]) for s in selectors
    )
    legacy = await world.patch(
        "system", f"/v1/domains/{created.json()['id']}", json={"kind": "legacy"}
    )
    assert legacy.json()["kind"] == "legacy"
    busy = await world.delete("system", f"/v1/domains/{world.ids['shared_domain']}")
    assert busy.status_code == 422


async def test_mailbox_life_cycle(world: World) -> None:
    weak = await world.post(
        "system", "/v1/mailboxes",
        json={"address": "hoa@stc.hanoi.gov.vn", "password": "hoa12345", "display_name": "Lê Hòa"},
    )  # fmt: skip
    assert weak.status_code == 422
    assert "upper-case" in weak.json()["detail"]
    created = await world.post(
        "system", "/v1/mailboxes",
        json={"address": "Hoa@STC.hanoi.gov.vn", "display_name": "Lê Thị Hòa",
              "quota_bytes": 3 * 2**30},
    )  # fmt: skip
    assert created.status_code == 201
    mailbox = created.json()["mailbox"]
    link = created.json()["setup_link"]
    assert mailbox["address"] == "hoa@stc.hanoi.gov.vn" and mailbox["quota_bytes"] == 3 * 2**30
    assert link.startswith("http://127.0.0.1:0/v1/password-setup?token=gms_")
    token = link.partition("token=")[2]
    form = await world.client.get("/v1/password-setup", params={"token": token})
    assert form.status_code == 200 and "Đặt mật khẩu" in form.text
    weak_set = await world.client.post(
        "/v1/password-setup", json={"token": token, "password": "LeThiHoa#1"}
    )
    assert weak_set.status_code == 422 and "full name" in weak_set.json()["detail"]
    done = await world.client.post(
        "/v1/password-setup", json={"token": token, "password": "Zq7#mWx!pL2v"}
    )
    assert done.json() == {"address": "hoa@stc.hanoi.gov.vn"}
    again = await world.client.post(
        "/v1/password-setup", json={"token": token, "password": "Zq7#mWx!pL2v"}
    )
    assert again.status_code == 400
    mid = mailbox["id"]
    found = await world.get("system", "/v1/mailboxes", params={"q": "HOA", "sort": "-address"})
    assert [m["address"] for m in found.json()["items"]] == ["hoa@stc.hanoi.gov.vn"]
    patched = await world.patch(
        "system", f"/v1/mailboxes/{mid}",
        json={"position": "Kế toán", "must_change_password": True, "quota_bytes": 2**31},
    )  # fmt: skip
    assert (patched.json()["position"], patched.json()["must_change_password"]) == ("Kế toán", True)
    assert (await world.post("system", f"/v1/mailboxes/{mid}/lock")).json()["state"] == "locked"
    assert (await world.post("system", f"/v1/mailboxes/{mid}/unlock")).json()["state"] == "active"
    reset = await world.post(
        "system", f"/v1/mailboxes/{mid}/password", json={"password": "Nw9$kTr2!xQa"}
    )
    assert reset.json() == {"address": "hoa@stc.hanoi.gov.vn", "setup_link": None}
    # Send-as delegation, then a leaver: disabled now, deleted after the retention period.
    granted = await world.post(
        "system", f"/v1/mailboxes/{mid}/send-as", json={"address": "vanthu@stc.hanoi.gov.vn"}
    )
    assert granted.status_code == 201
    delegates = (await world.get("system", f"/v1/mailboxes/{mid}/send-as")).json()
    assert [d["address"] for d in delegates["items"]] == ["vanthu@stc.hanoi.gov.vn"]
    outside = await world.post(
        "system", f"/v1/mailboxes/{mid}/send-as", json={"address": "boss@gmail.com"}
    )
    assert outside.status_code == 404
    revoked = await world.delete("system", f"/v1/mailboxes/{mid}/send-as/vanthu@stc.hanoi.gov.vn")
    assert revoked.status_code == 204
    retired = await world.delete("system", f"/v1/mailboxes/{mid}")
    assert retired.status_code == 202
    body = retired.json()
    disabled_at = datetime.fromisoformat(body["disabled_at"])
    assert body["state"] == "disabled"
    assert datetime.fromisoformat(body["delete_after"]) == disabled_at + timedelta(days=90)
    assert (await world.post("system", "/v1/mailboxes/purge")).json() == {"deleted": []}

    def backdate(session: Session) -> None:
        row = session.get(Mailbox, mid)
        assert row is not None
        row.disabled_at = datetime.now(UTC) - timedelta(days=91)
        session.add(row)

    await world.instance.store.write(backdate)
    purged = await world.post("system", "/v1/mailboxes/purge")
    assert purged.json() == {"deleted": ["hoa@stc.hanoi.gov.vn"]}
    assert (await world.get("system", f"/v1/mailboxes/{mid}")).status_code == 404


async def test_aliases_and_groups(world: World) -> None:
    alias = await world.post(
        "system", "/v1/aliases",
        json={"address": "tiepdan@stc.hanoi.gov.vn",
              "targets": ["LanPT@stc.hanoi.gov.vn", "lanpt@stc.hanoi.gov.vn"]},
    )  # fmt: skip
    assert alias.status_code == 201
    assert alias.json()["targets"] == ["lanpt@stc.hanoi.gov.vn"]
    clash = await world.post(
        "system", "/v1/aliases", json={"address": "lanpt@stc.hanoi.gov.vn", "targets": []}
    )
    assert clash.status_code == 409
    owner = await world.patch(
        "system", f"/v1/aliases/{alias.json()['id']}",
        json={"owner_mailbox_id": world.ids["mailbox_b"]},
    )  # fmt: skip
    assert owner.json()["owner_mailbox_id"] == world.ids["mailbox_b"]
    cleared = await world.patch(
        "system", f"/v1/aliases/{alias.json()['id']}", json={"owner_mailbox_id": None}
    )
    assert cleared.json()["owner_mailbox_id"] is None
    group = world.ids["group_b"]
    policy = await world.patch("system", f"/v1/groups/{group}", json={"send_policy": "anyone"})
    assert policy.json()["send_policy"] == "anyone"
    added = await world.post(
        "system", f"/v1/groups/{group}/members",
        json={"addresses": ["lanpt@stc.hanoi.gov.vn", "thanhnn.skhcn@hanoi.gov.vn"]},
    )  # fmt: skip
    assert added.json() == [{"address": "thanhnn.skhcn@hanoi.gov.vn"}]
    members = await world.get("system", f"/v1/groups/{group}/members", params={"sort": "-address"})
    assert [m["address"] for m in members.json()["items"]] == [
        "thanhnn.skhcn@hanoi.gov.vn",
        "lanpt@stc.hanoi.gov.vn",
    ]
    gone = await world.delete("system", f"/v1/groups/{group}/members/lanpt@stc.hanoi.gov.vn")
    assert gone.status_code == 204
    assert (await world.delete("system", f"/v1/groups/{group}")).status_code == 204
    assert (await world.delete("system", f"/v1/aliases/{alias.json()['id']}")).status_code == 204
    assert (await world.get("system", "/v1/groups")).json()["total"] == 0


async def test_usage_report_json_and_csv(world: World) -> None:
    now = datetime.now(UTC)

    def activity(session: Session) -> None:
        thanh = session.get(Mailbox, world.ids["mailbox_a"])
        assert thanh is not None
        thanh.last_login_at = now - timedelta(days=3)
        thanh.used_bytes = 5000
        session.add(thanh)
        session.add(UsageDaily(mailbox_id=world.ids["mailbox_a"], day=now.date(), sent=4,
                               received=7, logins=1))  # fmt: skip
        session.add(UsageDaily(mailbox_id=world.ids["mailbox_b"], day=date(now.year - 1, 6, 1),
                               sent=100, received=100, logins=1))  # fmt: skip

    await world.instance.store.write(activity)
    report = (await world.get("system", "/v1/reports/usage")).json()
    assert report["total"] == {
        "mailboxes": 2, "active_7d": 1, "active_30d": 1, "sent": 4, "received": 7,
        "storage_bytes": 5000, "never_used": 0,
    }  # fmt: skip
    by_name = {a["abbreviation"]: a for a in report["agencies"]}
    assert by_name["skhcn"]["own"]["sent"] == 4 and by_name["stc"]["own"]["active_30d"] == 0
    assert by_name["hn"]["own"]["mailboxes"] == 0 and by_name["hn"]["subtree"]["mailboxes"] == 2
    csv = await world.get("system", "/v1/reports/usage", params={"format": "csv"})
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    lines = csv.text.split("\r\n")
    assert lines[0].startswith("agency_id,parent_id,depth,code,abbreviation,name,mailboxes,")
    assert lines[1].split(",")[3:6] == ["H01", "hn", "UBND thành phố Hà Nội"]
    assert lines[-2].endswith("TOTAL,2,1,1,4,7,5000,0,2,1,1,4,7,5000,0")
    scoped = (await world.get("admin_b", "/v1/reports/usage")).json()
    assert [a["abbreviation"] for a in scoped["agencies"]] == ["stc"]
    assert scoped["total"]["mailboxes"] == 1
    last_year = (
        await world.get(
            "system", "/v1/reports/usage",
            params={"since": f"{now.year - 1}-01-01", "until": f"{now.year}-01-01"},
        )
    ).json()  # fmt: skip
    assert last_year["total"]["sent"] == 100
    backwards = {"since": "2026-02-01", "until": "2026-01-01"}
    bad = await world.get("system", "/v1/reports/usage", params=backwards)
    assert bad.status_code == 400


async def test_tokens_list_get_and_agency_scoped_issue(world: World) -> None:
    issued = await world.post(
        "admin_a", "/v1/tokens", json={"name": "helper", "role": "auditor", "expires_in_days": 7}
    )
    assert issued.status_code == 201
    info = issued.json()["info"]
    assert (info["role"], info["agency_id"]) == ("auditor", world.ids["a"])
    helper = {"Authorization": f"Bearer {issued.json()['token']}"}
    seen = (await world.client.get("/v1/mailboxes", headers=helper)).json()
    assert seen["total"] == 1
    names = [t["name"] for t in (await world.get("system", "/v1/tokens")).json()["items"]]
    assert names == ["root", "admin-a", "admin-b", "audit", "helper"]

    def hashes(session: Session) -> list[str]:
        from storage.models import ApiToken

        return [row.token_sha256 for row in session.exec(select(ApiToken))]

    stored = await world.instance.store.read(hashes)
    assert issued.json()["token"] not in stored and len(stored[-1]) == 64


async def test_a_mailbox_address_that_could_never_receive_mail_is_refused(world: World) -> None:
    body = {"address": "an%b@hanoi.gov.vn", "password": "Zq7#mWx!pL2v"}
    refused = await world.post("system", "/v1/mailboxes", json=body)
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "invalid address 'an%b@hanoi.gov.vn': the part before @ may not contain '%'"
        " (unaccented letters, digits, . - _ + are fine)"
    )
    listed = await world.get("system", "/v1/mailboxes", params={"q": "an%b"})
    assert listed.json()["total"] == 0
