"""The command-line contract outside tools rely on (mailserver/cli.py), run as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mailserver.config import load_config
from storage.db import open_database
from storage.passwords import Passwords
from tests.support.process import REPO_ROOT, govmail_env, run_cli, start_server

PASSWORD = "Mat-khau#2026\n"


@pytest.fixture
def instance_dir(tmp_path: Path) -> Path:
    data = tmp_path / "inst"
    result = run_cli("init", "--data-dir", str(data), "--domain", "sotest.gov.vn")
    assert result.returncode == 0, result.stderr
    assert "admin API token" in result.stdout
    token = (data / "admin-token").read_text().strip()
    assert token in result.stdout and token.startswith("gm_")
    assert (data / "admin-token").stat().st_mode & 0o777 == 0o600
    return data


def test_cli_processes_run_this_checkout(tmp_path: Path) -> None:
    """`govmail` is `mailserver.cli:main`, and the processes the tests start import it from
    this checkout even from another directory (an installed `govmail` may be stale)."""
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["govmail"] == "mailserver.cli:main"
    where = subprocess.run(
        [sys.executable, "-c", "import mailserver.cli as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        env=govmail_env(),
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    assert Path(where.stdout.strip()) == REPO_ROOT / "mailserver" / "cli.py"
    shown = run_cli("--help", cwd=tmp_path)
    assert shown.returncode == 0 and "init" in shown.stdout


def test_init_creates_config_and_refuses_to_overwrite(instance_dir: Path) -> None:
    config_path = instance_dir / "govmail.toml"
    before = config_path.read_bytes()
    config = load_config(config_path)
    assert config.data_dir == instance_dir.resolve()
    assert config.smtp.mx_listen == "127.0.0.1:2525"
    assert (instance_dir / "govmail.sqlite3").exists()
    assert (instance_dir / "tls" / "cert.pem").exists()
    again = run_cli("init", "--data-dir", str(instance_dir), "--domain", "other.gov.vn")
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr
    assert config_path.read_bytes() == before


def test_init_rejects_a_bad_domain(tmp_path: Path) -> None:
    result = run_cli("init", "--data-dir", str(tmp_path / "x"), "--domain", "localhost")
    assert result.returncode == 1
    assert "invalid domain" in result.stderr
    assert not (tmp_path / "x" / "govmail.toml").exists()


def test_mailbox_add_list_passwd_delete(instance_dir: Path) -> None:
    config = str(instance_dir / "govmail.toml")
    added = run_cli(
        "mailbox",
        "add",
        "Thanhnn.SKHCN@sotest.gov.vn",
        "--password-stdin",
        "--name",
        "Nguyễn Ngọc Thành",
        "-c",
        config,
        stdin=PASSWORD,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "created thanhnn.skhcn@sotest.gov.vn"

    listed = run_cli("mailbox", "list", "-c", config)
    assert listed.returncode == 0
    fields = listed.stdout.strip().split("\t")
    assert fields[0] == "thanhnn.skhcn@sotest.gov.vn"
    assert fields[1] == "active"
    assert fields[3] == str(2048 * 1024 * 1024)
    assert fields[4] == "Nguyễn Ngọc Thành"
    as_json = json.loads(run_cli("mailbox", "list", "--json", "-c", config).stdout)
    assert [m["address"] for m in as_json] == ["thanhnn.skhcn@sotest.gov.vn"]
    assert "password_hash" not in as_json[0]

    duplicate = run_cli(
        "mailbox",
        "add",
        "thanhnn.skhcn@sotest.gov.vn",
        "--password-stdin",
        "-c",
        config,
        stdin=PASSWORD,
    )
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    foreign = run_cli(
        "mailbox", "add", "x@elsewhere.gov.vn", "--password-stdin", "-c", config, stdin=PASSWORD
    )
    assert foreign.returncode == 1 and "not served here" in foreign.stderr
    weak = run_cli(
        "mailbox", "add", "weak@sotest.gov.vn", "--password-stdin", "-c", config, stdin="password\n"
    )
    assert weak.returncode == 1 and "password refused" in weak.stderr

    changed = run_cli(
        "mailbox",
        "passwd",
        "thanhnn.skhcn@sotest.gov.vn",
        "--password-stdin",
        "-c",
        config,
        stdin="Doi-mat-khau#7\n",
    )
    assert changed.returncode == 0, changed.stderr
    db = open_database(f"sqlite:///{instance_dir / 'govmail.sqlite3'}")
    with db.read_session() as session:
        from storage.accounts import find_mailbox

        mailbox = find_mailbox(session, "thanhnn.skhcn@sotest.gov.vn")
        assert mailbox is not None
        stored_hash = mailbox.password_hash
    db.dispose()
    assert stored_hash.startswith("$argon2id$")
    assert Passwords().verify(stored_hash, "Doi-mat-khau#7")
    assert not Passwords().verify(stored_hash, PASSWORD.strip())

    deleted = run_cli("mailbox", "delete", "thanhnn.skhcn@sotest.gov.vn", "-c", config)
    assert deleted.returncode == 0
    assert run_cli("mailbox", "list", "-c", config).stdout == ""
    missing = run_cli("mailbox", "delete", "thanhnn.skhcn@sotest.gov.vn", "-c", config)
    assert missing.returncode == 1 and "no mailbox" in missing.stderr


def test_mailbox_import_exit_status_says_whether_every_row_was_created(
    instance_dir: Path, tmp_path: Path
) -> None:
    config = str(instance_dir / "govmail.toml")
    staff = tmp_path / "staff.csv"
    staff.write_text(
        "full_name,agency,address\nLê Văn Tám,sotest,tam@sotest.gov.vn\n"
        "Trần Văn Bốn,sotest,tam@sotest.gov.vn\n",
        encoding="utf-8",
    )
    failed = run_cli("mailbox", "import", str(staff), "--links", "-c", config)
    assert failed.returncode == 1
    assert "line 3: tam@sotest.gov.vn is already taken" in failed.stderr
    assert "error: 1 of 2 rows failed" in failed.stderr
    assert ",created,tam@sotest.gov.vn," in failed.stdout  # the report still lists every row
    staff.write_text("full_name,agency\nLê Văn Năm,sotest\n", encoding="utf-8")
    created = run_cli("mailbox", "import", str(staff), "--links", "-c", config)
    assert created.returncode == 0, created.stderr
    assert "1 created, 0 would_create, 0 exists, 0 error" in created.stderr


def test_config_is_found_by_env_then_current_directory(instance_dir: Path, tmp_path: Path) -> None:
    config = str(instance_dir / "govmail.toml")
    by_env = run_cli("mailbox", "list", env=govmail_env(GOVMAIL_CONFIG=config), cwd=tmp_path)
    assert by_env.returncode == 0, by_env.stderr
    by_cwd = run_cli("mailbox", "list", cwd=instance_dir)
    assert by_cwd.returncode == 0, by_cwd.stderr
    nowhere = run_cli("mailbox", "list", cwd=tmp_path)
    assert nowhere.returncode == 1
    assert "govmail.toml" in nowhere.stderr and "govmail init" in nowhere.stderr


def test_environment_overrides_config_keys(
    instance_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVMAIL_SMTP__MX_LISTEN", "127.0.0.1:2626")
    monkeypatch.setenv("GOVMAIL_IMAP__MAX_LINE_LENGTH", "9000")
    config = load_config(instance_dir / "govmail.toml")
    assert config.smtp.mx_listen == "127.0.0.1:2626"
    assert config.imap.max_line_length == 9000
    assert config.smtp.submission_listen == "127.0.0.1:2587"  # untouched keys keep file values
    monkeypatch.setenv("GOVMAIL_SMTP__MX_LISTEN", "not-an-address")
    bad = run_cli(
        "mailbox",
        "list",
        "-c",
        str(instance_dir / "govmail.toml"),
        env=govmail_env(GOVMAIL_SMTP__MX_LISTEN="nonsense"),
    )
    assert bad.returncode == 1 and "host:port" in bad.stderr


def test_serve_logs_one_line_when_bound_and_stops_on_sigterm(instance_dir: Path) -> None:
    server = start_server(instance_dir / "govmail.toml")
    listening = [line for line in server.log_lines if "event=listening" in line]
    assert len(listening) == 1
    assert set(server.bound) == {
        "smtp_mx",
        "smtp_submission",
        "smtp_submissions",
        "imap",
        "imaps",
        "admin_api",
    }
    assert all(host == "127.0.0.1" and port > 0 for host, port in server.bound.values())
    assert server.terminate() == 0
    assert any("event=stopped" in line for line in server.log_lines)
