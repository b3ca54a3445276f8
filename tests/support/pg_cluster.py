"""A throwaway PostgreSQL cluster for tests: initdb in a temp dir, start, yield a URL, stop, remove.

PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres` user that
Debian's postgresql package creates; otherwise it belongs to the current user. Missing binaries
raise PostgresUnavailable: CI must fail rather than skip the PostgreSQL tests.

The cluster lives in RAM (/dev/shm) when that has room, and is stopped with an immediate
shutdown. Measured on this project's 2-core VM (ext4 mounted with `discard`) after a suite's
worth of test databases (80 migrated databases, 1.1 GB, 34,000 files): a fast shutdown's
checkpoint took 42 s, nearly all of it fsyncing every file, and removing the directory took
another 102 s, since every freed extent is discarded. An immediate shutdown (SIGQUIT) takes
0.1 s; in RAM the removal takes about a second and the databases are created twice as fast.
The data is thrown away, so the checkpoint that an immediate shutdown skips buys nothing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

POSTGRES_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
TEST_DATABASE = "govmail_test"
READY_TIMEOUT_SECONDS = 30.0
READY_POLL_SECONDS = 0.05
STOP_TIMEOUT_SECONDS = 10
# The cluster goes to this RAM-backed directory when it has this much room (else to TMPDIR).
RAM_DIRECTORY = Path("/dev/shm")
RAM_DIRECTORY_MIN_FREE_BYTES = 4 << 30
START_ATTEMPTS = 3
LOG_TAIL_CHARS = 4000
# Unquoted PostgreSQL identifiers, lower case so that psql and SQL text need no quoting.
DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
INSTALL_HINT = "install it with scripts/install-test-deps.sh (Debian package postgresql)"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL binaries or the user to run them as are missing."""


class PostgresStartFailed(RuntimeError):
    """The server did not come up; the message carries the end of its log."""


@dataclass(frozen=True)
class ClusterOwner:
    """The account the server runs as; `switch` is False when that is already the current user."""

    name: str
    uid: int
    gid: int
    switch: bool

    @property
    def run_uid(self) -> int | None:
        """The `user` argument for subprocess: None keeps the current user."""
        return self.uid if self.switch else None

    @property
    def run_gid(self) -> int | None:
        return self.gid if self.switch else None

    @property
    def run_extra_groups(self) -> list[int] | None:
        """No supplementary groups once root is dropped (root's would otherwise be kept)."""
        return [] if self.switch else None


def find_postgres_bindir(root: Path = POSTGRES_ROOT) -> Path:
    """The bin directory of the newest PostgreSQL under `root` (Debian's /usr/lib/postgresql/N)."""
    candidates: list[tuple[tuple[int, ...], Path]] = []
    if root.is_dir():
        for version_dir in root.iterdir():
            bindir = version_dir / "bin"
            version = parse_version(version_dir.name)
            if version is not None and all(
                (bindir / tool).is_file() for tool in ("initdb", "postgres", "pg_ctl", "pg_isready")
            ):
                candidates.append((version, bindir))
    if not candidates:
        raise PostgresUnavailable(
            f"no PostgreSQL server binaries under {root}/*/bin; {INSTALL_HINT}"
        )
    return max(candidates)[1]


def require_postgres_binaries() -> None:
    """Skip the calling test when PostgreSQL is missing, except in CI (CI=true), where it fails."""
    try:
        find_postgres_bindir()
    except PostgresUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))


def parse_version(name: str) -> tuple[int, ...] | None:
    """`(9, 6)` for "9.6", `(16,)` for "16", None for anything else."""
    if not re.fullmatch(r"\d+(\.\d+)*", name):
        return None
    return tuple(int(part) for part in name.split("."))


def cluster_owner() -> ClusterOwner:
    """`postgres` when running as root (PostgreSQL refuses root), else the current user."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return ClusterOwner(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=False)
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable(
            f"running as root but there is no postgres user; {INSTALL_HINT}"
        ) from None
    return ClusterOwner(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment of asking."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Run a fresh cluster with database `govmail_test`; yield its SQLAlchemy URL.

    The server listens on 127.0.0.1 only, trusts every local connection, and keeps fsync and
    synchronous_commit on, since tests check that a commit is durable (against a killed
    process: the tests kill servers, not the machine). On exit it is stopped at once (an
    immediate shutdown, see `stop_server`) and its directory removed.
    """
    bindir = find_postgres_bindir()
    owner = cluster_owner()
    base = Path(tempfile.mkdtemp(prefix="govmail-pg-", dir=cluster_parent()))
    try:
        if owner.switch:
            os.chown(base, owner.uid, owner.gid)
        datadir = base / "data"
        run_as(owner, [bindir / "initdb", *initdb_arguments(datadir)], cwd=base)
        server, port = start_server(bindir, owner, base, datadir)
        try:
            url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/postgres"
            yield create_database(url, TEST_DATABASE)
        finally:
            stop_server(server)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def cluster_parent(ram: Path = RAM_DIRECTORY) -> Path | None:
    """`ram` when it is a writable directory with room for a suite's databases; None (the
    temporary directory of `tempfile`) otherwise."""
    if not (ram.is_dir() and os.access(ram, os.W_OK | os.X_OK)):
        return None
    if shutil.disk_usage(ram).free < RAM_DIRECTORY_MIN_FREE_BYTES:
        return None
    return ram


def initdb_arguments(datadir: Path) -> list[str]:
    """initdb options: superuser `postgres`, trust for local and 127.0.0.1, UTF-8.

    C.UTF-8 rather than C: with the C locale, lower()/upper() and ILIKE fold ASCII only, which
    would hide bugs with Vietnamese text. `--no-sync` only skips initdb's own final flush of the
    files it wrote; the running server still fsyncs (fsync=on).
    """
    return [
        "--pgdata",
        str(datadir),
        "--username",
        SUPERUSER,
        "--auth-local=trust",
        "--auth-host=trust",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
        "--no-instructions",
    ]


def server_arguments(datadir: Path, socket_dir: Path, port: int) -> list[str]:
    return [
        "-D",
        str(datadir),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={socket_dir}",
        "-c",
        "fsync=on",
        "-c",
        "synchronous_commit=on",
        "-c",
        "max_connections=200",
        "-c",
        "logging_collector=off",
    ]


def start_server(
    bindir: Path, owner: ClusterOwner, base: Path, datadir: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """Start postgres on a free port, retrying if another process took the port meanwhile."""
    failure: PostgresStartFailed | None = None
    for attempt in range(START_ATTEMPTS):
        port = free_port()
        log_path = base / f"server-{attempt}.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [bindir / "postgres", *server_arguments(datadir, base, port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=base,
                env=clean_environment(),
                start_new_session=True,
                user=owner.run_uid,
                group=owner.run_gid,
                extra_groups=owner.run_extra_groups,
            )
        try:
            wait_until_ready(bindir, server, port, log_path)
            return server, port
        except PostgresStartFailed as exc:
            failure = exc
            if server.poll() is None:
                server.kill()
            server.wait()
    assert failure is not None
    raise failure


def wait_until_ready(
    bindir: Path, server: subprocess.Popen[bytes], port: int, log_path: Path
) -> None:
    """Poll pg_isready until the server accepts connections, it exits, or the deadline passes."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    probe: list[Path | str] = [
        bindir / "pg_isready",
        "-q",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        SUPERUSER,
    ]
    while True:
        if server.poll() is not None:
            raise PostgresStartFailed(
                f"postgres exited with status {server.returncode}:\n{log_tail(log_path)}"
            )
        ready = subprocess.run(
            probe, env=clean_environment(), stdin=subprocess.DEVNULL, check=False, timeout=10
        )
        if ready.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise PostgresStartFailed(
                f"postgres not ready after {READY_TIMEOUT_SECONDS:.0f} s:\n{log_tail(log_path)}"
            )
        time.sleep(READY_POLL_SECONDS)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """Immediate shutdown (SIGQUIT, what `pg_ctl stop -m immediate` sends): no shutdown
    checkpoint, whose fsync of every file of every test database made a fast shutdown take
    tens of seconds. After STOP_TIMEOUT_SECONDS the whole process group is killed. Every
    postgres process is gone when this returns, so the directory can be removed."""
    if server.poll() is None:
        server.send_signal(signal.SIGQUIT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=STOP_TIMEOUT_SECONDS)
    # start_new_session made the postmaster a group leader; its children share the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def create_database(url: str, name: str) -> str:
    """Create database `name` on the server of `url`; return `url` pointing at it.

    `name` must be a plain lower-case identifier (at most 63 characters). The copy is made from
    template0, which nobody can be connected to, so tests may create databases concurrently.
    """
    if not DATABASE_NAME.fullmatch(name):
        raise ValueError(f"database name must match {DATABASE_NAME.pattern}: {name!r}")
    parsed = make_url(url)
    with psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database or "postgres",
        autocommit=True,
    ) as connection:
        connection.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
        )
    return parsed.set(database=name).render_as_string(hide_password=False)


def run_as(
    owner: ClusterOwner, command: list[Path | str], cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """Run a PostgreSQL tool as the cluster owner; on failure the error carries its output."""
    result = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=clean_environment(),
        check=False,
        user=owner.run_uid,
        group=owner.run_gid,
        extra_groups=owner.run_extra_groups,
    )
    if check and result.returncode != 0:
        output = result.stdout.decode(errors="replace")[-LOG_TAIL_CHARS:]
        raise PostgresStartFailed(f"{command[0]} failed with status {result.returncode}:\n{output}")
    return result


def clean_environment() -> dict[str, str]:
    """The current environment without PG* variables, which would redirect the tools elsewhere."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def log_tail(log_path: Path) -> str:
    return log_path.read_bytes().decode(errors="replace")[-LOG_TAIL_CHARS:]
