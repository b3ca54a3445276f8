"""filters.dns: the static table, its fallback, the TOML file, and the real resolver's timeout."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from filters.dns import (
    TEMPFAIL_MARK,
    DnsTempError,
    NoDns,
    StaticDns,
    SystemDns,
    build_resolver,
    load_static_table,
)


class Recorder:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def query(self, name: str, rtype: str) -> list[str]:
        self.asked.append((name, rtype))
        return ["from fallback"]


async def test_static_table_answers_case_insensitively_and_ignores_the_root_dot() -> None:
    dns = StaticDns({"Mail.SoTest.gov.vn.": {"a": ["192.0.2.1"], "TXT": "v=spf1 -all"}})
    assert await dns.query("mail.sotest.gov.vn", "A") == ["192.0.2.1"]
    assert await dns.query("MAIL.sotest.GOV.vn.", "txt") == ["v=spf1 -all"]


async def test_a_known_name_never_reaches_the_fallback() -> None:
    fallback = Recorder()
    dns = StaticDns({"closed.gov.vn": {"TXT": ["x"]}}, fallback)
    assert await dns.query("closed.gov.vn", "MX") == []
    assert fallback.asked == []
    assert await dns.query("open.example", "TXT") == ["from fallback"]
    assert fallback.asked == [("open.example", "TXT")]


async def test_tempfail_mark_raises_a_temporary_error() -> None:
    dns = StaticDns({"broken.vn": {"TXT": TEMPFAIL_MARK}})
    with pytest.raises(DnsTempError, match="SERVFAIL"):
        await dns.query("broken.vn", "TXT")


def test_unknown_record_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported record type SOA"):
        StaticDns({"x.vn": {"SOA": ["..."]}})


async def test_static_file_in_toml(tmp_path: Path) -> None:
    path = tmp_path / "dns.toml"
    path.write_text(
        '["sotest.gov.vn"]\nTXT = ["v=spf1 mx -all"]\nMX = ["10 mail.sotest.gov.vn"]\n'
        '["_dmarc.sotest.gov.vn"]\nTXT = "v=DMARC1; p=reject"\n'
    )
    assert load_static_table(path) == {
        "sotest.gov.vn": {"TXT": ["v=spf1 mx -all"], "MX": ["10 mail.sotest.gov.vn"]},
        "_dmarc.sotest.gov.vn": {"TXT": "v=DMARC1; p=reject"},
    }
    dns = build_resolver(str(path), system_resolver=False, timeout=1.0)
    assert await dns.query("_dmarc.sotest.gov.vn", "TXT") == ["v=DMARC1; p=reject"]
    assert await dns.query("elsewhere.vn", "TXT") == []


def test_static_file_entries_must_be_tables(tmp_path: Path) -> None:
    path = tmp_path / "dns.toml"
    path.write_text('"x.vn" = "v=spf1"\n')
    with pytest.raises(ValueError, match="must be a table"):
        load_static_table(path)


async def test_without_static_file_or_system_resolver_nothing_exists() -> None:
    dns = build_resolver("", system_resolver=False, timeout=1.0)
    assert isinstance(dns, NoDns)
    assert await dns.query("gmail.com", "MX") == []


async def test_system_resolver_times_out_as_a_temporary_error() -> None:
    # A UDP socket that never answers stands for an unreachable name server.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        dns = SystemDns(timeout=0.3, nameservers=["127.0.0.1"])
        dns.resolver.port = port
        with pytest.raises(DnsTempError):
            await dns.query("sotest.gov.vn", "TXT")
