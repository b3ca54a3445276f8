"""Tests for tests/support/pg_cluster.py: a real throwaway PostgreSQL, start to removal."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.support import pg_cluster
from tests.support.pg_cluster import (
    PostgresUnavailable,
    cluster_parent,
    create_database,
    find_postgres_bindir,
    require_postgres_binaries,
    stop_server,
    throwaway_postgres,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[str]:
    require_postgres_binaries()
    with throwaway_postgres() as url:
        yield url


def scalar(url: str, query: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(query)).scalar_one()
    finally:
        engine.dispose()


def refuses_connections(url: str) -> bool:
    parsed = make_url(url)
    try:
        psycopg.connect(
            host=parsed.host,
            port=parsed.port,
            user=parsed.username,
            dbname=parsed.database,
            connect_timeout=5,
        ).close()
    except psycopg.OperationalError:
        return True
    return False


def test_cluster_lifecycle_with_real_data() -> None:
    require_postgres_binaries()
    with throwaway_postgres() as url:
        parsed = make_url(url)
        assert url == f"postgresql+psycopg://postgres@127.0.0.1:{parsed.port}/govmail_test"
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE agency (code text PRIMARY KEY, name text)"))
            connection.execute(
                sa.text("INSERT INTO agency VALUES (:code, :name)"),
                [
                    {"code": "000.00.00.H41", "name": "UBND tỉnh Nghệ An"},
                    {"code": "G12.18.01", "name": "Sở Khoa học và Công nghệ"},
                ],
            )
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT code, name FROM agency ORDER BY code"))
            assert rows.all() == [
                ("000.00.00.H41", "UBND tỉnh Nghệ An"),
                ("G12.18.01", "Sở Khoa học và Công nghệ"),
            ]
            settings = connection.execute(
                sa.text(
                    "SELECT current_setting('fsync'), current_setting('synchronous_commit'),"
                    " current_setting('listen_addresses'), current_setting('server_encoding'),"
                    " lower('ĐƯỜNG LÊ LỢI'), current_setting('data_directory')"
                )
            ).one()
        engine.dispose()
        assert settings[:5] == ("on", "on", "127.0.0.1", "UTF8", "đường lê lợi")
        datadir = Path(settings[5])
        assert datadir.is_dir()
    assert not datadir.exists()
    assert not datadir.parent.exists()
    assert refuses_connections(url)


def test_failure_inside_still_stops_and_removes() -> None:
    require_postgres_binaries()
    with pytest.raises(LookupError, match="from the test body"), throwaway_postgres() as url:
        datadir = Path(str(scalar(url, "SELECT current_setting('data_directory')")))
        raise LookupError("from the test body")
    assert not datadir.parent.exists()
    assert refuses_connections(url)


def test_extra_databases_are_isolated(shared_cluster: str) -> None:
    first = create_database(shared_cluster, "isolation_a")
    second = create_database(shared_cluster, "isolation_b")
    port = make_url(shared_cluster).port
    assert first == f"postgresql+psycopg://postgres@127.0.0.1:{port}/isolation_a"
    assert second == f"postgresql+psycopg://postgres@127.0.0.1:{port}/isolation_b"
    engine = sa.create_engine(first)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE only_in_a (n int)"))
    engine.dispose()
    assert scalar(first, "SELECT to_regclass('only_in_a') IS NOT NULL") is True
    assert scalar(second, "SELECT to_regclass('only_in_a') IS NULL") is True
    assert scalar(second, "SELECT current_setting('server_encoding')") == "UTF8"


def test_duplicate_database_name_is_an_error(shared_cluster: str) -> None:
    create_database(shared_cluster, "twice")
    with pytest.raises(psycopg.errors.DuplicateDatabase):
        create_database(shared_cluster, "twice")


@pytest.mark.parametrize(
    "hostile",
    [
        "",
        "Upper",
        "1starts_with_digit",
        "with space",
        'x"; DROP DATABASE govmail_test; --',
        "a" * 64,
        "tên_việt",
        "name\n",
    ],
)
def test_hostile_database_names_are_refused(shared_cluster: str, hostile: str) -> None:
    count_query = "SELECT count(*) FROM pg_database"
    before = scalar(shared_cluster, count_query)
    with pytest.raises(ValueError, match="database name must match"):
        create_database(shared_cluster, hostile)
    assert scalar(shared_cluster, count_query) == before
    assert scalar(shared_cluster, "SELECT current_database()") == "govmail_test"


def make_fake_install(root: Path, version: str, tools: tuple[str, ...]) -> Path:
    bindir = root / version / "bin"
    bindir.mkdir(parents=True)
    for tool in tools:
        (bindir / tool).write_bytes(b"")
    return bindir


def test_newest_complete_install_is_chosen(tmp_path: Path) -> None:
    all_tools = ("initdb", "postgres", "pg_ctl", "pg_isready")
    make_fake_install(tmp_path, "9.6", all_tools)
    expected = make_fake_install(tmp_path, "15", all_tools)
    make_fake_install(tmp_path, "17", ("pg_isready",))  # client package only
    make_fake_install(tmp_path, "common", all_tools)
    assert find_postgres_bindir(tmp_path) == expected


@pytest.mark.parametrize("layout", ["missing", "empty", "client-only"])
def test_missing_server_binaries_raise_a_clear_error(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "postgresql"
    if layout != "missing":
        root.mkdir()
    if layout == "client-only":
        make_fake_install(root, "16", ("pg_isready", "psql"))
    with pytest.raises(PostgresUnavailable, match=r"scripts/install-test-deps\.sh"):
        find_postgres_bindir(root)


def test_cluster_goes_to_a_ram_directory_only_with_room(tmp_path: Path) -> None:
    assert cluster_parent(tmp_path) == tmp_path  # the test disk has more than 4 GiB free
    assert cluster_parent(tmp_path / "missing") is None
    plain_file = tmp_path / "file"
    plain_file.write_bytes(b"")
    assert cluster_parent(plain_file) is None


def test_stop_kills_the_whole_group_when_sigquit_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pg_cluster, "STOP_TIMEOUT_SECONDS", 0.2)
    # A stand-in postmaster that ignores SIGQUIT and has a child in its process group.
    leader = subprocess.Popen(
        ["sh", "-c", 'trap "" QUIT; sleep 600 & echo $!; wait'],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert leader.stdout is not None
    child = int(leader.stdout.readline())
    stop_server(leader)
    assert leader.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while not process_ended(child):  # SIGKILL takes effect when the child is next scheduled
        assert time.monotonic() < deadline, f"process {child} outlived its group's SIGKILL"
        time.sleep(0.01)


def process_ended(pid: int) -> bool:
    """True when ``pid`` is gone or a zombie (dead, waiting for its new parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
