"""Builds the inbound and outbound pipelines from the configuration ([filters] and friends).

Check names in ``[filters] inbound`` / ``outbound``, in the order given:
  authentication  SPF, DKIM, ARC, DMARC; one Authentication-Results (inbound only)
  impersonation   warn about outside mail showing a local address it does not come from
  attachments     refuse executables and scripts (and macro documents if configured)
  antivirus       clamd (only when [clamd] enabled)
  spam            spamd (only when [spamd] enabled)
  sender_lists    per-mailbox allow and block lists of senders
  dkim_sign       RSA + Ed25519 DKIM signatures for local From domains (outbound)
An unknown name is a configuration error.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from filters.antivirus import AntivirusCheck, ClamdClient
from filters.attachments import AttachmentPolicyCheck
from filters.authentication import AuthenticationCheck
from filters.dkim_sign import DkimSignCheck
from filters.dns import DnsResolver, build_resolver
from filters.impersonation import ImpersonationCheck
from filters.pipeline import Check, Pipeline
from filters.sender_lists import SenderListCheck
from filters.spam import SpamCheck, SpamdClient
from filters.training import JunkTrainer
from mailserver.config import GovmailConfig
from mailserver.filter_config import MACRO_EXTENSIONS
from storage.accounts import find_domain

if TYPE_CHECKING:
    from mailserver.instance import Instance


class FilterConfigError(ValueError):
    """A check named in the configuration does not exist."""


def build_dns(config: GovmailConfig) -> DnsResolver:
    dns = config.dns
    static = str(config.in_data_dir(Path(dns.static_file))) if dns.static_file else ""
    return build_resolver(static, dns.system_resolver, dns.timeout_seconds, dns.nameservers)


def spamd_client(config: GovmailConfig) -> SpamdClient:
    return SpamdClient(config.spamd_address, config.spamd.timeout_seconds, config.spamd.user)


def build_junk_trainer(config: GovmailConfig) -> JunkTrainer | None:
    """The trainer IMAP calls on moves into/out of Junk; None when spamd is disabled."""
    return JunkTrainer(spamd_client(config)) if config.spamd.enabled else None


def _check_factories(
    instance: Instance, resolver: DnsResolver
) -> dict[str, Callable[[], Check | None]]:
    config = instance.config
    store = instance.store

    async def is_local_domain(domain: str) -> bool:
        return await store.read(lambda s: find_domain(s, domain) is not None)

    def attachments() -> Check:
        blocked = list(config.filters.blocked_extensions)
        if config.filters.block_macro_documents:
            blocked += MACRO_EXTENSIONS
        return AttachmentPolicyCheck(blocked)

    def spam() -> Check | None:
        s = config.spamd
        if not s.enabled:
            return None
        # A managed spamd may be (re)starting: wait for it up to one scan's timeout.
        wait = s.timeout_seconds if s.managed else 0.0
        return SpamCheck(
            spamd_client(config), s.junk_score, s.reject_score, s.max_scan_size, s.on_failure, wait
        )

    def antivirus() -> Check | None:
        c = config.clamd
        if not c.enabled:
            return None
        client = ClamdClient(c.address, c.timeout_seconds)
        return AntivirusCheck(client, c.max_scan_size, c.on_failure)

    return {
        "authentication": lambda: AuthenticationCheck(
            resolver,
            config.server.hostname,
            is_local_domain,
            config.filters.dmarc_enforcement,
            config.filters.trusted_arc_sealers,
        ),
        "impersonation": lambda: ImpersonationCheck(
            is_local_domain, config.filters.impersonation_subject_tag
        ),
        "attachments": attachments,
        "antivirus": antivirus,
        "spam": spam,
        "sender_lists": lambda: SenderListCheck(store),
        "dkim_sign": lambda: DkimSignCheck(
            store, config.dkim_key_dir, timedelta(hours=config.dkim.publish_hours)
        ),
    }


def _pipeline(names: list[str], factories: dict[str, Callable[[], Check | None]]) -> Pipeline:
    checks: list[Check] = []
    for name in names:
        factory = factories.get(name)
        if factory is None:
            known = ", ".join(sorted(factories))
            raise FilterConfigError(f"unknown filter {name!r} (known: {known})")
        check = factory()
        if check is not None:
            checks.append(check)
    return Pipeline(checks)


def build_pipelines(instance: Instance) -> tuple[Pipeline, Pipeline]:
    """(inbound, outbound) pipelines as ``[filters]`` lists them."""
    factories = _check_factories(instance, build_dns(instance.config))
    config = instance.config.filters
    return _pipeline(config.inbound, factories), _pipeline(config.outbound, factories)
