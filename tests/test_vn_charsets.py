"""Tests for storage.vn_charsets: VISCII and TCVN 5712 codecs and decode_legacy.

The derived UDHR files were made with glibc iconv from the NFC text; each must decode to exactly
that text. Those tests need ../shared/corpus (next to the repository) and are skipped without it.
"""

import codecs
import email
import email.policy
import unicodedata
from pathlib import Path

import pytest

from storage import vn_charsets
from storage.vn_charsets import (
    TCVN_CODEC_NAME,
    VISCII_CODEC_NAME,
    compact_charset_label,
    decode_legacy,
    register_vietnamese_codecs,
    resolve_charset,
)

DERIVED = Path(__file__).resolve().parents[2] / "shared/corpus/vietnamese-text/derived"
needs_corpus = pytest.mark.skipif(
    not DERIVED.is_dir(), reason=f"Vietnamese corpus not found at {DERIVED}"
)

LEGACY_FILES = {
    "VISCII": "vie.VISCII.txt",
    "TCVN5712-1": "vie.TCVN5712-1.txt",
    "windows-1258": "vie.CP1258.txt",
}
VIETNAMESE_LETTERS = (
    "aàảãáạăằẳẵắặâầẩẫấậbcdđeèẻẽéẹêềểễếệghiìỉĩíịklmnoòỏõóọôồổỗốộơờởỡớợpqrstuùủũúụưừửữứựvxyỳỷỹýỵ"
)
ALL_LETTERS = VIETNAMESE_LETTERS + VIETNAMESE_LETTERS.upper()


def nfc_text() -> str:
    return (DERIVED / "vie.utf8.nfc.txt").read_text(encoding="utf-8")


def q_encode(data: bytes) -> str:
    """RFC 2047 section 4.2 "Q" encoding of raw bytes."""
    return "".join(
        chr(byte) if chr(byte).isascii() and chr(byte).isalnum() else f"={byte:02X}"
        for byte in data
    )


@pytest.mark.parametrize(
    ("label", "codec_name"),
    [
        ("VISCII", VISCII_CODEC_NAME),
        ("viscii", VISCII_CODEC_NAME),
        ("csVISCII", VISCII_CODEC_NAME),
        ("VISCII1.1-1", VISCII_CODEC_NAME),
        ("x-viscii", VISCII_CODEC_NAME),
        ("TCVN", TCVN_CODEC_NAME),
        ("tcvn3", TCVN_CODEC_NAME),
        ("TCVN-5712", TCVN_CODEC_NAME),
        ("TCVN5712-1", TCVN_CODEC_NAME),
        ("TCVN5712-1:1993", TCVN_CODEC_NAME),
        ("x-viet-tcvn5712", TCVN_CODEC_NAME),
        ("X-VIET-TCVN3", TCVN_CODEC_NAME),
    ],
)
def test_codec_names_are_registered(label: str, codec_name: str) -> None:
    assert codecs.lookup(label).name == codec_name
    assert resolve_charset(label) is codecs.lookup(label)


def test_unrelated_names_are_not_claimed() -> None:
    for label in ("vi", "tcvn5713", "viscii2", "x-viet-vps"):
        with pytest.raises(LookupError):
            codecs.lookup(label)


def test_compact_charset_label() -> None:
    assert compact_charset_label(" TCVN5712-1:1993 ") == "tcvn571211993"
    assert compact_charset_label("X_Viet-TCVN.5712") == "xviettcvn5712"
    assert compact_charset_label("vìscii") == "vscii"


def test_register_is_idempotent() -> None:
    register_vietnamese_codecs()
    register_vietnamese_codecs()
    # One unregister removes the only registration (it also clears the lookup cache).
    codecs.unregister(vn_charsets._find_vietnamese_codec)
    try:
        with pytest.raises(LookupError):
            codecs.lookup("viscii")
    finally:
        codecs.register(vn_charsets._find_vietnamese_codec)
    assert codecs.lookup("viscii").name == VISCII_CODEC_NAME


def test_viscii_table_spot_checks_and_full_round_trip() -> None:
    # RFC 1456: VISCII puts six capitals on C0 controls (0x02 0x05 0x06 0x14 0x19 0x1E).
    assert b"\x02\x05\x06\x14\x19\x1e".decode("viscii") == "ẲẴẪỶỸỴ"
    assert b"\x09\x0a\x0d".decode("viscii") == "\t\n\r"
    assert b"\xf0\xd0".decode("viscii") == "đĐ"
    every_byte = bytes(range(256))
    decoded = every_byte.decode("viscii")
    assert len(set(decoded)) == 256
    assert decoded.encode("viscii") == every_byte
    assert ALL_LETTERS.encode("viscii").decode("viscii") == ALL_LETTERS


def test_tcvn_table_spot_checks() -> None:
    assert b"\xa7\xae".decode("tcvn") == "Đđ"
    assert b"\xb5\xb8\xb6\xb7\xb9".decode("tcvn") == "àáảãạ"
    assert b"\x01\x02\x17".decode("tcvn") == "ÚỤỴ"
    assert b"\xb0\xb1\xb2\xb3\xb4".decode("tcvn") == unicodedata.normalize(
        "NFC", "\u0300\u0309\u0303\u0301\u0323"
    )


def test_tcvn_tone_mark_bytes_compose_with_the_letter_before() -> None:
    assert b"A\xb3".decode("tcvn") == "Á"
    assert b"\xa2\xb3".decode("tcvn") == "Ấ"  # Â + acute
    assert b"m\xb3 N\xb0".decode("tcvn") == "ḿ Ǹ"
    assert b"\xb3A".decode("tcvn") == "\u0301A"  # a mark with no letter before stays a mark


def test_tcvn_every_single_byte_round_trips() -> None:
    for byte in range(256):
        data = bytes([byte])
        assert data.decode("tcvn").encode("tcvn") == data, hex(byte)


def test_tcvn_encodes_letters_it_lacks_as_base_and_tone_byte() -> None:
    assert "ḿ".encode("tcvn") == b"m\xb3"
    assert "Ḅ".encode("tcvn") == b"B\xb4"
    assert "Ấ".encode("tcvn") == b"\xc4"
    assert ALL_LETTERS.encode("tcvn").decode("tcvn") == ALL_LETTERS


def test_encoders_accept_nfd_input() -> None:
    nfd = unicodedata.normalize("NFD", "Việt Nam Đường")
    assert nfd.encode("viscii") == "Việt Nam Đường".encode("viscii")
    assert nfd.encode("tcvn") == b"Vi\xd6t Nam \xa7\xad\xeang"


@pytest.mark.parametrize("charset", ["viscii", "tcvn"])
def test_unencodable_text_follows_the_error_handler(charset: str) -> None:
    with pytest.raises(UnicodeEncodeError):
        "ǘ中".encode(charset)
    assert "a中b".encode(charset, "replace") == b"a?b"
    assert "a中b".encode(charset, "ignore") == b"ab"


def test_incremental_tcvn_decoder_joins_marks_split_across_chunks() -> None:
    decoder = codecs.getincrementaldecoder("tcvn")()
    assert decoder.decode(b"Vi\xaa") == "Vi"
    assert decoder.decode(b"\xb4t") == "ệ"
    assert decoder.decode(b"", final=True) == "t"


def test_incremental_tcvn_decoder_bounds_a_run_of_marks() -> None:
    decoder = codecs.getincrementaldecoder("tcvn")()
    out = decoder.decode(b"a" + b"\xb3" * 1000)
    assert out.startswith("á") and len(out) == 1000
    assert decoder.decode(b"", final=True) == ""


def test_incremental_encoder_joins_marks_split_across_chunks() -> None:
    for charset in ("viscii", "tcvn"):
        encoder = codecs.getincrementalencoder(charset)()
        parts = [encoder.encode("Vie"), encoder.encode("\u0302"), encoder.encode("\u0323t")]
        parts.append(encoder.encode("", final=True))
        assert b"".join(parts) == "Việt".encode(charset)


def test_email_package_decodes_legacy_bodies_and_encoded_words() -> None:
    subject = "Về việc ban hành văn bản"
    body = "Kính gửi: Sở Nội vụ"
    raw = (
        (
            f"Subject: =?x-viet-tcvn5712?Q?{q_encode(subject.encode('tcvn'))}?=\r\n"
            "Content-Type: text/plain; charset=VISCII\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
        ).encode("ascii")
        + body.encode("viscii")
        + b"\r\n"
    )
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(message["Subject"]) == subject
    assert message.get_content() == body + "\r\n"


@needs_corpus
@pytest.mark.parametrize("charset", sorted(LEGACY_FILES))
def test_legacy_udhr_files_decode_to_the_nfc_text(charset: str) -> None:
    data = (DERIVED / LEGACY_FILES[charset]).read_bytes()
    assert decode_legacy(data, charset) == nfc_text()


@needs_corpus
@pytest.mark.parametrize("charset", ["viscii", "tcvn"])
def test_udhr_decodes_with_bytes_decode_and_incrementally(charset: str) -> None:
    file_name = LEGACY_FILES["VISCII" if charset == "viscii" else "TCVN5712-1"]
    data = (DERIVED / file_name).read_bytes()
    assert data.decode(charset) == nfc_text()
    decoder = codecs.getincrementaldecoder(charset)()
    pieces = [decoder.decode(data[index : index + 1]) for index in range(len(data))]
    pieces.append(decoder.decode(b"", final=True))
    assert "".join(pieces) == nfc_text()


@needs_corpus
@pytest.mark.parametrize("charset", ["viscii", "tcvn"])
def test_udhr_encodes_back_to_the_iconv_bytes(charset: str) -> None:
    file_name = LEGACY_FILES["VISCII" if charset == "viscii" else "TCVN5712-1"]
    data = (DERIVED / file_name).read_bytes()
    text = nfc_text()
    assert text.encode(charset) == data
    assert unicodedata.normalize("NFD", text).encode(charset) == data
    published = (DERIVED / "vie.utf8.as-published.txt").read_text(encoding="utf-8")
    assert published.encode(charset) == data


@needs_corpus
@pytest.mark.parametrize(
    "label",
    ["windows-1258", "Windows-1258", "cp1258", "CP-1258", '"x-cp1258"', " ms-windows-1258 "],
)
def test_windows_1258_aliases_decode_to_nfc(label: str) -> None:
    data = (DERIVED / LEGACY_FILES["windows-1258"]).read_bytes()
    raw = data.decode("cp1258")
    assert unicodedata.normalize("NFC", raw) != raw  # windows-1258 carries combining tones
    assert decode_legacy(data, label) == nfc_text()


@needs_corpus
def test_unlabelled_legacy_text_falls_back_to_windows_1258() -> None:
    data = (DERIVED / LEGACY_FILES["windows-1258"]).read_bytes()
    for label in ("", "unknown-8bit", "us-ascii", "x-no-such-charset", "base64"):
        assert decode_legacy(data, label) == nfc_text()


def test_mislabelled_utf8_is_read_as_utf8() -> None:
    data = "Cộng hòa".encode()
    assert decode_legacy(data, "us-ascii") == "Cộng hòa"
    assert decode_legacy(data, "x-bogus") == "Cộng hòa"
    # Bytes that do not fit the declared multi-byte charset but are valid UTF-8.
    assert decode_legacy(data, "iso-2022-jp") == "Cộng hòa"
    # A single-byte label that fits is trusted, even when the bytes were really UTF-8.
    assert decode_legacy(data, "iso-8859-1") == data.decode("latin-1")


def test_utf8_and_nfd_input_come_back_as_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "Việt Nam")
    assert decode_legacy(nfd.encode(), "utf-8") == "Việt Nam"
    assert decode_legacy(nfd.encode(), "UTF8") == "Việt Nam"


def test_undecodable_bytes_become_replacement_characters() -> None:
    assert decode_legacy(b"caf\xe9 \xff", "utf-8") == "caf\ufffd \ufffd"
    assert decode_legacy(b"ok\x81", "windows-1258") == "ok\ufffd"  # 0x81 is unassigned
    assert decode_legacy(b"\x00\xd8", "utf-16-le") == "\ufffd"  # a lone surrogate
    assert b"+2AA-".decode("utf-7") == "\ud800"
    assert decode_legacy(b"a+2AA-b", "utf-7") == "a\ufffdb"


@pytest.mark.parametrize(
    "label", ["unicode_escape", "raw-unicode-escape", "idna", "punycode", "undefined", "rot13"]
)
def test_codecs_that_are_not_charsets_are_ignored(label: str) -> None:
    assert resolve_charset(label) is None
    assert decode_legacy(b"\\u0041 caf\xc3\xa9", label) == "\\u0041 café"


def test_hostile_labels_never_raise() -> None:
    for label in ("utf\x00-8", "x" * 10_000, "../../etc/passwd", "\ud800", "'", "\"VISCII'"):
        # Unusable labels fall back to windows-1258, the last one is VISCII: both read à.
        assert decode_legacy(b"abc \xe0", label) == "abc à"
    assert decode_legacy(b'"quoted"', '"VISCII"') == '"quoted"'
    assert decode_legacy(b"", "VISCII") == ""


def test_fallback_charset_can_be_chosen() -> None:
    assert decode_legacy(b"\xe9", "", fallback="latin-1") == "é"
    assert decode_legacy(b"\xe9", "", fallback="no-such-charset") == "é"  # latin-1 last resort
    assert decode_legacy(b"\xe9", "") == "é"  # windows-1258 0xE9 is é too
    assert decode_legacy(b"\xd0\xf2", "") == "Đ\u0323"  # windows-1258 Đ + dot below
