"""ESMTP command arguments and replies: pure functions over the text of one command line.

- ``split_path``: the path of ``MAIL FROM:``/``RCPT TO:`` and the parameters after it.
- ``parse_mail_params`` / ``parse_rcpt_params``: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8
  (RFC 6531), AUTH (RFC 4954 5), RET/ENVID (RFC 3461 4.3, 4.4) and NOTIFY/ORCPT (RFC 3461 4.1,
  4.2), each validated; anything else is refused with the reply RFC 5321 4.1.1.11 asks for.
- ``with_enhanced_code``: the RFC 2034 status code a reply must carry once ENHANCEDSTATUSCODES is
  advertised, for replies written without one (aiosmtpd's own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_ENVID = 100  # RFC 3461 4.4
MAX_ORCPT = 500  # RFC 3461 4.2

# RFC 5321 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
#                 esmtp-value = 1*(%d33-60 / %d62-126)
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+\Z")
# RFC 3461 4: xtext = *( xchar / hexchar ), hexchar = "+" 2(%x30-39 / %x41-46)
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*\Z")

PARAM_SYNTAX = "501 5.5.4 Syntax error in parameters"
PARAM_UNKNOWN = "555 5.5.4 Unsupported parameter"
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"


class ParamError(ValueError):
    """A parameter is refused; ``reply`` is the complete reply line."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class MailParams:
    size: int | None = None
    body: str = "7BIT"
    smtputf8: bool = False
    ret: str | None = None  # FULL | HDRS
    envid: str | None = None  # xtext, as sent


@dataclass(frozen=True)
class RcptParams:
    notify: tuple[str, ...] = ()  # () when absent; ("NEVER",) or SUCCESS/FAILURE/DELAY
    orcpt: str | None = None  # "rfc822;user@example" as sent


def split_path(argument: str) -> tuple[str, list[str]]:
    """``<a b@c> SIZE=1`` -> (``<a b@c>``, [``SIZE=1``]). The path ends at the first ``>`` not
    inside a quoted local part; a path without brackets ends at the first space."""
    text = argument.lstrip(" ")
    if not text.startswith("<"):
        path, _, rest = text.partition(" ")
        return path, rest.split()
    quoted = False
    index = 1
    while index < len(text):
        char = text[index]
        if quoted and char == "\\":
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            rest = text[index + 1 :]
            if rest and not rest.startswith(" "):
                raise ParamError(PARAM_SYNTAX)
            return text[: index + 1], rest.split()
        index += 1
    return text, []


def _split_params(words: list[str]) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for word in words:
        keyword, eq, value = word.partition("=")
        if not _KEYWORD.match(keyword) or (eq and not _VALUE.match(value)):
            raise ParamError(PARAM_SYNTAX)
        key = keyword.upper()
        if key in params:
            raise ParamError(PARAM_SYNTAX)
        params[key] = value if eq else None
    return params


def parse_mail_params(words: list[str], size_limit: int, smtputf8_enabled: bool) -> MailParams:
    """Validate the parameters of ``MAIL FROM``; raises :class:`ParamError`."""
    params = _split_params(words)
    size: int | None = None
    if "SIZE" in params:
        value = params.pop("SIZE")
        if value is None or not value.isdigit() or len(value) > 20:
            raise ParamError(PARAM_SYNTAX)
        size = int(value)
        if size_limit and size > size_limit:
            raise ParamError(TOO_BIG)  # RFC 1870 6.1
    body = (params.pop("BODY", "7BIT") or "").upper()
    if body not in ("7BIT", "8BITMIME"):
        raise ParamError(PARAM_SYNTAX)
    smtputf8 = "SMTPUTF8" in params
    if smtputf8 and (params.pop("SMTPUTF8") is not None or not smtputf8_enabled):
        raise ParamError(PARAM_SYNTAX)
    ret: str | None = None
    if "RET" in params:
        ret = (params.pop("RET") or "").upper()
        if ret not in ("FULL", "HDRS"):
            raise ParamError(PARAM_SYNTAX)
    envid: str | None = None
    if "ENVID" in params:
        envid = params.pop("ENVID")
        if envid is None or len(envid) > MAX_ENVID or not _XTEXT.match(envid):
            raise ParamError(PARAM_SYNTAX)
    if "AUTH" in params:
        # RFC 4954 5: the original submitter as claimed by a relay. We trust none, so the
        # value is checked for syntax and otherwise ignored (treated as AUTH=<>).
        value = params.pop("AUTH")
        if value is None or not _XTEXT.match(value):
            raise ParamError(PARAM_SYNTAX)
    if params:
        raise ParamError(PARAM_UNKNOWN)
    return MailParams(size=size, body=body, smtputf8=smtputf8, ret=ret, envid=envid)


def parse_rcpt_params(words: list[str]) -> RcptParams:
    """Validate the parameters of ``RCPT TO``; raises :class:`ParamError`."""
    params = _split_params(words)
    notify: tuple[str, ...] = ()
    if "NOTIFY" in params:
        value = params.pop("NOTIFY")
        if value is None:
            raise ParamError(PARAM_SYNTAX)
        items = tuple(v.upper() for v in value.split(","))
        # RFC 3461 4.1: "NEVER" alone, or a list of SUCCESS, FAILURE and DELAY.
        listed = len(set(items)) == len(items) and set(items) <= {"SUCCESS", "FAILURE", "DELAY"}
        if items != ("NEVER",) and not listed:
            raise ParamError(PARAM_SYNTAX)
        notify = items
    orcpt: str | None = None
    if "ORCPT" in params:
        orcpt = params.pop("ORCPT")
        # RFC 3461 4.2: addr-type ";" xtext
        if orcpt is None or len(orcpt) > MAX_ORCPT:
            raise ParamError(PARAM_SYNTAX)
        addr_type, semi, text = orcpt.partition(";")
        if not semi or not _KEYWORD.match(addr_type) or not _XTEXT.match(text) or not text:
            raise ParamError(PARAM_SYNTAX)
    if params:
        raise ParamError(PARAM_UNKNOWN)
    return RcptParams(notify=notify, orcpt=orcpt)


def decode_xtext(text: str) -> str:
    """RFC 3461 4: ``+2B`` -> ``+``; the octets are read as UTF-8 (bad ones replaced)."""
    raw = re.sub(rb"\+([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode())
    return raw.decode("utf-8", "replace")


def encode_xtext(text: str) -> str:
    return "".join(
        ch if "!" <= ch <= "~" and ch not in "+=" else "".join(f"+{b:02X}" for b in ch.encode())
        for ch in text
    )


# RFC 3463 codes for replies written without one: by reply code, the most general fitting.
_DEFAULT_ENHANCED = {
    "211": "2.0.0",
    "214": "2.0.0",
    "220": "2.0.0",
    "221": "2.0.0",
    "235": "2.7.0",
    "250": "2.0.0",
    "251": "2.1.5",
    "252": "2.5.0",
    "421": "4.3.0",
    "450": "4.2.0",
    "451": "4.3.0",
    "452": "4.3.1",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "535": "5.7.8",
    "538": "5.7.11",
    "550": "5.0.0",
    "551": "5.1.6",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.0.0",
    "555": "5.5.4",
}
_HAS_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}(?: |\Z)")


def with_enhanced_code(reply: str) -> str:
    """``250 OK`` -> ``250 2.0.0 OK``; replies that carry a code, 3xx replies and
    multi-line continuation lines (``250-``) are returned unchanged (RFC 2034 3)."""
    code, sep, text = reply[:3], reply[3:4], reply[4:]
    if sep != " " or code[:1] not in "245" or not code.isdigit():
        return reply
    if _HAS_ENHANCED.match(text):
        return reply
    enhanced = _DEFAULT_ENHANCED.get(code, f"{code[0]}.0.0")
    return f"{code} {enhanced} {text}" if text else f"{code} {enhanced}"
