"""TLS material and contexts: a self-signed certificate for first start, server and client contexts.

The self-signed certificate lets a fresh install offer STARTTLS/IMAPS at once; an agency replaces it
with one from its CA. Key generation and file writes block: call `ensure_self_signed_cert` at
start-up, or through `asyncio.to_thread` from running async code.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_VALIDITY = datetime.timedelta(days=3652)
# Backdating covers clients whose clock runs slightly behind the server's.
CERT_BACKDATE = datetime.timedelta(hours=1)
# RSA rather than ECDSA: the old mail clients agencies still run (Outlook 2007/2010 on old Windows,
# old phones) do not all offer ECDSA suites.
RSA_KEY_BITS = 2048
LOOPBACK_ADDRESS = ipaddress.IPv4Address("127.0.0.1")
MAX_COMMON_NAME_LENGTH = 64
MAX_DNS_NAME_LENGTH = 253
FALLBACK_COMMON_NAME = "govmail self-signed"

# Mozilla "intermediate" TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3 suites are set
# separately by OpenSSL and are all acceptable.
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    )
)


def ensure_self_signed_cert(
    cert_path: Path,
    key_path: Path,
    hostnames: list[str],
    now: datetime.datetime | None = None,
) -> None:
    """Write a self-signed certificate and its key unless both files already exist.

    The SAN holds every hostname (IDNs as A-labels, IP literals as IP addresses) and 127.0.0.1.
    The key file is mode 0600. Each file is replaced atomically, key first, so an interrupted run
    never leaves a certificate without its key; if only one file exists both are made anew.
    """
    if cert_path.exists() and key_path.exists():
        return
    san = subject_alternative_names(hostnames)
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    cert = build_self_signed_cert(key, san, now or datetime.datetime.now(datetime.UTC))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_file_atomically(key_path, key_pem, mode=0o600)
    write_file_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def subject_alternative_names(hostnames: list[str]) -> list[x509.GeneralName]:
    """SAN entries for `hostnames` plus 127.0.0.1, without duplicates, in the given order.

    Raises ValueError for a name that is neither an IP literal nor a valid DNS name.
    """
    names: list[x509.GeneralName] = []
    for hostname in hostnames:
        name = general_name_for(hostname)
        if name not in names:
            names.append(name)
    loopback = x509.IPAddress(LOOPBACK_ADDRESS)
    if loopback not in names:
        names.append(loopback)
    return names


def general_name_for(hostname: str) -> x509.GeneralName:
    """An IPAddress entry for an IP literal, else a DNSName entry holding the A-label form."""
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        pass
    labels = hostname.rstrip(".").split(".")
    if not hostname or not all(labels):
        raise ValueError(f"not a hostname: {hostname!r}")
    ascii_labels: list[str] = []
    for label in labels:
        try:
            ascii_label = label.encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise ValueError(f"not a hostname: {hostname!r}") from exc
        # RFC 1123 section 2.1 letters, digits and hyphens; RFC 6125 section 6.4.3 allows one
        # leading wildcard label, which a self-signed certificate has no use for.
        if not all(c.isascii() and (c.isalnum() or c == "-") for c in ascii_label):
            raise ValueError(f"not a hostname: {hostname!r}")
        if ascii_label.startswith("-") or ascii_label.endswith("-"):
            raise ValueError(f"not a hostname: {hostname!r}")
        ascii_labels.append(ascii_label)
    dns_name = ".".join(ascii_labels)
    if len(dns_name) > MAX_DNS_NAME_LENGTH:
        raise ValueError(f"hostname longer than {MAX_DNS_NAME_LENGTH} octets: {hostname!r}")
    return x509.DNSName(dns_name)


def build_self_signed_cert(
    key: rsa.RSAPrivateKey, san: list[x509.GeneralName], now: datetime.datetime
) -> x509.Certificate:
    """A server certificate signed by its own key, valid for ten years from `now`.

    It carries the extensions that OpenSSL's strict verification (X509_V_FLAG_X509_STRICT, on by
    default from Python 3.13) asks for, so clients can pin it as their only trust anchor.
    """
    first = san[0]
    common_name = first.value if isinstance(first, x509.DNSName) else str(first.value)
    if len(common_name) > MAX_COMMON_NAME_LENGTH:
        # RFC 5280 appendix A.1 ub-common-name; verification reads the SAN, never the CN.
        common_name = FALLBACK_COMMON_NAME
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CERT_BACKDATE)
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )


def write_file_atomically(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` with `data`: a temporary file in the same directory, fsync, rename, fsync dir.

    The temporary file is created with `mode` (mkstemp's 0600 narrowed or widened by chmod), so a
    private key is never readable by others, whatever the umask.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def server_ssl_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server context for SMTP STARTTLS/465, IMAP and POP3: TLS 1.2 or later, AEAD suites."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    # Client-initiated renegotiation costs the server a handshake each time for nothing.
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    context.load_cert_chain(cert_path, key_path)
    return context


def client_ssl_context(verify: bool, cafile: Path | None) -> ssl.SSLContext:
    """A client context for outbound SMTP and tests: TLS 1.2 or later.

    With `verify`, the peer must present a certificate for the requested hostname that chains to
    `cafile` (only that file) or, when `cafile` is None, to the system trust store. Without
    `verify`, any certificate is accepted (opportunistic STARTTLS); giving a `cafile` then is a
    contradiction and raises ValueError.
    """
    if not verify:
        if cafile is not None:
            raise ValueError("cafile given but verification is off")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION
    return context
