"""The CLI mirrors the admin API: agency, mailbox extras, alias, group, report, token, audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailserver.cli import app
from mailserver.init_instance import initialise_instance


@pytest.fixture
def config(tmp_path: Path) -> str:
    result = initialise_instance(tmp_path / "inst", "hanoi.gov.vn", agency_name="Hà Nội")
    return str(result.config_path)


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_agency_tree_import_report_token_audit(config: str, tmp_path: Path) -> None:
    assert run("agency", "add", "skhcn", "Sở KH&CN", "--parent", "1", "--code",
               "000.00.10.H01", "-c", config) == "created agency 2\n"  # fmt: skip
    listed = json.loads(run("agency", "list", "--json", "--code", "H01.10", "-c", config))
    assert [(a["code"], a["code_qcvn102"]) for a in listed] == [("H01.10", "000.00.10.H01")]
    staff = tmp_path / "staff.csv"
    staff.write_text("full_name,agency,position\nNguyễn Ngọc Thành,skhcn,Chuyên viên\n"
                     "Nguyễn Ngọc Thành,skhcn,Phó phòng\n,skhcn,\n", encoding="utf-8")  # fmt: skip
    report = tmp_path / "report.csv"
    imported = CliRunner().invoke(
        app, ["mailbox", "import", str(staff), "--report", str(report), "-c", config]
    )
    assert imported.exit_code == 1  # a row failed; the others are created all the same
    assert "line 4: full_name and agency are required" in imported.stderr
    rows = report.read_text(encoding="utf-8").splitlines()
    assert rows[1].startswith("2,Nguyễn Ngọc Thành,skhcn,created,thanhnn.skhcn@hanoi.gov.vn,,")
    assert rows[2].startswith("3,Nguyễn Ngọc Thành,skhcn,created,thanhnn2.skhcn@hanoi.gov.vn,,")
    assert rows[3] == "4,,skhcn,error,,full_name and agency are required,,"
    assert report.stat().st_mode & 0o777 == 0o600
    again = CliRunner().invoke(app, ["mailbox", "import", str(staff), "--dry-run", "-c", config])
    assert again.exit_code == 1
    assert again.stdout.count(",exists,") == 2
    found = json.loads(run("mailbox", "search", "thanh", "--json", "--sort", "-address",
                           "-c", config))  # fmt: skip
    assert [m["address"] for m in found] == [
        "thanhnn2.skhcn@hanoi.gov.vn",
        "thanhnn.skhcn@hanoi.gov.vn",
    ]
    assert run("mailbox", "lock", "thanhnn2.skhcn@hanoi.gov.vn", "-c", config) == (
        "locked thanhnn2.skhcn@hanoi.gov.vn\n"
    )
    assert "delete after" in run("mailbox", "retire", "thanhnn2.skhcn@hanoi.gov.vn", "-c", config)
    run("alias", "add", "vanthu.skhcn@hanoi.gov.vn", "thanhnn.skhcn@hanoi.gov.vn", "-c", config)
    run("group", "add", "all.skhcn@hanoi.gov.vn", "thanhnn.skhcn@hanoi.gov.vn", "-c", config)
    run("mailbox", "send-as", "thanhnn.skhcn@hanoi.gov.vn", "vanthu.skhcn@hanoi.gov.vn",
        "-c", config)  # fmt: skip
    usage = run("report", "usage", "-c", config).splitlines()
    assert usage[-1] == ",,,,,TOTAL,2,0,0,0,0,0,2,2,0,0,0,0,0,2"
    token = run("token", "issue", "helper", "--role", "auditor", "-c", config).strip()
    assert token.startswith("gm_")
    tokens = json.loads(run("token", "list", "--json", "-c", config))
    assert [t["name"] for t in tokens] == ["initial system admin", "helper"]
    assert run("token", "revoke", str(tokens[1]["id"]), "-c", config) == "revoked token 2\n"
    events = json.loads(run("audit", "list", "--action", "mailbox.", "--json", "-c", config))
    assert {e["action"] for e in events} >= {"mailbox.create", "mailbox.state"}
    assert all(e["actor"] == "cli" for e in events)


def test_cli_errors_are_one_line_on_stderr(config: str) -> None:
    result = CliRunner().invoke(app, ["agency", "move", "1", "--parent", "1", "-c", config])
    assert result.exit_code == 1
    assert "error: an agency cannot move below itself" in result.output
    unknown = CliRunner().invoke(app, ["mailbox", "lock", "nobody@hanoi.gov.vn", "-c", config])
    assert unknown.exit_code == 1 and "error: no mailbox nobody@hanoi.gov.vn" in unknown.output


def test_domain_and_group_commands(config: str) -> None:
    assert run("domain", "add", "SKHCN.hanoi.gov.vn", "--agency", "1", "-c", config) == (
        "created domain skhcn.hanoi.gov.vn\n"
    )
    listed = json.loads(run("domain", "list", "--json", "--sort", "-name", "-c", config))
    assert [(d["name"], d["kind"]) for d in listed] == [
        ("skhcn.hanoi.gov.vn", "primary"),
        ("hanoi.gov.vn", "primary"),
    ]
    assert run("domain", "kind", str(listed[0]["id"]), "legacy", "-c", config) == (
        f"domain {listed[0]['id']} is legacy\n"
    )
    assert run("domain", "delete", str(listed[0]["id"]), "-c", config).startswith("deleted")
    run("group", "add", "all@hanoi.gov.vn", "-c", config)
    run("group", "update", "1", "--policy", "anyone", "-c", config)
    groups = json.loads(run("group", "list", "--json", "-c", config))
    assert [(g["address"], g["send_policy"]) for g in groups] == [("all@hanoi.gov.vn", "anyone")]
    refused = CliRunner().invoke(app, ["group", "update", "1", "--policy", "nobody", "-c", config])
    assert refused.exit_code == 1 and "send policy must be one of" in refused.output
    run("agency", "add", "tmp", "Tạm", "--parent", "1", "-c", config)
    assert run("agency", "delete", "2", "-c", config) == "deleted agency 2\n"


def test_mailbox_import_exits_1_with_each_failed_rows_reason(config: str, tmp_path: Path) -> None:
    run("agency", "add", "skhcn", "Sở KH&CN", "--parent", "1", "-c", config)
    run("group", "add", "taken.skhcn@hanoi.gov.vn", "-c", config)
    staff = tmp_path / "staff.csv"
    staff.write_text(
        "full_name,agency,position,address\n"
        "Lê Văn Tám,skhcn,Văn thư,tam.skhcn@hanoi.gov.vn\n"
        "Trần Thị Bé,skhcn,,be na.skhcn@hanoi.gov.vn\n"
        "Phạm Văn C,skhcn,,pham-van-c\n"
        "Đỗ Văn D,skhcn,,taken.skhcn@hanoi.gov.vn\n"
        "Vũ Văn E,skhcn,,e@gmail.com\n"
        "Hồ Văn G,skhcn,,hồ.skhcn@hanoi.gov.vn\n",
        encoding="utf-8",
    )
    report = tmp_path / "report.csv"
    result = CliRunner().invoke(
        app, ["mailbox", "import", str(staff), "--report", str(report), "-c", config]
    )
    assert result.exit_code == 1
    reasons = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert reasons == [
        "line 3: invalid address 'be na.skhcn@hanoi.gov.vn': the part before @ may not contain"
        " ' ' (unaccented letters, digits, . - _ + are fine)",
        "line 4: invalid address 'pham-van-c': no @ between a name and a domain",
        "line 5: taken.skhcn@hanoi.gov.vn is already taken (by a mailbox, an alias or a group)",
        "line 6: e@gmail.com: its domain is not served here",
        "line 7: invalid address 'hồ.skhcn@hanoi.gov.vn': the part before @ may not contain 'ồ'"
        " (unaccented letters, digits, . - _ + are fine)",
    ]
    assert "1 created, 0 would_create, 0 exists, 5 error" in result.stderr
    assert result.stderr.endswith("error: 5 of 6 rows failed (see above)\n")
    rows = report.read_text(encoding="utf-8").splitlines()
    assert rows[1].startswith("2,Lê Văn Tám,skhcn,created,tam.skhcn@hanoi.gov.vn,,")
    assert rows[5] == "6,Vũ Văn E,skhcn,error,,e@gmail.com: its domain is not served here,,"
    listed = json.loads(run("mailbox", "list", "--json", "-c", config))
    assert [m["address"] for m in listed] == ["tam.skhcn@hanoi.gov.vn"]

    good = tmp_path / "good.csv"
    header, first_row = staff.read_text(encoding="utf-8").splitlines(keepends=True)[:2]
    good.write_text(header + first_row, encoding="utf-8")
    again = CliRunner().invoke(app, ["mailbox", "import", str(good), "--dry-run", "-c", config])
    assert again.exit_code == 0, again.output
    assert "0 created, 0 would_create, 1 exists, 0 error" in again.stderr


def test_mailbox_add_refuses_an_invalid_address_and_says_why(config: str) -> None:
    result = CliRunner().invoke(
        app,
        ["mailbox", "add", "an..b@hanoi.gov.vn", "--password-stdin", "-c", config],
        input="Mat-khau#2026\n",
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "error: invalid address 'an..b@hanoi.gov.vn': the part before @ may not start or end"
        " with a dot, nor hold two dots in a row\n"
    )
