"""The `govmail` command: init, serve, and administration of an instance.

The contract outside tools rely on (keep it stable, extend freely):
  govmail init --data-dir DIR --domain DOMAIN
  govmail serve --config FILE
  govmail check [--dns] [--json] --config FILE   (exit 1 when a check fails)
  govmail mailbox add ADDRESS --password-stdin --config FILE
  govmail mailbox list --config FILE
  govmail mailbox passwd ADDRESS --config FILE
  govmail mailbox delete ADDRESS --config FILE
  govmail queue list|show ID|retry ID|delete ID|bounce ID --config FILE
  govmail dkim dns DOMAIN --config FILE
  govmail dkim rotate DOMAIN [--immediate] --config FILE
  govmail senders list ADDRESS | allow|block|remove ADDRESS PATTERN --config FILE
Every command that works on an instance takes --config FILE; without it, $GOVMAIL_CONFIG, then
./govmail.toml. Errors go to stderr as "error: ..." with exit status 1. A list that is empty
prints nothing on stdout (`[]` with --json) and says so on stderr ("no mailboxes").

Start-up time: this module and the sub-command modules it registers (queue_cli, dkim_cli,
senders_cli, admin_cli) import only typer and the standard library at the top; storage, config,
servers and filters are imported inside the commands that use them, so `govmail --help` starts
in a fraction of a second (benchmarks/cli_start.py) and a database command loads only the storage
layer. tests/test_cli_start.py checks which modules `import mailserver.cli` loads.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from mailserver.config import GovmailConfig
    from mailserver.instance import Instance

app = typer.Typer(
    name="govmail",
    help="govmail: official mail server for government agencies.",
    no_args_is_help=True,
    add_completion=False,
    # Rich tracebacks print local variables, which can hold passwords.
    pretty_exceptions_enable=False,
)
mailbox_app = typer.Typer(help="Manage mailboxes (accounts).", no_args_is_help=True)
app.add_typer(mailbox_app, name="mailbox")

CLI_ACTOR = "cli"
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: $GOVMAIL_CONFIG, ./govmail.toml).",
        show_default=False,
    ),
]


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def say_empty(what: str) -> None:
    """An empty list: nothing on stdout (scripts read it), a word for a person on stderr."""
    typer.echo(f"no {what}", err=True)


def read_config(path: Path | None) -> GovmailConfig:
    from mailserver.config import ConfigError, find_config_path, load_config

    try:
        return load_config(find_config_path(path))
    except ConfigError as exc:
        raise fail(str(exc)) from exc


@contextmanager
def opened(path: Path | None) -> Iterator[Instance]:
    """The configured instance, without the message filters (no command here filters mail)."""
    from mailserver.instance import open_instance
    from mailserver.logging_setup import configure_logging

    config = read_config(path)
    configure_logging("WARNING", config.server.log_format)
    instance = open_instance(config, filters=False)
    try:
        yield instance
    finally:
        instance.store.db.dispose()


def read_password(from_stdin: bool, confirm: bool = True) -> str:
    """The new password: first line of stdin, or asked twice on a terminal."""
    if from_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if confirm and getpass.getpass("Repeat password: ") != password:
            raise fail("the two passwords differ")
    if not password:
        raise fail("empty password")
    return password


def enforce_policy(password: str, address: str, full_name: str | None, allow_weak: bool) -> None:
    from storage.password_policy import check_password

    problems = check_password(password, address.partition("@")[0], full_name)
    if problems and not allow_weak:
        raise fail("password refused: " + "; ".join(problems))


# ---------------------------------------------------------------- init / serve


@app.command()
def init(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Directory for config and state.")],
    domain: Annotated[str, typer.Option("--domain", help="The first mail domain.")],
    hostname: Annotated[
        str | None, typer.Option("--hostname", help="This server's name (default mail.DOMAIN).")
    ] = None,
    agency_name: Annotated[
        str | None, typer.Option("--agency-name", help="Name of the agency owning the domain.")
    ] = None,
) -> None:
    """Create DATA_DIR/govmail.toml, the database, a TLS certificate and the first domain."""
    from mailserver.init_instance import InitError, initialise_instance

    try:
        result = initialise_instance(data_dir, domain, hostname, agency_name)
    except InitError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"created {result.config_path}")
    for name, address in result.listeners.items():
        typer.echo(f"  {name:<18} {address}")
    typer.echo(f"admin API token (shown once, also in {result.token_path}):")
    typer.echo(f"  {result.admin_token}")


@app.command()
def serve(config: ConfigOption = None) -> None:
    """Run every listener until SIGTERM, in worker processes (one per CPU core) and a supervisor.

    server.workers sets how many worker processes (0: one per CPU core; 1: everything in one
    process, no supervisor). The supervisor binds the SMTP and IMAP listeners and hands each
    connection to the least busy worker; the admin API runs in worker 0.
    """
    import asyncio

    from mailserver.logging_setup import configure_logging
    from mailserver.serve import serve as run_server
    from mailserver.supervisor import WorkersFailed

    settings = read_config(config)
    configure_logging(settings.server.log_level, settings.server.log_format)
    try:
        asyncio.run(run_server(settings))
    except (OSError, WorkersFailed) as exc:
        raise fail(f"cannot start: {exc}") from exc


@app.command()
def check(
    dns: Annotated[
        bool, typer.Option("--dns", help="Also compare the domains' DNS records with DNS.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Results as a JSON array.")] = False,
    config: ConfigOption = None,
) -> None:
    """Check the instance: config, TLS, DKIM keys, spamd/clamd, disk, queue, schema.

    Prints each check's status (ok, info, warn, fail) and how to fix a problem; exits 1 when
    a check fails (warnings alone exit 0). Changes nothing.
    """
    from mailserver.config import find_config_path
    from mailserver.doctor.cli import run_check_command

    raise typer.Exit(run_check_command(find_config_path(config), dns, as_json))


# ---------------------------------------------------------------- mailbox


@mailbox_app.command("add")
def mailbox_add(
    address: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    name: Annotated[str, typer.Option("--name", help="Display name (full name).")] = "",
    quota_mb: Annotated[int | None, typer.Option("--quota-mb", help="Quota in MiB.")] = None,
    allow_weak: Annotated[
        bool, typer.Option("--allow-weak-password", help="Skip the password policy.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Create a mailbox with its default folders."""
    from storage.accounts import create_mailbox
    from storage.mailbox_ops import MailboxError

    password = read_password(password_stdin)
    enforce_policy(password, address, name or None, allow_weak)
    with opened(config) as instance:
        quota = (quota_mb or instance.config.storage.default_quota_mb) * 1024 * 1024
        password_hash = instance.passwords.hash(password)
        try:
            with instance.db.write_session() as session:
                mailbox = create_mailbox(
                    session, CLI_ACTOR, address, password_hash, quota, display_name=name
                )
                created = mailbox.address
        except (MailboxError, ValueError) as exc:
            raise fail(str(exc)) from exc
    typer.echo(f"created {created}")


@mailbox_app.command("list")
def mailbox_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
    config: ConfigOption = None,
) -> None:
    """List mailboxes: address, state, used and quota in bytes, display name (tab-separated)."""
    from storage.accounts import list_mailboxes, view

    with opened(config) as instance, instance.db.read_session() as session:
        views = [view(m) for m in list_mailboxes(session)]
    if as_json:
        typer.echo(json.dumps([v.__dict__ for v in views], ensure_ascii=False))
        return
    if not views:
        say_empty("mailboxes")
    for v in views:
        typer.echo(f"{v.address}\t{v.state}\t{v.used_bytes}\t{v.quota_bytes}\t{v.display_name}")


@mailbox_app.command("passwd")
def mailbox_passwd(
    address: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    allow_weak: Annotated[
        bool, typer.Option("--allow-weak-password", help="Skip the password policy.")
    ] = False,
    must_change: Annotated[
        bool, typer.Option("--must-change", help="Force a change at next login.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Set a mailbox's password (unlocks nothing: use the state commands for that)."""
    from storage.accounts import find_mailbox, set_password
    from storage.mailbox_ops import MailboxError

    password = read_password(password_stdin)
    with opened(config) as instance:
        with instance.db.read_session() as session:
            existing = find_mailbox(session, address)
            if existing is None:
                raise fail(f"no mailbox {address}")
            full_name = existing.display_name or None
        enforce_policy(password, address, full_name, allow_weak)
        password_hash = instance.passwords.hash(password)
        try:
            with instance.db.write_session() as session:
                set_password(session, CLI_ACTOR, address, password_hash, must_change)
        except MailboxError as exc:
            raise fail(str(exc)) from exc
    typer.echo(f"password changed for {address.lower()}")


@mailbox_app.command("delete")
def mailbox_delete(address: str, config: ConfigOption = None) -> None:
    """Delete a mailbox with all its folders and messages."""
    from storage.accounts import delete_mailbox
    from storage.mailbox_ops import MailboxError

    with opened(config) as instance:
        try:
            with instance.db.write_session() as session:
                delete_mailbox(session, CLI_ACTOR, address)
        except MailboxError as exc:
            raise fail(str(exc)) from exc
    typer.echo(f"deleted {address.lower()}")


def main() -> None:
    app()


# Sub-apps in their own modules; imported last because they use the helpers above.
from mailserver.queue_cli import queue_app  # noqa: E402

app.add_typer(queue_app, name="queue")

from mailserver.dkim_cli import dkim_app  # noqa: E402

app.add_typer(dkim_app, name="dkim")

from mailserver.senders_cli import senders_app  # noqa: E402

app.add_typer(senders_app, name="senders")

import mailserver.admin_cli  # noqa: E402, F401  (registers agency/alias/group/report/token/audit)
