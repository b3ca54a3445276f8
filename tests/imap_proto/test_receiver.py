"""The incremental receiver: request framing, literals, limits and resynchronisation."""

from __future__ import annotations

import pytest

from mailserver.imap.receiver import (
    Event,
    Literal,
    NeedContinuation,
    RawLine,
    ReceiveError,
    Receiver,
    Request,
    find_literal_marker,
)
from mailserver.imap.response import StatusKind


def drain(receiver: Receiver) -> list[Event]:
    events: list[Event] = []
    while (event := receiver.next_event()) is not None:
        events.append(event)
    return events


def receive(data: bytes, **limits: int) -> list[Event]:
    receiver = Receiver(**limits)
    receiver.feed(data)
    return drain(receiver)


def lit(data: bytes, *, binary: bool = False, sync: bool = True) -> Literal:
    return Literal(data, binary, sync)


CASES: list[tuple[bytes, list[Event]]] = [
    (b"A001 NOOP\r\n", [Request("A001", (b"NOOP",))]),
    (b"A001 NOOP\n", [Request("A001", (b"NOOP",))]),  # bare LF
    (
        b"A003 STORE 2:4 +FLAGS (\\Deleted)\r\n",
        [Request("A003", (b"STORE 2:4 +FLAGS (\\Deleted)",))],
    ),
    (b"a NOOP\r\nb NOOP\r\n", [Request("a", (b"NOOP",)), Request("b", (b"NOOP",))]),
    (
        b"A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man\r\n",
        [
            NeedContinuation("A001", 11),
            NeedContinuation("A001", 7),
            Request("A001", (b"LOGIN ", b" ", b""), (lit(b"FRED FOOBAR"), lit(b"fat man"))),
        ],
    ),
    (
        b"A1 LOGIN {4+}\r\nuser pass\r\n",
        [Request("A1", (b"LOGIN ", b" pass"), (lit(b"user", sync=False),))],
    ),
    (
        b"A1 APPEND INBOX ~{3}\r\na\x00b\r\n",
        [
            NeedContinuation("A1", 3),
            Request("A1", (b"APPEND INBOX ", b""), (lit(b"a\x00b", binary=True),)),
        ],
    ),
    (
        b"A1 APPEND INBOX UTF8 (~{2+}\r\nhi)\r\n",
        [Request("A1", (b"APPEND INBOX UTF8 (", b")"), (lit(b"hi", binary=True, sync=False),))],
    ),
    (  # literal payload that looks like commands and line ends stays payload
        b"A1 APPEND INBOX {11+}\r\nA2 LOGOUT\r\n\r\n",
        [Request("A1", (b"APPEND INBOX ", b""), (lit(b"A2 LOGOUT\r\n", sync=False),))],
    ),
    (
        b"A1 LOGIN {0}\r\n pw\r\n",
        [NeedContinuation("A1", 0), Request("A1", (b"LOGIN ", b" pw"), (lit(b""),))],
    ),
    (  # a "{5}" inside a quoted string is not a literal marker
        b'A1 LOGIN user "pw{5}"\r\n',
        [Request("A1", (b'LOGIN user "pw{5}"',))],
    ),
    (  # an escaped quote does not end the quoted string
        b'A1 SEARCH SUBJECT "a\\" {3}"\r\n',
        [Request("A1", (b'SEARCH SUBJECT "a\\" {3}"',))],
    ),
    (b"A1 X {abc}\r\n", [Request("A1", (b"X {abc}",))]),  # not a marker: the parser says BAD
]


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_framing(data: bytes, expected: list[Event]) -> None:
    assert receive(data) == expected


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_framing_byte_by_byte(data: bytes, expected: list[Event]) -> None:
    receiver = Receiver()
    events: list[Event] = []
    for index in range(len(data)):
        receiver.feed(data[index : index + 1])
        events.extend(drain(receiver))
    assert events == expected
    assert not receiver.in_request
    assert receiver.buffered == 0


def test_request_command_name() -> None:
    (event,) = receive(b"x1 uid fetch 1 FLAGS\r\n")
    assert isinstance(event, Request)
    assert event.command_name == "UID"


def test_literal_waits_for_its_octets() -> None:
    receiver = Receiver()
    receiver.feed(b"A1 LOGIN {5}\r\n")
    assert drain(receiver) == [NeedContinuation("A1", 5)]
    assert receiver.in_request
    receiver.feed(b"us")
    assert drain(receiver) == []
    receiver.feed(b"er1 pw\r\n")
    assert drain(receiver) == [Request("A1", (b"LOGIN ", b" pw"), (lit(b"user1"),))]


def test_raw_line_mode_for_authenticate_and_idle() -> None:
    receiver = Receiver()
    receiver.feed(b"A1 AUTHENTICATE PLAIN\r\nAHVzZXIAcGFzcw==\r\nA2 IDLE\r\nDONE\r\nA3 NOOP\r\n")
    assert receiver.next_event() == Request("A1", (b"AUTHENTICATE PLAIN",))
    receiver.expect_raw_line()
    assert receiver.next_event() == RawLine(b"AHVzZXIAcGFzcw==")
    assert receiver.next_event() == Request("A2", (b"IDLE",))
    receiver.expect_raw_line()
    assert receiver.next_event() == RawLine(b"DONE")
    assert receiver.next_event() == Request("A3", (b"NOOP",))
    assert receiver.next_event() is None


def test_raw_line_keeps_literal_looking_text() -> None:
    receiver = Receiver()
    receiver.expect_raw_line()
    receiver.feed(b"* {5}\n")
    assert drain(receiver) == [RawLine(b"* {5}")]


def test_raw_line_too_long() -> None:
    receiver = Receiver(max_line_length=10)
    receiver.expect_raw_line()
    receiver.feed(b"x" * 50)
    assert drain(receiver) == [ReceiveError(None, StatusKind.BAD, "TOOBIG", "Line too long")]
    receiver.feed(b"yyy\r\nA1 NOOP\r\n")
    assert drain(receiver) == [Request("A1", (b"NOOP",))]


# --- limits and resynchronisation ------------------------------------------------------------


def test_line_too_long_resyncs_on_next_line() -> None:
    receiver = Receiver(max_line_length=100)
    receiver.feed(b"A1 SEARCH " + b"X" * 500)
    (error,) = drain(receiver)
    assert error == ReceiveError("A1", StatusKind.BAD, "TOOBIG", "Command line too long")
    receiver.feed(b"X" * 10_000)
    assert drain(receiver) == []
    assert receiver.buffered <= 100  # nothing grows without bound
    receiver.feed(b"\r\nA2 NOOP\r\n")
    assert drain(receiver) == [Request("A2", (b"NOOP",))]


def test_complete_line_too_long() -> None:
    events = receive(b"A1 " + b"N" * 200 + b"\r\nA2 NOOP\r\n", max_line_length=100)
    assert events == [
        ReceiveError("A1", StatusKind.BAD, "TOOBIG", "Command line too long"),
        Request("A2", (b"NOOP",)),
    ]


def test_too_big_sync_literal_is_refused_without_continuation() -> None:
    events = receive(b"A1 LOGIN {200000}\r\nA2 NOOP\r\n")
    assert events == [
        ReceiveError("A1", StatusKind.NO, "TOOBIG", "Literal too big (limit 102400 octets)"),
        Request("A2", (b"NOOP",)),
    ]


def test_append_has_its_own_literal_limit() -> None:
    events = receive(b"A1 APPEND INBOX {200000}\r\n", max_literal_size=300_000)
    assert events == [NeedContinuation("A1", 200_000)]
    events = receive(b"A1 APPEND INBOX {200000}\r\n", max_literal_size=1000)
    assert events == [
        ReceiveError("A1", StatusKind.NO, "TOOBIG", "Literal too big (limit 1000 octets)")
    ]


def test_too_big_non_sync_literal_is_discarded() -> None:
    receiver = Receiver(max_command_literal_size=10)
    receiver.feed(b"A1 LOGIN {20+}\r\n" + b"p" * 15)
    assert drain(receiver) == [
        ReceiveError("A1", StatusKind.BAD, "TOOBIG", "Literal too big (limit 10 octets)")
    ]
    receiver.feed(b"p" * 5 + b" more {3+}\r\nabc rest\r\nA2 NOOP\r\n")
    assert drain(receiver) == [Request("A2", (b"NOOP",))]


def test_huge_literal_size_does_not_allocate() -> None:
    events = receive(b"A1 APPEND INBOX {99999999999999999999999999}\r\nA2 NOOP\r\n")
    assert events[0] == ReceiveError(
        "A1", StatusKind.NO, "TOOBIG", "Literal too big (limit 67108864 octets)"
    )
    assert events[1] == Request("A2", (b"NOOP",))


def test_total_request_size() -> None:
    data = b"A1 APPEND INBOX {60+}\r\n" + b"m" * 60 + b" {60}\r\nA2 NOOP\r\n"
    events = receive(data, max_literal_size=100, max_request_size=100)
    assert events == [
        ReceiveError("A1", StatusKind.NO, "TOOBIG", "Command too big"),
        Request("A2", (b"NOOP",)),
    ]


def test_too_many_literals() -> None:
    data = b"A1 LOGIN {1+}\r\na {1+}\r\nb {1+}\r\nc\r\nA2 NOOP\r\n"
    events = receive(data, max_literals=2)
    assert events == [
        ReceiveError("A1", StatusKind.BAD, "LIMIT", "Too many literals in one command"),
        Request("A2", (b"NOOP",)),
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\r\n", ReceiveError(None, StatusKind.BAD, None, "Empty command line")),
        (b"A1\r\n", ReceiveError("A1", StatusKind.BAD, None, "Missing command")),
        (b"A1 \r\n", ReceiveError("A1", StatusKind.BAD, None, "Missing command")),
        (b"+ NOOP\r\n", ReceiveError(None, StatusKind.BAD, None, "Invalid tag")),
        (b"A(1 NOOP\r\n", ReceiveError(None, StatusKind.BAD, None, "Invalid tag")),
        (b"A\x001 NOOP\r\n", ReceiveError(None, StatusKind.BAD, None, "Invalid tag")),
        (b"\xff\xfe NOOP\r\n", ReceiveError(None, StatusKind.BAD, None, "Invalid tag")),
        (b" NOOP\r\n", ReceiveError(None, StatusKind.BAD, None, "Invalid tag")),
    ],
)
def test_malformed_starts(data: bytes, expected: ReceiveError) -> None:
    assert receive(data + b"OK1 NOOP\r\n") == [expected, Request("OK1", (b"NOOP",))]


def test_invalid_tag_with_non_sync_literal_skips_the_literal() -> None:
    events = receive(b"+bad LOGIN {9+}\r\nA2 LOGOUT\r\nA3 NOOP\r\n")
    assert events == [
        ReceiveError(None, StatusKind.BAD, None, "Invalid tag"),
        Request("A3", (b"NOOP",)),
    ]


def test_refuse_continuation() -> None:
    receiver = Receiver()
    receiver.feed(b"A1 APPEND INBOX {10}\r\n")
    assert drain(receiver) == [NeedContinuation("A1", 10)]
    receiver.refuse_continuation()
    receiver.feed(b"A2 NOOP\r\n")
    assert drain(receiver) == [Request("A2", (b"NOOP",))]
    with pytest.raises(RuntimeError):
        receiver.refuse_continuation()


def test_nul_bytes_in_lines_are_passed_to_the_parser() -> None:
    assert receive(b"A1 NO\x00OP\r\n") == [Request("A1", (b"NO\x00OP",))]


def test_many_pipelined_commands() -> None:
    data = b"".join(b"t%d NOOP\r\n" % index for index in range(2000))
    events = receive(data)
    assert len(events) == 2000
    assert events[-1] == Request("t1999", (b"NOOP",))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"LOGIN {5}", (5, True, False, 6)),
        (b"LOGIN {5+}", (5, False, False, 6)),
        (b"APPEND x ~{7}", (7, True, True, 9)),
        (b"{0}", (0, True, False, 0)),
        (b'"{5}"', None),
        (b"LOGIN {}", None),
        (b"LOGIN {+}", None),
        (b"LOGIN {-1}", None),
        (b"LOGIN {5", None),
        (b"LOGIN { 5}", None),
        (b"X {" + b"9" * 30 + b"}", (None, True, False, 2)),
    ],
)
def test_find_literal_marker(
    line: bytes, expected: tuple[int | None, bool, bool, int] | None
) -> None:
    marker = find_literal_marker(line)
    if expected is None:
        assert marker is None
    else:
        assert marker is not None
        assert (marker.size, marker.synchronizing, marker.binary, marker.start) == expected


def test_reprs_hide_payloads() -> None:
    assert "secret" not in repr(Literal(b"secret"))
    assert "secret" not in repr(RawLine(b"secret"))


def test_an_overlong_line_without_space_is_not_echoed_as_a_tag() -> None:
    receiver = Receiver(max_line_length=1024)
    receiver.feed(b"x" * 70_000 + b"\r\n")
    event = receiver.next_event()
    assert isinstance(event, ReceiveError)
    assert event.tag is None
