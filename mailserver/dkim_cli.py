"""`govmail dkim`: the DNS records a domain needs, and DKIM key rotation.

  govmail dkim dns DOMAIN [--config FILE]
  govmail dkim rotate DOMAIN [--immediate] [--config FILE]
Both create the domain's first keys if it has none.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mailserver.cli import CLI_ACTOR, ConfigOption, fail, opened

dkim_app: typer.Typer = typer.Typer(
    help="DKIM keys and the DNS records of a domain.", no_args_is_help=True
)


def _domain(name: str) -> str:
    from storage.accounts import normalise_address

    try:
        return normalise_address(f"x@{name}").partition("@")[2]
    except ValueError as exc:
        raise fail(str(exc)) from exc


@dkim_app.command("dns")
def dkim_dns(
    domain: str,
    config: ConfigOption = None,
) -> None:
    """Print every DNS record the domain needs: DKIM, SPF, DMARC, MX, SRV, autoconfig."""
    from filters.dkim_keys import ensure_keys, published_keys
    from mailserver.dns_records import client_endpoints, domain_records
    from storage.mailbox_ops import MailboxError
    from storage.models import utcnow

    name = _domain(domain)
    with opened(config) as instance:
        try:
            with instance.db.write_session() as session:
                keys = published_keys(
                    ensure_keys(session, CLI_ACTOR, name, instance.config.dkim_key_dir, utcnow()),
                    utcnow(),
                )
                lines = domain_records(
                    name, instance.config.server.hostname, keys, client_endpoints(instance.config)
                )
        except MailboxError as exc:
            raise fail(str(exc)) from exc
    typer.echo("\n".join(lines))


@dkim_app.command("rotate")
def dkim_rotate(
    domain: str,
    immediate: Annotated[
        bool,
        typer.Option("--immediate", help="Sign with the new keys at once (a key leaked)."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Make new RSA and Ed25519 selectors; old ones stay published for the overlap period."""
    from datetime import timedelta

    from filters.dkim_keys import rotate_keys
    from mailserver.dns_records import client_endpoints, domain_records
    from storage.mailbox_ops import MailboxError
    from storage.models import utcnow

    name = _domain(domain)
    now = utcnow()
    with opened(config) as instance:
        settings = instance.config
        try:
            with instance.db.write_session() as session:
                created = rotate_keys(
                    session,
                    CLI_ACTOR,
                    name,
                    settings.dkim_key_dir,
                    now,
                    timedelta(hours=settings.dkim.publish_hours),
                    timedelta(days=settings.dkim.overlap_days),
                    immediate,
                )
                records = domain_records(
                    name, settings.server.hostname, created, client_endpoints(settings)
                )
        except MailboxError as exc:
            raise fail(str(exc)) from exc
    starts = now + timedelta(hours=0 if immediate else settings.dkim.publish_hours)
    retires = starts + timedelta(days=settings.dkim.overlap_days)
    typer.echo(f"new selectors for {name}: {', '.join(k.selector for k in created)}")
    typer.echo("publish now:")
    typer.echo("\n".join(line for line in records if "._domainkey." in line))
    typer.echo(f"they sign from {starts.isoformat(timespec='minutes')}")
    typer.echo(f"the old selectors stay published until {retires.isoformat(timespec='minutes')}")
