"""Access to the running instance from request handlers (set on the app at creation)."""

from __future__ import annotations

from fastapi import Request

from mailserver.instance import Instance
from storage.store import MailStore


def instance_of(request: Request) -> Instance:
    instance: Instance = request.app.state.instance
    return instance


def store_of(request: Request) -> MailStore:
    return instance_of(request).store
