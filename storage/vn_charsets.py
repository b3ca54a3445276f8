"""Codecs for the legacy Vietnamese charsets Python lacks: VISCII and TCVN 5712 (TCVN3).

Old Vietnamese mail arrives as windows-1258 (Python has it as ``cp1258``), VISCII (RFC 1456,
IANA name "VISCII") or TCVN 5712:1993, which has no IANA name and is labelled in charset=
parameters as "TCVN", "TCVN-5712", "TCVN5712-1" (glibc's names) or "x-viet-tcvn5712"
(Netscape and Thunderbird). Importing this module registers codecs for all those names;
``decode_legacy`` turns any MIME charset label and body into NFC text and never raises.

The byte tables below were generated from glibc's charmaps (VISCII, TCVN5712-1; Debian locales
2.36, LGPL-2.1-or-later) and checked against iconv output of the UDHR text. glibc decodes TCVN
statefully, composing a base letter with a following tone-mark byte (0xB0-0xB4); here the marks
are decoded as combining characters and the text is NFC-normalised, which gives the same result
except for three pairs glibc composes against canonical order (Ó/ó/ú + tilde byte -> Ṍ/ṍ/ṹ,
which are letters with tilde *then* acute); here they stay Ó + U+0303 as Unicode requires.
TCVN 5712 VN1 is decoded; VN3 ("TCVN3", the common font encoding) is its subset without the
capital toned letters placed on C0 control bytes, so the same table reads both.

Encoders NFC-normalise first, so NFD input encodes too; TCVN writes a letter it has no single
byte for as base letter plus tone-mark byte, as glibc does ("ḿ" -> b"m\\xb3"). Error handler
positions refer to the normalised text.
"""

import codecs
import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

_VISCII_DECODING_TABLE = (
    "\u0000\u0001\u1eb2\u0003\u0004\u1eb4\u1eaa\u0007"  # 0x00
    "\u0008\u0009\u000a\u000b\u000c\u000d\u000e\u000f"  # 0x08
    "\u0010\u0011\u0012\u0013\u1ef6\u0015\u0016\u0017"  # 0x10
    "\u0018\u1ef8\u001a\u001b\u001c\u001d\u1ef4\u001f"  # 0x18
    "\u0020\u0021\u0022\u0023\u0024\u0025\u0026\u0027"  # 0x20
    "\u0028\u0029\u002a\u002b\u002c\u002d\u002e\u002f"  # 0x28
    "\u0030\u0031\u0032\u0033\u0034\u0035\u0036\u0037"  # 0x30
    "\u0038\u0039\u003a\u003b\u003c\u003d\u003e\u003f"  # 0x38
    "\u0040\u0041\u0042\u0043\u0044\u0045\u0046\u0047"  # 0x40
    "\u0048\u0049\u004a\u004b\u004c\u004d\u004e\u004f"  # 0x48
    "\u0050\u0051\u0052\u0053\u0054\u0055\u0056\u0057"  # 0x50
    "\u0058\u0059\u005a\u005b\u005c\u005d\u005e\u005f"  # 0x58
    "\u0060\u0061\u0062\u0063\u0064\u0065\u0066\u0067"  # 0x60
    "\u0068\u0069\u006a\u006b\u006c\u006d\u006e\u006f"  # 0x68
    "\u0070\u0071\u0072\u0073\u0074\u0075\u0076\u0077"  # 0x70
    "\u0078\u0079\u007a\u007b\u007c\u007d\u007e\u007f"  # 0x78
    "\u1ea0\u1eae\u1eb0\u1eb6\u1ea4\u1ea6\u1ea8\u1eac"  # 0x80
    "\u1ebc\u1eb8\u1ebe\u1ec0\u1ec2\u1ec4\u1ec6\u1ed0"  # 0x88
    "\u1ed2\u1ed4\u1ed6\u1ed8\u1ee2\u1eda\u1edc\u1ede"  # 0x90
    "\u1eca\u1ece\u1ecc\u1ec8\u1ee6\u0168\u1ee4\u1ef2"  # 0x98
    "\u00d5\u1eaf\u1eb1\u1eb7\u1ea5\u1ea7\u1ea9\u1ead"  # 0xa0
    "\u1ebd\u1eb9\u1ebf\u1ec1\u1ec3\u1ec5\u1ec7\u1ed1"  # 0xa8
    "\u1ed3\u1ed5\u1ed7\u1ee0\u01a0\u1ed9\u1edd\u1edf"  # 0xb0
    "\u1ecb\u1ef0\u1ee8\u1eea\u1eec\u01a1\u1edb\u01af"  # 0xb8
    "\u00c0\u00c1\u00c2\u00c3\u1ea2\u0102\u1eb3\u1eb5"  # 0xc0
    "\u00c8\u00c9\u00ca\u1eba\u00cc\u00cd\u0128\u1ef3"  # 0xc8
    "\u0110\u1ee9\u00d2\u00d3\u00d4\u1ea1\u1ef7\u1eeb"  # 0xd0
    "\u1eed\u00d9\u00da\u1ef9\u1ef5\u00dd\u1ee1\u01b0"  # 0xd8
    "\u00e0\u00e1\u00e2\u00e3\u1ea3\u0103\u1eef\u1eab"  # 0xe0
    "\u00e8\u00e9\u00ea\u1ebb\u00ec\u00ed\u0129\u1ec9"  # 0xe8
    "\u0111\u1ef1\u00f2\u00f3\u00f4\u00f5\u1ecf\u1ecd"  # 0xf0
    "\u1ee5\u00f9\u00fa\u0169\u1ee7\u00fd\u1ee3\u1eee"  # 0xf8
)
_TCVN5712_1_DECODING_TABLE = (
    "\u0000\u00da\u1ee4\u0003\u1eea\u1eec\u1eee\u0007"  # 0x00
    "\u0008\u0009\u000a\u000b\u000c\u000d\u000e\u000f"  # 0x08
    "\u0010\u1ee8\u1ef0\u1ef2\u1ef6\u1ef8\u00dd\u1ef4"  # 0x10
    "\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f"  # 0x18
    "\u0020\u0021\u0022\u0023\u0024\u0025\u0026\u0027"  # 0x20
    "\u0028\u0029\u002a\u002b\u002c\u002d\u002e\u002f"  # 0x28
    "\u0030\u0031\u0032\u0033\u0034\u0035\u0036\u0037"  # 0x30
    "\u0038\u0039\u003a\u003b\u003c\u003d\u003e\u003f"  # 0x38
    "\u0040\u0041\u0042\u0043\u0044\u0045\u0046\u0047"  # 0x40
    "\u0048\u0049\u004a\u004b\u004c\u004d\u004e\u004f"  # 0x48
    "\u0050\u0051\u0052\u0053\u0054\u0055\u0056\u0057"  # 0x50
    "\u0058\u0059\u005a\u005b\u005c\u005d\u005e\u005f"  # 0x58
    "\u0060\u0061\u0062\u0063\u0064\u0065\u0066\u0067"  # 0x60
    "\u0068\u0069\u006a\u006b\u006c\u006d\u006e\u006f"  # 0x68
    "\u0070\u0071\u0072\u0073\u0074\u0075\u0076\u0077"  # 0x70
    "\u0078\u0079\u007a\u007b\u007c\u007d\u007e\u007f"  # 0x78
    "\u00c0\u1ea2\u00c3\u00c1\u1ea0\u1eb6\u1eac\u00c8"  # 0x80
    "\u1eba\u1ebc\u00c9\u1eb8\u1ec6\u00cc\u1ec8\u0128"  # 0x88
    "\u00cd\u1eca\u00d2\u1ece\u00d5\u00d3\u1ecc\u1ed8"  # 0x90
    "\u1edc\u1ede\u1ee0\u1eda\u1ee2\u00d9\u1ee6\u0168"  # 0x98
    "\u00a0\u0102\u00c2\u00ca\u00d4\u01a0\u01af\u0110"  # 0xa0
    "\u0103\u00e2\u00ea\u00f4\u01a1\u01b0\u0111\u1eb0"  # 0xa8
    "\u0300\u0309\u0303\u0301\u0323\u00e0\u1ea3\u00e3"  # 0xb0
    "\u00e1\u1ea1\u1eb2\u1eb1\u1eb3\u1eb5\u1eaf\u1eb4"  # 0xb8
    "\u1eae\u1ea6\u1ea8\u1eaa\u1ea4\u1ec0\u1eb7\u1ea7"  # 0xc0
    "\u1ea9\u1eab\u1ea5\u1ead\u00e8\u1ec2\u1ebb\u1ebd"  # 0xc8
    "\u00e9\u1eb9\u1ec1\u1ec3\u1ec5\u1ebf\u1ec7\u00ec"  # 0xd0
    "\u1ec9\u1ec4\u1ebe\u1ed2\u0129\u00ed\u1ecb\u00f2"  # 0xd8
    "\u1ed4\u1ecf\u00f5\u00f3\u1ecd\u1ed3\u1ed5\u1ed7"  # 0xe0
    "\u1ed1\u1ed9\u1edd\u1edf\u1ee1\u1edb\u1ee3\u00f9"  # 0xe8
    "\u1ed6\u1ee7\u0169\u00fa\u1ee5\u1eeb\u1eed\u1eef"  # 0xf0
    "\u1ee9\u1ef1\u1ef3\u1ef7\u1ef9\u00fd\u1ef5\u1ed0"  # 0xf8
)


VISCII_CODEC_NAME = "viscii"
TCVN_CODEC_NAME = "tcvn5712-1"

# Charset labels compacted to lowercase letters and digits ("TCVN5712-1:1993" -> "tcvn571211993").
_VISCII_LABELS = frozenset({"viscii", "csviscii", "viscii111", "xviscii", "xvietviscii"})
_TCVN_LABELS = frozenset(
    {
        "tcvn",
        "tcvn3",
        "tcvn5712",
        "tcvn57121",
        "tcvn571211993",
        "xviettcvn",
        "xviettcvn3",
        "xviettcvn5712",
    }
)
_WINDOWS_1258_LABELS = frozenset({"windows1258", "cp1258", "xcp1258", "mswindows1258"})
# Labels that say nothing about the bytes: treat the text as unlabelled.
_UNLABELLED = frozenset(
    {"", "unknown", "unknown8bit", "xunknown", "xuserdefined", "default", "ascii", "usascii"}
)
# Python codecs that are not character sets; a charset= naming one is ignored.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "undefined", "idna", "punycode"})
_MAX_CHARSET_LABEL = 100
# UTF-7 (RFC 2152) can decode to a lone surrogate, which no database column can store.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Longest run of combining marks held back between chunks of incremental coding; a longer run
# is not a letter, and holding it would let a hostile stream grow the buffer without bound.
_MAX_PENDING_CHARS = 32

_VISCII_ENCODING_MAP = codecs.charmap_build(_VISCII_DECODING_TABLE)
_TCVN_ENCODING_MAP = codecs.charmap_build(_TCVN5712_1_DECODING_TABLE)


def _build_tcvn_decompositions() -> dict[int, str]:
    """Letters TCVN has no byte for but can write as one base letter and tone-mark bytes."""
    encodable = frozenset(_TCVN5712_1_DECODING_TABLE)
    decompositions: dict[int, str] = {}
    for code_point in (*range(0x00C0, 0x0250), *range(0x1E00, 0x1F00)):
        char = chr(code_point)
        if char in encodable:
            continue
        decomposed = unicodedata.normalize("NFD", char)
        for split in range(len(decomposed) - 1, 0, -1):
            base = unicodedata.normalize("NFC", decomposed[:split])
            marks = decomposed[split:]
            if base in encodable and all(mark in encodable for mark in marks):
                decompositions[code_point] = base + marks
                break
    return decompositions


_TCVN_DECOMPOSITIONS = _build_tcvn_decompositions()


def _encode_viscii(text: str, errors: str = "strict") -> tuple[bytes, int]:
    normalized = unicodedata.normalize("NFC", text)
    return codecs.charmap_encode(normalized, errors, _VISCII_ENCODING_MAP)[0], len(text)


def _decode_viscii(data: "ReadableBuffer", errors: str = "strict") -> tuple[str, int]:
    # Every VISCII letter is precomposed and the set has no combining marks: already NFC.
    return codecs.charmap_decode(data, errors, _VISCII_DECODING_TABLE)


def _encode_tcvn(text: str, errors: str = "strict") -> tuple[bytes, int]:
    normalized = unicodedata.normalize("NFC", text).translate(_TCVN_DECOMPOSITIONS)
    return codecs.charmap_encode(normalized, errors, _TCVN_ENCODING_MAP)[0], len(text)


def _decode_tcvn(data: "ReadableBuffer", errors: str = "strict") -> tuple[str, int]:
    text, consumed = codecs.charmap_decode(data, errors, _TCVN5712_1_DECODING_TABLE)
    return unicodedata.normalize("NFC", text), consumed


def _start_of_last_cluster(text: str) -> int:
    """Index of the last character with combining class 0, which later marks may join.

    Returns len(text) when none is found within _MAX_PENDING_CHARS of the end.
    """
    for index in range(len(text) - 1, max(-1, len(text) - 1 - _MAX_PENDING_CHARS), -1):
        if unicodedata.combining(text[index]) == 0:
            return index
    return len(text)


class _VisciiCodec(codecs.Codec):
    def encode(self, input: str, errors: str = "strict") -> tuple[bytes, int]:
        return _encode_viscii(input, errors)

    def decode(self, input: "ReadableBuffer", errors: str = "strict") -> tuple[str, int]:
        return _decode_viscii(input, errors)


class _TcvnCodec(codecs.Codec):
    """TCVN codec; stream reader and writer normalise each chunk on its own."""

    def encode(self, input: str, errors: str = "strict") -> tuple[bytes, int]:
        return _encode_tcvn(input, errors)

    def decode(self, input: "ReadableBuffer", errors: str = "strict") -> tuple[str, int]:
        return _decode_tcvn(input, errors)


class _NormalizingIncrementalEncoder(codecs.IncrementalEncoder):
    """Holds back the last letter and its marks so NFC sees them whole across chunks."""

    def __init__(self, errors: str = "strict") -> None:
        super().__init__(errors)
        self._pending = ""

    def _encode_text(self, text: str) -> bytes:
        raise NotImplementedError

    def encode(self, input: str, final: bool = False) -> bytes:
        text = self._pending + input
        keep = len(text) if final else _start_of_last_cluster(text)
        self._pending = text[keep:]
        return self._encode_text(text[:keep])

    def reset(self) -> None:
        self._pending = ""


class _VisciiIncrementalEncoder(_NormalizingIncrementalEncoder):
    def _encode_text(self, text: str) -> bytes:
        return _encode_viscii(text, self.errors)[0]


class _TcvnIncrementalEncoder(_NormalizingIncrementalEncoder):
    def _encode_text(self, text: str) -> bytes:
        return _encode_tcvn(text, self.errors)[0]


class _VisciiIncrementalDecoder(codecs.IncrementalDecoder):
    def decode(self, input: "ReadableBuffer", final: bool = False) -> str:
        return _decode_viscii(input, self.errors)[0]


class _TcvnIncrementalDecoder(codecs.BufferedIncrementalDecoder):
    """Holds back the bytes of the last letter until its tone-mark bytes may have arrived."""

    def _buffer_decode(self, input: "ReadableBuffer", errors: str, final: bool) -> tuple[str, int]:
        text, _ = codecs.charmap_decode(input, errors, _TCVN5712_1_DECODING_TABLE)
        # One byte is one character in TCVN, so a character index is also a byte count.
        keep = len(text) if final else _start_of_last_cluster(text)
        return unicodedata.normalize("NFC", text[:keep]), keep


class _VisciiStreamWriter(_VisciiCodec, codecs.StreamWriter):
    pass


class _VisciiStreamReader(_VisciiCodec, codecs.StreamReader):
    pass


class _TcvnStreamWriter(_TcvnCodec, codecs.StreamWriter):
    pass


class _TcvnStreamReader(_TcvnCodec, codecs.StreamReader):
    pass


_VISCII_CODEC_INFO = codecs.CodecInfo(
    name=VISCII_CODEC_NAME,
    encode=_encode_viscii,
    decode=_decode_viscii,
    incrementalencoder=_VisciiIncrementalEncoder,
    incrementaldecoder=_VisciiIncrementalDecoder,
    streamwriter=_VisciiStreamWriter,
    streamreader=_VisciiStreamReader,
)
_TCVN_CODEC_INFO = codecs.CodecInfo(
    name=TCVN_CODEC_NAME,
    encode=_encode_tcvn,
    decode=_decode_tcvn,
    incrementalencoder=_TcvnIncrementalEncoder,
    incrementaldecoder=_TcvnIncrementalDecoder,
    streamwriter=_TcvnStreamWriter,
    streamreader=_TcvnStreamReader,
)


def compact_charset_label(label: str) -> str:
    """Lowercase a charset label and keep ASCII letters and digits: "TCVN-5712" -> "tcvn5712"."""
    return "".join(char for char in label.lower() if char.isascii() and char.isalnum())


def _find_vietnamese_codec(name: str) -> codecs.CodecInfo | None:
    compact = compact_charset_label(name)
    if compact in _VISCII_LABELS:
        return _VISCII_CODEC_INFO
    if compact in _TCVN_LABELS:
        return _TCVN_CODEC_INFO
    return None


_registered = False


def register_vietnamese_codecs() -> None:
    """Make the VISCII and TCVN names known to codecs.lookup, bytes.decode and email; idempotent."""
    global _registered
    if not _registered:
        codecs.register(_find_vietnamese_codec)
        _registered = True


def resolve_charset(label: str) -> codecs.CodecInfo | None:
    """The text codec a MIME charset label names, or None if it names none or says nothing."""
    cleaned = label.strip().strip("\"'").strip()
    compact = compact_charset_label(cleaned)
    if compact in _UNLABELLED or len(cleaned) > _MAX_CHARSET_LABEL:
        return None
    if compact in _WINDOWS_1258_LABELS:
        return codecs.lookup("cp1258")
    vietnamese = _find_vietnamese_codec(cleaned)
    if vietnamese is not None:
        return vietnamese
    try:
        info = codecs.lookup(cleaned)
    except (LookupError, ValueError):
        return None
    if not info._is_text_encoding or info.name in _NOT_CHARSETS:
        return None
    return info


def decode_legacy(data: bytes, charset: str, *, fallback: str = "windows-1258") -> str:
    """Decode a MIME body or header in the charset its label names, as NFC text; never raises.

    The result always encodes as UTF-8: a decoded lone surrogate becomes U+FFFD.

    - A known charset is tried strictly; bytes that do not fit it but are valid UTF-8 are
      taken as mislabelled UTF-8, anything else is decoded with U+FFFD for the bad bytes.
    - An unknown, empty or non-committal label ("us-ascii", "unknown-8bit", RFC 2045's default)
      means: ASCII as is, else UTF-8 if valid, else ``fallback`` (windows-1258, the usual
      charset of legacy Vietnamese Windows mail).
    """
    info = resolve_charset(charset)
    if info is not None:
        try:
            text = info.decode(data, "strict")[0]
        except UnicodeError:
            as_utf8 = _decode_utf8_or_none(data)
            text = as_utf8 if as_utf8 is not None else info.decode(data, "replace")[0]
    else:
        as_utf8 = _decode_utf8_or_none(data)
        text = as_utf8 if as_utf8 is not None else _decode_fallback(data, fallback)
    if not text.isascii():
        text = _SURROGATE.sub("\ufffd", unicodedata.normalize("NFC", text))
    return text


def _decode_utf8_or_none(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _decode_fallback(data: bytes, fallback: str) -> str:
    info = resolve_charset(fallback) or codecs.lookup("latin-1")
    return info.decode(data, "replace")[0]


register_vietnamese_codecs()
