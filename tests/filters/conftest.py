"""Fixtures of the filter tests: a real spamd on a loopback port, run as a non-root user."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SPAMD = shutil.which("spamd") or "/usr/sbin/spamd"
SPAMD_START_SECONDS = 60.0
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
SPAMASSASSIN_DATA = CORPUS / "apache-spamassassin-tdata"

# Local rules only: no network tests, no auto-learning; Bayes in the temporary home.
SPAMD_LOCAL_CF = """\
use_bayes 1
bayes_auto_learn 0
bayes_path {home}/bayes
bayes_file_mode 0770
skip_rbl_checks 1
dns_available no
use_razor2 0
use_pyzor 0
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def corpus_file(relative: str) -> bytes:
    path = SPAMASSASSIN_DATA / relative
    if not path.exists():
        pytest.skip(f"test corpus absent: {path} (see ../shared/corpus/INDEX.md)")
    return path.read_bytes()


def _spamd_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING SPAMC/1.5\r\n\r\n")
            return b"PONG" in sock.recv(64)
    except OSError:
        return False


@pytest.fixture(scope="session")
def spamd_address() -> Iterator[str]:
    """Debian's spamd on 127.0.0.1:<free port>, with a temporary config and home."""
    if not os.path.exists(SPAMD):
        pytest.skip("spamd is not installed (scripts/install-test-deps.sh installs it)")
    # Not under pytest's 0700 base directory: spamd reads its config after dropping to nobody.
    base = Path(tempfile.mkdtemp(prefix="govmail-spamd-"))
    home = base / "home"
    home.mkdir()
    site = base / "site"
    site.mkdir()
    for pre in Path("/etc/spamassassin").glob("*.pre"):
        shutil.copy(pre, site / pre.name)
    (site / "local.cf").write_text(SPAMD_LOCAL_CF.format(home=home))
    command = [
        SPAMD, "--listen", f"127.0.0.1:{(port := free_port())}", "--allow-tell", "--local",
        "--nouser-config", "--max-children", "2", "--min-children", "1",
        "--siteconfigpath", str(site), "--helper-home-dir", str(home), "--syslog", "stderr",
        "--pidfile", str(base / "spamd.pid"),
    ]  # fmt: skip
    if os.geteuid() == 0:
        # spamd must not run as root: give the temporary tree to nobody and drop to it.
        nobody = pwd.getpwnam("nobody")
        for path in (base, home, site):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        command += ["--username", "nobody"]
    log = (base / "spamd.log").open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(home)}
    )
    try:
        deadline = time.monotonic() + SPAMD_START_SECONDS
        while not _spamd_answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (base / "spamd.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"spamd did not start:\n{tail}")
            time.sleep(0.1)  # polling a child's start-up, not timing a test
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)
