"""Pipelines built from the configuration, their wiring into an instance, and `govmail dkim`."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from filters.attachments import AttachmentPolicyCheck
from filters.registry import FilterConfigError, build_pipelines
from mailserver.cli import app
from mailserver.init_instance import initialise_instance
from mailserver.instance import Instance, open_instance
from storage.models import DkimKey
from tests.support.harness import test_config as harness_config


def names(instance: Instance) -> tuple[list[str], list[str]]:
    inbound, outbound = instance.inbound_pipeline, instance.outbound_pipeline
    return [c.name for c in inbound.checks], [c.name for c in outbound.checks]


def test_default_pipelines_are_wired_into_the_instance(tmp_path: Path) -> None:
    config = harness_config(
        tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", spamd={"enabled": True}
    )
    instance = open_instance(config)
    try:
        assert names(instance) == (
            ["authentication", "impersonation", "attachments", "spam", "sender_lists"],
            ["attachments", "dkim_sign"],
        )
        assert instance.junk_trainer is not None
    finally:
        instance.store.db.dispose()


def test_configured_order_disabled_services_and_macro_documents(tmp_path: Path) -> None:
    config = harness_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'db.sqlite3'}",
        filters={
            "inbound": ["spam", "antivirus", "attachments", "authentication"],
            "outbound": ["dkim_sign"],
            "block_macro_documents": True,
        },
        clamd={"enabled": True, "address": "127.0.0.1:3310"},
    )
    instance = open_instance(config)
    try:
        # spamd is disabled in the test config: the spam check is left out, not left failing.
        assert names(instance) == (["antivirus", "attachments", "authentication"], ["dkim_sign"])
        assert instance.junk_trainer is None
        attachments = instance.inbound_pipeline.checks[1]
        assert isinstance(attachments, AttachmentPolicyCheck)
        assert {"exe", "docm", "xlsm"} <= attachments.blocked
        config.filters.inbound = ["authentication", "greylisting"]
        with pytest.raises(FilterConfigError, match="unknown filter 'greylisting'"):
            build_pipelines(instance)
    finally:
        instance.store.db.dispose()


def test_init_creates_the_first_domain_keys_and_dkim_commands_work(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = initialise_instance(data, "sotest.gov.vn")
    config = str(result.config_path)
    key_files = sorted(p.name for p in (data / "dkim" / "sotest.gov.vn").iterdir())
    assert len(key_files) == 2 and key_files[0].endswith("e.key") and key_files[1].endswith("r.key")

    runner = CliRunner()
    shown = runner.invoke(app, ["dkim", "dns", "sotest.gov.vn", "--config", config])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    selectors = [k.removesuffix(".key") for k in key_files]
    for selector in selectors:
        assert any(
            line.startswith(f"{selector}._domainkey.sotest.gov.vn. 3600 IN TXT ") for line in lines
        )
    for expected in (
        'sotest.gov.vn. 3600 IN TXT "v=spf1 mx -all"',
        '_dmarc.sotest.gov.vn. 3600 IN TXT "v=DMARC1; p=reject; adkim=r; aspf=r"',
        "sotest.gov.vn. 3600 IN MX 10 mail.sotest.gov.vn.",
        "_submission._tcp.sotest.gov.vn. 3600 IN SRV 0 1 2587 mail.sotest.gov.vn.",
        "_submissions._tcp.sotest.gov.vn. 3600 IN SRV 0 1 2465 mail.sotest.gov.vn.",
        "_imap._tcp.sotest.gov.vn. 3600 IN SRV 0 1 2143 mail.sotest.gov.vn.",
        "_imaps._tcp.sotest.gov.vn. 3600 IN SRV 0 1 2993 mail.sotest.gov.vn.",
        "autoconfig.sotest.gov.vn. 3600 IN CNAME mail.sotest.gov.vn.",
        "autodiscover.sotest.gov.vn. 3600 IN CNAME mail.sotest.gov.vn.",
    ):
        assert expected in lines
    rsa_line = next(line for line in lines if line.startswith(f"{selectors[1]}._domainkey"))
    assert all(len(chunk) <= 255 for chunk in rsa_line.split('"')[1::2])

    rotated = runner.invoke(app, ["dkim", "rotate", "sotest.gov.vn", "--config", config])
    assert rotated.exit_code == 0, rotated.output
    new = [s + "b" for s in selectors]
    assert rotated.output.splitlines()[0] == (
        f"new selectors for sotest.gov.vn: {new[1]}, {new[0]}"
    )
    after = runner.invoke(app, ["dkim", "dns", "sotest.gov.vn", "--config", config]).output
    assert sum("._domainkey." in line for line in after.splitlines()) == 4

    missing = runner.invoke(app, ["dkim", "dns", "other.gov.vn", "--config", config])
    assert missing.exit_code == 1
    assert "error: domain other.gov.vn is not served here" in missing.output


def test_dkim_key_rows_point_inside_the_key_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    initialise_instance(data, "sotest.gov.vn")
    config = harness_config(data, f"sqlite:///{data / 'govmail.sqlite3'}")
    instance = open_instance(config)
    try:
        with instance.db.read_session() as session:
            rows = list(session.exec(select(DkimKey)))
        assert {r.algorithm for r in rows} == {"rsa-sha256", "ed25519-sha256"}
        for row in rows:
            assert not Path(row.private_key_file).is_absolute()
            assert (config.dkim_key_dir / row.private_key_file).is_file()
    finally:
        instance.store.db.dispose()


def test_senders_commands_manage_a_mailboxs_lists(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = str(initialise_instance(data, "sotest.gov.vn").config_path)
    runner = CliRunner()
    added = runner.invoke(
        app,
        ["mailbox", "add", "lan@sotest.gov.vn", "--password-stdin", "--config", config],
        input="Mat-khau#2026\n",
    )
    assert added.exit_code == 0, added.output

    def senders(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["senders", *args, "--config", config])
        return result.exit_code, result.output

    assert senders("block", "lan@sotest.gov.vn", "@Spam.Example") == (
        0,
        "block @spam.example for lan@sotest.gov.vn\n",
    )
    assert senders("allow", "lan@sotest.gov.vn", "Boss@Partner.VN")[0] == 0
    assert senders("list", "lan@sotest.gov.vn") == (
        0,
        "allow\tboss@partner.vn\nblock\t@spam.example\n",
    )
    assert senders("remove", "lan@sotest.gov.vn", "@spam.example")[0] == 0
    assert senders("remove", "lan@sotest.gov.vn", "@spam.example") == (
        1,
        "error: lan@sotest.gov.vn has no rule for @spam.example\n",
    )
    assert senders("block", "nobody@sotest.gov.vn", "@x.vn") == (
        1,
        "error: no mailbox nobody@sotest.gov.vn\n",
    )
    assert senders("block", "lan@sotest.gov.vn", "not an address")[0] == 1
