"""The inbound ``impersonation`` check: outside mail that shows a local address it does not
come from gets a visible warning; mail that does not, passes untouched."""

from __future__ import annotations

import pytest

from filters.impersonation import (
    WARNING_FIELD,
    ImpersonationCheck,
    encode_subject_tag,
    normalise_text,
)
from filters.pipeline import Action, Direction, MessageContext, Pipeline
from storage.message_summary import decode_header_text

LOCAL = {"so.gov.vn"}
TAG = "[CẢNH BÁO: thư từ bên ngoài]"
REST = b"To: nv@so.gov.vn\r\nSubject: Chuyen khoan gap\r\n\r\nNoi dung.\r\n"


async def is_local(domain: str) -> bool:
    return domain in LOCAL


def inbound() -> MessageContext:
    return MessageContext(Direction.INBOUND, "192.0.2.7", "mx.outside.net", "x@outside.net", ())


def header_of(message: bytes) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    for line in head.replace("\r\n\t", " ").replace("\r\n ", " ").split("\r\n"):
        name, _, value = line.partition(":")
        fields.setdefault(name.lower(), []).append(value.strip())
    return fields


LOOKALIKES = {
    "display name is a local address": b'From: "giamdoc@so.gov.vn" <x@outside.net>\r\n',
    "comment holds a local address": b"From: x@outside.net (giamdoc@so.gov.vn)\r\n",
    "encoded word decodes to a local address": (
        b"From: =?utf-8?q?giamdoc=40so=2Egov=2Evn?= <x@outside.net>\r\n"
    ),
    "zero-width space after a local address": "From: giamdoc@so.gov.vn\u200b\r\n".encode(),
    "full-width letters": 'From: "ｇｉａｍｄｏｃ@ｓｏ.gov.vn" <x@outside.net>\r\n'.encode(),
    "upper case in an encoded word": b"From: =?utf-8?b?R0lBTURPQ0BTTy5HT1YuVk4=?= <x@o.net>\r\n",
    "local address in Sender's display name": (
        b'From: x@outside.net\r\nSender: "giamdoc@so.gov.vn" <y@outside.net>\r\n'
    ),
}


@pytest.mark.parametrize("field", LOOKALIKES.values(), ids=LOOKALIKES.keys())
async def test_lookalikes_get_the_warning_and_the_subject_tag(field: bytes) -> None:
    result = await Pipeline([ImpersonationCheck(is_local, TAG)]).run(field + REST, inbound())
    assert result.action is Action.ACCEPT  # a warning, not a refusal
    fields = header_of(result.message)
    [warning] = fields["x-govmail-warning"]
    assert warning.startswith("impersonation; field=")
    assert "resembles=giamdoc@so.gov.vn" in warning
    [subject] = fields["subject"]
    assert decode_header_text(subject) == f"{TAG} Chuyen khoan gap"
    assert result.message.endswith(b"\r\n\r\nNoi dung.\r\n")


FAITHFUL = {
    "a real local address (authentication checked it)": b"From: An <an@so.gov.vn>\r\n",
    "an outside address with an ordinary name": b"From: Nguyen Van A <x@outside.net>\r\n",
    "an outside address shown as itself": b'From: "x@outside.net" <x@outside.net>\r\n',
    "a display name naming another outside address": b'From: "a@b.example" <x@outside.net>\r\n',
    "a local domain name without an address": b"From: Phong so.gov.vn <x@outside.net>\r\n",
}


@pytest.mark.parametrize("field", FAITHFUL.values(), ids=FAITHFUL.keys())
async def test_faithful_senders_pass_untouched(field: bytes) -> None:
    message = field + REST
    result = await Pipeline([ImpersonationCheck(is_local, TAG)]).run(message, inbound())
    assert result.message == message
    assert result.verdicts[0].detail == "none"


async def test_a_warning_field_from_outside_is_removed() -> None:
    message = f"{WARNING_FIELD}: none\r\nFrom: An <an@so.gov.vn>\r\n".encode() + REST
    result = await Pipeline([ImpersonationCheck(is_local, TAG)]).run(message, inbound())
    assert WARNING_FIELD.encode() not in result.message


async def test_empty_tag_adds_only_the_field() -> None:
    message = LOOKALIKES["comment holds a local address"] + REST
    result = await Pipeline([ImpersonationCheck(is_local, "")]).run(message, inbound())
    fields = header_of(result.message)
    assert fields["subject"] == ["Chuyen khoan gap"]
    assert len(fields["x-govmail-warning"]) == 1


async def test_encoded_subject_keeps_its_separating_space() -> None:
    message = (
        b'From: "giamdoc@so.gov.vn" <x@outside.net>\r\nSubject: =?utf-8?q?H=E1=BB=8Dp?=\r\n\r\n'
    )
    result = await Pipeline([ImpersonationCheck(is_local, TAG)]).run(message, inbound())
    [subject] = header_of(result.message)["subject"]
    assert decode_header_text(subject) == f"{TAG} Họp"


async def test_message_without_subject_gets_the_tag_alone() -> None:
    message = b'From: "giamdoc@so.gov.vn" <x@outside.net>\r\n\r\nBody\r\n'
    result = await Pipeline([ImpersonationCheck(is_local, "[EXTERNAL]")]).run(message, inbound())
    assert header_of(result.message)["subject"] == ["[EXTERNAL]"]


async def test_outbound_mail_is_not_checked() -> None:
    message = LOOKALIKES["display name is a local address"] + REST
    context = MessageContext(Direction.OUTBOUND, "127.0.0.1", "c", "an@so.gov.vn", ())
    verdict = await ImpersonationCheck(is_local, TAG).check(message, context)
    assert verdict.add_headers == () and verdict.remove_headers == ()


def test_normalisation_drops_invisible_characters_and_folds() -> None:
    assert normalise_text("Gi\u200bam\u00adDoc\u2060@ＳＯ.gov.vn\ufeff") == "giamdoc@so.gov.vn"


def test_non_ascii_tag_is_one_encoded_word_that_keeps_its_space() -> None:
    encoded = encode_subject_tag(TAG)
    assert encoded.isascii() and encoded.startswith("=?utf-8?b?")
    assert decode_header_text(encoded + "x") == f"{TAG} x"
    before_word = encode_subject_tag(TAG, before_encoded_word=True)
    assert decode_header_text(before_word + "=?utf-8?q?x?=") == f"{TAG} x"
    assert encode_subject_tag("[EXTERNAL]") == "[EXTERNAL] "
