"""Bulk staff import (dry run, idempotence, convention addresses, hostile rows) and the queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session

from mailserver.delivery.queue import OutboundRecipient, enqueue
from storage.accounts import find_mailbox
from storage.passwords import Passwords
from tests.admin_api.world import World

CSV = (
    "\ufeffHọ và tên,Cơ quan,Chức vụ,Địa chỉ thư\r\n"
    "Nguyễn Ngọc Thành,skhcn,Chuyên viên,\r\n"
    "Nguyễn Ngọc Thành,SKHCN,Phó phòng,\r\n"
    "Trần Văn An,H01.11,Kế toán,\r\n"
    "Lê Thị Hoa,skhcn,,hoa.custom.skhcn@hanoi.gov.vn\r\n"
    ",skhcn,Chuyên viên,\r\n"
    "Phạm Văn B,unknown,,\r\n"
    "Đỗ Văn C,skhcn,,c@stc.hanoi.gov.vn\r\n"
    "Vũ D,skhcn,,not-an-address\r\n"
    f"{'X' * 300},skhcn,,\r\n"
)


async def _import(world: World, who: str = "system", **params: str) -> dict[str, Any]:
    response = await world.post(
        who,
        "/v1/imports/staff",
        content=CSV.encode("utf-8"),
        headers={"Content-Type": "text/csv"},
        params=params,
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _statuses(report: dict[str, Any]) -> list[tuple[int, str, str, str]]:
    rows = report["rows"]
    assert isinstance(rows, list)
    return [(r["line"], r["status"], r["address"], r["message"]) for r in rows]


async def test_dry_run_then_import_then_again(world: World) -> None:
    dry = await _import(world, dry_run="true")
    expected_plan = [
        # The seeded Nguyễn Ngọc Thành of skhcn is this row's person: nothing to create.
        (2, "exists", "thanhnn.skhcn@hanoi.gov.vn", ""),
        # A namesake at the same agency gets the predictable suffix.
        (3, "would_create", "thanhnn2.skhcn@hanoi.gov.vn", ""),
        # An agency code in either form; stc has a domain of its own.
        (4, "would_create", "antv.stc@stc.hanoi.gov.vn", ""),
        (5, "would_create", "hoa.custom.skhcn@hanoi.gov.vn", ""),
        (6, "error", "", "full_name and agency are required"),
        (7, "error", "", "unknown agency 'unknown'"),
        (8, "would_create", "c@stc.hanoi.gov.vn", ""),
        (9, "error", "", "invalid address 'not-an-address': no @ between a name and a domain"),
        (10, "error", "", "field too long"),
    ]
    assert _statuses(dry) == expected_plan
    assert dry["summary"] == {"created": 0, "would_create": 4, "exists": 1, "error": 4}
    assert (await world.get("system", "/v1/mailboxes")).json()["total"] == 2

    done = await _import(world)
    assert done["summary"] == {"created": 4, "would_create": 0, "exists": 1, "error": 4}
    rows = {r["address"]: r for r in done["rows"]}
    password = rows["thanhnn2.skhcn@hanoi.gov.vn"]["password"]
    assert isinstance(password, str) and len(password) == 14

    def stored(session: Session) -> tuple[str, bool, int | None, str]:
        mailbox = find_mailbox(session, "thanhnn2.skhcn@hanoi.gov.vn")
        assert mailbox is not None
        return (
            mailbox.password_hash,
            mailbox.must_change_password,
            mailbox.agency_id,
            mailbox.position,
        )

    password_hash, must_change, agency_id, position = await world.instance.store.read(stored)
    assert Passwords().verify(password_hash, password)
    assert must_change and agency_id == world.ids["a"] and position == "Phó phòng"

    again = await _import(world)
    assert again["summary"] == {"created": 0, "would_create": 0, "exists": 5, "error": 4}
    assert (await world.get("system", "/v1/mailboxes")).json()["total"] == 6


async def test_agency_admin_import_stays_in_its_tree_and_links_mode(world: World) -> None:
    report = await _import(world, "admin_a", credentials="link")
    statuses = {line: (status, message) for line, status, _, message in _statuses(report)}
    assert statuses[4] == ("error", "unknown agency 'H01.11'")  # stc is not A's
    # Another agency's domain: refused without saying whether the address exists.
    assert statuses[8] == ("error", "c@stc.hanoi.gov.vn is not available to this administrator")
    created = [r for r in report["rows"] if r["status"] == "created"]
    assert [r["address"] for r in created] == [
        "thanhnn2.skhcn@hanoi.gov.vn",
        "hoa.custom.skhcn@hanoi.gov.vn",
    ]
    link = created[0]["setup_link"]
    assert link.startswith("http://127.0.0.1:0/v1/password-setup?token=gms_")
    assert created[0]["password"] is None
    token = link.partition("token=")[2]
    used = await world.client.post(
        "/v1/password-setup", json={"token": token, "password": "Zq7#mWx!pL2v"}
    )
    assert used.json() == {"address": "thanhnn2.skhcn@hanoi.gov.vn"}


async def test_unreadable_csv_files_are_refused(world: World) -> None:
    for body, detail in (
        (b"", "the file is empty; expected a header row"),
        (b"a,b\r\n1,2\r\n", "the header must name the columns full_name and agency"),
        (b"\xff\xfe\x00", "the CSV must be UTF-8"),
    ):
        response = await world.post(
            "system", "/v1/imports/staff", content=body,
            headers={"Content-Type": "text/csv"},
        )  # fmt: skip
        assert response.status_code == 400
        assert response.json()["detail"].startswith(detail)


async def test_queue_list_retry_delete_audited(world: World) -> None:
    blob = world.instance.store.blobs.put(b"Subject: x\r\n\r\nbody\r\n")
    now = datetime.now(UTC)

    def queue_one(session: Session) -> int:
        from storage.mailbox_ops import _reference_blob

        _reference_blob(session, blob)
        return enqueue(
            session,
            blob=blob,
            sender="lanpt@stc.hanoi.gov.vn",
            recipients=[OutboundRecipient("a@other.gov.vn")],
            now=now + timedelta(hours=1),
            lifetime=timedelta(days=5),
        )

    entry_id = await world.instance.store.write(queue_one)
    listed = (await world.get("auditor", "/v1/queue")).json()
    assert [(e["id"], e["recipients"][0]["address"]) for e in listed["items"]] == [
        (entry_id, "a@other.gov.vn")
    ]
    assert (await world.post("auditor", f"/v1/queue/{entry_id}/retry")).status_code == 403
    assert (await world.post("system", f"/v1/queue/{entry_id}/retry")).status_code == 204
    entry = (await world.get("system", "/v1/queue")).json()["items"][0]
    assert datetime.fromisoformat(entry["next_attempt_at"]) < now + timedelta(minutes=1)
    assert (await world.delete("system", f"/v1/queue/{entry_id}")).status_code == 204
    assert (await world.delete("system", f"/v1/queue/{entry_id}")).status_code == 409
    actions = [
        e["action"]
        for e in (await world.get("system", "/v1/audit", params={"action": "queue."})).json()[
            "items"
        ]
    ]
    assert actions == ["queue.delete", "queue.retry"]
