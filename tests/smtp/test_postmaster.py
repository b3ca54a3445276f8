"""postmaster@ every local domain (RFC 5321 4.5.1): always accepted, bare or with a domain, made
a mailbox on first use unless the domain has its own; the outbound-limit alert reaches it."""

from __future__ import annotations

from pathlib import Path

import aiosmtplib
import pytest

from storage.accounts import find_mailbox
from tests.smtp.helpers import (
    DOMAIN,
    Dialogue,
    add_alias,
    folder_messages,
    mailbox_state,
    message,
    submit_tls,
)
from tests.support.harness import LiveServer, start_live_server
from tests.support.harness import test_config as make_config

USER = f"an@{DOMAIN}"
OTHER_DOMAIN = "soyte.gov.vn"


async def _deliver(server: LiveServer, rcpts: list[str]) -> list[str]:
    dialogue = await Dialogue.open(server.address("smtp_mx"))
    replies = [await dialogue.last("MAIL FROM:<someone@example.org>")]
    replies += [await dialogue.last(f"RCPT TO:<{rcpt}>") for rcpt in rcpts]
    replies.append(await dialogue.last("DATA"))
    body = message("someone@example.org", "postmaster").decode()
    replies.append(await dialogue.last(body + "."))  # the body, then the end of data
    await dialogue.close()
    return replies


async def test_postmaster_is_always_accepted_and_becomes_a_mailbox(
    live_server: LiveServer,
) -> None:
    await live_server.add_domain(OTHER_DOMAIN, "soyte")
    replies = await _deliver(
        live_server, ["postmaster", f"Postmaster@{DOMAIN}", f"POSTMASTER@{OTHER_DOMAIN}"]
    )
    assert replies[:4] == ["250 2.1.0 OK", "250 2.1.5 OK", "250 2.1.5 OK", "250 2.1.5 OK"]
    assert replies[-1].startswith("250 2.0.0 OK queued as ")
    # The bare postmaster is the first domain's (one copy: both recipients are one mailbox).
    assert len(await folder_messages(live_server, f"postmaster@{DOMAIN}")) == 1
    assert len(await folder_messages(live_server, f"postmaster@{OTHER_DOMAIN}")) == 1

    def account(session: object) -> tuple[str, str] | None:
        mailbox = find_mailbox(session, f"postmaster@{DOMAIN}")  # type: ignore[arg-type]
        return (mailbox.state, mailbox.password_hash) if mailbox else None

    # Nobody can log in until an admin sets a password.
    assert await live_server.running.instance.store.read(account) == ("active", "")
    # Still no relaying: postmaster of a domain that is not ours is refused.
    assert (await _deliver(live_server, ["postmaster@example.org"]))[1] == (
        "550 5.7.1 Relaying denied: not a local domain"
    )


async def test_a_postmaster_alias_of_the_domain_is_kept(live_server: LiveServer) -> None:
    await live_server.add_mailbox(USER)
    await add_alias(live_server, f"postmaster@{DOMAIN}", [USER])
    replies = await _deliver(live_server, ["postmaster"])
    assert replies[-1].startswith("250 2.0.0 OK queued as ")
    assert len(await folder_messages(live_server, USER)) == 1
    assert (
        await live_server.running.instance.store.read(
            lambda s: find_mailbox(s, f"postmaster@{DOMAIN}")
        )
        is None
    )


async def test_the_outbound_limit_alert_reaches_a_postmaster_made_for_it(
    tmp_path: Path, db_url: str
) -> None:
    routing: dict[str, object] = {
        "routes": [{"domain": ".example.org", "host": "127.0.0.1", "port": 9, "tls": "none"}]
    }
    config = make_config(
        tmp_path / "d", db_url, smtp={"outbound_limit_recipients": 1}, routing=routing
    )
    live = await start_live_server(config)
    try:
        await live.add_domain()
        await live.add_mailbox(USER)
        await submit_tls(live, USER, USER, ["r1@example.org"], message(USER, "r1@example.org"))
        with pytest.raises(aiosmtplib.SMTPDataError):
            await submit_tls(live, USER, USER, ["r2@example.org"], message(USER, "r2"))
        assert await mailbox_state(live, USER) == "locked"
        (alert,) = await folder_messages(live, f"postmaster@{DOMAIN}")
        assert b"Subject: [govmail] Account locked: an@sotest.gov.vn" in alert
    finally:
        await live.running.stop(grace=1.0)
