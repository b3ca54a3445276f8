"""SEARCH over a real connection: date keys (RFC 3501 6.4.4) and flag keys.

Cases follow Dovecot's imaptest scripted groups (search-date, search-flags).
"""

from __future__ import annotations

from tests.imap.helpers import USER, RawClient, deliver
from tests.support.harness import LiveServer


def _dated(date: str) -> bytes:
    header = f"From: a@sotest.gov.vn\r\nTo: {USER}\r\nDate: {date}\r\nSubject: d\r\n"
    return (header + "\r\nx\r\n").encode()


async def test_sent_dates_use_the_date_header_own_zone(protocol_server: LiveServer) -> None:
    await protocol_server.add_mailbox(USER)
    # 1: the 24th late in +0200 (21:00 UTC, still the 24th); 2: the 25th just after midnight
    # in +0300 (the 24th in UTC); 3: the 24th late in -0500 (the 25th in UTC).
    for date in (
        "Sat, 24 Mar 2007 23:00:00 +0200",
        "Sun, 25 Mar 2007 01:00:00 +0300",
        "Sat, 24 Mar 2007 22:00:00 -0500",
    ):
        await deliver(protocol_server, _dated(date))
    client = await RawClient.connect(protocol_server)
    await client.login()
    await client.command("SELECT INBOX")
    expected = {
        "SENTON 24-Mar-2007": b"* SEARCH 1 3",
        "SENTON 25-Mar-2007": b"* SEARCH 2",
        "SENTBEFORE 25-Mar-2007": b"* SEARCH 1 3",
        "SENTSINCE 25-Mar-2007": b"* SEARCH 2",
        "NOT SENTON 25-Mar-2007": b"* SEARCH 1 3",
    }
    for criteria, answer in expected.items():
        untagged, status = await client.command(f"SEARCH {criteria}")
        assert status == b"OK SEARCH completed", criteria
        assert untagged == [answer], criteria
    await client.close()


async def test_esearch_min_max_report_the_modseq_of_what_they_return(
    protocol_server: LiveServer,
) -> None:
    await protocol_server.add_mailbox(USER)
    for _ in range(3):
        await deliver(protocol_server, _dated("Sat, 24 Mar 2007 23:00:00 +0200"))
    client = await RawClient.connect(protocol_server)
    await client.login()
    await client.command("SELECT INBOX")
    # A CONDSTORE-enabling FETCH in the selected state announces HIGHESTMODSEQ (RFC 7162 3.1).
    untagged, _ = await client.command("FETCH 1 MODSEQ")
    assert untagged[0].startswith(b"* OK [HIGHESTMODSEQ ")
    modseqs = {}
    for seq in (1, 3, 2):  # stored out of order: message 2 gets the highest MODSEQ
        untagged, _ = await client.command(f"STORE {seq} +FLAGS.SILENT (\\Seen)")
        modseqs[seq] = int(untagged[0].split(b"MODSEQ (")[1].rstrip(b"))"))
    cases = {
        "(MIN)": f"MIN 1 MODSEQ {modseqs[1]}",
        "(MAX)": f"MAX 3 MODSEQ {modseqs[3]}",
        "(MIN MAX)": f"MIN 1 MAX 3 MODSEQ {modseqs[3]}",
        "()": f"ALL 1:3 MODSEQ {modseqs[2]}",
    }
    for options, expected in cases.items():
        untagged, status = await client.command(f"SEARCH RETURN {options} MODSEQ 1")
        assert status.startswith(b"OK"), status
        tag = f"t{client.counter}"
        assert untagged == [f'* ESEARCH (TAG "{tag}") {expected}'.encode()], options
    await client.close()
