"""Client autoconfiguration over HTTP: what mail clients fetch before the first login, so users
type only their address and password. No bearer token (clients have none yet).

- Thunderbird: GET /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=... and
  /mail/config-v1.1.xml (as asked of the https://autoconfig.<domain> host);
- Outlook: POST (or GET ?emailaddress=) /autodiscover/autodiscover.xml, the POX protocol;
- Apple devices: GET /mobileconfig?emailaddress=... downloads a configuration profile; without
  an address it is a small form asking for one.

Only local domains are answered (another domain: 404), and the answer is the same whether the
mailbox exists or not. The documents come from mailserver/client_autoconfig.py, with the public
host and ports of mailserver.dns_records.client_endpoints ([clients] in the config).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from admin_api.runtime import instance_of
from mailserver.client_autoconfig import (
    MAX_AUTODISCOVER_REQUEST,
    AutodiscoverRequestError,
    apple_mobileconfig,
    autodiscover_response,
    parse_autodiscover_request,
    thunderbird_config,
)
from mailserver.dns_records import ClientEndpoints, client_endpoints
from storage.accounts import find_domain, normalise_address
from storage.models import Agency

router = APIRouter(tags=["client autoconfiguration"], include_in_schema=False)

THUNDERBIRD_PATHS = ("/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml")
AUTODISCOVER_PATHS = ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml")
MOBILECONFIG_PATH = "/mobileconfig"
MAX_ADDRESS_LENGTH = 320
XML = "application/xml"
UNKNOWN_DOMAIN = "no mail service for this domain here"

_MOBILECONFIG_FORM = """<!doctype html><html lang="vi"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cài đặt thư công vụ trên iPhone, iPad, Mac</title>
<form method="get" action="{path}"><p>Địa chỉ thư: <input name="emailaddress" type="email"
required autocapitalize="none"></p><button>Tải hồ sơ cấu hình</button></form>
<p>Mở tệp đã tải trong Cài đặt, chọn Cài đặt, rồi nhập mật khẩu thư.</p></html>"""


@dataclass(frozen=True)
class LocalDomain:
    name: str
    organisation: str  # the owning agency's name
    endpoints: ClientEndpoints


def _checked_address(raw: str) -> str:
    if len(raw) > MAX_ADDRESS_LENGTH or any(ord(c) < 0x20 or c == "\x7f" for c in raw):
        raise HTTPException(status_code=400, detail="not an e-mail address")
    try:
        return normalise_address(raw)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail="not an e-mail address") from exc


async def _local_domain(request: Request, domain: str) -> LocalDomain:
    """The domain if this instance serves it, else 404 (and never a word about mailboxes)."""

    def organisation(session: Session) -> str | None:
        found = find_domain(session, domain)
        if found is None:
            return None
        agency = session.get(Agency, found.agency_id)
        return agency.name if agency is not None else found.name

    instance = instance_of(request)
    name = await instance.store.read(organisation)
    if name is None:
        raise HTTPException(status_code=404, detail=UNKNOWN_DOMAIN)
    return LocalDomain(domain, name, client_endpoints(instance.config))


def _domain_from_host(request: Request) -> str:
    """Without ?emailaddress=, the domain the autoconfig.<domain> host name says."""
    host = request.headers.get("host", "").rpartition("@")[2]
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    prefix = "autoconfig."
    if not name.lower().startswith(prefix):
        raise HTTPException(status_code=404, detail=UNKNOWN_DOMAIN)
    return _checked_address(f"x@{name[len(prefix) :]}").partition("@")[2]


async def thunderbird_route(request: Request, emailaddress: str | None = None) -> Response:
    if emailaddress:
        domain = _checked_address(emailaddress).partition("@")[2]
    else:
        domain = _domain_from_host(request)
    local = await _local_domain(request, domain)
    body = thunderbird_config(local.endpoints, local.name, local.organisation)
    return Response(body, media_type=XML)


for _path in THUNDERBIRD_PATHS:
    router.add_api_route(_path, thunderbird_route, methods=["GET"])


async def _request_body(request: Request) -> bytes:
    """The body, refused (413) past the largest plausible Autodiscover request."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_AUTODISCOVER_REQUEST:
            raise HTTPException(status_code=413, detail="request too large")
    return bytes(body)


async def _autodiscover_answer(request: Request, raw_address: str) -> Response:
    address = _checked_address(raw_address)
    local = await _local_domain(request, address.partition("@")[2])
    return Response(autodiscover_response(local.endpoints, address), media_type=XML)


async def autodiscover_post_route(request: Request) -> Response:
    try:
        raw_address = parse_autodiscover_request(await _request_body(request))
    except AutodiscoverRequestError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    return await _autodiscover_answer(request, raw_address)


async def autodiscover_get_route(request: Request, emailaddress: str = "") -> Response:
    if not emailaddress:
        raise HTTPException(
            status_code=400, detail="POST an Autodiscover request or ?emailaddress="
        )
    return await _autodiscover_answer(request, emailaddress)


for _path in AUTODISCOVER_PATHS:
    router.add_api_route(_path, autodiscover_post_route, methods=["POST"])
    router.add_api_route(_path, autodiscover_get_route, methods=["GET"])


@router.get(MOBILECONFIG_PATH)
async def mobileconfig_route(request: Request, emailaddress: str = "") -> Response:
    if not emailaddress:
        return HTMLResponse(_MOBILECONFIG_FORM.format(path=html.escape(MOBILECONFIG_PATH)))
    address = _checked_address(emailaddress)
    local = await _local_domain(request, address.partition("@")[2])
    filename = f"{local.name}.mobileconfig"
    return Response(
        apple_mobileconfig(local.endpoints, address, local.organisation),
        media_type="application/x-apple-aspen-config",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
