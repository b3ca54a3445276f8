"""/v1/password-change: users change their own password (no bearer token: the current password
is the credential). This is where IMAP's [EXPIRED] and SMTP's 535 send a user whose password
must be changed first (an admin's "change at next login", or older than the maximum age).

Wrong passwords count towards the account lockout exactly as IMAP and SMTP logins do, and
towards the per-IP throttle they share (mailserver.auth_throttle): a blocked address gets 429.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from admin_api.actions import hash_new_password, write
from admin_api.problems import PROBLEM_RESPONSES
from admin_api.runtime import instance_of
from admin_api.schemas import Address, AddressOut, Password
from mailserver.auth import PASSWORD_CHANGE_PATH, check_login
from storage.accounts import find_mailbox, set_password

router = APIRouter(
    tags=["password change"],
    responses={
        **PROBLEM_RESPONSES,
        429: {**PROBLEM_RESPONSES[422], "description": "Too many failed logins from this IP"},
    },
)

_FORM = """<!doctype html><html lang="vi"><meta charset="utf-8"><title>Đổi mật khẩu</title>
<form id="f"><p>Địa chỉ thư: <input name="address" type="email" required></p>
<p>Mật khẩu hiện tại: <input name="current" type="password" required></p>
<p>Mật khẩu mới (ít nhất 9 ký tự: chữ hoa, chữ thường, chữ số, ký hiệu):
<input name="new" type="password" required minlength="9"></p><button>Đổi mật khẩu</button></form>
<p id="r"></p><script>
document.getElementById("f").onsubmit = async (e) => {{
  e.preventDefault();
  const f = e.target;
  const r = await fetch("{path}", {{method: "POST", headers: {{"Content-Type": "application/json"}},
    body: JSON.stringify({{address: f.address.value, current_password: f.current.value,
                          new_password: f.new.value}})}});
  const b = await r.json();
  document.getElementById("r").textContent = r.ok ? "Đã đổi mật khẩu cho " + b.address : b.detail;
}};
</script></html>"""


class PasswordChangeIn(BaseModel):
    address: Address
    current_password: Password
    new_password: Password


@router.get(PASSWORD_CHANGE_PATH, response_class=HTMLResponse, include_in_schema=False)
async def password_change_form() -> HTMLResponse:
    return HTMLResponse(_FORM.format(path=PASSWORD_CHANGE_PATH))


@router.post(PASSWORD_CHANGE_PATH, response_model=AddressOut)
async def change_password_route(request: Request, body: PasswordChangeIn) -> AddressOut:
    """Check the current password (expired ones included), apply the policy, set the new one."""
    instance = instance_of(request)
    ip = request.client.host if request.client is not None else ""
    if await instance.login_throttle.blocked(ip):
        raise HTTPException(status_code=429, detail="too many failed logins from your address")
    result = await check_login(
        instance, body.address, body.current_password, "password-change", allow_expired=True
    )
    if not result.ok or result.address is None:
        await instance.login_throttle.note_failure(ip)
        raise HTTPException(status_code=401, detail="address or current password is wrong")
    if body.new_password == body.current_password:
        raise HTTPException(status_code=422, detail="the new password must differ from the old")
    address = result.address

    def full_name(session: object) -> str | None:
        mailbox = find_mailbox(session, address)  # type: ignore[arg-type]
        return (mailbox.display_name or None) if mailbox is not None else None

    name = await instance.store.read(full_name)
    password_hash = await hash_new_password(request, body.new_password, address, name)
    await write(request, lambda s: set_password(s, address, address, password_hash, False))
    return AddressOut(address=address)
