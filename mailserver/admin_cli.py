"""`govmail agency|domain|alias|group|report|token|audit ...` and more `mailbox` commands.

The CLI mirrors the admin API: every command calls the same storage operation as the matching
route, with the whole tree in scope and "cli" as the audited actor. Lists print rich tables
(or JSON with --json); the staff import shows a progress bar. As in cli.py, storage is imported
inside the commands, so that loading this module (for `govmail --help`) stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from mailserver.cli import CLI_ACTOR, ConfigOption, app, fail, mailbox_app, opened, say_empty
from storage.page_limits import MAX_PAGE_SIZE

if TYPE_CHECKING:
    from sqlmodel import Session

    from mailserver.instance import Instance
    from storage.listing import PageRequest

T = TypeVar("T")
agency_app = typer.Typer(help="The agency tree.", no_args_is_help=True)
domain_app = typer.Typer(help="Agencies' mail domains.", no_args_is_help=True)
alias_app = typer.Typer(help="Aliases (forwarding addresses).", no_args_is_help=True)
group_app = typer.Typer(help="Groups (distribution lists).", no_args_is_help=True)
report_app = typer.Typer(help="Usage reports.", no_args_is_help=True)
token_app = typer.Typer(help="Admin API tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="JSON instead of a table.")]
Limit = Annotated[int, typer.Option("--limit", help="Rows to show.", min=1, max=MAX_PAGE_SIZE)]
Offset = Annotated[int, typer.Option("--offset", help="Rows to skip.", min=0)]
Sort = Annotated[str, typer.Option("--sort", help="Field to sort by; -field descending.")]
AgencyFilterOption = Annotated[
    int | None, typer.Option("--agency", help="Only this agency's (id).", show_default=False)
]


def reading(config: Path | None, fn: Callable[[Session], T]) -> T:
    from storage.mailbox_ops import MailboxError

    with opened(config) as instance:
        try:
            return instance.db.run_read(fn)
        except (MailboxError, ValueError) as exc:
            raise fail(str(exc)) from exc


def writing(config: Path | None, fn: Callable[[Instance, Session], T]) -> T:
    from storage.mailbox_ops import MailboxError

    with opened(config) as instance:
        try:
            return instance.db.run_write(lambda session: fn(instance, session))
        except (MailboxError, ValueError) as exc:
            raise fail(str(exc)) from exc


def show(
    rows: Sequence[dict[str, Any]], columns: Iterable[str], as_json: bool, total: int, what: str
) -> None:
    """A page of ``what`` (a plural noun) as a table, or JSON; an empty page says so."""
    if as_json:
        typer.echo(json.dumps(list(rows), ensure_ascii=False, default=str))
        return
    if not rows:
        say_empty(what if total == 0 else f"{what} on this page ({total} in all)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, caption=f"{len(rows)} of {total}")
    for row in rows:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in columns))
    Console().print(table)


def page(offset: int, limit: int, sort: str) -> PageRequest:
    from storage.listing import PageRequest

    return PageRequest(offset=offset, limit=limit, sort=sort)


# ---------------------------------------------------------------- agencies


@agency_app.command("list")
def agency_list(
    q: Annotated[str, typer.Option("--q", help="Part of name or abbreviation.")] = "",
    code: Annotated[str, typer.Option("--code", help="This agency code and below.")] = "",
    parent: Annotated[int | None, typer.Option("--parent", help="Children of this id.")] = None,
    offset: Offset = 0,
    limit: Limit = 100,
    sort: Sort = "",
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List agencies with both forms of their code."""
    from storage.admin_scope import EVERYTHING
    from storage.agency_tree import AgencyFilter, list_agencies, qcvn102_or_none

    result = reading(
        config,
        lambda s: list_agencies(
            s, EVERYTHING, AgencyFilter(parent, q, code), page(offset, limit, sort)
        ),
    )
    rows = [{**a.model_dump(), "code_qcvn102": qcvn102_or_none(a.code)} for a in result.items]
    show(rows, ["id", "parent_id", "code", "code_qcvn102", "abbreviation", "name"], as_json,
         result.total, "agencies")  # fmt: skip


@agency_app.command("add")
def agency_add(
    abbreviation: str,
    name: str,
    parent: Annotated[int | None, typer.Option("--parent", help="Parent agency id.")] = None,
    code: Annotated[str | None, typer.Option("--code", help="QCVN 102 or QĐ 20 form.")] = None,
    config: ConfigOption = None,
) -> None:
    """Add an agency ABBREVIATION named NAME (a root without --parent)."""
    from storage.admin_scope import EVERYTHING
    from storage.agency_tree import add_agency

    agency_id = writing(
        config,
        lambda _i, s: add_agency(s, EVERYTHING, CLI_ACTOR, abbreviation, name, parent, code).id,
    )
    typer.echo(f"created agency {agency_id}")


@agency_app.command("update")
def agency_update(
    agency_id: int,
    name: Annotated[str | None, typer.Option("--name", help="New name.")] = None,
    abbreviation: Annotated[
        str | None, typer.Option("--abbreviation", help="New abbreviation.")
    ] = None,
    code: Annotated[
        str | None, typer.Option("--code", help="New agency code; '' clears it.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Change an agency's name, abbreviation or code (what is not given stays)."""
    from storage.admin_scope import EVERYTHING
    from storage.agency_tree import update_agency

    changes: dict[str, Any] = {"name": name, "abbreviation": abbreviation}
    if code is not None:
        changes["code"] = code
    writing(config, lambda _i, s: update_agency(s, EVERYTHING, CLI_ACTOR, agency_id, changes))
    typer.echo(f"updated agency {agency_id}")


@agency_app.command("move")
def agency_move(
    agency_id: int,
    parent: Annotated[int | None, typer.Option("--parent", help="New parent; none: root.")] = None,
    config: ConfigOption = None,
) -> None:
    """Move an agency (with everything below it) under another parent, or to the root."""
    from storage.admin_scope import EVERYTHING
    from storage.agency_tree import move_agency

    writing(config, lambda _i, s: move_agency(s, EVERYTHING, CLI_ACTOR, agency_id, parent))
    typer.echo(f"moved agency {agency_id} under {parent if parent is not None else 'the root'}")


@agency_app.command("merge")
def agency_merge(source: int, into: int, config: ConfigOption = None) -> None:
    """Move everything of SOURCE into INTO (province mergers) and delete SOURCE."""
    from storage.admin_scope import EVERYTHING
    from storage.agency_tree import merge_agency

    result = writing(config, lambda _i, s: merge_agency(s, EVERYTHING, CLI_ACTOR, source, into))
    typer.echo(f"merged agency {source} into {into}: {json.dumps(result.__dict__)}")


@agency_app.command("delete")
def agency_delete(agency_id: int, config: ConfigOption = None) -> None:
    """Delete an agency that holds nothing (no sub-agency, domain, mailbox, alias, group)."""
    from storage.admin_scope import EVERYTHING
    from storage.agency_tree import delete_agency

    writing(config, lambda _i, s: delete_agency(s, EVERYTHING, CLI_ACTOR, agency_id))
    typer.echo(f"deleted agency {agency_id}")


# ---------------------------------------------------------------- domains


@domain_app.command("list")
def domain_list(
    agency: AgencyFilterOption = None,
    offset: Offset = 0,
    limit: Limit = 100,
    sort: Sort = "",
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List mail domains: name, agency, kind (primary or legacy)."""
    from storage.admin_scope import EVERYTHING
    from storage.domain_admin import DomainFilter, list_domain_page

    filters = DomainFilter(agency_id=agency)
    result = reading(
        config, lambda s: list_domain_page(s, EVERYTHING, filters, page(offset, limit, sort))
    )
    rows = [d.model_dump() for d in result.items]
    show(rows, ["id", "name", "agency_id", "kind"], as_json, result.total, "domains")


@domain_app.command("add")
def domain_add(
    name: str,
    agency: Annotated[int, typer.Option("--agency", help="The agency it belongs to.")],
    legacy: Annotated[bool, typer.Option("--legacy", help="A legacy domain (merger).")] = False,
    config: ConfigOption = None,
) -> None:
    """Add a domain; `govmail dkim dns DOMAIN` prints the records to publish."""
    from filters.dkim_keys import ensure_keys, generate_domain_keys
    from storage.admin_scope import EVERYTHING
    from storage.domain_admin import add_domain
    from storage.models import DomainKind, utcnow

    kind = DomainKind.LEGACY if legacy else DomainKind.PRIMARY
    materials = generate_domain_keys()

    def create(instance: Instance, session: Session) -> str:
        domain = add_domain(session, EVERYTHING, CLI_ACTOR, name, agency, kind)
        ensure_keys(
            session, CLI_ACTOR, domain.name, instance.config.dkim_key_dir, utcnow(), materials
        )
        return domain.name

    created = writing(config, create)
    typer.echo(f"created domain {created}")


@domain_app.command("kind")
def domain_kind(
    domain_id: int,
    kind: Annotated[str, typer.Argument(help="primary or legacy")],
    config: ConfigOption = None,
) -> None:
    """Make a domain primary or legacy (kept after a merger: mail to it still arrives)."""
    from storage.admin_scope import EVERYTHING
    from storage.domain_admin import set_domain_kind
    from storage.models import DomainKind

    try:
        chosen = DomainKind(kind)
    except ValueError as exc:
        raise fail("kind is primary or legacy") from exc
    writing(config, lambda _i, s: set_domain_kind(s, EVERYTHING, CLI_ACTOR, domain_id, chosen))
    typer.echo(f"domain {domain_id} is {chosen.value}")


@domain_app.command("delete")
def domain_delete(domain_id: int, config: ConfigOption = None) -> None:
    """Delete a domain that holds no mailbox, alias or group (its DKIM keys go with it)."""
    from storage.admin_scope import EVERYTHING
    from storage.domain_admin import delete_domain

    writing(config, lambda _i, s: delete_domain(s, EVERYTHING, CLI_ACTOR, domain_id))
    typer.echo(f"deleted domain {domain_id}")


# ---------------------------------------------------------------- mailboxes (beyond cli.py's)


@mailbox_app.command("search")
def mailbox_search(
    q: Annotated[
        str,
        typer.Argument(help="Part of address or name, accents ignored; none: every mailbox."),
    ] = "",
    state: Annotated[
        str | None,
        typer.Option("--state", help="active, locked or disabled; none: any.", show_default=False),
    ] = None,
    agency: AgencyFilterOption = None,
    never_logged_in: Annotated[
        bool | None,
        typer.Option(
            "--never-logged-in/--logged-in",
            help="Only mailboxes never logged in, or only those that have; none: both.",
            show_default=False,
        ),
    ] = None,
    offset: Offset = 0,
    limit: Limit = 50,
    sort: Sort = "",
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Search, filter and sort mailboxes (a table of one page)."""
    from storage.admin_scope import EVERYTHING
    from storage.mailbox_admin import MailboxFilter, list_mailbox_page

    filters = MailboxFilter(q, state, agency, None, never_logged_in)
    result = reading(
        config, lambda s: list_mailbox_page(s, EVERYTHING, filters, page(offset, limit, sort))
    )
    rows = [m.model_dump(exclude={"password_hash", "search_text"}) for m in result.items]
    show(rows, ["id", "address", "display_name", "state", "used_bytes", "last_login_at"],
         as_json, result.total, "mailboxes")  # fmt: skip


def _by_address(address: str) -> Callable[[Session], int]:
    from storage.admin_scope import EVERYTHING
    from storage.mailbox_admin import find_mailbox_in_scope

    def find(session: Session) -> int:
        mailbox_id = find_mailbox_in_scope(session, EVERYTHING, address).id
        assert mailbox_id is not None
        return mailbox_id

    return find


@mailbox_app.command("update")
def mailbox_update(
    address: str,
    name: Annotated[str | None, typer.Option("--name", help="Display name (full name).")] = None,
    position: Annotated[str | None, typer.Option("--position", help="Job title.")] = None,
    quota_mb: Annotated[int | None, typer.Option("--quota-mb", min=1, help="Quota in MiB.")] = None,
    must_change: Annotated[
        bool | None,
        typer.Option(
            "--must-change/--no-must-change",
            help="Force (or stop forcing) a password change at next login.",
            show_default=False,
        ),
    ] = None,
    agency: Annotated[
        int | None, typer.Option("--agency", help="Move to this agency (id).", show_default=False)
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Display name, position, quota, agency, or a forced password change at next login."""
    from storage.admin_scope import EVERYTHING
    from storage.mailbox_admin import MailboxChanges, update_mailbox

    changes = MailboxChanges(
        name, position, quota_mb * 1024 * 1024 if quota_mb else None, must_change, agency
    )
    writing(
        config,
        lambda _i, s: update_mailbox(s, EVERYTHING, CLI_ACTOR, _by_address(address)(s), changes),
    )
    typer.echo(f"updated {address.lower()}")


def _state_command(state: str, verb: str) -> Callable[..., None]:
    """A command setting a mailbox's state (a storage.models.MailboxState value)."""

    def command(address: str, config: ConfigOption = None) -> None:
        from storage.admin_scope import EVERYTHING
        from storage.mailbox_admin import change_state
        from storage.models import MailboxState

        chosen = MailboxState(state)
        writing(
            config,
            lambda _i, s: change_state(s, EVERYTHING, CLI_ACTOR, _by_address(address)(s), chosen),
        )
        typer.echo(f"{verb} {address.lower()}")

    return command


mailbox_app.command("lock", help="No more logins; mail still arrives.")(
    _state_command("locked", "locked")
)
mailbox_app.command("unlock", help="Active again.")(_state_command("active", "unlocked"))
mailbox_app.command("disable", help="No logins and no mail.")(
    _state_command("disabled", "disabled")
)


@mailbox_app.command("retire")
def mailbox_retire(address: str, config: ConfigOption = None) -> None:
    """A leaver: disabled now, deleted with its data after the retention period."""
    from datetime import timedelta

    from storage.admin_scope import EVERYTHING
    from storage.mailbox_admin import retire_mailbox

    def retire(instance: Instance, session: Session) -> str:
        days = instance.config.provisioning.leaver_retention_days
        mailbox = retire_mailbox(
            session, EVERYTHING, CLI_ACTOR, _by_address(address)(session), timedelta(days=days)
        )
        assert mailbox.disabled_at is not None
        return (mailbox.disabled_at + timedelta(days=days)).isoformat(timespec="seconds")

    typer.echo(f"disabled {address.lower()}; delete after {writing(config, retire)}")


@mailbox_app.command("purge")
def mailbox_purge(config: ConfigOption = None) -> None:
    """Delete every leaver whose retention period is over."""
    from datetime import timedelta

    from storage.admin_scope import EVERYTHING
    from storage.mailbox_admin import purge_retired
    from storage.models import utcnow

    def purge(instance: Instance, session: Session) -> list[str]:
        days = instance.config.provisioning.leaver_retention_days
        return purge_retired(session, EVERYTHING, CLI_ACTOR, utcnow(), timedelta(days=days))

    deleted = writing(config, purge)
    if not deleted:
        say_empty("leavers past their retention period")
    for address in deleted:
        typer.echo(f"deleted {address}")


@mailbox_app.command("send-as")
def mailbox_send_as(
    address: str,
    delegate: Annotated[str, typer.Argument(help="The address it may send as.")],
    remove: Annotated[bool, typer.Option("--remove", help="Revoke instead.")] = False,
    config: ConfigOption = None,
) -> None:
    """Let ADDRESS send as DELEGATE (or --remove that right)."""
    from storage.admin_scope import EVERYTHING
    from storage.mailbox_admin import grant_send_as, revoke_send_as

    action = revoke_send_as if remove else grant_send_as
    writing(
        config,
        lambda _i, s: action(s, EVERYTHING, CLI_ACTOR, _by_address(address)(s), delegate),
    )
    typer.echo(f"{'revoked' if remove else 'granted'} send-as {delegate.lower()} for {address}")


@mailbox_app.command("import")
def mailbox_import(
    csv_file: Annotated[Path, typer.Argument(help="full_name,agency,position[,address]")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan and report only.")] = False,
    links: Annotated[
        bool, typer.Option("--links", help="One-time set-password links, not passwords.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the per-row report (CSV) here.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Bulk-create staff mailboxes (idempotent); the report holds initial passwords or links.

    Exits with status 1 when any row failed (each failed row and its reason on stderr); the
    rows that did not fail are created all the same, and the report lists every row.
    """
    from datetime import timedelta

    from rich.console import Console
    from rich.progress import Progress

    from mailserver.instance import initial_password_params, setup_link_prefix
    from storage.admin_scope import EVERYTHING
    from storage.mailbox_ops import MailboxError
    from storage.models import utcnow
    from storage.password_batch import PasswordHashPool
    from storage.staff_import import (
        Credentials,
        ImportOptions,
        import_report_csv,
        run_staff_import,
    )

    try:
        text = csv_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {csv_file}: {exc}") from exc
    with opened(config) as instance:
        settings = instance.config
        options = ImportOptions(
            actor=CLI_ACTOR,
            quota_bytes=settings.storage.default_quota_mb * 1024 * 1024,
            now=utcnow(),
            dry_run=dry_run,
            credentials=Credentials.LINK if links else Credentials.PASSWORD,
            link_ttl=timedelta(hours=settings.provisioning.setup_link_hours),
            link_base_url=setup_link_prefix(settings),
        )

        params = initial_password_params(settings)
        with (
            PasswordHashPool(params, settings.provisioning.hash_workers) as hasher,
            Progress(console=Console(stderr=True)) as progress,
        ):
            task = progress.add_task("creating mailboxes", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            try:
                result = run_staff_import(
                    text,
                    EVERYTHING,
                    options,
                    instance.db.run_read,
                    instance.db.run_write,
                    hasher,
                    advance,
                )
            except MailboxError as exc:
                raise fail(str(exc)) from exc
    rendered = import_report_csv(result)
    if report is not None:
        report.write_text(rendered, encoding="utf-8")
        report.chmod(0o600)
    else:
        typer.echo(rendered, nl=False)
    summary = ", ".join(f"{count} {status}" for status, count in result.summary().items())
    failed = result.failed()
    for row in failed:
        typer.echo(f"line {row.line}: {row.message}", err=True)
    typer.echo(summary, err=True)
    if failed:
        raise fail(f"{len(failed)} of {len(result.rows)} rows failed (see above)")


# ---------------------------------------------------------------- aliases and groups


@alias_app.command("list")
def alias_list(
    q: Annotated[str, typer.Option("--q", help="Part of the address.")] = "",
    offset: Offset = 0,
    limit: Limit = 100,
    sort: Sort = "",
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List aliases and where mail to each goes."""
    from storage.admin_scope import EVERYTHING
    from storage.directory_admin import DirectoryFilter, alias_targets, list_alias_page

    result = reading(
        config,
        lambda s: list_alias_page(s, EVERYTHING, DirectoryFilter(q), page(offset, limit, sort)),
    )
    rows = [{**a.model_dump(), "targets": " ".join(alias_targets(a))} for a in result.items]
    show(rows, ["id", "address", "targets", "owner_mailbox_id"], as_json, result.total, "aliases")


@alias_app.command("add")
def alias_add(
    address: str,
    targets: Annotated[list[str], typer.Argument(help="Where mail to it goes.")],
    config: ConfigOption = None,
) -> None:
    """Create an alias ADDRESS forwarding to one or more TARGETS."""
    from storage.admin_scope import EVERYTHING
    from storage.directory_admin import create_alias

    writing(config, lambda _i, s: create_alias(s, EVERYTHING, CLI_ACTOR, address, targets))
    typer.echo(f"created alias {address.lower()}")


@alias_app.command("delete")
def alias_delete(alias_id: int, config: ConfigOption = None) -> None:
    """Delete an alias (by id, as `alias list` shows it)."""
    from storage.admin_scope import EVERYTHING
    from storage.directory_admin import delete_alias

    writing(config, lambda _i, s: delete_alias(s, EVERYTHING, CLI_ACTOR, alias_id))
    typer.echo(f"deleted alias {alias_id}")


@group_app.command("list")
def group_list(
    q: Annotated[str, typer.Option("--q", help="Part of the address or name.")] = "",
    offset: Offset = 0,
    limit: Limit = 100,
    sort: Sort = "",
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List groups with their send policy."""
    from storage.admin_scope import EVERYTHING
    from storage.directory_admin import DirectoryFilter, list_group_page

    result = reading(
        config,
        lambda s: list_group_page(s, EVERYTHING, DirectoryFilter(q), page(offset, limit, sort)),
    )
    rows = [g.model_dump() for g in result.items]
    show(rows, ["id", "address", "display_name", "send_policy"], as_json, result.total, "groups")


@group_app.command("add")
def group_add(
    address: str,
    members: Annotated[list[str] | None, typer.Argument(help="Member addresses.")] = None,
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    policy: Annotated[str, typer.Option("--policy", help="Who may send.")] = "members",
    config: ConfigOption = None,
) -> None:
    """Create a group ADDRESS with its first MEMBERS."""
    from storage.admin_scope import EVERYTHING
    from storage.directory_admin import create_group

    writing(
        config,
        lambda _i, s: create_group(s, EVERYTHING, CLI_ACTOR, address, name, policy, members or []),
    )
    typer.echo(f"created group {address.lower()}")


@group_app.command("update")
def group_update(
    group_id: int,
    name: Annotated[str | None, typer.Option("--name", help="New display name.")] = None,
    policy: Annotated[str | None, typer.Option("--policy", help="Who may send.")] = None,
    config: ConfigOption = None,
) -> None:
    """Change a group's display name or send policy."""
    from storage.admin_scope import EVERYTHING
    from storage.directory_admin import update_group

    writing(config, lambda _i, s: update_group(s, EVERYTHING, CLI_ACTOR, group_id, name, policy))
    typer.echo(f"updated group {group_id}")


@group_app.command("members")
def group_members(
    group_id: int,
    add: Annotated[list[str] | None, typer.Option("--add", help="Address to add.")] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", help="Address to remove.")] = None,
    config: ConfigOption = None,
) -> None:
    """Add and remove members."""
    from storage.admin_scope import EVERYTHING
    from storage.directory_admin import add_group_members, remove_group_member

    def change(_instance: Instance, session: Session) -> None:
        if add:
            add_group_members(session, EVERYTHING, CLI_ACTOR, group_id, add)
        for address in remove or []:
            remove_group_member(session, EVERYTHING, CLI_ACTOR, group_id, address)

    writing(config, change)
    typer.echo(f"updated group {group_id}")


@group_app.command("delete")
def group_delete(group_id: int, config: ConfigOption = None) -> None:
    """Delete a group (by id, as `group list` shows it)."""
    from storage.admin_scope import EVERYTHING
    from storage.directory_admin import delete_group

    writing(config, lambda _i, s: delete_group(s, EVERYTHING, CLI_ACTOR, group_id))
    typer.echo(f"deleted group {group_id}")


# ---------------------------------------------------------------- report, tokens, audit


@report_app.command("usage")
def report_usage(
    since: Annotated[str | None, typer.Option("--since", help="YYYY-MM-DD (1 January)")] = None,
    until: Annotated[str | None, typer.Option("--until", help="YYYY-MM-DD, exclusive")] = None,
    output_format: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    config: ConfigOption = None,
) -> None:
    """Per agency and for the whole tree: provisioned, active 7/30 days, sent, received, ..."""
    from datetime import date, timedelta

    from storage.admin_scope import EVERYTHING
    from storage.models import utcnow
    from storage.usage_report import build_usage_report, report_csv, report_json

    now = utcnow()
    try:
        first = date.fromisoformat(since) if since else date(now.year, 1, 1)
        end = date.fromisoformat(until) if until else now.date() + timedelta(days=1)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    if output_format not in ("csv", "json"):
        raise fail("--format is csv or json")
    result = reading(config, lambda s: build_usage_report(s, EVERYTHING, first, end, now))
    typer.echo(report_csv(result) if output_format == "csv" else report_json(result), nl=False)


@token_app.command("list")
def token_list(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """List admin API tokens (never the tokens themselves): role, agency, expiry, revocation."""
    from storage.admin_scope import EVERYTHING
    from storage.tokens import list_token_page

    result = reading(config, lambda s: list_token_page(s, EVERYTHING, page(0, MAX_PAGE_SIZE, "")))
    rows = [t.model_dump(exclude={"token_sha256"}) for t in result.items]
    show(rows, ["id", "name", "role", "agency_id", "expires_at", "revoked_at"], as_json,
         result.total, "tokens")  # fmt: skip


@token_app.command("issue")
def token_issue(
    name: str,
    role: Annotated[str, typer.Option("--role", help="system_admin, agency_admin, auditor")],
    agency: Annotated[
        int | None, typer.Option("--agency", help="The agency of an agency_admin token (id).")
    ] = None,
    days: Annotated[int | None, typer.Option("--days", help="Valid for; none: no expiry.")] = 90,
    config: ConfigOption = None,
) -> None:
    """Print a new token once (only its hash is kept)."""
    from datetime import timedelta

    from storage.models import utcnow
    from storage.tokens import ApiRole, issue_token

    try:
        chosen = ApiRole(role)
    except ValueError as exc:
        raise fail(f"unknown role {role!r}") from exc
    if chosen == ApiRole.AGENCY_ADMIN and agency is None:
        raise fail("an agency admin token needs --agency")
    expires = utcnow() + timedelta(days=days) if days else None
    token = writing(config, lambda _i, s: issue_token(s, CLI_ACTOR, name, chosen, agency, expires))
    typer.echo(token)


@token_app.command("revoke")
def token_revoke(token_id: int, config: ConfigOption = None) -> None:
    """Revoke a token (by id, as `token list` shows it): it stops working at once."""
    from storage.admin_scope import EVERYTHING
    from storage.tokens import revoke_token

    writing(config, lambda _i, s: revoke_token(s, EVERYTHING, CLI_ACTOR, token_id))
    typer.echo(f"revoked token {token_id}")


@audit_app.command("list")
def audit_list(
    action: Annotated[str | None, typer.Option("--action", help="Exact, or 'prefix.'")] = None,
    object_id: Annotated[
        str | None, typer.Option("--object", help="The object's id (an address, a number).")
    ] = None,
    offset: Offset = 0,
    limit: Limit = 50,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Admin actions, newest first: when, who, what, on which object."""
    from storage.admin_scope import EVERYTHING
    from storage.audit_log import AuditFilter, list_audit_page

    filters = AuditFilter(action=action, object_id=object_id)
    result = reading(
        config, lambda s: list_audit_page(s, EVERYTHING, filters, page(offset, limit, ""))
    )
    rows = [e.model_dump() for e in result.items]
    show(rows, ["at", "actor", "action", "object_type", "object_id"], as_json, result.total,
         "audit events")  # fmt: skip


for sub_app, name in (
    (agency_app, "agency"),
    (domain_app, "domain"),
    (alias_app, "alias"),
    (group_app, "group"),
    (report_app, "report"),
    (token_app, "token"),
    (audit_app, "audit"),
):
    app.add_typer(sub_app, name=name)
