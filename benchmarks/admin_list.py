"""Admin API benchmark: list/search among many mailboxes (p50/p99), and the bulk import rate.

    python benchmarks/admin_list.py --mailboxes 100000 --requests 200 --import-rows 5000

Builds a throwaway SQLite instance (fsync on, as in production), fills it with mailboxes spread
over an agency tree (rows inserted directly: this measures reading, not provisioning), then
times requests through the real FastAPI app in-process (ASGI, no network), as a system admin and
as an agency admin. Then imports a CSV of staff through the same code path as
`POST /v1/imports/staff`, with argon2id hashing in the process pool.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from admin_api.app import create_app
from mailserver.config import AdminAPISection, GovmailConfig, ServerSection
from mailserver.instance import open_instance
from storage.accounts import create_agency, create_domain
from storage.admin_scope import EVERYTHING
from storage.models import Mailbox, mailbox_search_text
from storage.password_batch import PasswordHashPool
from storage.passwords import PasswordParams
from storage.staff_import import ImportOptions, run_staff_import
from storage.tokens import issue_token

SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Hồ"]
MIDDLE = ["Văn", "Thị", "Ngọc", "Minh", "Đức", "Thu", "Quang", "Hữu", "Thanh", "Kim"]
GIVEN = ["Thành", "An", "Bình", "Hòa", "Dũng", "Hương", "Lan", "Tuấn", "Hải", "Linh", "Nam"]


def person(rng: random.Random) -> str:
    return f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"


def build(config: GovmailConfig, mailboxes: int, agencies: int) -> tuple[dict[str, str], int]:
    instance = open_instance(config)
    rng = random.Random(7)
    with instance.db.write_session() as session:
        root = create_agency(session, "bench", "hn", "Hà Nội", code="H01")
        assert root.id is not None
        domain = create_domain(session, "bench", "hanoi.gov.vn", root.id)
        assert domain.id is not None
        children = []
        for number in range(agencies):
            agency = create_agency(
                session, "bench", f"s{number:02d}", f"Sở {number}", root.id, f"H01.{number + 10}"
            )
            assert agency.id is not None
            children.append((agency.id, f"s{number:02d}"))
        for number in range(10):  # empty agencies the import fills
            create_agency(session, "bench", f"imp{number}", f"Phòng {number}", root.id)
        tokens = {
            "system": issue_token(session, "bench", "bench", "system_admin"),
            "agency": issue_token(session, "bench", "bench-a", "agency_admin", children[0][0]),
        }
    now = datetime.now(UTC)
    batch: list[dict[str, object]] = []
    with instance.db.write_session() as session:
        for number in range(mailboxes):
            agency_id, abbreviation = children[number % agencies]
            name = person(rng)
            login = now - timedelta(days=rng.randrange(60)) if number % 3 else None
            address = f"u{number}.{abbreviation}@hanoi.gov.vn"
            batch.append(
                {
                    "address": address, "domain_id": domain.id, "agency_id": agency_id,
                    "display_name": name, "search_text": mailbox_search_text(name, address),
                    "password_hash": "", "quota_bytes": 2**31, "used_bytes": rng.randrange(2**30),
                    "position": "", "state": "active", "must_change_password": False,
                    "failed_logins": 0, "next_uidvalidity": 1,
                    "created_at": now - timedelta(minutes=number),
                    "last_login_at": login,
                }
            )  # fmt: skip
            if len(batch) == 5000:
                session.execute(insert(Mailbox), batch)
                batch = []
        if batch:
            session.execute(insert(Mailbox), batch)
    instance.store.db.dispose()
    return tokens, agencies


async def time_requests(
    config: GovmailConfig, tokens: dict[str, str], total: int, requests: int
) -> list[tuple[str, float, float, int]]:
    instance = open_instance(config, migrate=False)
    await instance.store.start()
    rng = random.Random(11)
    scenarios: dict[str, Callable[[], tuple[str, dict[str, Any]]]] = {
        "list, first page (sort address)": lambda: ("system", {}),
        "list, random page (offset)": lambda: (
            "system", {"offset": rng.randrange(0, total - 50)},
        ),
        "list, sort -last_login_at": lambda: ("system", {"sort": "-last_login_at"}),
        "search name, accents ignored": lambda: ("system", {"q": rng.choice(GIVEN).lower()}),
        "search full name": lambda: ("system", {"q": person(rng)}),
        "search address part": lambda: ("system", {"q": f"u{rng.randrange(total)}."}),
        "filter never_logged_in + state": lambda: (
            "system", {"never_logged_in": "true", "state": "active"},
        ),
        "agency admin: its subtree, search": lambda: (
            "agency", {"q": rng.choice(GIVEN).lower()},
        ),
    }  # fmt: skip
    results = []
    transport = httpx.ASGITransport(app=create_app(instance))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for label, make in scenarios.items():
            timings = []
            for _ in range(requests):
                who, params = make()
                headers = {"Authorization": f"Bearer {tokens[who]}"}
                started = time.perf_counter()
                response = await client.get("/v1/mailboxes", params=params, headers=headers)
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
            matched = response.json()["total"]
            timings.sort()
            p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
            results.append((label, statistics.median(timings), p99, matched))
    await instance.store.close()
    return results


def time_import(config: GovmailConfig, rows: int, time_cost: int) -> tuple[float, dict[str, int]]:
    instance = open_instance(config, migrate=False)
    rng = random.Random(3)
    lines = ["full_name,agency,position"]
    lines += [f"{person(rng)},imp{rng.randrange(10)},Chuyên viên" for _ in range(rows)]
    text = "\n".join(lines) + "\n"

    params = PasswordParams(time_cost=time_cost, memory_kib=config.auth.argon2_memory_kib)
    options = ImportOptions("bench", 2**31, datetime.now(UTC))
    started = time.perf_counter()
    with PasswordHashPool(params) as hasher:
        report = run_staff_import(
            text, EVERYTHING, options, instance.db.run_read, instance.db.run_write, hasher
        )
    elapsed = time.perf_counter() - started
    instance.store.db.dispose()
    return elapsed, report.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=100_000)
    parser.add_argument("--agencies", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--import-rows", type=int, default=5000)
    parser.add_argument("--time-cost", type=int, default=1, help="argon2 passes, initial passwords")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = GovmailConfig(
            server=ServerSection(data_dir=Path(tmp)),
            admin_api=AdminAPISection(listen="127.0.0.1:0"),
        )
        config.config_path = Path(tmp) / "govmail.toml"
        started = time.perf_counter()
        tokens, agencies = build(config, args.mailboxes, args.agencies)
        print(f"built {args.mailboxes} mailboxes in {agencies} agencies "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        print(f"{'GET /v1/mailboxes scenario':<38} {'p50 ms':>8} {'p99 ms':>8} {'matches':>8}")
        for label, p50, p99, matched in asyncio.run(
            time_requests(config, tokens, args.mailboxes, args.requests)
        ):
            print(f"{label:<38} {p50:>8.1f} {p99:>8.1f} {matched:>8}")
        if args.import_rows:
            elapsed, summary = time_import(config, args.import_rows, args.time_cost)
            print(f"import of {args.import_rows} staff (argon2id t={args.time_cost}, "
                  f"m={config.auth.argon2_memory_kib} KiB): {elapsed:.1f} s, "
                  f"{args.import_rows / elapsed:.0f} mailboxes/s, {summary}")  # fmt: skip


if __name__ == "__main__":
    main()
