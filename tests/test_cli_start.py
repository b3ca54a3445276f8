"""`govmail` starts quickly: the CLI module, and every --help, load none of the heavy modules.

A content check, not a timing one: each case runs in a fresh interpreter and lists the modules
it loaded. benchmarks/cli_start.py has the timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.process import govmail_env

# Storage, config, the servers, the admin API, the filters and their libraries.
HEAVY = (
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "pydantic",
    "fastapi",
    "starlette",
    "uvicorn",
    "aiosmtpd",
    "dkim",
    "argon2",
    "aiospamc",
    "dns",
    "storage.models",
    "storage.db",
    "mailserver.config",
    "mailserver.serve",
    "mailserver.smtp",
    "mailserver.imap",
    "mailserver.delivery",
    "admin_api",
    "filters",
)
# Never loaded by an administration command that opens the database.
SERVERS = (
    "fastapi",
    "starlette",
    "uvicorn",
    "aiosmtpd",
    "dkim",
    "aiospamc",
    "mailserver.serve",
    "mailserver.smtp",
    "mailserver.imap",
    "admin_api",
    "filters.registry",
    "filters.spam",
    "filters.authentication",
)

# Runs every --help of the command tree (the root, each group, each command) in this process.
EVERY_HELP = """
import json, sys
import typer.main
from mailserver.cli import app

def paths(command, prefix):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from paths(sub, [*prefix, name])

failed = []
for path in list(paths(typer.main.get_command(app), [])):
    try:
        app([*path, "--help"], prog_name="govmail")
    except SystemExit as exc:
        if exc.code != 0:
            failed.append(path)
print(json.dumps({"failed": failed, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def loaded_modules(code: str, *args: str) -> list[str]:
    """The modules loaded by running ``code`` in a fresh interpreter (printed on its stdout)."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=govmail_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    modules: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return modules


def among(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_importing_the_cli_loads_no_heavy_module() -> None:
    modules = loaded_modules(
        "import json, sys, mailserver.cli; print(json.dumps(sorted(sys.modules)))"
    )
    assert "mailserver.admin_cli" in modules and "mailserver.queue_cli" in modules
    assert among(modules, HEAVY) == []


def test_every_help_page_loads_no_heavy_module() -> None:
    result = subprocess.run(
        [sys.executable, "-c", EVERY_HELP],
        capture_output=True,
        text=True,
        env=govmail_env(),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stderr.strip().splitlines()[-1])
    assert outcome["failed"] == []
    assert "Usage: govmail mailbox search" in result.stdout  # it did render the pages
    assert among(outcome["modules"], HEAVY) == []


def test_a_database_command_loads_storage_but_no_server_or_filter(tmp_path: Path) -> None:
    from mailserver.init_instance import initialise_instance

    config = initialise_instance(tmp_path / "inst", "sotest.gov.vn").config_path
    modules = loaded_modules(
        "import json, sys\n"
        "from mailserver.cli import app\n"
        "try:\n"
        "    app(['mailbox', 'list', '-c', sys.argv[1]])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "print(json.dumps(sorted(sys.modules)))",
        str(config),
    )
    assert "sqlalchemy" in modules and "storage.accounts" in modules
    assert among(modules, SERVERS) == []
