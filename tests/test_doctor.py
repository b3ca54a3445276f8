"""`govmail check` (mailserver/doctor) against a real `govmail init` data dir, run as a real
process, and its checks called directly where a clock or a threshold must be fixed."""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailserver.config import load_config
from mailserver.delivery.dispatch import Delivery, QueueOptions, store_and_queue
from mailserver.delivery.queue import OutboundRecipient
from mailserver.doctor.disk_checks import SpaceLimits, check_free_space
from mailserver.doctor.dns_checks import parse_zone_line
from mailserver.doctor.instance_checks import check_queue, check_schema
from mailserver.doctor.results import CheckResult, Status
from mailserver.doctor.service_checks import SPAMD, ping_service
from mailserver.doctor.tls_checks import check_tls
from mailserver.tls import build_self_signed_cert, subject_alternative_names
from storage.db import open_database
from storage.schema import alembic_config, upgrade_to_head
from storage.store import MailStore
from tests.support.process import govmail_env, run_cli
from tests.support.spamd import SpamdUnavailable, free_port, running_spamd

DOMAIN = "sotest.gov.vn"
HOST = f"mail.{DOMAIN}"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def template_instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("doctor") / "inst"
    result = run_cli("init", "--data-dir", str(data), "--domain", DOMAIN)
    assert result.returncode == 0, result.stderr
    return data


@pytest.fixture
def instance(template_instance: Path, tmp_path: Path) -> Path:
    """A fresh copy of an initialised instance (its config paths are relative)."""
    return Path(shutil.copytree(template_instance, tmp_path / "inst"))


def run_check(instance: Path, *args: str, **env: str) -> tuple[int, list[dict[str, Any]]]:
    result = run_cli(
        "check", "--json", "-c", str(instance / "govmail.toml"), *args, env=govmail_env(**env)
    )
    assert result.stderr == ""
    return result.returncode, json.loads(result.stdout)


def by_check(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["check"]: r for r in results}


def not_ok(results: list[dict[str, Any]]) -> dict[str, str]:
    return {r["check"]: r["status"] for r in results if r["status"] != "ok"}


# ---------------------------------------------------------------- the whole command


def test_a_fresh_instance_is_all_ok(instance: Path) -> None:
    status, results = run_check(instance)
    assert status == 0
    assert not_ok(results) == {}
    assert {
        "configuration", "tls certificate", "tls key", "tls name", "disk space", "spamd", "clamd",
        "database schema", "outbound queue", f"dkim {DOMAIN}",
    } <= set(by_check(results))  # fmt: skip
    assert by_check(results)["tls name"]["detail"] == f"the certificate covers {HOST}"


def test_the_table_shows_status_and_fix(instance: Path) -> None:
    (instance / "tls" / "cert.pem").unlink()
    result = run_cli("check", "-c", str(instance / "govmail.toml"), env=govmail_env(COLUMNS="200"))
    assert result.returncode == 1
    row = next(line for line in result.stdout.splitlines() if "tls certificate" in line)
    assert "fail" in row and "cannot read" in row and "[tls] cert_file" in row
    assert re.search(r"\d+ ok, 1 fail", result.stdout)


def test_an_unknown_config_key_fails_the_configuration_check(instance: Path) -> None:
    config = instance / "govmail.toml"
    text = config.read_text()
    assert "\n[spamd]\n" in text  # `govmail init` writes the table: add the typo inside it
    config.write_text(text.replace("\n[spamd]\n", "\n[spamd]\nenable = false\n", 1))
    status, results = run_check(instance)
    assert status == 1
    assert results == [
        {
            "check": "configuration",
            "status": "fail",
            "detail": f"{config}: unknown key spamd.enable (did you mean spamd.enabled?)",
            "fix": "correct the file (keys: deploy/CONFIG.md)",
        }
    ]


def test_warnings_alone_exit_0(instance: Path) -> None:
    status, results = run_check(instance, GOVMAIL_ADMIN_API__LISTEN="0.0.0.0:8080")
    assert status == 0
    assert not_ok(results) == {"configuration": "warn"}
    assert "public_url" in by_check(results)["configuration"]["fix"]


def test_public_listeners_need_a_real_hostname(instance: Path) -> None:
    status, results = run_check(
        instance, GOVMAIL_SERVER__HOSTNAME="localhost", GOVMAIL_SMTP__MX_LISTEN="0.0.0.0:25"
    )
    assert status == 1
    configuration = by_check(results)["configuration"]
    assert configuration["status"] == "fail" and "smtp.mx_listen" in configuration["detail"]
    assert by_check(results)["tls name"]["status"] == "fail"


def write_cert(instance: Path, not_before: datetime) -> None:
    """A ten-year self-signed certificate for HOST starting at ``not_before``, with its key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = build_self_signed_cert(key, subject_alternative_names([HOST]), not_before)
    (instance / "tls" / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (instance / "tls" / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_an_expired_certificate_fails(instance: Path) -> None:
    write_cert(instance, datetime.now(UTC) - timedelta(days=3653 + 2))
    status, results = run_check(instance)
    assert status == 1
    assert not_ok(results) == {"tls certificate": "fail"}
    assert "expired on" in by_check(results)["tls certificate"]["detail"]
    assert "renew" in by_check(results)["tls certificate"]["fix"]


def test_a_missing_dkim_key_file_fails(instance: Path) -> None:
    key_file = next((instance / "dkim" / DOMAIN).glob("*r.key"))
    key_file.unlink()
    status, results = run_check(instance)
    assert status == 1
    dkim = by_check(results)[f"dkim {DOMAIN}"]
    assert dkim["status"] == "fail"
    assert f"{key_file.stem}: cannot read {key_file}" in dkim["detail"]
    assert f"govmail dkim rotate {DOMAIN} --immediate" in dkim["fix"]
    # The fix works: the new keys sign at once; the old ones stay published, need no file.
    rotated = run_cli("dkim", "rotate", DOMAIN, "--immediate", "-c", str(instance / "govmail.toml"))
    assert rotated.returncode == 0, rotated.stderr
    status, results = run_check(instance)
    assert status == 0
    assert by_check(results)[f"dkim {DOMAIN}"]["status"] == "ok"


def test_spamd_unreachable_fails(instance: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    status, results = run_check(
        instance, GOVMAIL_SPAMD__ENABLED="true", GOVMAIL_SPAMD__MANAGED="false",
        GOVMAIL_SPAMD__ADDRESS=address,
    )
    assert status == 1
    spamd = by_check(results)["spamd"]
    assert spamd["status"] == "fail" and spamd["detail"].startswith(f"{address} does not answer")
    assert "start spamd" in spamd["fix"]


@pytest.fixture(scope="module")
def spamd_address() -> Iterator[str]:
    try:
        with running_spamd(children=1) as address:
            yield address
    except SpamdUnavailable as exc:
        if "not installed" in str(exc):
            pytest.skip(str(exc))
        pytest.fail(str(exc))


def test_spamd_reachable_is_ok(instance: Path, spamd_address: str) -> None:
    status, results = run_check(
        instance, GOVMAIL_SPAMD__ENABLED="true", GOVMAIL_SPAMD__MANAGED="false",
        GOVMAIL_SPAMD__ADDRESS=spamd_address,
    )
    assert status == 0
    assert by_check(results)["spamd"] == {
        "check": "spamd",
        "status": "ok",
        "detail": f"{spamd_address} answers PONG",
        "fix": "",
    }


def test_clamd_socket_missing_fails(instance: Path, tmp_path: Path) -> None:
    socket_path = tmp_path / "clamd.ctl"
    status, results = run_check(
        instance, GOVMAIL_CLAMD__ENABLED="true", GOVMAIL_CLAMD__ADDRESS=str(socket_path)
    )
    assert status == 1
    clamd = by_check(results)["clamd"]
    assert clamd["status"] == "fail" and clamd["detail"].startswith(
        f"{socket_path} does not answer"
    )


def test_a_managed_spamd_that_is_down_is_information() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{closed.getsockname()[1]}"
        result = ping_service(SPAMD, address, timeout=2.0, managed=True)
    assert result.status is Status.INFO
    assert "govmail starts it" in result.detail


def test_a_service_answering_something_else_fails() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(5.0)
        address = f"127.0.0.1:{server.getsockname()[1]}"

        def answer_like_smtp() -> None:
            connection, _peer = server.accept()
            with connection:
                connection.recv(64)
                connection.sendall(b"220 mail.example ESMTP\r\n")

        peer = threading.Thread(target=answer_like_smtp)
        peer.start()
        result = ping_service(SPAMD, address, timeout=5.0)
        peer.join(timeout=5.0)
    assert result.status is Status.FAIL
    assert result.detail == f"{address} answered b'220 mail.example ESMTP\\r\\n', not PONG"


def downgrade(instance: Path, revision: str) -> None:
    db = open_database(load_config(instance / "govmail.toml").database_url)
    config = alembic_config(db.url)
    try:
        with db.writer.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        db.dispose()


def test_a_schema_behind_head_fails(instance: Path) -> None:
    downgrade(instance, "0010")
    status, results = run_check(instance)
    assert status == 1
    schema = by_check(results)["database schema"]
    assert schema["status"] == "fail" and schema["detail"].startswith("not applied: 0011")
    assert "govmail serve" in schema["fix"]
    assert "outbound queue" not in by_check(results)  # not queried on an older schema


def test_a_missing_database_fails(instance: Path) -> None:
    (instance / "govmail.sqlite3").unlink()
    status, results = run_check(instance)
    assert status == 1
    schema = by_check(results)["database schema"]
    assert schema == {
        "check": "database schema",
        "status": "fail",
        "detail": f"no database at {instance / 'govmail.sqlite3'}",
        "fix": "run `govmail init`, or check [database] url (and [server] data_dir)",
    }
    assert not (instance / "govmail.sqlite3").exists()  # the check made no empty one


# ---------------------------------------------------------------- --dns


def published_records(instance: Path) -> dict[str, dict[str, list[str]]]:
    """The records `govmail dkim dns` prints, as a static DNS table (name -> type -> values)."""
    result = run_cli("dkim", "dns", DOMAIN, "-c", str(instance / "govmail.toml"))
    assert result.returncode == 0, result.stderr
    table: dict[str, dict[str, list[str]]] = {}
    for line in result.stdout.splitlines():
        if line.startswith(";"):
            continue
        name, _ttl, _in, rtype, data = line.split(maxsplit=4)
        value = "".join(re.findall(r'"([^"]*)"', data)) if rtype == "TXT" else data.rstrip(".")
        table.setdefault(name.rstrip("."), {}).setdefault(rtype, []).append(value)
    return table


def write_static_dns(path: Path, table: dict[str, dict[str, list[str]]]) -> Path:
    lines = []
    for name, types in table.items():
        lines.append(f'["{name}"]')
        lines += [f"{rtype} = {json.dumps(values)}" for rtype, values in types.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_dns_records_matching_the_table_are_ok(instance: Path) -> None:
    static = write_static_dns(instance / "dns.toml", published_records(instance))
    status, results = run_check(instance, "--dns", GOVMAIL_DNS__STATIC_FILE=str(static))
    assert status == 0
    dns_rows = {r["check"]: r["status"] for r in results if r["check"].startswith("dns ")}
    assert set(dns_rows.values()) == {"ok"}
    assert {
        f"dns SPF {DOMAIN}", f"dns DMARC _dmarc.{DOMAIN}", f"dns MX {DOMAIN}",
        f"dns SRV _submission._tcp.{DOMAIN}", f"dns SRV _imaps._tcp.{DOMAIN}",
        f"dns CNAME autoconfig.{DOMAIN}", f"dns CNAME autodiscover.{DOMAIN}",
    } <= set(dns_rows)  # fmt: skip
    assert sum(check.startswith("dns DKIM ") for check in dns_rows) == 2


def test_dns_records_that_differ_are_reported(instance: Path) -> None:
    table = published_records(instance)
    rsa_name = next(name for name in table if name.endswith(f"r._domainkey.{DOMAIN}"))
    table[rsa_name]["TXT"] = [table[rsa_name]["TXT"][0].replace("p=MII", "p=XII")]
    table[DOMAIN]["MX"] = [f"10 mx.elsewhere.{DOMAIN}"]
    table[DOMAIN]["TXT"] = ["v=spf1 ip4:192.0.2.1 -all"]
    del table[f"_imaps._tcp.{DOMAIN}"]
    table[f"_dmarc.{DOMAIN}"]["TXT"] = "SERVFAIL"  # type: ignore[assignment]  # the table's mark
    static = write_static_dns(instance / "dns.toml", table)
    status, results = run_check(instance, "--dns", GOVMAIL_DNS__STATIC_FILE=str(static))
    assert status == 1
    rows = by_check(results)
    assert {check: status for check, status in not_ok(results).items()} == {
        f"dns DKIM {rsa_name}": "fail",
        f"dns MX {DOMAIN}": "fail",
        f"dns SPF {DOMAIN}": "warn",
        f"dns SRV _imaps._tcp.{DOMAIN}": "warn",
        f"dns DMARC _dmarc.{DOMAIN}": "fail",
    }
    assert rows[f"dns DMARC _dmarc.{DOMAIN}"]["detail"].startswith("lookup failed: ")
    assert rows[f"dns DKIM {rsa_name}"]["detail"].startswith("a different key published")
    assert rows[f"dns DKIM {rsa_name}"]["fix"].startswith(f"publish: {rsa_name.split('.')[0]}.")
    assert rows[f"dns MX {DOMAIN}"]["detail"] == f"MX is 10 mx.elsewhere.{DOMAIN}, not {HOST}"


def test_dns_is_only_checked_with_the_option(instance: Path) -> None:
    _status, results = run_check(instance)
    assert not any(r["check"].startswith("dns ") for r in results)


def test_zone_lines_parse_as_the_resolver_answers() -> None:
    record = parse_zone_line('s._domainkey.a.gov.vn. 3600 IN TXT "v=DKIM1; k=rsa; p=AB" "CD"')
    assert record is not None
    assert (record.name, record.rtype, record.kind, record.value) == (
        "s._domainkey.a.gov.vn", "TXT", "DKIM", "v=DKIM1; k=rsa; p=ABCD",
    )  # fmt: skip
    mx = parse_zone_line("a.gov.vn. 3600 IN MX 10 mail.a.gov.vn.")
    assert mx is not None and mx.value == "10 mail.a.gov.vn"
    assert parse_zone_line("; comment") is None


# ---------------------------------------------------------------- single checks, fixed clock


def write_pair(directory: Path, names: list[str], not_before: datetime) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    san: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    cert = build_self_signed_cert(key, san, not_before)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def statuses(results: list[Any]) -> dict[str, Status]:
    return {r.check: r.status for r in results}


def test_certificate_expiry_against_an_injected_clock(tmp_path: Path) -> None:
    cert, key = write_pair(tmp_path, [HOST], T0)
    ends = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
    assert check_tls(cert, key, HOST, T0 + timedelta(days=1))[0].status is Status.OK
    soon = check_tls(cert, key, HOST, ends - timedelta(days=10))[0]
    assert soon.status is Status.WARN and "(in 10 days)" in soon.detail
    assert check_tls(cert, key, HOST, ends)[0].status is Status.FAIL
    assert check_tls(cert, key, HOST, T0 - timedelta(days=1))[0].status is Status.FAIL


def test_certificate_name_and_key_must_match(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert, _key = write_pair(tmp_path / "a", ["*.sotest.gov.vn"], T0)
    _other_cert, other_key = write_pair(tmp_path / "b", [HOST], T0)
    now = T0 + timedelta(days=1)
    assert statuses(check_tls(cert, other_key, HOST, now)) == {
        "tls certificate": Status.OK,
        "tls key": Status.FAIL,
        "tls name": Status.OK,  # the wildcard covers mail.sotest.gov.vn
    }
    assert statuses(check_tls(cert, other_key, "sotest.gov.vn", now))["tls name"] is Status.FAIL
    assert statuses(check_tls(cert, other_key, "a.b.sotest.gov.vn", now))["tls name"] is Status.FAIL


def test_free_space_thresholds(tmp_path: Path) -> None:
    total = shutil.disk_usage(tmp_path).total
    assert check_free_space("data dir", tmp_path, SpaceLimits(0, 0.0, 0)).status is Status.OK
    assert (
        check_free_space("data dir", tmp_path, SpaceLimits(total + 1, 0.0, 0)).status is Status.WARN
    )
    low = check_free_space("data dir", tmp_path, SpaceLimits(0, 0.0, total + 1))
    assert low.status is Status.FAIL and "not even one largest message fits" in low.detail
    missing = check_free_space("blob dir", tmp_path / "nowhere", SpaceLimits())
    assert missing.status is Status.FAIL


async def test_queue_age_against_an_injected_clock(mail_store: MailStore) -> None:
    options = QueueOptions(sender=f"an@{DOMAIN}", now=T0, lifetime=timedelta(days=5))
    raw = b"From: an@sotest.gov.vn\r\nSubject: x\r\n\r\nx\r\n"
    remote = Delivery(remote=[OutboundRecipient("u@example.org")])
    db = mail_store.db

    def at(now: datetime) -> CheckResult:
        return check_queue(db, now, warn_after=timedelta(hours=4), fail_after=timedelta(days=5))

    assert at(T0).detail == "empty"
    await store_and_queue(mail_store, raw, remote, options)
    await store_and_queue(mail_store, raw, remote, replace(options, now=T0 + timedelta(hours=2)))
    fresh = at(T0 + timedelta(hours=1))
    assert fresh.status is Status.OK
    assert fresh.detail == "2 queued, the oldest for 1.0 hours (since 2026-03-02 08:00 UTC)"
    late = at(T0 + timedelta(hours=5))
    assert late.status is Status.WARN and "govmail queue show" in late.fix
    stuck = at(T0 + timedelta(days=6))
    assert stuck.status is Status.FAIL and "6.0 days" in stuck.detail


def test_schema_check_on_each_backend(db_url: str) -> None:
    db = open_database(db_url)
    try:
        upgrade_to_head(db)
        at_head = check_schema(db)
        assert at_head.status is Status.OK and at_head.detail.startswith("at head (")
        config = alembic_config(db.url)
        with db.writer.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0010")
        behind = check_schema(db)
        assert behind.status is Status.FAIL and behind.detail.startswith("not applied: 0011")
    finally:
        db.dispose()
