"""A small province for admin API tests: two departments, tokens of every role, objects in each.

Hà Nội (H01, domain hanoi.gov.vn)
├── Sở KH&CN  skhcn (H01.10): mailboxes on the shared province domain (thanhnn.skhcn@...)
└── Sở Tài chính  stc (H01.11): its own domain stc.hanoi.gov.vn, an alias and a group
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

from admin_api.app import create_app
from mailserver.instance import Instance, open_instance
from storage.accounts import create_agency, create_domain, create_mailbox
from storage.admin_scope import EVERYTHING
from storage.directory_admin import create_alias, create_group
from storage.tokens import issue_token
from tests.support.harness import test_config

PASSWORD = "Mat-khau#2026"


@dataclass
class World:
    instance: Instance
    client: httpx.AsyncClient
    tokens: dict[str, str]
    ids: dict[str, int]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def _headers(self, who: str, kw: dict[str, Any]) -> dict[str, str]:
        return {**kw.pop("headers", {}), **self.auth(who)}

    async def get(self, who: str, url: str, **kw: Any) -> httpx.Response:
        return await self.client.get(url, headers=self._headers(who, kw), **kw)

    async def post(self, who: str, url: str, **kw: Any) -> httpx.Response:
        return await self.client.post(url, headers=self._headers(who, kw), **kw)

    async def patch(self, who: str, url: str, **kw: Any) -> httpx.Response:
        return await self.client.patch(url, headers=self._headers(who, kw), **kw)

    async def delete(self, who: str, url: str, **kw: Any) -> httpx.Response:
        return await self.client.delete(url, headers=self._headers(who, kw), **kw)


def populate(session: Session, password_hash: str) -> tuple[dict[str, str], dict[str, int]]:
    province = create_agency(session, "seed", "hn", "UBND thành phố Hà Nội", code="000.00.00.H01")
    assert province.id is not None
    shared = create_domain(session, "seed", "hanoi.gov.vn", province.id)
    a = create_agency(session, "seed", "skhcn", "Sở Khoa học và Công nghệ", province.id, "H01.10")
    b = create_agency(session, "seed", "stc", "Sở Tài chính", province.id, "H01.11")
    assert a.id is not None and b.id is not None and shared.id is not None
    b_domain = create_domain(session, "seed", "stc.hanoi.gov.vn", b.id)
    mailbox_a = create_mailbox(
        session, "seed", "thanhnn.skhcn@hanoi.gov.vn", password_hash, 2**30,
        display_name="Nguyễn Ngọc Thành", agency_id=a.id, position="Chuyên viên",
    )  # fmt: skip
    mailbox_b = create_mailbox(
        session, "seed", "lanpt@stc.hanoi.gov.vn", password_hash, 2**30,
        display_name="Phạm Thị Lan",
    )  # fmt: skip
    alias_b = create_alias(
        session, EVERYTHING, "seed", "vanthu@stc.hanoi.gov.vn", ["lanpt@stc.hanoi.gov.vn"]
    )
    group_b = create_group(
        session,
        EVERYTHING,
        "seed",
        "lanhdao@stc.hanoi.gov.vn",
        "Lãnh đạo",
        members=["lanpt@stc.hanoi.gov.vn"],
    )
    tokens = {
        "system": issue_token(session, "seed", "root", "system_admin"),
        "admin_a": issue_token(session, "seed", "admin-a", "agency_admin", a.id),
        "admin_b": issue_token(session, "seed", "admin-b", "agency_admin", b.id),
        "auditor": issue_token(session, "seed", "audit", "auditor"),
    }
    ids = {
        "province": province.id, "a": a.id, "b": b.id, "shared_domain": shared.id,
        "b_domain": b_domain.id or 0, "mailbox_a": mailbox_a.id or 0,
        "mailbox_b": mailbox_b.id or 0, "alias_b": alias_b.id or 0, "group_b": group_b.id or 0,
    }  # fmt: skip
    return tokens, ids


@asynccontextmanager
async def world_on(
    tmp_path: Path, db_url: str, **sections: dict[str, object]
) -> AsyncIterator[World]:
    config = test_config(tmp_path / "data", db_url, **sections)
    instance = open_instance(config)
    await instance.store.start()
    password_hash = instance.passwords.hash(PASSWORD)
    try:
        tokens, ids = await instance.store.write(lambda s: populate(s, password_hash))
        transport = httpx.ASGITransport(app=create_app(instance))
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as client:
            yield World(instance, client, tokens, ids)
    finally:
        await instance.store.close()
