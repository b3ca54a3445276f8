"""Real client libraries against the server: imaplib (TLS, STARTTLS), imapclient, aioimaplib."""

from __future__ import annotations

import asyncio
import imaplib
import ssl

import aioimaplib
from imapclient import IMAPClient

from tests.imap.helpers import SAMPLE, USER, deliver
from tests.support.harness import TEST_PASSWORD, LiveServer


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test instance's certificate is self-signed
    return context


async def test_imaplib_implicit_tls_and_starttls(protocol_server: LiveServer) -> None:
    await protocol_server.add_mailbox(USER)
    await deliver(protocol_server, SAMPLE)

    def run() -> tuple[list[bytes], list[bytes], bytes]:
        host, port = protocol_server.address("imaps")
        with imaplib.IMAP4_SSL(host, port, ssl_context=_insecure_context(), timeout=30) as tls:
            assert "STARTTLS" not in tls.capabilities
            tls.login(USER, TEST_PASSWORD)
            _, count = tls.select("INBOX", readonly=True)
            _, fetched = tls.fetch("1", "(BODY[])")
            body = fetched[0][1]  # type: ignore[index]
            # EXAMINE: BODY[] must not set \Seen.
            _, flags = tls.fetch("1", "(FLAGS)")
        host, port = protocol_server.address("imap")
        with imaplib.IMAP4(host, port, timeout=30) as plain:
            assert "STARTTLS" in plain.capabilities
            plain.starttls(_insecure_context())
            assert "STARTTLS" not in plain.capabilities
            plain.authenticate("PLAIN", lambda _: f"\0{USER}\0{TEST_PASSWORD}".encode())
            assert plain.state == "AUTH"
        return count, flags, body  # type: ignore[return-value]

    count, flags, body = await asyncio.to_thread(run)
    assert count == [b"1"]
    assert flags == [b"1 (FLAGS (\\Recent))"]  # this session was the first to see it
    assert body.endswith(SAMPLE)


async def test_imapclient_folders_search_and_flags(live_server: LiveServer) -> None:
    await live_server.add_mailbox(USER)
    await deliver(live_server, SAMPLE)

    def run() -> dict[str, object]:
        host, port = live_server.address("imap")
        with IMAPClient(host, port, ssl=False, timeout=10) as client:
            client.login(USER, TEST_PASSWORD)
            out: dict[str, object] = {}
            out["folders"] = [f[2] for f in client.list_folders()]
            out["special"] = {f[2]: f[0] for f in client.list_folders()}
            client.create_folder("Công văn đến/2026")
            out["created"] = client.folder_exists("Công văn đến/2026")
            client.select_folder("INBOX")
            out["search"] = client.search(["SUBJECT", "văn bản SỐ"], charset="UTF-8")
            out["search_nfd"] = client.search(["FROM", "Nguye\u0302\u0303n"], charset="UTF-8")
            out["miss"] = client.search(["SUBJECT", "giấy mời"], charset="UTF-8")
            client.add_flags([1], ["\\Seen", "$Forwarded"])
            out["flags"] = client.get_flags([1])
            copied = client.copy([1], "Công văn đến/2026")
            out["copied"] = copied
            out["status"] = client.folder_status("Công văn đến/2026", ["MESSAGES", "UNSEEN"])
            out["quota"] = client.get_quota_root("INBOX")
            out["namespace"] = client.namespace()
            return out

    out = await asyncio.to_thread(run)
    assert out["folders"] == ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    special = out["special"]
    assert isinstance(special, dict)
    assert b"\\Trash" in special["Trash"]
    assert out["created"] is True
    assert out["search"] == [1]
    assert out["search_nfd"] == [1]
    assert out["miss"] == []
    flags = out["flags"]
    assert isinstance(flags, dict)
    assert set(flags[1]) == {b"\\Recent", b"\\Seen", b"$Forwarded"}
    assert out["status"] == {b"MESSAGES": 1, b"UNSEEN": 0}
    quota = out["quota"]
    assert isinstance(quota, tuple)
    assert quota[1][0].resource == "STORAGE"
    assert quota[1][0].limit == 100 * 1024
    namespace = out["namespace"]
    assert namespace.personal == (("", "/"),)  # type: ignore[attr-defined]


async def test_aioimaplib_idle_push(protocol_server: LiveServer) -> None:
    await protocol_server.add_mailbox(USER)
    host, port = protocol_server.address("imap")
    client = aioimaplib.IMAP4(host=host, port=port, timeout=10)
    await client.wait_hello_from_server()
    response = await client.login(USER, TEST_PASSWORD)
    assert response.result == "OK"
    await client.select("INBOX")
    idle = await client.idle_start(timeout=5)
    await deliver(protocol_server, SAMPLE)
    pushed = await asyncio.wait_for(client.wait_server_push(), 2)
    assert b"1 EXISTS" in pushed or "1 EXISTS" in str(pushed)
    client.idle_done()
    result = await asyncio.wait_for(idle, 5)
    assert result.result == "OK"
    await client.logout()
