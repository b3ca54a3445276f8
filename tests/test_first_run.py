"""A fresh machine's first hour: `bash scripts/run.sh` in a clean copy of the repository, then the
README's tour (a mailbox, swaks to the MX, imaplib back) with spam scanning on, by the spamd that
govmail starts itself; and that spamd's supervision (killed, it comes back; mail waits for it).

run.sh gets ``GOVMAIL_PYTHON`` (this interpreter, which has the dependencies) so that the test
does not build a virtual environment; benchmarks/README.md ("First run") measures that path.
"""

from __future__ import annotations

import imaplib
import logging
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailserver import scanners
from mailserver.config import load_config
from mailserver.scanners import find_spamd, restart_delay
from tests.support.process import (
    EPHEMERAL,
    ServerProcess,
    run_cli,
    start_server,
    start_serving_command,
)

pytestmark = [
    pytest.mark.clients,
    pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed"),
    pytest.mark.skipif(find_spamd() is None, reason="spamd is not installed"),
    pytest.mark.timeout(150),
]

REPO = Path(__file__).resolve().parents[1]
DOMAIN = "example.gov.vn"
USER = f"thanhnn.skhcn@{DOMAIN}"
PASSWORD = "Mat-khau#2026"
START_SECONDS = 90.0
WAIT_SECONDS = 60.0
SCANNED = re.compile(r"^X-Spam-Status: No, score=-?\d+\.\d required=5\.0\r\n\ttests=", re.M)


def tracked_copy(destination: Path) -> Path:
    """The worktree's tracked files (as they are now) in ``destination``: a clean checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=30
    )
    for name in listed.stdout.decode().split("\0"):
        if name and (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    return destination


def serving_env(code: Path, **extra: str) -> dict[str, str]:
    """No GOVMAIL_* of the caller; ``code`` is the govmail that runs; throwaway ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVMAIL_")}
    return {
        **env,
        **EPHEMERAL,
        "PYTHONPATH": str(code),
        "GOVMAIL_SERVER__LOG_LEVEL": "INFO",
        "GOVMAIL_DNS__SYSTEM_RESOLVER": "false",  # offline: SPF/DMARC look-ups answer at once
        **extra,
    }


def spamd_processes(marker: str) -> list[int]:
    """Live processes whose command line names ``marker`` (the managed spamd's socket)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in command:
            found.append(int(entry.name))
    return found


def processes_in_group(group: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def wait_until_gone(group: int) -> list[int]:
    """The processes of ``group`` still alive after a few seconds (SIGKILL takes a moment)."""
    deadline = time.monotonic() + 10
    while processes_in_group(group) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the kernel's process table
    return processes_in_group(group)


def wait_for_log(server: ServerProcess, pattern: str, after: int = 0) -> re.Match[str]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for line in list(server.log_lines)[after:]:
            match = re.search(pattern, line)
            if match:
                return match
        time.sleep(0.05)  # polling another process's log
    raise AssertionError(f"no log line matching {pattern!r}:\n" + "\n".join(server.log_lines))


def add_mailbox(config: Path, env: dict[str, str]) -> None:
    added = run_cli(
        "mailbox", "add", USER, "--password-stdin", "-c", str(config),
        stdin=PASSWORD + "\n", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr


def read_inbox(server: ServerProcess) -> list[bytes]:
    with imaplib.IMAP4(*server.bound["imap"], timeout=WAIT_SECONDS) as imap:
        imap.login(USER, PASSWORD)
        imap.select("INBOX", readonly=True)
        found = imap.uid("SEARCH", "ALL")[1][0].split()
        messages = []
        for uid in found:
            fetched = imap.uid("FETCH", uid, "(BODY.PEEK[])")[1][0]
            assert isinstance(fetched, tuple)
            messages.append(fetched[1])
        return messages


def stop_and_check_spamd_gone(server: ServerProcess, socket_path: Path) -> None:
    assert server.terminate(timeout=60) == 0
    assert any("event=spamd_stopped" in line for line in server.log_lines)
    assert spamd_processes(str(socket_path)) == []
    assert not socket_path.exists()


@pytest.fixture
def clean_copy(tmp_path: Path) -> Iterator[Path]:
    copy = tracked_copy(tmp_path / "govmail")
    try:
        yield copy
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def test_run_sh_on_a_clean_copy_receives_scans_and_serves_mail(clean_copy: Path) -> None:
    data = clean_copy / "data"
    env = serving_env(
        clean_copy,
        GOVMAIL_PYTHON=sys.executable,
        GOVMAIL_DATA_DIR=str(data),
        GOVMAIL_SERVER__WORKERS="2",  # the default (one per core), bounded for the test
    )
    command = ["bash", str(clean_copy / "scripts" / "run.sh")]
    server = start_serving_command(command, env, timeout=START_SECONDS, cwd=clean_copy)
    socket_path = data / "spamd" / "spamd.sock"
    try:
        config = data / "govmail.toml"
        assert load_config(config).spamd.managed  # what `govmail init` writes
        assert any("event=spamd_ready pid=" in line for line in server.log_lines)
        assert not any("scanner_" in line for line in server.log_lines)
        add_mailbox(config, env)
        host, port = server.bound["smtp_mx"]
        sent = subprocess.run(
            [
                "swaks", "--server", f"{host}:{port}", "--from", "van.thu@other.gov.vn",
                "--to", USER, "--header", "Subject: Công văn số 12", "--body", "Kính gửi",
            ],
            capture_output=True, text=True, timeout=WAIT_SECONDS,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "<-  250 2.0.0" in sent.stdout
        [message] = read_inbox(server)
        assert b"Subject: =?UTF-8?" in message or "Công văn số 12".encode() in message
        assert SCANNED.search(message.decode("utf-8", "replace")), message[:800]
        assert re.search(rb"^X-Spam-Score: -?\d+\.\d\r$", message, re.M)
    finally:
        if server.process.poll() is None:
            stop_and_check_spamd_gone(server, socket_path)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_killed_managed_spamd_is_restarted_and_mail_waits_for_it(
    tmp_path: Path, workers: str
) -> None:
    data = tmp_path / "inst"
    env = serving_env(REPO)
    assert run_cli("init", "--data-dir", str(data), "--domain", DOMAIN, env=env).returncode == 0
    config = data / "govmail.toml"
    add_mailbox(config, env)
    socket_path = data / "spamd" / "spamd.sock"
    # server.workers = 1: serve.py runs the spamd; 2: the supervisor does, workers scan.
    server = start_server(
        config, GOVMAIL_SPAMD__ENABLED="true", GOVMAIL_SERVER__WORKERS=workers,
        GOVMAIL_DNS__SYSTEM_RESOLVER="false",
    )  # fmt: skip
    try:
        first = int(wait_for_log(server, r"event=spamd_ready pid=(\d+)").group(1))
        mark = len(server.log_lines)
        os.kill(first, signal.SIGKILL)
        wait_for_log(server, rf"event=spamd_died pid={first} status=-9 restart_in_seconds=1", mark)
        assert wait_until_gone(first) == []  # its children went with it
        # Sent while spamd is down: the message waits at DATA for the new one, is not refused.
        with smtplib.SMTP(*server.bound["smtp_mx"], timeout=WAIT_SECONDS) as smtp:
            smtp.sendmail(
                "van.thu@other.gov.vn",
                [USER],
                f"From: van.thu@other.gov.vn\r\nTo: {USER}\r\nSubject: sau khi khoi dong lai\r\n"
                "\r\nnoi dung\r\n".encode(),
            )
        second = int(wait_for_log(server, r"event=spamd_ready pid=(\d+)", mark).group(1))
        assert second != first
        assert any("event=spamd_restarting attempt=1" in line for line in server.log_lines)
        [message] = read_inbox(server)
        assert b"Subject: sau khi khoi dong lai" in message
        assert SCANNED.search(message.decode("utf-8", "replace")), message[:800]
        assert not any("spamd_unavailable" in line for line in server.log_lines)
    finally:
        if server.process.poll() is None:
            stop_and_check_spamd_gone(server, socket_path)


def test_serve_names_an_unreachable_external_scanner_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "inst"
    env = serving_env(REPO)
    assert run_cli("init", "--data-dir", str(data), "--domain", DOMAIN, env=env).returncode == 0
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        spamd_address = f"127.0.0.1:{closed.getsockname()[1]}"
    server = start_server(
        data / "govmail.toml",
        GOVMAIL_SERVER__WORKERS="1",
        GOVMAIL_SPAMD__ENABLED="true",
        GOVMAIL_SPAMD__MANAGED="false",
        GOVMAIL_SPAMD__ADDRESS=spamd_address,
        GOVMAIL_CLAMD__ENABLED="true",
        GOVMAIL_CLAMD__ADDRESS=str(tmp_path / "no-clamd.sock"),
    )
    try:
        lines = [line for line in server.log_lines if "event=scanner_unavailable" in line]
        [spamd_line] = [line for line in lines if "service=spamd" in line]
        [clamd_line] = [line for line in lines if "service=clamd" in line]
        assert f"address={spamd_address}" in spamd_line
        assert "on_failure (tempfail)" in spamd_line and "managed = true" in spamd_line
        assert "clamav-daemon" in clamd_line and "enabled = false" in clamd_line
        assert not (data / "spamd").exists()  # not managed: govmail started no spamd
    finally:
        assert server.terminate() == 0


def test_a_config_without_the_managed_key_keeps_its_external_spamd(tmp_path: Path) -> None:
    config = tmp_path / "govmail.toml"
    config.write_text('[spamd]\naddress = "127.0.0.1:7830"\n')
    loaded = load_config(config)
    assert not loaded.spamd.managed
    assert loaded.spamd_address == "127.0.0.1:7830"
    config.write_text("[spamd]\nmanaged = true\n")
    assert load_config(config).spamd_address == str(tmp_path / "spamd" / "spamd.sock")


def test_restart_delay_doubles_up_to_a_minute() -> None:
    delays = [restart_delay(deaths) for deaths in range(1, 10)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


async def test_a_managed_spamd_that_is_not_installed_is_named_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "govmail.toml"
    config.write_text("[spamd]\nmanaged = true\n")
    monkeypatch.setattr(scanners, "find_spamd", lambda: None)  # a machine without spamd
    caplog.set_level(logging.INFO, logger="govmail")
    assert await scanners.start_managed_spamd(load_config(config)) is None
    [line] = [r.getMessage() for r in caplog.records if "event=scanner_missing" in r.getMessage()]
    assert "service=spamd managed=true" in line and "on_failure (tempfail)" in line
    assert "spamassassin and spamd packages" in line


def test_a_spamd_that_keeps_dying_is_restarted_ever_later_and_sigterm_still_stops(
    tmp_path: Path,
) -> None:
    """A spamd that cannot start (here: a spamd on PATH that exits at once with an error) is
    restarted after 1 s, then 2 s, each logged with its last words; SIGTERM while `serve` waits
    for it stops at once, without ever listening."""
    fake = tmp_path / "bin" / "spamd"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'error: config: no rules were found' >&2\nexit 3\n")
    fake.chmod(0o755)
    data = tmp_path / "inst"
    env = serving_env(REPO, PATH=f"{fake.parent}:{os.environ['PATH']}", GOVMAIL_SERVER__WORKERS="1")
    assert run_cli("init", "--data-dir", str(data), "--domain", DOMAIN, env=env).returncode == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "mailserver", "serve", "--config", str(data / "govmail.toml")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=env,
    )  # fmt: skip
    assert process.stderr is not None
    died: list[str] = []
    try:
        for line in process.stderr:
            assert "event=listening" not in line
            if "event=spamd_died" in line:
                died.append(line)
            if len(died) == 2:
                break
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "status=3 restart_in_seconds=1 " in died[0]
    assert "status=3 restart_in_seconds=2 " in died[1]
    assert "no rules were found" in died[0]


def test_a_data_dir_too_deep_for_the_socket_is_a_clear_start_error(tmp_path: Path) -> None:
    data = tmp_path / ("d" * 100) / "inst"
    env = serving_env(REPO, GOVMAIL_SERVER__WORKERS="1")
    assert run_cli("init", "--data-dir", str(data), "--domain", DOMAIN, env=env).returncode == 0
    result = run_cli("serve", "--config", str(data / "govmail.toml"), env=env)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "cannot start: the managed spamd's socket path" in last
    assert "[spamd] managed = false" in last
