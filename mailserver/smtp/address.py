"""SMTP envelope paths: parse them (RFC 5321 4.1.2, RFC 6531) and name relaying tricks.

Pure functions over ``str``: the SMTP session hands over the path text of ``MAIL FROM:`` or
``RCPT TO:`` (without the ESMTP parameters that follow it) and gets a :class:`ParsedPath` or an
:class:`AddressError` that carries the exact reply line to send.

The parser is strict: anything outside the RFC 5321 grammar (as extended by RFC 6531 when the
transaction is SMTPUTF8) is refused with ``501``. Some syntactically valid paths are still
dangerous for a server that decides "local or remote?" by looking at the domain;
:func:`relay_trick` names them so that the policy layer refuses them with ``550 5.7.1``. It also
re-checks the things the parser already refuses (trailing dots, empty labels, lengths), because
a :class:`ParsedPath` can be built from other sources (alias tables, forwarding targets, admin
input) without passing through :func:`parse_path`.
"""

from __future__ import annotations

import ipaddress
import re
import string
import unicodedata
from dataclasses import dataclass

# RFC 5321 4.5.3.1.1-3: the sizes every implementation must accept. We accept exactly these.
MAX_LOCAL_PART_OCTETS = 64
MAX_DOMAIN_OCTETS = 255
MAX_PATH_OCTETS = 256  # including the angle brackets and the source route (4.5.3.1.3)
MAX_LABEL_OCTETS = 63  # RFC 1035 2.3.4

RECIPIENT_SYNTAX_REPLY = "501 5.1.3 Bad recipient address syntax"
SENDER_SYNTAX_REPLY = "501 5.1.7 Bad sender address syntax"
# RFC 6531 3.5 / 3.7.4.1: non-ASCII in a path of a transaction without SMTPUTF8.
NON_ASCII_REPLY = "553 5.6.7 Non-ASCII addresses require SMTPUTF8"
RELAY_DENIED_REPLY = "550 5.7.1 Relaying denied"


class AddressError(ValueError):
    """An address is refused; ``reply`` is the complete SMTP reply line to send.

    ``detail`` says why, for logs; it is not sent to the client.
    """

    def __init__(self, reply: str, detail: str) -> None:
        super().__init__(f"{reply} ({detail})")
        self.reply = reply
        self.detail = detail

    @property
    def code(self) -> int:
        """The three-digit SMTP reply code."""
        return int(self.reply[:3])


class PathSyntaxError(AddressError):
    """The path does not match the RFC 5321 (or RFC 6531) grammar, or is too long."""


class NonAsciiAddressError(AddressError):
    """A non-ASCII path in a transaction that did not announce SMTPUTF8."""


class RelayDenied(AddressError):
    """The path uses a relaying trick (see :func:`relay_trick`)."""

    def __init__(self, detail: str) -> None:
        super().__init__(RELAY_DENIED_REPLY, detail)


@dataclass(frozen=True, slots=True)
class ParsedPath:
    """A parsed envelope path.

    ``local_part`` is the mailbox name with any quoting removed (``"a b"`` -> ``a b``);
    ``quoted`` says whether it was written as a quoted-string. ``domain`` is as written: a
    domain name, or an address literal with its brackets (``[192.0.2.1]``). The null reverse
    path ``<>`` has both empty; so has the domain of the bare ``<Postmaster>`` recipient.
    ``source_route`` holds the domains of an RFC 5321 A-d-l (``<@a,@b:u@c>`` -> ``("a", "b")``).
    """

    local_part: str
    domain: str
    quoted: bool = False
    source_route: tuple[str, ...] = ()

    @property
    def is_null(self) -> bool:
        """True for the null reverse path ``<>``."""
        return not self.local_part and not self.domain and not self.quoted

    @property
    def is_domain_literal(self) -> bool:
        """True when the domain is an address literal such as ``[192.0.2.1]``."""
        return self.domain.startswith("[")

    def mailbox(self) -> str:
        """The mailbox in wire form (``local@domain``), quoting the local part if needed."""
        if self.is_null:
            return ""
        local = _quote_local_part(self.local_part) if self.quoted else self.local_part
        return f"{local}@{self.domain}" if self.domain else local

    def __str__(self) -> str:
        route = ",".join(f"@{d}" for d in self.source_route)
        return f"<{route}:{self.mailbox()}>" if route else f"<{self.mailbox()}>"


NULL_PATH = ParsedPath(local_part="", domain="")

# RFC 5322 3.2.3 atext, which RFC 5321 4.1.2 uses for Atom.
_ATEXT_ASCII = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_LDH_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\Z")
_SNUM = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_SNUM}(?:\.{_SNUM}){{3}}\Z")
_GENERAL_LITERAL = re.compile(r"([A-Za-z0-9-]*[A-Za-z0-9]):([\x21-\x5a\x5e-\x7e]+)\Z")
# Characters never accepted in a UTF-8 local part even with SMTPUTF8: controls, surrogates
# (from surrogateescape decoding), private use, unassigned, separators and invisible format
# characters (zero-width joiners, bidi controls) that make two addresses look identical.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


def parse_path(text: str, smtputf8: bool, *, sender: bool = False) -> ParsedPath:
    """Parse the path of ``MAIL FROM:`` (``sender=True``) or ``RCPT TO:``.

    Accepts ``<>`` only as a reverse path, ``<Postmaster>`` without domain only as a forward
    path (RFC 5321 4.1.1.3), source routes (kept so policy can refuse them; RFC 5321 4.1.2
    says "MUST accept" the syntax but SHOULD ignore the route), quoted local parts and address
    literals. Raises :class:`PathSyntaxError` (501), or :class:`NonAsciiAddressError` (553) for
    non-ASCII without ``smtputf8``.
    """
    reply = SENDER_SYNTAX_REPLY if sender else RECIPIENT_SYNTAX_REPLY
    path = text.strip(" ")
    if path == "<>":
        if not sender:
            raise PathSyntaxError(reply, "null path is only valid as a reverse path")
        return NULL_PATH
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_OCTETS:
        raise PathSyntaxError(reply, "path too long")  # RFC 5321 4.5.3.1.10: "501 Path too long"
    if len(path) < 2 or path[0] != "<" or path[-1] != ">":
        raise PathSyntaxError(reply, "path must be enclosed in angle brackets")
    inner = path[1:-1]
    if not inner.isascii() and not smtputf8:
        raise NonAsciiAddressError(NON_ASCII_REPLY, "non-ASCII path without SMTPUTF8")

    route: tuple[str, ...] = ()
    if inner.startswith("@"):
        # An A-d-l holds only domain names, never literals, so the first ":" ends it.
        adl, colon, inner = inner.partition(":")
        if not colon:
            raise PathSyntaxError(reply, "source route without ':'")
        route = tuple(_parse_route_domain(part, reply) for part in adl.split(","))

    if not route and not sender and inner.lower() == "postmaster":
        return ParsedPath(local_part=inner, domain="")

    local_part, quoted, rest = _parse_local_part(inner, reply)
    if not rest.startswith("@"):
        raise PathSyntaxError(reply, "missing '@domain'")
    domain = rest[1:]
    problem = _domain_syntax_problem(domain)
    if problem:
        raise PathSyntaxError(reply, problem)
    parsed = ParsedPath(local_part=local_part, domain=domain, quoted=quoted, source_route=route)
    problem = _length_problem(parsed)
    if problem:
        raise PathSyntaxError(reply, problem)
    return parsed


def _parse_route_domain(part: str, reply: str) -> str:
    if not part.startswith("@"):
        raise PathSyntaxError(reply, "source route element without '@'")
    domain = part[1:]
    problem = _domain_name_problem(domain)
    if problem:
        raise PathSyntaxError(reply, f"source route: {problem}")
    return domain


def _parse_local_part(text: str, reply: str) -> tuple[str, bool, str]:
    """Split ``text`` into (local part without quoting, quoted?, rest starting at '@')."""
    if text.startswith('"'):
        return _parse_quoted_string(text, reply)
    at = text.find("@")
    dot_string = text if at < 0 else text[:at]
    # Dot-string = Atom *("." Atom): no empty atoms, so no leading, trailing or double dots.
    for atom in dot_string.split("."):
        if not atom:
            raise PathSyntaxError(reply, "empty atom in local part")
        for char in atom:
            if char in _ATEXT_ASCII:
                continue
            # RFC 6531 3.3: atext =/ UTF8-non-ascii (ASCII-ness was checked by the caller).
            if char.isascii() or unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
                raise PathSyntaxError(reply, f"character {char!r} not allowed in local part")
    return dot_string, False, text[len(dot_string) :]


def _parse_quoted_string(text: str, reply: str) -> tuple[str, bool, str]:
    # RFC 5321 4.1.2: QcontentSMTP = qtextSMTP / quoted-pairSMTP
    #   quoted-pairSMTP = %d92 %d32-126 ; qtextSMTP = %d32-33 / %d35-91 / %d93-126
    # RFC 6531 3.3: qtextSMTP =/ UTF8-non-ascii
    value: list[str] = []
    index = 1
    while index < len(text):
        char = text[index]
        if char == '"':
            return "".join(value), True, text[index + 1 :]
        if char == "\\":
            if index + 1 >= len(text) or not " " <= text[index + 1] <= "~":
                raise PathSyntaxError(reply, "bad quoted-pair in local part")
            value.append(text[index + 1])
            index += 2
            continue
        if char.isascii():
            if not " " <= char <= "~":
                raise PathSyntaxError(reply, "control character in quoted local part")
        elif unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise PathSyntaxError(reply, f"character {char!r} not allowed in local part")
        value.append(char)
        index += 1
    raise PathSyntaxError(reply, "unterminated quoted local part")


def _domain_syntax_problem(domain: str) -> str | None:
    if domain.startswith("["):
        return _address_literal_problem(domain)
    return _domain_name_problem(domain)


def _address_literal_problem(literal: str) -> str | None:
    """RFC 5321 4.1.3 address-literal; ``None`` when valid."""
    if not literal.endswith("]") or len(literal) < 3:
        return "unterminated address literal"
    body = literal[1:-1]
    if _IPV4.match(body):
        return None
    if body[:5].lower() == "ipv6:":
        return None if _is_ipv6(body[5:]) else "bad IPv6 address literal"
    if _GENERAL_LITERAL.match(body):
        return None
    return "bad address literal"


def _is_ipv6(text: str) -> bool:
    if "%" in text:  # zone ids are not part of RFC 5321 IPv6-addr
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _domain_name_problem(domain: str) -> str | None:
    """RFC 5321 Domain, with RFC 6531 U-labels; ``None`` when valid."""
    if not domain:
        return "empty domain"
    if domain.endswith("."):
        return "trailing dot in domain"
    for label in domain.split("."):
        if not label:
            return "empty label in domain"
        if label.isascii():
            if not _LDH_LABEL.match(label):
                return f"bad domain label {label!r}"
            if label[:4].lower() == "xn--" and _a_label_problem(label):
                return f"bad A-label {label!r}"
        else:
            problem = _u_label_problem(label)
            if problem:
                return problem
        if len(label.encode("utf-8", "surrogatepass")) > MAX_LABEL_OCTETS:
            return "domain label too long"
    return None


def _u_label_problem(label: str) -> str | None:
    """A small IDNA 2008 (RFC 5891 4.2, 5892) check of a U-label; ``None`` when valid.

    Not the full derived-property table (the stdlib has none); it refuses what matters here:
    case or compatibility forms (fullwidth letters), non-NFC text, a leading combining mark,
    hyphens in the wrong places, and anything that is not a letter, mark, digit or hyphen.
    """
    if unicodedata.normalize("NFKC", label) != label:
        return f"compatibility or non-NFC characters in domain label {label!r}"
    if label != label.lower():
        return f"upper-case characters in domain label {label!r}"
    if label.startswith("-") or label.endswith("-"):
        return f"hyphen at the edge of domain label {label!r}"
    if label[2:4] == "--":  # RFC 5891 4.2.3.1
        return f"hyphens in positions 3 and 4 of domain label {label!r}"
    if unicodedata.category(label[0]).startswith("M"):  # RFC 5891 4.2.3.2
        return f"domain label {label!r} starts with a combining mark"
    for char in label:
        category = unicodedata.category(char)
        if char != "-" and category[0] not in "LM" and category != "Nd":
            return f"character {char!r} not allowed in a domain label"
    try:
        encoded = label.encode("punycode")
    except UnicodeError:
        return f"domain label {label!r} cannot be encoded"
    if len(encoded) + 4 > MAX_LABEL_OCTETS:
        return "domain label too long"
    return None


def _a_label_problem(label: str) -> str | None:
    try:
        decoded = label[4:].lower().encode("ascii").decode("punycode")
    except (UnicodeError, ValueError):
        return "undecodable A-label"
    if not decoded or decoded.isascii():
        return "A-label that decodes to ASCII"
    return _u_label_problem(decoded)


def _length_problem(path: ParsedPath) -> str | None:
    """RFC 5321 4.5.3.1: local part <= 64, domain <= 255, path <= 256 octets."""
    local = _quote_local_part(path.local_part) if path.quoted else path.local_part
    if len(local.encode("utf-8", "surrogatepass")) > MAX_LOCAL_PART_OCTETS:
        return "local part too long"
    if len(path.domain.encode("utf-8", "surrogatepass")) > MAX_DOMAIN_OCTETS:
        return "domain too long"
    if len(str(path).encode("utf-8", "surrogatepass")) > MAX_PATH_OCTETS:
        return "path too long"
    return None


def _quote_local_part(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def normalise_domain(domain: str) -> str:
    """Lower-case ``domain`` and turn its U-labels into A-labels (IDNA 2008, RFC 5891).

    ``Bộ-Y-Tế.Gov.VN`` -> ``xn--b-y-t-s61b7g.gov.vn``; address literals are returned
    lower-cased. Unlike the stdlib ``idna`` codec (IDNA 2003) this does not map
    ``ß`` to ``ss`` or fullwidth letters to ASCII: those labels are refused instead, since a
    domain that only matches after such mapping is a look-alike. Raises :class:`ValueError`.
    """
    if domain.startswith("["):
        problem = _address_literal_problem(domain)
        if problem:
            raise ValueError(problem)
        return domain.lower()
    # UTS 46-style case mapping and NFC, so "Sở" and "SỞ" (NFC or NFD) agree; nothing more.
    mapped = unicodedata.normalize("NFC", domain).lower()
    problem = _domain_name_problem(mapped)
    if problem:
        raise ValueError(problem)
    return ".".join(_to_a_label(label) for label in mapped.split("."))


def _to_a_label(label: str) -> str:
    if label.isascii():
        return label
    return "xn--" + label.encode("punycode").decode("ascii")


def split_plus(local_part: str) -> tuple[str, str | None]:
    """Split plus-addressing: ``thanhnn+hop`` -> (``thanhnn``, ``hop``), ``a`` -> (``a``, None).

    Splits at the first ``+``; an empty tag (``a+``) gives ``""``, and a local part that starts
    with ``+`` has no base, so it is returned whole with no tag.
    """
    base, plus, tag = local_part.partition("+")
    if not plus or not base:
        return local_part, None
    return base, tag


def relay_trick(path: ParsedPath) -> str | None:
    """Name the reason ``path`` must be refused for relaying, or ``None`` if it is clean.

    A server that decides "local or remote" from the domain alone can be tricked into relaying
    by paths whose real destination hides elsewhere (RFC 5321 3.6.1, 3.6.2, F.2), or by domains
    that only look like ours. Callers answer a non-``None`` result with :class:`RelayDenied`.
    """
    if path.is_null:
        return None
    if path.source_route:
        # RFC 5321 3.6.1: source routes are deprecated; a server SHOULD NOT relay by them.
        return "source route"
    if path.quoted:
        if any(char in path.local_part for char in "@%!"):
            return "quoted local part containing '@', '%' or '!'"
    else:
        if "%" in path.local_part:
            return "percent hack in local part"
        if "!" in path.local_part:
            return "bang path in local part"
    if not path.domain:
        return None  # <Postmaster> (RFC 5321 4.1.1.3): always local
    if path.is_domain_literal:
        return "IP address literal as domain"
    problem = _length_problem(path)
    if problem:
        return problem
    if path.domain.endswith("."):
        return "trailing dot in domain"
    if any(not label for label in path.domain.split(".")):
        return "empty label in domain"
    lookalike = _lookalike_problem(path.domain)
    if lookalike:
        return lookalike
    problem = _domain_name_problem(path.domain)
    return f"invalid domain: {problem}" if problem else None


# UTS 39 5.1 "Highly Restrictive": one script per label, or Latin with Han and one of the
# Japanese, Chinese or Korean companions.
_ALLOWED_SCRIPT_MIXES = (
    frozenset({"LATIN", "CJK", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "CJK", "BOPOMOFO"}),
    frozenset({"LATIN", "CJK", "HANGUL"}),
)
# Letters of other scripts that render like Latin letters. A label made only of these (plus
# digits and hyphens) is a whole-script confusable of a Latin label (UTS 39 4).
_LATIN_LOOKALIKES = frozenset(
    # Cyrillic а е о р с у х і ј ѕ һ ԁ ԍ ӏ ԛ ԝ
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u04bb\u0501\u050d"
    "\u04cf\u051b\u051d"
    # Greek α ι κ ν ο υ ϲ ϳ
    "\u03b1\u03b9\u03ba\u03bd\u03bf\u03c5\u03f2\u03f3"
)


def _lookalike_problem(domain: str) -> str | None:
    for written in domain.split("."):
        # An A-label is the same name in ASCII clothing: judge what it decodes to.
        label = _decode_a_label(written) if written[:4].lower() == "xn--" else written
        if label.isascii():
            continue
        if unicodedata.normalize("NFKC", label) != label:
            return "fullwidth or compatibility characters in domain"
        scripts = {_script_of(char) for char in label} - {"COMMON", "INHERITED"}
        if len(scripts) > 1 and not any(scripts <= mix for mix in _ALLOWED_SCRIPT_MIXES):
            return "mixed scripts in domain label"
        if (
            scripts
            and "LATIN" not in scripts
            and all(char in _LATIN_LOOKALIKES or _script_of(char) == "COMMON" for char in label)
        ):
            return "domain label confusable with a Latin label"
    return None


def _decode_a_label(label: str) -> str:
    try:
        return label[4:].lower().encode("ascii").decode("punycode")
    except (UnicodeError, ValueError):
        return label  # undecodable: left to the syntax check


def _script_of(char: str) -> str:
    """Approximate the Unicode Script property from the character name (no stdlib table).

    Good enough for letters: their names start with the script ("CYRILLIC SMALL LETTER O",
    "LATIN SMALL LETTER E WITH CIRCUMFLEX", "CJK UNIFIED IDEOGRAPH-...").
    """
    category = unicodedata.category(char)
    if category.startswith("M"):
        return "INHERITED"
    if not category.startswith("L"):
        return "COMMON"
    name = unicodedata.name(char, "")
    for prefix in ("FULLWIDTH ", "HALFWIDTH "):
        name = name.removeprefix(prefix)
    return name.split(" ", 1)[0] if name else "UNKNOWN"
