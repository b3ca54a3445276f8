"""/v1/password-setup: where one-time set-password links lead (no bearer token: the link is
the credential). GET shows a minimal form; POST sets the password under the policy."""

from __future__ import annotations

import html
import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from admin_api.actions import hash_new_password, read, write
from admin_api.problems import PROBLEM_RESPONSES
from admin_api.schemas import AddressOut, Printable, SetupIn
from mailserver.instance import SETUP_PATH
from storage.models import utcnow
from storage.password_setup import redeem_setup_token, setup_token_mailbox

router = APIRouter(tags=["password setup"], responses=PROBLEM_RESPONSES)

_FORM = """<!doctype html><html lang="vi"><meta charset="utf-8"><title>Đặt mật khẩu</title>
<form id="f"><p>Mật khẩu mới (ít nhất 9 ký tự: chữ hoa, chữ thường, chữ số, ký hiệu):</p>
<input type="password" name="password" required minlength="9"><button>Lưu</button></form>
<p id="r"></p><script>
document.getElementById("f").onsubmit = async (e) => {{
  e.preventDefault();
  const r = await fetch("{path}", {{method: "POST", headers: {{"Content-Type": "application/json"}},
    body: JSON.stringify({{token: {token}, password: e.target.password.value}})}});
  const b = await r.json();
  document.getElementById("r").textContent = r.ok ? "Đã đặt mật khẩu cho " + b.address : b.detail;
}};
</script></html>"""


@router.get(SETUP_PATH, response_class=HTMLResponse, include_in_schema=False)
async def setup_form_route(
    token: Annotated[str, Query(max_length=200), Printable] = "",
) -> HTMLResponse:
    quoted = html.escape(json.dumps(token), quote=False)
    return HTMLResponse(_FORM.format(path=SETUP_PATH, token=quoted))


@router.post(SETUP_PATH, response_model=AddressOut)
async def setup_password_route(request: Request, body: SetupIn) -> AddressOut:
    """Spend a one-time link: set the password (provincial policy) and return the address."""
    now = utcnow()
    mailbox = await read(request, lambda s: setup_token_mailbox(s, body.token, now))
    password_hash = await hash_new_password(
        request, body.password, mailbox.address, mailbox.display_name or None
    )
    address = await write(request, lambda s: redeem_setup_token(s, body.token, password_hash, now))
    return AddressOut(address=address)
