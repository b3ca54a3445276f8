"""A throwaway Dovecot (Debian's dovecot-imapd) on a loopback port, configured like govmail.

Like with like: the same argon2id parameters for every password (hashed here with argon2-cffi,
which Dovecot's {ARGON2ID} scheme verifies through libsodium), the authentication cache off
(govmail has none), and every mail write fsynced (``mail_fsync = always``), as govmail fsyncs
before it answers. Installs the Debian packages itself when they are missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher

PACKAGES = ("dovecot-core", "dovecot-imapd")
VMAIL_USER = "govmailbench"


def ensure_installed() -> None:
    if shutil.which("dovecot"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
        check=True,
        env=env,
        capture_output=True,
    )


def ensure_user(name: str = VMAIL_USER) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
        )
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 0
mail_location = maildir:{base}/mail/%u
mail_fsync = always
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
last_valid_uid = {uid}
default_client_limit = 20000
default_process_limit = 20000
default_vsz_limit = 1G
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=ARGON2ID {base}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  # "High-performance mode": long-lived login processes, each serving many connections.
  service_count = 0
  process_min_avail = 2
  client_limit = 20000
}}
service imap {{
  process_limit = 20000
}}
service anvil {{
  client_limit = 60000
}}
service auth {{
  client_limit = 60000
}}
protocol imap {{
  mail_max_userip_connections = 20000
}}
"""


@dataclass
class DovecotPeer:
    """Start with ``start()``, add users before or after, stop with ``stop()``."""

    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="govmail-dovecot-")))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def add_users(self, users: dict[str, str]) -> None:
        hasher = PasswordHasher(
            time_cost=self.argon2_time_cost, memory_cost=self.argon2_memory_kib, parallelism=1
        )
        with (self.base / "users").open("a") as handle:
            for user, password in users.items():
                handle.write(f"{user}:{{ARGON2ID}}{hasher.hash(password)}\n")

    def write_maildir(self, user: str, messages: list[bytes]) -> None:
        """Put ``messages`` in the user's INBOX as Maildir files (indexed at the first SELECT)."""
        uid, gid = ensure_user()
        root = self.base / "mail" / user
        for sub in ("cur", "new", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        stamp = int(time.time())
        for n, data in enumerate(messages):
            (root / "cur" / f"{stamp}.M{n}P1.bench,S={len(data)}:2,").write_bytes(data)
        for directory, _, files in os.walk(root):
            os.chown(directory, uid, gid)
            for name in files:
                os.chown(os.path.join(directory, name), uid, gid)

    def start(self) -> None:
        ensure_installed()
        uid, gid = ensure_user()
        for sub in ("run", "state", "mail", "home"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("mail", "home"):
            os.chown(self.base / sub, uid, gid)
        os.chmod(self.base, 0o755)
        (self.base / "users").touch()
        config = self.base / "dovecot.conf"
        config.write_text(CONFIG.format(base=self.base, uid=uid, gid=gid, port=self.port))
        self.process = subprocess.Popen(
            ["dovecot", "-F", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.1)
        log = (self.base / "dovecot.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"dovecot did not start:\n{log}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
        shutil.rmtree(self.base, ignore_errors=True)

    def process_rss_kib(self) -> int:
        """Memory of every dovecot process (master, login, imap, auth...), as PSS: shared
        pages are divided among the processes that share them, so a sum over one-process-per-
        connection servers is not inflated by the libraries every process maps."""
        total = 0
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
                if b"dovecot" not in cmdline and not _is_dovecot_child(proc):
                    continue
                total += proportional_kib(proc)
            except OSError:
                continue
        return total


def proportional_kib(proc: Path) -> int:
    """A process's proportional set size (PSS), KiB."""
    for line in (proc / "smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _is_dovecot_child(proc: Path) -> bool:
    try:
        comm = (proc / "comm").read_text().strip()
    except OSError:
        return False
    return comm in {"imap", "imap-login", "auth", "anvil", "log", "config", "stats"}
