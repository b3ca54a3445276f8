"""Run `govmail` as a real process: the CLI, and `serve` with its bound addresses.

The process is `python -m mailserver` with this checkout first on PYTHONPATH, so it runs the
code under test, never an installed (perhaps stale) `govmail` or another checkout's package.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"event=listening (?P<pairs>.*?) data_dir=")
START_TIMEOUT = 60.0  # a loaded 2-core CI machine starts a PostgreSQL-backed server slowly


# Filters stay offline in test processes: DNS is the (empty) static table, no spamd.
OFFLINE_FILTERS = {"GOVMAIL_DNS__SYSTEM_RESOLVER": "false", "GOVMAIL_SPAMD__ENABLED": "false"}


def govmail_env(**extra: str) -> dict[str, str]:
    """The environment of a test's govmail process: no GOVMAIL_* settings of the caller's,
    offline filters, this checkout first on the import path, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVMAIL_")}
    inherited = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *([inherited] if inherited else [])])
    env.update(OFFLINE_FILTERS)
    env.update(extra)
    return env


def run_cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailserver", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env if env is not None else govmail_env(),
        cwd=cwd,
        timeout=60,
    )


# Every listener on an ephemeral loopback port, cheap hashing: for tests only.
EPHEMERAL = {
    "GOVMAIL_SMTP__MX_LISTEN": "127.0.0.1:0",
    "GOVMAIL_SMTP__SUBMISSION_LISTEN": "127.0.0.1:0",
    "GOVMAIL_SMTP__SUBMISSIONS_LISTEN": "127.0.0.1:0",
    "GOVMAIL_IMAP__LISTEN": "127.0.0.1:0",
    "GOVMAIL_IMAP__TLS_LISTEN": "127.0.0.1:0",
    "GOVMAIL_ADMIN_API__LISTEN": "127.0.0.1:0",
    "GOVMAIL_AUTH__ARGON2_TIME_COST": "1",
    "GOVMAIL_AUTH__ARGON2_MEMORY_KIB": "1024",
    "GOVMAIL_AUTH__FAILED_LOGIN_DELAY_SECONDS": "0.01",
}


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    bound: dict[str, tuple[str, int]]
    log_lines: list[str] = field(default_factory=list)

    _reader: threading.Thread | None = None

    def drain_logs(self) -> None:
        """Keep reading stderr in a thread, so a chatty server never blocks on a full pipe."""
        stream = self.process.stderr
        assert stream is not None

        def pump() -> None:
            for line in stream:
                self.log_lines.append(line.rstrip("\n"))

        self._reader = threading.Thread(target=pump, daemon=True)
        self._reader.start()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; returns the exit status."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        if self._reader is not None:
            self._reader.join(timeout=5)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: the process dies at once, as in a power cut (for the durability tests)."""
        self.process.kill()
        self.process.wait(timeout=30)
        if self._reader is not None:
            self._reader.join(timeout=5)


def start_server(config: Path, **env: str) -> ServerProcess:
    """`govmail serve` on ephemeral ports; returns once its "listening" line is logged."""
    environment = govmail_env(**{**EPHEMERAL, "GOVMAIL_SERVER__LOG_LEVEL": "INFO", **env})
    command = [sys.executable, "-m", "mailserver", "serve", "--config", str(config)]
    return start_serving_command(command, environment)


def start_serving_command(
    command: list[str], env: dict[str, str], timeout: float = START_TIMEOUT, cwd: Path | None = None
) -> ServerProcess:
    """Run ``command`` (which ends in `govmail serve`); returns once "listening" is logged."""
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        match = LISTENING.search(line)
        if match:
            bound: dict[str, tuple[str, int]] = {}
            for pair in match.group("pairs").split():
                name, _, address = pair.partition("=")
                host, _, port = address.rpartition(":")
                bound[name] = (host, int(port))
            server = ServerProcess(process, bound, lines)
            server.drain_logs()
            return server
    process.kill()
    rest = process.stderr.read() if process.stderr else ""
    raise RuntimeError("server did not start:\n" + "\n".join(lines) + rest)
