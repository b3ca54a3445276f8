"""Checks of the TLS certificate and key: present, readable, matching, in date, for our name."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from mailserver.doctor.results import CheckResult, fail, ok, warn

CERT_CHECK = "tls certificate"
KEY_CHECK = "tls key"
NAME_CHECK = "tls name"
EXPIRY_WARNING = timedelta(days=30)
FIX_CERT = "set [tls] cert_file to your certificate chain (PEM, leaf first) and restart"


class TLSProblem(Exception):
    """A file could not be read or parsed; the message says which and why."""


def read_certificate(path: Path) -> x509.Certificate:
    """The leaf (first) certificate of a PEM chain."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TLSProblem(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return x509.load_pem_x509_certificates(data)[0]
    except ValueError as exc:
        raise TLSProblem(f"{path} holds no PEM certificate: {exc}") from exc


def read_private_key(path: Path) -> PrivateKeyTypes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TLSProblem(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise TLSProblem(f"{path} holds no unencrypted PEM private key: {exc}") from exc


def public_key_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_expiry(cert: x509.Certificate, path: Path, now: datetime) -> CheckResult:
    starts, ends = cert.not_valid_before_utc, cert.not_valid_after_utc
    self_signed = ", self-signed" if cert.issuer == cert.subject else ""
    if now < starts:
        return fail(CERT_CHECK, f"{path} is not valid before {starts:%Y-%m-%d %H:%M} UTC", FIX_CERT)
    if now >= ends:
        return fail(
            CERT_CHECK,
            f"{path} expired on {ends:%Y-%m-%d}: clients refuse TLS with it",
            "renew the certificate with your CA, install it at [tls] cert_file, restart",
        )
    left = ends - now
    if left < EXPIRY_WARNING:
        return warn(
            CERT_CHECK,
            f"{path} expires on {ends:%Y-%m-%d} (in {left.days} days)",
            "renew the certificate with your CA before it expires, then restart",
        )
    return ok(CERT_CHECK, f"{path} valid until {ends:%Y-%m-%d}{self_signed}")


def check_key_matches(cert: x509.Certificate, key_path: Path) -> CheckResult:
    try:
        key = read_private_key(key_path)
    except TLSProblem as exc:
        return fail(KEY_CHECK, str(exc), "set [tls] key_file to the certificate's key (PEM, 0600)")
    if public_key_der(key.public_key()) != public_key_der(cert.public_key()):
        return fail(
            KEY_CHECK,
            f"{key_path} is not the key of the certificate",
            "install the key the certificate was issued for (or the certificate of this key)",
        )
    return ok(KEY_CHECK, f"{key_path} matches the certificate")


def certificate_names(cert: x509.Certificate) -> list[str]:
    """DNS names and IP addresses of the SAN; the common name when there is no SAN."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    names = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
    return names + [str(address) for address in san.get_values_for_type(x509.IPAddress)]


def name_matches(hostname: str, pattern: str) -> bool:
    """RFC 6125 6.4: exact (case-insensitive), or a wildcard standing for the leftmost label."""
    hostname, pattern = hostname.lower().rstrip("."), pattern.lower().rstrip(".")
    try:
        return ipaddress.ip_address(hostname) == ipaddress.ip_address(pattern)
    except ValueError:
        pass
    if pattern.startswith("*."):
        first, _, rest = hostname.partition(".")
        return bool(first) and rest == pattern[2:]
    return hostname == pattern


def check_name(cert: x509.Certificate, hostname: str) -> CheckResult:
    names = certificate_names(cert)
    if any(name_matches(hostname, name) for name in names):
        return ok(NAME_CHECK, f"the certificate covers {hostname}")
    return fail(
        NAME_CHECK,
        f"the certificate is for {', '.join(names) or 'no name'}, not server.hostname {hostname}",
        f"get a certificate for {hostname}, or correct [server] hostname",
    )


def check_tls(cert_path: Path, key_path: Path, hostname: str, now: datetime) -> list[CheckResult]:
    """Certificate readable and in date, key matching, name covering ``hostname``."""
    try:
        cert = read_certificate(cert_path)
    except TLSProblem as exc:
        return [fail(CERT_CHECK, str(exc), FIX_CERT)]
    return [
        check_expiry(cert, cert_path, now),
        check_key_matches(cert, key_path),
        check_name(cert, hostname),
    ]
