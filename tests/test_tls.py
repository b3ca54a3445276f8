"""Tests for mailserver.tls: the self-signed certificate, and real handshakes over asyncio."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import ssl
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailserver.tls import (
    TLS12_CIPHERS,
    client_ssl_context,
    ensure_self_signed_cert,
    server_ssl_context,
    subject_alternative_names,
)

HOSTNAME = "mail.skhcn.hanoi.gov.vn"
FIXED_NOW = datetime.datetime(2025, 7, 1, 8, 0, tzinfo=datetime.UTC)


@pytest.fixture
def cert_pair(tmp_path: Path) -> tuple[Path, Path]:
    cert_path, key_path = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    ensure_self_signed_cert(cert_path, key_path, [HOSTNAME, "localhost"], now=FIXED_NOW)
    return cert_path, key_path


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certificate_names_validity_and_key(cert_pair: tuple[Path, Path]) -> None:
    cert_path, key_path = cert_pair
    cert = load_cert(cert_path)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [HOSTNAME, "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.IPv4Address("127.0.0.1")]
    assert cert.subject == cert.issuer
    assert cert.subject.rfc4514_string() == f"CN={HOSTNAME}"
    assert cert.not_valid_before_utc == FIXED_NOW - datetime.timedelta(hours=1)
    assert cert.not_valid_after_utc == FIXED_NOW + datetime.timedelta(days=3652)
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False

    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    cert_key = cert.public_key()
    assert isinstance(cert_key, rsa.RSAPublicKey)
    assert key.public_key().public_numbers() == cert_key.public_numbers()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert sorted(p.name for p in cert_path.parent.iterdir()) == ["cert.pem", "key.pem"]


def test_existing_pair_is_left_alone(cert_pair: tuple[Path, Path]) -> None:
    cert_path, key_path = cert_pair
    before = (cert_path.read_bytes(), key_path.read_bytes())
    ensure_self_signed_cert(cert_path, key_path, ["other.example"])
    assert (cert_path.read_bytes(), key_path.read_bytes()) == before


def test_missing_key_makes_a_new_matching_pair(cert_pair: tuple[Path, Path]) -> None:
    cert_path, key_path = cert_pair
    old_cert = cert_path.read_bytes()
    key_path.unlink()
    ensure_self_signed_cert(cert_path, key_path, [HOSTNAME])
    assert cert_path.read_bytes() != old_cert
    # load_cert_chain raises if the key does not belong to the certificate.
    server_ssl_context(cert_path, key_path)


def test_key_is_private_even_with_open_umask(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        ensure_self_signed_cert(tmp_path / "c.pem", tmp_path / "k.pem", [HOSTNAME])
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "c.pem").stat().st_mode) == 0o644


def test_idn_ip_literal_and_duplicates_in_san() -> None:
    san = subject_alternative_names(["Thư.Gov.VN.", "127.0.0.1", "::1", "thư.gov.vn"])
    assert san == [
        x509.DNSName("xn--th-e0a.gov.vn"),
        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
        x509.IPAddress(ipaddress.IPv6Address("::1")),
    ]


def test_long_hostname_keeps_san_and_shortens_common_name(tmp_path: Path) -> None:
    long_name = ".".join(["a" * 60] * 4)
    ensure_self_signed_cert(tmp_path / "c.pem", tmp_path / "k.pem", [long_name])
    cert = load_cert(tmp_path / "c.pem")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [long_name]
    assert cert.subject.rfc4514_string() == "CN=govmail self-signed"


@pytest.mark.parametrize(
    "hostile",
    [
        "",
        ".",
        "mail..gov.vn",
        "mail gov.vn",
        "mail.gov.vn\r\nX-Injected: 1",
        "-mail.gov.vn",
        "*.gov.vn",
        "mail/evil",
        "a" * 64 + ".vn",
        ".".join(["a" * 63] * 4 + ["vn"]),
    ],
)
def test_hostile_hostnames_are_refused(tmp_path: Path, hostile: str) -> None:
    with pytest.raises(ValueError):
        ensure_self_signed_cert(tmp_path / "c.pem", tmp_path / "k.pem", [hostile])
    assert list(tmp_path.iterdir()) == []


def test_context_settings(cert_pair: tuple[Path, Path]) -> None:
    server = server_ssl_context(*cert_pair)
    client = client_ssl_context(verify=True, cafile=cert_pair[0])
    for context in (server, client):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        tls12 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
        assert tls12 and tls12 <= set(TLS12_CIPHERS.split(":"))
    assert server.options & ssl.OP_NO_RENEGOTIATION
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname
    lax = client_ssl_context(verify=False, cafile=None)
    assert lax.verify_mode == ssl.CERT_NONE and not lax.check_hostname


def test_cafile_without_verification_is_refused(cert_pair: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError):
        client_ssl_context(verify=False, cafile=cert_pair[0])


async def echo_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        writer.write(await reader.readline())
        await writer.drain()
    finally:
        writer.close()


@asynccontextmanager
async def tls_echo_server(cert_pair: tuple[Path, Path]) -> AsyncIterator[int]:
    server = await asyncio.start_server(
        echo_line, "127.0.0.1", 0, ssl=server_ssl_context(*cert_pair)
    )
    async with server:
        yield server.sockets[0].getsockname()[1]


async def exchange(
    port: int, context: ssl.SSLContext, server_hostname: str
) -> tuple[bytes, dict[str, Any]]:
    """Send one line over TLS; return the echo and what the client learnt of the session."""
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname=server_hostname
        )
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            info = {"version": ssl_object.version(), "peercert": ssl_object.getpeercert()}
            writer.write("xin chào\n".encode())
            await writer.drain()
            return await reader.readline(), info
        finally:
            writer.close()
            await writer.wait_closed()


@pytest.mark.parametrize("server_hostname", [HOSTNAME, "localhost", "127.0.0.1"])
async def test_verified_handshake_and_echo(
    cert_pair: tuple[Path, Path], server_hostname: str
) -> None:
    context = client_ssl_context(verify=True, cafile=cert_pair[0])
    # What Python 3.13 turns on by default; the certificate must satisfy it already.
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    async with tls_echo_server(cert_pair) as port:
        echoed, info = await exchange(port, context, server_hostname)
    assert echoed == "xin chào\n".encode()
    assert info["version"] in {"TLSv1.2", "TLSv1.3"}
    assert info["peercert"]["subjectAltName"] == (
        ("DNS", HOSTNAME),
        ("DNS", "localhost"),
        ("IP Address", "127.0.0.1"),
    )


async def test_tls12_only_client_is_served(cert_pair: tuple[Path, Path]) -> None:
    context = client_ssl_context(verify=True, cafile=cert_pair[0])
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    async with tls_echo_server(cert_pair) as port:
        echoed, info = await exchange(port, context, HOSTNAME)
    assert echoed == "xin chào\n".encode()
    assert info["version"] == "TLSv1.2"


async def test_unverified_client_accepts_self_signed(cert_pair: tuple[Path, Path]) -> None:
    async with tls_echo_server(cert_pair) as port:
        echoed, info = await exchange(port, client_ssl_context(verify=False, cafile=None), "x")
    assert echoed == "xin chào\n".encode()
    assert info["peercert"] == {}


async def test_verify_without_cafile_rejects_self_signed(cert_pair: tuple[Path, Path]) -> None:
    async with tls_echo_server(cert_pair) as port:
        with pytest.raises(ssl.SSLCertVerificationError) as failure:
            await exchange(port, client_ssl_context(verify=True, cafile=None), HOSTNAME)
    assert failure.value.verify_message == "self-signed certificate"


async def test_verify_rejects_wrong_hostname(cert_pair: tuple[Path, Path]) -> None:
    context = client_ssl_context(verify=True, cafile=cert_pair[0])
    async with tls_echo_server(cert_pair) as port:
        with pytest.raises(ssl.SSLCertVerificationError) as failure:
            await exchange(port, context, "mail.other-agency.gov.vn")
    assert "Hostname mismatch" in failure.value.verify_message


async def test_verify_rejects_another_self_signed_cert(
    cert_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    impostor = tmp_path / "impostor"
    ensure_self_signed_cert(impostor / "c.pem", impostor / "k.pem", [HOSTNAME])
    context = client_ssl_context(verify=True, cafile=cert_pair[0])
    async with tls_echo_server((impostor / "c.pem", impostor / "k.pem")) as port:
        with pytest.raises(ssl.SSLCertVerificationError):
            await exchange(port, context, HOSTNAME)
