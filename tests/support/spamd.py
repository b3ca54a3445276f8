"""A throwaway spamd (Debian's SpamAssassin daemon) on a loopback port, for tests and benchmarks.

Local rules only (no network tests, no auto-learning), Bayes in a temporary home, TELL allowed.
As root it drops to "nobody", so the temporary tree lives outside pytest's 0700 directories;
spamd's own temporary files (TMPDIR) go inside that tree, so nothing outlives it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SPAMD = shutil.which("spamd") or "/usr/sbin/spamd"
START_SECONDS = 60.0
LOCAL_CF = """\
use_bayes 1
bayes_auto_learn 0
bayes_path {home}/bayes
bayes_file_mode 0770
skip_rbl_checks 1
dns_available no
use_razor2 0
use_pyzor 0
"""


class SpamdUnavailable(Exception):
    """spamd is not installed, or did not start (the message holds its log's tail)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spamd_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING SPAMC/1.5\r\n\r\n")
            return b"PONG" in sock.recv(64)
    except OSError:
        return False


@contextmanager
def running_spamd(children: int = 2) -> Iterator[str]:
    """Start spamd; yields "127.0.0.1:PORT"; stops it and removes its files afterwards."""
    if not os.path.exists(SPAMD):
        raise SpamdUnavailable("spamd is not installed (scripts/install-test-deps.sh installs it)")
    base = Path(tempfile.mkdtemp(prefix="govmail-spamd-"))
    home, site, tmp = base / "home", base / "site", base / "tmp"
    for directory in (home, site, tmp):
        directory.mkdir()
    for pre in Path("/etc/spamassassin").glob("*.pre"):
        shutil.copy(pre, site / pre.name)
    (site / "local.cf").write_text(LOCAL_CF.format(home=home))
    port = free_port()
    command = [
        SPAMD, "--listen", f"127.0.0.1:{port}", "--allow-tell", "--local", "--nouser-config",
        "--max-children", str(children), "--min-children", str(children),
        "--siteconfigpath", str(site), "--helper-home-dir", str(home), "--syslog", "stderr",
        "--pidfile", str(base / "spamd.pid"),
    ]  # fmt: skip
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for path in (base, home, site, tmp):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        command += ["--username", "nobody"]
    log_path = base / "spamd.log"
    with log_path.open("wb") as log:
        environment = {**os.environ, "HOME": str(home), "TMPDIR": str(tmp)}
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        try:
            deadline = time.monotonic() + START_SECONDS
            while not spamd_answers(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise SpamdUnavailable(f"spamd did not start:\n{tail}")
                time.sleep(0.1)  # polling a child's start-up
            yield f"127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            shutil.rmtree(base, ignore_errors=True)
