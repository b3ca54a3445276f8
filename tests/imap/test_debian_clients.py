"""Debian's fetchmail and offlineimap3 reading and syncing a mailbox over implicit TLS."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from pathlib import Path

import pytest

from tests.imap.helpers import SAMPLE, USER, RawClient, deliver
from tests.support.harness import TEST_PASSWORD, LiveServer
from tests.support.requirements import require_program


def _fingerprint(cert_file: Path) -> str:
    """SHA-512 of the certificate's DER form: offlineimap pins it instead of checking names."""
    der = ssl.PEM_cert_to_DER_cert(cert_file.read_text())
    return hashlib.sha512(der).hexdigest()


async def _run(*argv: str, env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    return text


async def test_fetchmail_reads_and_marks_seen(bulk_server: LiveServer, tmp_path: Path) -> None:
    fetchmail = require_program("fetchmail", "fetchmail")
    await bulk_server.add_mailbox(USER)
    await deliver(bulk_server, SAMPLE)
    host, port = bulk_server.address("imaps")
    out = tmp_path / "fetched.eml"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f"poll {host} service {port} proto IMAP auth password\n"
        f'  user "{USER}" there with password "{TEST_PASSWORD}" is "local" here\n'
        f"  options keep ssl no sslcertck\n"
        f"  mda \"/bin/sh -c 'cat > {out}'\"\n"
    )
    rc.chmod(0o600)
    await _run(
        fetchmail, "-f", str(rc), "--nodetach", "--nosyslog", env={"FETCHMAILHOME": str(tmp_path)}
    )
    fetched = out.read_bytes()
    # fetchmail adds its own Received line; our bytes follow unchanged (LF line ends for MDAs).
    assert fetched.replace(b"\r\n", b"\n").endswith(SAMPLE.replace(b"\r\n", b"\n"))
    client = await RawClient.connect(bulk_server)
    await client.login()
    await client.command("SELECT INBOX")
    untagged, _ = await client.command("FETCH 1 (FLAGS)")
    assert untagged == [b"* 1 FETCH (FLAGS (\\Seen))"]
    await client.close()


@pytest.mark.timeout(120)
async def test_offlineimap_syncs_folders_and_flags(bulk_server: LiveServer, tmp_path: Path) -> None:
    offlineimap = require_program("offlineimap", "offlineimap3")
    await bulk_server.add_mailbox(USER)
    for _ in range(3):
        await deliver(bulk_server, SAMPLE)
    host, port = bulk_server.address("imaps")
    local = tmp_path / "Maildir"
    conf = tmp_path / "offlineimaprc"
    conf.write_text(
        "[general]\naccounts = gov\nmetadata = {meta}\n\n"
        "[Account gov]\nlocalrepository = local\nremoterepository = remote\n\n"
        "[Repository local]\ntype = Maildir\nlocalfolders = {local}\n\n"
        "[Repository remote]\ntype = IMAP\nremotehost = {host}\nremoteport = {port}\n"
        "remoteuser = {user}\nremotepass = {password}\nssl = yes\n"
        "cert_fingerprint = {fingerprint}\n"
        "folderfilter = lambda f: f in ['INBOX', 'Archive']\n".format(
            meta=tmp_path / "meta",
            local=local,
            host=host,
            port=port,
            user=USER,
            password=TEST_PASSWORD,
            fingerprint=_fingerprint(bulk_server.config.cert_file),
        )
    )
    await _run(offlineimap, "-c", str(conf), "-o", "-u", "basic")
    inbox = local / "INBOX"
    files = [p for sub in ("cur", "new") for p in (inbox / sub).iterdir()]
    assert len(files) == 3
    first = sorted(files)[0]
    first.rename(inbox / "cur" / (first.name.split(":2,")[0] + ":2,FS"))
    await _run(offlineimap, "-c", str(conf), "-o", "-u", "basic")
    client = await RawClient.connect(bulk_server)
    await client.login()
    await client.command("SELECT INBOX")
    untagged, _ = await client.command("SEARCH FLAGGED SEEN")
    assert len(untagged) == 1 and len(untagged[0].split()) == 3
    await client.close()
