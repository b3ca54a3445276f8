"""The ``spam`` check against a real spamd (started by conftest), and Junk training by TELL."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from filters.metrics import FILTER_COUNTERS
from filters.pipeline import Action, Direction, MessageContext, Pipeline
from filters.spam import SpamCheck, SpamdClient
from filters.training import JunkTrainer, Lesson, lesson_for_move
from storage.store import MailStore
from tests.filters.conftest import corpus_file, free_port

INBOUND = MessageContext(Direction.INBOUND, "192.0.2.1", "mx.example", "a@example.org", ("u@x.vn",))


def spam_check(address: str, *, junk: float = 5.0, reject: float = 15.0, **kw: object) -> SpamCheck:
    options: dict[str, object] = {"max_scan_size": 512 * 1024, "on_failure": "tempfail"} | kw
    return SpamCheck(SpamdClient(address, 20.0), junk, reject, **options)  # type: ignore[arg-type]


def header_of(message: bytes) -> str:
    return message.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("utf-8", "replace")


def unique(message: bytes) -> bytes:
    """The message with a Message-ID of its own: spamd remembers what it has learned."""
    token = uuid.uuid4().hex
    kept = [line for line in message.split(b"\n") if not line.lower().startswith(b"message-id:")]
    unique_message = f"Message-ID: <{token}@test.invalid>\n".encode() + b"\n".join(kept)
    return unique_message + f"\n{token}\n".encode()


def unreachable() -> str:
    return f"127.0.0.1:{free_port()}"  # nothing listens there


async def test_gtube_is_refused_at_data(spamd_address: str) -> None:
    gtube = corpus_file("t/data/spam/gtube.eml")
    result = await Pipeline([spam_check(spamd_address)]).run(gtube, INBOUND)
    assert (result.action, result.reply) == (
        Action.REJECT,
        "550 5.7.1 Message refused as spam (score 1000.0)",
    )


async def test_spam_below_the_reject_threshold_goes_to_junk_with_headers(
    spamd_address: str,
) -> None:
    gtube = corpus_file("t/data/spam/gtube.eml")
    result = await Pipeline([spam_check(spamd_address, reject=5000.0)]).run(gtube, INBOUND)
    assert result.action is Action.JUNK
    header = header_of(result.message)
    assert header.startswith(
        "X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=1000.0 required=5.0\r\n"
    )
    assert "\ttests=GTUBE," in header
    assert "X-Spam-Score: 1000.0\r\n" in header
    assert "X-Spam-Level: " + "*" * 50 + "\r\n" in header


async def test_ham_is_accepted_and_forged_spam_headers_are_replaced(spamd_address: str) -> None:
    ham = corpus_file("sample-nonspam.txt").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    forged = b"X-Spam-Status: No, score=-100\r\nX-Spam-Flag: NO\r\nX-Spam-Score: -100\r\n"
    result = await Pipeline([spam_check(spamd_address)]).run(forged + ham, INBOUND)
    assert result.action is Action.ACCEPT
    header = header_of(result.message)
    assert header.count("X-Spam-Status:") == 1 and header.count("X-Spam-Score:") == 1
    assert "X-Spam-Flag" not in header and "-100" not in header
    status = header.split("X-Spam-Status: ", 1)[1].split("\r\n", 1)[0]
    assert status.startswith("No, score=") and status.endswith(" required=5.0")
    assert float(status.split("score=")[1].split()[0]) < 5.0


async def test_spamd_down_tempfails_by_default() -> None:
    before = FILTER_COUNTERS["spamd.unavailable"]
    verdict = await spam_check(unreachable()).check(b"Subject: x\r\n\r\nhello\r\n", INBOUND)
    assert (verdict.action, verdict.reply) == (
        Action.TEMPFAIL,
        "451 4.7.1 Content scanning is unavailable, try again later",
    )
    assert FILTER_COUNTERS["spamd.unavailable"] == before + 1


async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close (the other direction may still be talking)."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


async def test_a_starting_spamd_is_waited_for(spamd_address: str) -> None:
    """With connect_wait_seconds (a managed spamd), a refused connection is retried: spamd
    appears at the address while the check waits, and the message is scanned, not refused."""
    address = unreachable()
    port = int(address.rpartition(":")[2])
    spamd_host, _, spamd_port = spamd_address.rpartition(":")

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(spamd_host, spamd_port)
        try:
            await asyncio.gather(relay(reader, upstream_writer), relay(upstream_reader, writer))
        finally:
            upstream_writer.close()
            writer.close()

    retried = FILTER_COUNTERS["spamd.connect_retried"]
    check = spam_check(address, connect_wait_seconds=20.0)
    scanning = asyncio.create_task(check.check(b"Subject: x\r\n\r\nhello\r\n", INBOUND))
    while FILTER_COUNTERS["spamd.connect_retried"] == retried:  # refused at least once
        assert not scanning.done(), scanning.result()
        await asyncio.sleep(0.01)
    server = await asyncio.start_server(forward, "127.0.0.1", port)
    try:
        verdict = await asyncio.wait_for(scanning, 30)
    finally:
        server.close()
    assert verdict.action is not Action.TEMPFAIL
    assert verdict.detail is not None and verdict.detail.startswith("score=")
    assert "MISSING_FROM" in verdict.detail  # spamd's rules ran on it


async def test_a_spamd_that_stays_down_still_tempfails_after_the_wait() -> None:
    before = FILTER_COUNTERS["spamd.connect_retried"]
    check = spam_check(unreachable(), connect_wait_seconds=0.6)
    verdict = await check.check(b"Subject: x\r\n\r\nhello\r\n", INBOUND)
    assert verdict.action is Action.TEMPFAIL
    assert FILTER_COUNTERS["spamd.connect_retried"] > before  # retried, then gave up


async def test_spamd_down_can_accept_with_a_header(caplog: pytest.LogCaptureFixture) -> None:
    check = spam_check(unreachable(), on_failure="accept")
    message = b"X-Spam-Status: No, score=-50\r\nSubject: x\r\n\r\nhello\r\n"
    result = await Pipeline([check]).run(message, INBOUND)
    assert result.action is Action.ACCEPT
    assert result.message == b"X-Spam-Status: No, unchecked\r\nSubject: x\r\n\r\nhello\r\n"
    assert "event=spamd_unavailable" in caplog.text


async def test_messages_above_the_size_cap_are_not_scanned() -> None:
    check = spam_check(unreachable(), max_scan_size=100)  # spamd would tempfail if asked
    message = b"Subject: big\r\n\r\n" + b"x" * 200 + b"\r\n"
    verdict = await check.check(message, INBOUND)
    assert verdict.action is Action.ACCEPT
    assert verdict.add_headers == (("X-Spam-Status", f"No, skipped (size {len(message)} > 100)"),)


@pytest.mark.parametrize(
    ("source", "target", "lesson"),
    [
        (None, "\\Junk", Lesson.SPAM),
        ("\\Sent", "\\Junk", Lesson.SPAM),
        ("\\Junk", None, Lesson.HAM),
        ("\\Junk", "\\Archive", Lesson.HAM),
        ("\\Junk", "\\Trash", None),  # deleting spam does not make it good mail
        ("\\Junk", "\\Junk", None),
        (None, "\\Trash", None),
        (None, None, None),
    ],
)
def test_what_a_move_teaches(source: str | None, target: str | None, lesson: Lesson | None) -> None:
    assert lesson_for_move(source, target) is lesson


async def test_moving_into_and_out_of_junk_teaches_spamd(spamd_address: str) -> None:
    trainer = JunkTrainer(SpamdClient(spamd_address, 20.0))
    spam = unique(corpus_file("t/data/spam/001"))
    assert await trainer.note_move(spam, None, "\\Junk") == "spam: learned"
    assert await trainer.note_move(spam, None, "\\Junk") == "spam: already known"
    assert await trainer.note_move(spam, "\\Junk", None) == "ham: learned"
    assert await trainer.note_move(spam, "\\Junk", "\\Trash") == "nothing to learn"


async def test_training_failure_does_not_raise() -> None:
    trainer = JunkTrainer(SpamdClient(unreachable(), 2.0))
    assert await trainer.note_move(b"Subject: x\r\n\r\ny\r\n", None, "\\Junk") == "failed"


async def test_a_committed_move_teaches_from_the_blob_store(
    spamd_address: str, mail_store: MailStore
) -> None:
    trainer = JunkTrainer(SpamdClient(spamd_address, 20.0))
    spam = unique(corpus_file("t/data/spam/002"))
    blob, _ = await mail_store.store_blob(spam)
    digests = [blob.sha256]
    assert await trainer.note_transfer(mail_store, digests, "\\Junk", "\\Trash") == []
    assert await trainer.note_transfer(mail_store, digests, None, "\\Junk") == ["spam: learned"]
