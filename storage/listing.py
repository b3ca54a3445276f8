"""Paging and sorting of admin lists: one implementation for every resource, API and CLI.

A list is a SELECT of one model with its filters already applied; :func:`fetch_page` adds the
sort (a whitelisted field, ``-`` for descending, with the primary key as the tie-breaker so
pages never overlap or skip), counts the total and returns one page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from storage.mailbox_ops import MailboxError
from storage.page_limits import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

T = TypeVar("T")


class BadListRequest(MailboxError):
    """An unknown sort field, a negative offset, a page too large."""


@dataclass(frozen=True)
class PageRequest:
    offset: int = 0
    limit: int = DEFAULT_PAGE_SIZE
    sort: str = ""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    offset: int
    limit: int


def sort_clause(sort: str, columns: Mapping[str, Any], default: str) -> tuple[Any, bool]:
    """The column named by ``sort`` (``name`` or ``-name``) and whether it is descending."""
    field = sort or default
    descending = field.startswith("-")
    name = field.removeprefix("-")
    if name not in columns:
        raise BadListRequest(f"cannot sort by {name!r}; choose one of {', '.join(sorted(columns))}")
    return columns[name], descending


def fetch_page(
    session: Session,
    query: SelectOfScalar[T],
    id_column: Any,
    page: PageRequest,
    sort_columns: Mapping[str, Any],
    default_sort: str,
) -> Page[T]:
    """Count ``query``'s rows and return the requested slice in the requested order."""
    if page.offset < 0:
        raise BadListRequest("offset must not be negative")
    if not 1 <= page.limit <= MAX_PAGE_SIZE:
        raise BadListRequest(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    column, descending = sort_clause(page.sort, sort_columns, default_sort)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    ordering = [col(column).desc(), col(id_column).desc()] if descending else [column, id_column]
    items = session.exec(query.order_by(*ordering).offset(page.offset).limit(page.limit)).all()
    return Page(items=items, total=int(total), offset=page.offset, limit=page.limit)


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, with LIKE's wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
